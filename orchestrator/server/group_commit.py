"""Group commit: many concurrent requests' writes carried by one transaction.

A server that writes once per request pays one transaction (a thread hop, the database's
write lock, a commit) per request, one after the other, and under load the requests queue
on it. Here one writer task at a time takes everything queued while the previous
transaction ran and hands it to `write` as one batch in a worker thread; alone, an entry is
written at once, under load one transaction carries many. Each caller still waits for its
own entry's outcome, so nothing is answered before its write is decided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Entry = TypeVar("Entry")
Outcome = TypeVar("Outcome")


class GroupCommit(Generic[Entry, Outcome]):
    """`write(batch)` runs in a worker thread and returns one outcome per entry, in order;
    if it raises, every entry of that batch gets the exception."""

    def __init__(self, write: Callable[[list[Entry]], Sequence[Outcome]]) -> None:
        self._write = write
        self._pending: list[tuple[Entry, asyncio.Future[Outcome]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, entry: Entry) -> Outcome:
        """The entry's outcome once its batch is written. A caller cancelled while it waits
        does not stop the write (its entry is part of a batch others wait for)."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return await asyncio.shield(done)

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await asyncio.to_thread(self._write, [entry for entry, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} entries")
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if not done.done():
                        done.set_result(outcome)

    async def drain(self) -> None:
        """Wait until everything submitted is written (a graceful shutdown)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
