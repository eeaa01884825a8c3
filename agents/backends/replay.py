"""Experts that answer from a recorded routing-outcome table instead of calling a model.

Routers and aggregators can then be evaluated on thousands of real recorded answers in
seconds, with the real recorded cost. A query the table does not hold is an error, never
an invented answer.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, Literal

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
    match: Literal["exact", "question"] = Field(
        default="exact",
        description="exact: answer the query as recorded; question: also a question written "
        "anew that holds most words of a recorded one (a router's sub-question)",
    )

    def availability(self) -> Availability:
        path = self.table.expanduser()
        return Availability(available=path.is_file(), detail=f"replay of {path}")


_WORD = re.compile(r"[a-z0-9]+")
# Share of a recorded question's words a question written anew must hold to be that question.
QUESTION_COVERAGE = 0.6


def question_words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def asked_question(query: str) -> str:
    """The question a recorded query asks: its last paragraph (tables whose prompts carry
    worked examples first end with the question asked), or all of it when that is short."""
    paragraphs = [p for p in re.split(r"\n\s*\n", query.strip()) if p.strip()]
    last = paragraphs[-1] if paragraphs else query
    return last if len(question_words(last)) >= 8 else query


def coverage(written: str, recorded: str) -> float:
    """Share of the recorded question's words that a written question holds."""
    return _coverage(question_words(written), question_words(asked_question(recorded)))


def _coverage(written: frozenset[str], recorded: frozenset[str]) -> float:
    return len(recorded & written) / len(recorded) if recorded else 0.0


class OutcomeTable:
    """A routing-outcome table indexed by query text."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.by_query = {str(row["query"]): row for row in rows}
        self.models = sorted({m for row in rows for m in row.get("outcomes", {})})
        self._asked: list[frozenset[str]] | None = None

    def find(
        self, query: str, match: Literal["exact", "question"] = "exact"
    ) -> dict[str, Any] | None:
        """The row that recorded `query`; with `match="question"`, else the one row whose
        asked question the query holds best (at least `QUESTION_COVERAGE` of its words, and
        strictly better than any other row: an ambiguous question has no recorded answer)."""
        row = self.by_query.get(query)
        if row is not None or match == "exact":
            return row
        if self._asked is None:
            self._asked = [question_words(asked_question(str(r["query"]))) for r in self.rows]
        written = question_words(query)
        scored = sorted(
            ((_coverage(written, w), i) for i, w in enumerate(self._asked)), reverse=True
        )
        if not scored or scored[0][0] < QUESTION_COVERAGE:
            return None
        if len(scored) > 1 and scored[1][0] == scored[0][0]:
            return None
        return self.rows[scored[0][1]]

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
    def __init__(
        self,
        card: ModelCard,
        table: OutcomeTable,
        model: str | None = None,
        match: Literal["exact", "question"] = "exact",
    ) -> None:
        self._card = card
        self._table = table
        self._match = match
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
        row = self._table.find(query, self._match)
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
    return ReplayExpert(card, load_table(options.table), options.model, options.match)
