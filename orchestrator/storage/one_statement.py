"""Writing a batch of items on PostgreSQL in two round trips instead of one per row.

The ORM inserts an item's rows one statement at a time, each waiting for the id the next
one needs (the calls need the item's, the aggregation inputs the calls'), inside BEGIN and
COMMIT: on a server database every one of those is a loopback round trip, and a served
request waits for its record's commit. Here the ids are drawn from the tables' sequences
in one query and every row goes in one INSERT with data-modifying CTEs, each table's rows
passed as one array per column (`unnest`). One statement is one transaction, so an item is
still all there or not at all, and a duplicate key still fails the whole batch (the
caller's cue to store item by item).

Both statements have one text whatever the batch holds, written once per process from the
tables' metadata: nothing is compiled per write, and the driver prepares them on the
server after a few uses. The rows come from the same ORM objects `new_item` builds for
the ORM path, read through the mappers (columns, defaults, relationships), so the two
paths cannot drift apart as the schema grows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, String, Table
from sqlalchemy.orm import Mapper, RelationshipDirection, class_mapper, object_mapper

from signoria.orchestrator.storage.schema import Base, Item

_ONE_TO_MANY = RelationshipDirection.ONETOMANY
_MANY_TO_ONE = RelationshipDirection.MANYTOONE


def insert_items(connection: Connection, items: Sequence[Item]) -> None:
    """Insert `items` with everything attached to them, in one statement.

    `connection` should be in autocommit mode: the statement is then its own transaction
    and no BEGIN/COMMIT round trips are spent.
    """
    tables = _item_tables()
    by_table = _collect(items)
    counts = {f"n{i}": len(by_table.get(table, ())) for i, table in enumerate(tables)}
    drawn = connection.exec_driver_sql(_ids_sql(), counts).one()
    for table, ids in zip(tables, drawn, strict=True):
        for obj, new_id in zip(by_table.get(table, ()), ids, strict=True):
            obj.id = new_id
    for objects in by_table.values():
        for obj in objects:
            _link(obj)
    columns = {
        f"t{i}_{column.name}": [_value(column, obj) for obj in by_table.get(table, ())]
        for i, table in enumerate(tables)
        for column in table.columns
    }
    connection.exec_driver_sql(_insert_sql(connection.dialect), columns)


@cache
def _item_tables() -> tuple[Table, ...]:
    """The tables an item's rows live in, parents first: the item's and every table its
    one-to-many relationships reach."""
    found: set[Table] = set()
    pending: list[Mapper[Any]] = [class_mapper(Item)]
    while pending:
        mapper = pending.pop()
        found.add(mapper.local_table)  # type: ignore[arg-type]
        pending.extend(rel.mapper for rel in mapper.relationships if rel.direction is _ONE_TO_MANY)
    return tuple(table for table in Base.metadata.sorted_tables if table in found)


@cache
def _ids_sql() -> str:
    """One row of id arrays, `%(n<i>)s` fresh ids from table i's own sequence (sequences
    are not transactional: a failed write leaves a gap, as a failed ORM write does)."""
    arrays = [
        f"ARRAY(SELECT nextval(pg_get_serial_sequence('{table.name}', 'id'))"
        f" FROM generate_series(1, %(n{i})s))"
        for i, table in enumerate(_item_tables())
    ]
    return "SELECT " + ", ".join(arrays)


@cache
def _insert_sql(dialect: Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    writes = []
    for i, table in enumerate(_item_tables()):
        names = ", ".join(quote(column.name) for column in table.columns)
        # Strings travel as text and meet their VARCHAR(n) in the INSERT's assignment,
        # which refuses an over-long value; a cast to VARCHAR(n) would cut it silently.
        arrays = ", ".join(
            f"%(t{i}_{column.name})s::"
            + ("TEXT" if isinstance(column.type, String) else column.type.compile(dialect))
            + "[]"
            for column in table.columns
        )
        writes.append(f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest({arrays})")
    *first, last = writes
    ctes = ", ".join(f"write_{i} AS ({write})" for i, write in enumerate(first))
    return f"WITH {ctes} {last}"


def _collect(items: Sequence[Item]) -> dict[Table, list[Any]]:
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


def _value(column: Any, obj: Any) -> Any:
    """The object's value for `column` as the driver takes it: a column never set takes
    its Python default, as an ORM flush would give it, and JSON goes as its text."""
    if column.key in obj.__dict__:
        value = obj.__dict__[column.key]
    elif column.default is not None and column.default.is_callable:
        value = column.default.arg(None)
    elif column.default is not None and column.default.is_scalar:
        value = column.default.arg
    else:
        value = None
    return json.dumps(value) if isinstance(column.type, JSON) else value
