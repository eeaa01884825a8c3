"""Load the configured local models while the server starts, so no request pays a load.

It runs in the background: `/health` answers (and requests are served, waiting on a load
in progress rather than starting another) from the first moment, and `/ready` turns 200
when every model that fits is loaded. Models are loaded in config order, each only if it
fits the runtime's memory cap beside those already loaded; the rest stay lazy.
"""

from __future__ import annotations

import asyncio
import logging
import time

from signoria.agents.pool import ExpertPool
from signoria.agents.types import Loadable
from signoria.orchestrator.server.schemas import PreloadHealth

log = logging.getLogger("signoria.server")


class Preloader:
    def __init__(self, pool: ExpertPool, *, lazy: bool) -> None:
        self._pool = pool
        self._lazy = lazy
        self._pending: list[str] = []
        self._loaded: list[str] = []
        self._skipped: list[str] = []
        self._failed: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self._lazy or (self._task is not None and self._task.done())

    def start(self) -> None:
        if self._lazy:
            return
        self._pending = [name for name in self._pool if self._pool.backend(name).local]
        self._task = asyncio.create_task(self._run(), name="signoria-preload")

    async def _run(self) -> None:
        started = time.perf_counter()
        while self._pending:
            name = self._pending[0]
            try:
                expert = self._pool[name]
                if isinstance(expert, Loadable):  # local doubles have nothing to load
                    loaded = await expert.load(only_if_room=True)
                    (self._loaded if loaded else self._skipped).append(name)
            except Exception as exc:  # a missing file must not stop the server or the rest
                log.warning("could not preload %s: %s", name, exc)
                self._failed[name] = str(exc)[:300]
            self._pending.pop(0)
        self._seconds = time.perf_counter() - started
        log.info(
            "local models ready in %.1fs: loaded %s%s",
            self._seconds,
            ", ".join(self._loaded) or "none",
            f"; lazy (no room under the memory cap): {', '.join(self._skipped)}"
            if self._skipped
            else "",
        )

    def health(self) -> PreloadHealth:
        return PreloadHealth(
            lazy=self._lazy,
            loading=list(self._pending),
            loaded=list(self._loaded),
            no_room=list(self._skipped),
            failed=dict(self._failed),
            seconds=None if self._seconds is None else round(self._seconds, 2),
        )

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
