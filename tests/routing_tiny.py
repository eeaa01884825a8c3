"""The `routing_tiny` fixture (200 RouterBench rows, 11 models), loaded and embedded once
per test session and shared by the skills and cost-aware router tests."""

from __future__ import annotations

from functools import lru_cache

from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.embedding import Embedder
from signoria.routers.skills.keywords import VOCABULARY
from signoria.routers.trainable import RouterContext, TradeOff
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"


@lru_cache(maxsize=1)
def _load() -> tuple[RoutingTable, Embedder]:
    table = load_table(
        FIXTURES / "routing_tiny.jsonl", load_models(FIXTURES / "routing_tiny.models.json")
    )
    embedder = Embedder()
    embedder.embed([*table.queries, *VOCABULARY])
    return table, embedder


def tiny_table() -> RoutingTable:
    return _load()[0]


def tiny_context(table: RoutingTable, trade_off: TradeOff | None = None) -> RouterContext:
    """A context over `table` whose embedder starts from the session's cache."""
    embedder = Embedder(dict(_load()[1].cache))
    return RouterContext.from_table(table, trade_off or TradeOff(), embedder=embedder)
