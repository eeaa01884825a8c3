"""The response cache's rows: a deterministic request's result, kept until it expires.

In the same database as the records, so every server instance on it shares one cache
and a replay is as durable as the answer it replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from signoria.orchestrator.storage.schema import CachedResponse, utcnow

if TYPE_CHECKING:
    from signoria.orchestrator.storage.store import Store


@dataclass(frozen=True)
class CacheEntry:
    request_id: str
    result: dict[str, Any]
    created_at: datetime


class CacheStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str, now: datetime | None = None) -> CacheEntry | None:
        """The live entry for `key`, or None (expired entries are never returned)."""
        now = now or utcnow()
        with self.store.session() as session:
            row = session.get(CachedResponse, key)
            if row is None or row.expires_at <= now:
                return None
            return CacheEntry(row.request_id, row.result, row.created_at)

    def put(self, key: str, request_id: str, result: dict[str, Any], ttl_s: float) -> None:
        """Keep `result` for `ttl_s` seconds. Expired entries (this key's included) are
        deleted first, so the table holds live entries only; a concurrent writer of the
        same key (another instance) wins quietly: both computed the same."""
        now = utcnow()
        try:
            with self.store.session() as session:
                session.execute(delete(CachedResponse).where(CachedResponse.expires_at <= now))
                if session.scalar(select(CachedResponse.key).where(CachedResponse.key == key)):
                    return
                session.add(
                    CachedResponse(
                        key=key,
                        request_id=request_id,
                        result=result,
                        created_at=now,
                        expires_at=now + timedelta(seconds=ttl_s),
                    )
                )
        except IntegrityError:
            return
