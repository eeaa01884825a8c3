"""Writing a batch of items on SQLite without the ORM's unit of work.

The unit of work flushes an item's rows one INSERT at a time, each reading back the id the
next one needs, and spends as much Python again on its bookkeeping: 0.96 ms for one
served request's record against 0.47 ms here (`benchmarks/record_write.py`, p50). The batch
takes SQLite's write lock first (BEGIN IMMEDIATE), reads each table's highest id, numbers
its rows after it (what SQLite itself does for an INTEGER PRIMARY KEY without
AUTOINCREMENT) and sends each table's rows in one `executemany`. The lock is held from the
read to the COMMIT, so no other writer, in this process or another, can take those ids. A
duplicate key fails the whole batch and rolls it back (the caller's cue to store item by
item), as in the ORM's transaction.

Values go through each column type's own bind processor, so dates and JSON are stored as
the ORM stores them and read back the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import Connection, Dialect, Table

from signoria.orchestrator.storage.item_rows import collect, column_value, give_ids, item_tables
from signoria.orchestrator.storage.schema import Item


def insert_items(connection: Connection, items: Sequence[Item]) -> None:
    """Insert `items` with everything attached to them, in one transaction.

    `connection` must be in autocommit mode (the driver then leaves the transaction to the
    BEGIN IMMEDIATE sent here).
    """
    dialect = connection.dialect
    tables = item_tables()
    by_table = collect(items)
    with immediate(connection):
        tops = connection.exec_driver_sql(_highest_ids_sql()).one()
        give_ids(
            by_table,
            {
                table: range(top + 1, top + 1 + len(by_table.get(table, ())))
                for table, top in zip(tables, tops, strict=True)
            },
        )
        for table in tables:
            if objects := by_table.get(table):
                sql, processors = _insert(table, dialect)
                rows = [_row(table, obj, processors) for obj in objects]
                connection.exec_driver_sql(sql, rows)


@contextmanager
def immediate(connection: Connection) -> Iterator[None]:
    """One transaction that holds SQLite's write lock from its start (`connection` in
    autocommit mode). A deferred BEGIN reads first and asks for the lock at its first
    write, where a busy database puts it to sleep in SQLite's busy handler (or, in WAL
    mode, fails it if another writer committed since its read began)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.exec_driver_sql("ROLLBACK")
        raise
    connection.exec_driver_sql("COMMIT")


@cache
def _highest_ids_sql() -> str:
    tops = [f"(SELECT COALESCE(MAX(id), 0) FROM {table.name})" for table in item_tables()]
    return "SELECT " + ", ".join(tops)


Processor = Callable[[Any], Any] | None


@cache
def _insert(table: Table, dialect: Dialect) -> tuple[str, tuple[Processor, ...]]:
    """The INSERT of one row of `table` and each column's bind processor."""
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(column.name) for column in table.columns)
    marks = ", ".join("?" for _ in table.columns)
    processors = tuple(column.type.bind_processor(dialect) for column in table.columns)
    return f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})", processors


def _row(table: Table, obj: Any, processors: Sequence[Processor]) -> tuple[Any, ...]:
    values = (column_value(column, obj) for column in table.columns)
    return tuple(
        value if process is None else process(value)
        for value, process in zip(values, processors, strict=True)
    )
