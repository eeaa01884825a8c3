"""The one way runs and requests are written and read: a thin layer over SQLAlchemy.

Every item is stored in one transaction together with its calls, routing decision,
aggregation and score, so an item is either fully there or not there at all; a process
killed mid-run loses at most the items in flight, and the unique (run, item key) makes a
resumed run skip what is stored instead of storing it twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Unpack
from uuid import uuid4

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    case,
    create_engine,
    event,
    func,
    make_url,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from signoria.errors import ConfigError, SignoriaError
from signoria.orchestrator.storage import one_statement, sqlite_write
from signoria.orchestrator.storage.feedback import FeedbackInput
from signoria.orchestrator.storage.feedback import give_feedback as store_feedback
from signoria.orchestrator.storage.migrations_api import upgrade
from signoria.orchestrator.storage.records import (
    FeedbackRecord,
    ItemRecord,
    RunRecord,
    RunSummary,
)
from signoria.orchestrator.storage.rows import ItemFields, new_item, with_trace
from signoria.orchestrator.storage.schema import (
    Item,
    Run,
    RunMetric,
    Score,
    utcnow,
)


class StorageError(SignoriaError):
    pass


class DatabaseUrlError(StorageError, ConfigError):
    """A database setting that cannot name a database (bad URL, missing driver): the
    operator's to fix, so the CLI exits with 2."""


def database_url(value: str) -> str:
    """What an operator writes for `--db`/`$SIGNORIA_DB`: a URL as is, and a plain path
    (what most people write, e.g. `./runs.db`) as the SQLite file at that path."""
    if "://" in value:
        return value
    if value == ":memory:":
        return "sqlite://"
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def _shown(url: str) -> str:
    """The URL for an error line, its password masked."""
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return repr(url)


def default_db_url() -> str:
    env = os.environ.get("SIGNORIA_DB")
    if env:
        return database_url(env)
    from signoria.orchestrator.config import home

    path = home() / "signoria.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers (reports, a second process) work while a run writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives
        # the process being killed, and only an OS crash or a power cut can undo the last
        # few (the file is never corrupted), for a third of a millisecond less per served
        # request's record. SQLite recommends it with WAL; Rails defaults to it.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


