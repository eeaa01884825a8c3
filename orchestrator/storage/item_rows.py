"""An item's ORM objects read as rows per table, for the record writes that skip the ORM's
unit of work (`one_statement.py` on PostgreSQL, `sqlite_write.py` on SQLite).

The rows come from the same objects `new_item` builds for the ORM path, read through the
mappers (columns, Python defaults, relationships), so the paths cannot drift apart as the
schema grows. What each write adds is how it draws the ids and how it sends the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Mapper, RelationshipDirection, class_mapper, object_mapper

from signoria.orchestrator.storage.schema import Base, Item

_ONE_TO_MANY = RelationshipDirection.ONETOMANY
_MANY_TO_ONE = RelationshipDirection.MANYTOONE


@cache
def item_tables() -> tuple[Table, ...]:
    """The tables an item's rows live in, parents first: the item's and every table its
    one-to-many relationships reach."""
    found: set[Table] = set()
    pending: list[Mapper[Any]] = [class_mapper(Item)]
    while pending:
        mapper = pending.pop()
        found.add(mapper.local_table)  # type: ignore[arg-type]
        pending.extend(rel.mapper for rel in mapper.relationships if rel.direction is _ONE_TO_MANY)
    return tuple(table for table in Base.metadata.sorted_tables if table in found)


def collect(items: Sequence[Item]) -> dict[Table, list[Any]]:
    """Every object reachable from `items` by one-to-many relationships, per table, in the
    order they were built."""
    found: dict[Table, list[Any]] = {}
    pending: list[Any] = list(reversed(items))
    while pending:
        obj = pending.pop()
        mapper = object_mapper(obj)
        found.setdefault(mapper.local_table, []).append(obj)  # type: ignore[arg-type]
        for rel in reversed(list(mapper.relationships)):
            if rel.direction is _ONE_TO_MANY:
                pending.extend(reversed(_related(obj, rel.key)))
    return found


def give_ids(by_table: Mapping[Table, Sequence[Any]], ids: Mapping[Table, Sequence[int]]) -> None:
    """Number every object with the ids drawn for its table, then fill the foreign keys
    from them, as an ORM flush would."""
    for table, objects in by_table.items():
        for obj, new_id in zip(objects, ids[table], strict=True):
            obj.id = new_id
    for objects in by_table.values():
        for obj in objects:
            _link(obj)


def column_value(column: Any, obj: Any) -> Any:
    """The object's value for `column`: a column never set takes its Python default, as an
    ORM flush would give it."""
    if column.key in obj.__dict__:
        return obj.__dict__[column.key]
    if column.default is not None and column.default.is_callable:
        return column.default.arg(None)
    if column.default is not None and column.default.is_scalar:
        return column.default.arg
    return None


def _related(obj: Any, key: str) -> list[Any]:
    """The objects a relationship of `obj` holds, a list whether it is a collection, one
    object or unset."""
    value = obj.__dict__.get(key)
    return value if isinstance(value, list) else [] if value is None else [value]


def _link(obj: Any) -> None:
    """Copy the now known ids into the foreign keys the ORM would have filled at flush."""
    for rel in object_mapper(obj).relationships:
        for other in _related(obj, rel.key):
            for local, remote in rel.local_remote_pairs:
                if rel.direction is _ONE_TO_MANY:
                    setattr(other, str(remote.key), getattr(obj, str(local.key)))
                elif rel.direction is _MANY_TO_ONE:
                    setattr(obj, str(local.key), getattr(other, str(remote.key)))
