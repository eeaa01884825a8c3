"""Recording every chat completion of a server process as one run of kind "serve".

The store is synchronous (SQLAlchemy); writes run in a worker thread so a slow disk never
stalls the event loop that serves other requests. Writes are group-committed
(group_commit.py): one transaction (one fsync, one trip through SQLite's single writer)
carries every record that arrived while the previous one ran, and each request still waits
for its own record's commit (so the response can say whether it was recorded).

A failed write still gives the client its answer (failing a request whose answer already
exists helps nobody), but the loss is never silent: it is logged with the request id,
counted (`unrecorded` in `/health`), and the response carries `X-Signoria-Recorded: false`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from signoria.orchestrator.result import AskResult
from signoria.orchestrator.server.group_commit import GroupCommit

if TYPE_CHECKING:
    from signoria.orchestrator.storage import Store
    from signoria.orchestrator.storage.rows import ItemFields

log = logging.getLogger("signoria.server")

# Sent with `false` on a response whose record could not be written.
RECORDED_HEADER = "X-Signoria-Recorded"


class Recorder:
    """One run per server process; `record` is safe to call from concurrent requests."""

    def __init__(self, store: Store, run_id: str, *, owns_store: bool) -> None:
        self.store = store
        self.run_id = run_id
        self._owns_store = owns_store
        self.recorded = 0
        self.unrecorded = 0
        self._writes: GroupCommit[ItemFields, bool] = GroupCommit(self._write)

    @classmethod
    async def start(
        cls, store: Store | None, db_url: str | None, config: dict[str, Any]
    ) -> Recorder:
        """Create the run, opening (and migrating) the store at `db_url` unless one is given;
        a store opened here is closed by `close`."""
        owns = store is None
        if store is None:
            from signoria.orchestrator.storage import Store

            store = await asyncio.to_thread(Store.open, db_url)
        try:
            run_id = await asyncio.to_thread(
                store.create_run,
                kind="serve",
                pipeline=None,
                run_id=None,
                benchmark=None,
                data_path=None,
                config=config,
            )
        except BaseException:
            if owns:
                store.close()
            raise
        log.info("recording requests as run %s", run_id)
        return cls(store, run_id, owns_store=owns)

    async def record(
        self,
        request_id: str,
        query: str,
        result: AskResult | None,
        error: str | None,
        client: str | None = None,
    ) -> bool:
        """Write one request's row; False (logged and counted) when the write failed.
        The row is queued for the writer, so a caller cancelled while it waits does not
        stop the write."""
        entry: ItemFields = {
            "item_key": request_id,
            "query": query,
            "result": result,
            "error": error,
            "client": client,
        }
        try:
            await self._writes.submit(entry)
        except Exception:
            self.unrecorded += 1
            log.exception(
                "could not record request %s in run %s (%d unrecorded so far)",
                request_id,
                self.run_id,
                self.unrecorded,
            )
            return False
        self.recorded += 1
        return True

    def _write(self, entries: list[ItemFields]) -> list[bool]:
        self.store.record_items(self.run_id, entries)
        return [True] * len(entries)

    async def drain(self) -> None:
        """Wait for the queued records (a graceful shutdown writes them all)."""
        await self._writes.drain()

    async def finish(self, metrics: dict[str, float | None]) -> None:
        """Mark the run complete at a graceful shutdown, with what it served."""
        await self.drain()
        try:
            await asyncio.to_thread(self.store.finish_run, self.run_id, metrics)
        except Exception:
            log.exception("could not finish run %s", self.run_id)

    async def close(self) -> None:
        if self._owns_store:
            await asyncio.to_thread(self.store.close)