# Record writes that skip the ORM's unit of work, per dialect (any other takes the ORM's).
_DIRECT_WRITES = {"postgresql": one_statement.insert_items, "sqlite": sqlite_write.insert_items}


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # The direct record writes manage their own transactions (see `record_items`).
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        """Open (and by default migrate to the newest schema) the database at `url`."""
        url = database_url(url) if url else default_db_url()
        if url.startswith("sqlite:///"):
            folder = Path(url.removeprefix("sqlite:///")).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot open database {_shown(url)}: cannot create {folder}: {exc.strerror}"
                ) from None
        try:
            engine = create_engine(url)
        except Exception as exc:  # bad URL or missing driver: one clear line
            raise DatabaseUrlError(
                f"cannot open database {_shown(url)}: {exc}; give a SQLite file path or a "
                "URL such as postgresql+psycopg://user@host/db"
            ) from None
        if engine.dialect.name == "sqlite":
            _sqlite_pragmas(engine)
        if migrate:
            try:
                upgrade(engine)
            except OperationalError as exc:  # unreachable server, unwritable file
                engine.dispose()
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise StorageError(f"cannot open database {_shown(url)}: {reason}") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A Core transaction for a short read-then-write decision (a key's admissions):
        on SQLite it holds the write lock from its first statement (BEGIN IMMEDIATE), so
        what it reads cannot change before it writes."""
        if self.engine.dialect.name != "sqlite":
            with self.engine.begin() as connection:
                yield connection
            return
        with self._autocommit.connect() as connection, sqlite_write.immediate(connection):
            yield connection

    # Runs

    def create_run(
        self,
        *,
        kind: str,
        pipeline: str | None = None,
        run_id: str | None = None,
        benchmark: str | None = None,
        data_path: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        """Create a run, or return `run_id` unchanged when it exists (a resume).

        Resuming with a different pipeline or benchmark would mix two experiments in one
        run, so it is refused.
        """
        run_id = run_id or f"{kind}-{utcnow():%Y%m%d-%H%M%S}-{uuid4().hex[:6]}"
        with self.session() as s:
            existing = s.get(Run, run_id)
            if existing is not None:
                for field, value in (("pipeline", pipeline), ("benchmark", benchmark)):
                    if getattr(existing, field) != value:
                        raise StorageError(
                            f"run {run_id!r} exists with {field} {getattr(existing, field)!r}, "
                            f"not {value!r}; use another --run-id"
                        )
                existing.status = "running"
                return run_id
            s.add(
                Run(
                    id=run_id,
                    kind=kind,
                    pipeline=pipeline,
                    benchmark=benchmark,
                    data_path=data_path,
                    config=config or {},
                )
            )
        return run_id

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.session() as s:
            run = s.get(Run, run_id)
            return None if run is None else RunRecord.model_validate(run)

    def require_run(self, run_id: str) -> RunRecord:
        run = self.get_run(run_id)
        if run is None:
            raise StorageError(f"no run {run_id!r} in this database")
        return run

    def runs(self, kind: str | None = None) -> list[RunRecord]:
        query = select(Run).order_by(Run.created_at)
        if kind is not None:
            query = query.where(Run.kind == kind)
        with self.session() as s:
            return [RunRecord.model_validate(run) for run in s.scalars(query)]

    def run_summaries(self, kind: str | None = None) -> list[RunSummary]:
        """Every run with its item count, accuracy and cost, aggregated in the database."""
        unknown_cost = func.sum(case((Item.cost.is_(None), 1), else_=0))
        per_run = select(
            Item.run_id,
            func.count(Item.id.distinct()),
            func.sum(Item.cost),
            unknown_cost,
        ).group_by(Item.run_id)
        scored = (
            select(Item.run_id, func.count(Score.id), func.avg(Score.value))
            .join(Score, Score.item_id == Item.id)
            .group_by(Item.run_id)
        )
        with self.session() as s:
            items = {row[0]: row[1:] for row in s.execute(per_run)}
            scores = {row[0]: row[1:] for row in s.execute(scored)}
        summaries = []
        for run in self.runs(kind):
            n, cost, unknown = items.get(run.id, (0, None, 0))
            count, accuracy = scores.get(run.id, (0, None))
            summaries.append(
                RunSummary(
                    run=run,
                    items=int(n),
                    scored=int(count),
                    accuracy=None if accuracy is None else float(accuracy),
                    cost=None if unknown or (cost is None and n) else float(cost or 0.0),
                )
            )
        return summaries

    def finish_run(self, run_id: str, metrics: dict[str, float | None]) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise StorageError(f"no run {run_id!r} in this database")
            run.status = "complete"
            run.finished_at = utcnow()
            existing = {m.name: m for m in run.metrics}
            for name, value in metrics.items():
                if name in existing:
                    existing[name].value = value
                else:
                    run.metrics.append(RunMetric(name=name, value=value))

    def metrics(self, run_id: str) -> dict[str, float | None]:
        with self.session() as s:
            rows = s.scalars(select(RunMetric).where(RunMetric.run_id == run_id))
            return {m.name: m.value for m in rows}

    # Items

    def done_keys(self, run_id: str) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(Item.item_key).where(Item.run_id == run_id)))

    def count_items(self, run_id: str) -> int:
        with self.session() as s:
            count = s.scalar(select(func.count()).select_from(Item).where(Item.run_id == run_id))
            return int(count or 0)

    def record_item(self, run_id: str, **fields: Unpack[ItemFields]) -> bool:
        """Store one item with its whole trace; `False` if the key was already stored.
        The fields are `new_item`'s; `client` is a fingerprint of the API key that asked,
        for served requests."""
        return self.record_items(run_id, [fields])[0]

    def record_items(self, run_id: str, entries: Sequence[ItemFields]) -> list[bool]:
        """Store several items in one transaction (a server's group commit: one write for
        every request that finished meanwhile); per entry, `False` if its key was already
        stored. A duplicate makes the batch fall back to one transaction per item, so
        one refused key never loses the others. The rows skip the ORM's unit of work: on
        PostgreSQL the batch is one statement (`one_statement.py`), two round trips instead
        of one per row; on SQLite one `executemany` per table (`sqlite_write.py`)."""
        items = [new_item(run_id, **entry) for entry in entries]
        dialect = self.engine.dialect.name
        try:
            if dialect in _DIRECT_WRITES:
                with self._autocommit.connect() as connection:
                    _DIRECT_WRITES[dialect](connection, items)
            else:
                with self.session() as s:
                    s.add_all(items)
            return [True] * len(items)
        except IntegrityError:
            if len(entries) == 1:
                return [False]
        return [self.record_items(run_id, [entry])[0] for entry in entries]

    def items(self, run_id: str) -> list[ItemRecord]:
        """Items of a run with calls and scores loaded, in dataset order."""
        query = with_trace(select(Item).where(Item.run_id == run_id))
        return self.item_records(query.order_by(Item.position, Item.id))

    def item_records(self, query: Select[Item]) -> list[ItemRecord]:
        """The records of a query's items (see `with_trace` to load their traces)."""
        with self.session() as s:
            return [ItemRecord.model_validate(item) for item in s.scalars(query)]

    # Feedback

    def give_feedback(
        self,
        request_id: str,
        feedback: FeedbackInput,
        *,
        client: str | None = None,
        enforce_client: bool = False,
    ) -> FeedbackRecord:
        """Store or replace (latest wins) the feedback on a served request; raises
        `UnknownRequest` for an id no serve run holds (see `storage/feedback.py`)."""

        def attempt() -> FeedbackRecord:
            with self.session() as s:
                return store_feedback(
                    s, request_id, feedback, client=client, enforce_client=enforce_client
                )

        try:
            return attempt()
        except IntegrityError:
            # Two first verdicts on one request raced: the loser now updates the winner's.
            return attempt()
