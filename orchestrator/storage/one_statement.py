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
server after a few uses. The rows are read from the ORM objects by `item_rows.py`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, String

from signoria.orchestrator.storage.item_rows import collect, column_value, give_ids, item_tables
from signoria.orchestrator.storage.schema import Item


def insert_items(connection: Connection, items: Sequence[Item]) -> None:
    """Insert `items` with everything attached to them, in one statement.

    `connection` should be in autocommit mode: the statement is then its own transaction
    and no BEGIN/COMMIT round trips are spent.
    """
    tables = item_tables()
    by_table = collect(items)
    counts = {f"n{i}": len(by_table.get(table, ())) for i, table in enumerate(tables)}
    drawn = connection.exec_driver_sql(_ids_sql(), counts).one()
    give_ids(by_table, dict(zip(tables, drawn, strict=True)))
    columns = {
        f"t{i}_{column.name}": [_value(column, obj) for obj in by_table.get(table, ())]
        for i, table in enumerate(tables)
        for column in table.columns
    }
    connection.exec_driver_sql(_insert_sql(connection.dialect), columns)


@cache
def _ids_sql() -> str:
    """One row of id arrays, `%(n<i>)s` fresh ids from table i's own sequence (sequences
    are not transactional: a failed write leaves a gap, as a failed ORM write does)."""
    arrays = [
        f"ARRAY(SELECT nextval(pg_get_serial_sequence('{table.name}', 'id'))"
        f" FROM generate_series(1, %(n{i})s))"
        for i, table in enumerate(item_tables())
    ]
    return "SELECT " + ", ".join(arrays)


@cache
def _insert_sql(dialect: Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    writes = []
    for i, table in enumerate(item_tables()):
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


def _value(column: Any, obj: Any) -> Any:
    """The object's value for `column` as psycopg takes it in an array: JSON as its text."""
    value = column_value(column, obj)
    return json.dumps(value) if isinstance(column.type, JSON) else value
