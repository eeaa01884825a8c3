"""Experts that answer from a recorded routing-outcome table instead of calling a model.

Routers and aggregators can then be evaluated on thousands of real recorded answers in
seconds, with the real recorded cost. A query the table does not hold is an error, never
an invented answer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.jsonl import read_jsonl
from signoria.agents.types import (
    Availability,
    Completion,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
    Usage,
)
from signoria.errors import SignoriaError


class ReplayOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: Path = Field(description="routing-outcome table (JSONL)")
    model: str | None = Field(default=None, description="model in the table; default: own name")

    def availability(self) -> Availability:
        path = self.table.expanduser()
        return Availability(available=path.is_file(), detail=f"replay of {path}")


class OutcomeTable:
    """A routing-outcome table indexed by query text."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.by_query = {str(row["query"]): row for row in rows}
        self.models = sorted({m for row in rows for m in row.get("outcomes", {})})

    @classmethod
    def load(cls, path: Path) -> OutcomeTable:
        rows = [row for _, row in read_jsonl(path, what="outcome table")]
        return cls(rows)


_TABLES: dict[Path, OutcomeTable] = {}
_TABLES_LOCK = threading.Lock()


def load_table(path: Path) -> OutcomeTable:
    """One parsed copy per file per process, shared by every replay expert of it."""
    key = path.expanduser().resolve()
    with _TABLES_LOCK:
        if key not in _TABLES:
            _TABLES[key] = OutcomeTable.load(key)
        return _TABLES[key]


def _words(text: str) -> int:
    return max(1, len(text.split()))


class ReplayExpert:
    def __init__(self, card: ModelCard, table: OutcomeTable, model: str | None = None) -> None:
        self._card = card
        self._table = table
        self._model = model or card.name
        if self._model not in table.models:
            raise SignoriaError(
                f"replay model {self._model!r} is not in the table "
                f"(models: {', '.join(table.models)})"
            )

    @property
    def card(self) -> ModelCard:
        return self._card

    async def count_tokens(self, messages: list[Message]) -> int:
        return sum(_words(m.content) for m in messages)

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        if params.tool_use is not None:
            raise ExpertError(
                f"{self._card.name}: a replay answers with recorded text; it takes no tools "
                "or response_format"
            )
        started = time.time()
        query = next((m.content for m in reversed(messages) if m.role == "user"), "")
        row = self._table.by_query.get(query)
        outcome = None if row is None else row.get("outcomes", {}).get(self._model)
        if outcome is None or outcome.get("response") is None:
            raise ExpertError(f"{self._card.name}: no recorded response for this query")
        text = str(outcome["response"]).strip()
        return Completion(
            expert=self._card.name,
            text=text,
            # Recorded tables carry no token counts; word counts stand in, and say so here.
            usage=Usage(tokens_in=await self.count_tokens(messages), tokens_out=_words(text)),
            cost=outcome.get("cost"),  # the recorded cost; None stays None
            latency_s=0.0,
            started_at=started,
            # The recorded text is replayed whole, never cut to this call's max_tokens (it
            # is what the model said under the recorded run's own limit), so it ends as it
            # ended then: the table's finish reason when it records one.
            finish_reason=str(outcome.get("finish_reason") or "stop"),
        )

    async def aclose(self) -> None:
        return None


def build_expert(card: ModelCard, options: ReplayOptions, context: object) -> ReplayExpert:
    return ReplayExpert(card, load_table(options.table), options.model)
