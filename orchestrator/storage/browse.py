"""Reading served traffic back for people: the latest requests, filtered, and one by id.

The web console's queries; kept beside the store so that they use the same records (and
the same trace loading) as reports and exports, not a second mapping of the schema.
"""

from __future__ import annotations

from sqlalchemy import select

from signoria.orchestrator.storage.records import ItemRecord
from signoria.orchestrator.storage.rows import with_trace
from signoria.orchestrator.storage.schema import ApiKey, Item, ModelCall, Run
from signoria.orchestrator.storage.store import Store


def recent_requests(
    store: Store,
    *,
    pipeline: str | None = None,
    client: str | None = None,
    failed: bool | None = None,
    limit: int = 100,
) -> list[ItemRecord]:
    """Served requests, newest first; `failed` True/False keeps errors/answers only."""
    query = select(Item).join(Run, Item.run_id == Run.id).where(Run.kind == "serve")
    if pipeline is not None:
        query = query.where(Item.pipeline == pipeline)
    if client is not None:
        query = query.where(Item.client == client)
    if failed is not None:
        query = query.where(Item.error.is_not(None) if failed else Item.error.is_(None))
    return store.item_records(with_trace(query).order_by(Item.id.desc()).limit(limit))


def served_request(store: Store, request_id: str) -> ItemRecord | None:
    """A served request by its id (the response's `id`, the record's key)."""
    query = select(Item).join(Run, Item.run_id == Run.id).where(Run.kind == "serve")
    found = store.item_records(with_trace(query.where(Item.item_key == request_id)).limit(1))
    return found[0] if found else None


def served_pipelines(store: Store) -> list[str]:
    """The pipelines served requests were recorded under, for a filter's choices."""
    query = (
        select(Item.pipeline)
        .join(Run, Item.run_id == Run.id)
        .where(Run.kind == "serve", Item.pipeline.is_not(None))
        .distinct()
        .order_by(Item.pipeline)
    )
    with store.session() as s:
        return [name for name in s.scalars(query) if name is not None]


def key_names(store: Store) -> dict[str, str]:
    """Key fingerprint -> the key's name, for the keys the database knows."""
    with store.session() as s:
        return {row.fingerprint: row.name for row in s.scalars(select(ApiKey))}


def call_latencies(
    store: Store, experts: list[str], *, limit: int = 1000
) -> dict[str, list[float]]:
    """The latest successful calls' seconds per expert (any run): how fast each answers
    here, for descriptors a routing policy reads."""
    found: dict[str, list[float]] = {}
    with store.session() as s:
        for expert in experts:
            query = (
                select(ModelCall.latency_s)
                .where(ModelCall.expert == expert, ModelCall.error.is_(None))
                .where(ModelCall.role != "aggregator")
                .order_by(ModelCall.id.desc())
                .limit(limit)
            )
            seconds = [float(v) for v in s.scalars(query)]
            if seconds:
                found[expert] = seconds
    return found
