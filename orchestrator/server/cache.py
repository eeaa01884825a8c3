"""The opt-in response cache (`signoria serve --cache-ttl S`): a deterministic request
asked again gets the answer it got before, at no cost, without calling any expert.

Deterministic means the client asked for it: `temperature: 0` or a fixed `seed`. The
cache key hashes the target's version (the pipeline's config, every expert's card and the
runtime settings, so any config change is a miss), the whole request (messages, limits,
stop sequences, options) and the key that asked: one key's cached answers never reach
another unless `--cache-shared` says so. Entries live in the records' database (shared
by every instance) for the TTL. Only complete results are kept (no failed call among
them): a degraded answer is not replayed.

A replay is a result with no calls and cost 0, `cached_from` naming the request that
computed it (in the response's `signoria` trace and the record), and the response says
`X-Signoria-Cache: hit` (`miss` when the request was cacheable but computed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from signoria.orchestrator.result import AskResult
from signoria.orchestrator.storage.cache import CacheStore

if TYPE_CHECKING:
    from signoria.orchestrator.sdk import Orchestrator
    from signoria.orchestrator.server.schemas import ChatCompletionRequest
    from signoria.orchestrator.storage import Store

CACHE_HEADER = "X-Signoria-Cache"
# Fields that change how an answer is delivered, not which answer it is.
_DELIVERY = {"stream", "stream_options", "user"}


def deterministic(body: ChatCompletionRequest) -> bool:
    return body.temperature == 0 or body.seed is not None


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, orchestrator: Orchestrator, ttl_s: float | None, shared: bool) -> None:
        """`ttl_s` None: the cache is off (no request gets a key)."""
        self.orchestrator = orchestrator
        self.ttl_s = ttl_s
        self.shared = shared
        self._store: CacheStore | None = None
        self._versions: dict[tuple[str, str], str] = {}

    def bind(self, store: Store) -> None:
        self._store = CacheStore(store)

    def version(self, kind: str, name: str) -> str:
        """A digest of everything that decides the target's answers."""
        if (kind, name) not in self._versions:
            config = self.orchestrator.config
            spec = config.pipelines[name].model_dump(mode="json") if kind == "pipeline" else None
            self._versions[(kind, name)] = _digest(
                {
                    "target": [kind, name, spec],
                    "models": {m: s.model_dump(mode="json") for m, s in config.models.items()},
                    "runtime": config.runtime.model_dump(mode="json"),
                }
            )
        return self._versions[(kind, name)]

    def key(
        self, body: ChatCompletionRequest, kind: str, name: str, client: str | None
    ) -> str | None:
        """The request's cache key, or None when it must be computed (the cache is off,
        the request is not deterministic, or the server does not record, so there is no
        store to cache in)."""
        if self.ttl_s is None or self._store is None or not deterministic(body):
            return None
        return _digest(
            {
                "version": self.version(kind, name),
                "scope": "*" if self.shared else client,
                "request": body.model_dump(mode="json", exclude=_DELIVERY),
            }
        )

    async def lookup(self, key: str) -> AskResult | None:
        assert self._store is not None
        started = time.perf_counter()
        entry = await asyncio.to_thread(self._store.get, key)
        if entry is None:
            return None
        original = AskResult.model_validate(entry.result)
        return original.model_copy(
            update={
                "calls": (),
                "cost": 0.0,
                "latency_s": time.perf_counter() - started,
                "cached_from": entry.request_id,
            }
        )

    async def save(self, key: str, request_id: str, result: AskResult) -> None:
        if self._store is None or self.ttl_s is None or any(c.error for c in result.calls):
            return
        payload = result.model_dump(mode="json")
        await asyncio.to_thread(self._store.put, key, request_id, payload, self.ttl_s)
