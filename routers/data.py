"""Routing-outcome tables: loading, validation, splits, and the score/cost matrices.

Table (JSONL, one query a line):
    {"id", "task", "query", "reference", "outcomes": {MODEL: {"score", "cost", "response"?}}}
Models file (JSON): {MODEL: {"description", "input_price", "output_price", "params_b"}}.

Where a table records no cost (LLMRouter's, for example) the cost is *estimated* from the
models file's prices and a token estimate, and `cost_estimated` says so wherever it is used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from signoria.agents.jsonl import read_json, read_jsonl
from signoria.agents.types import ModelCard
from signoria.errors import SignoriaError

# Output tokens assumed when a table records neither cost nor response (LLMRouter).
ASSUMED_OUTPUT_TOKENS = 256


class RoutingDataError(SignoriaError):
    pass


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    score: float
    cost: float | None = None
    response: str | None = None


class Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    task: str
    query: str
    reference: str | None = None
    outcomes: dict[str, Outcome]


def load_models(path: Path) -> dict[str, ModelCard]:
    raw = read_json(path, what="models file", error=RoutingDataError)
    if not isinstance(raw, dict):
        raise RoutingDataError(f"{path}: must map model names to descriptions and prices")
    try:
        return {name: ModelCard.from_entry(name, entry) for name, entry in raw.items()}
    except ValidationError as exc:
        raise RoutingDataError(f"{path}: {exc.errors()[0]['msg']}") from None


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def split_point(row_id: str, seed: int = 0) -> float:
    """A row's place in [0, 1) for splits and folds: a hash of (seed, id), so a row lands
    on the same side every time, whatever else the table holds or the order it comes in."""
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_test_split(row_id: str, test_fraction: float, seed: int = 0) -> bool:
    """Whether a row belongs to the test side of the (seed) split."""
    return split_point(row_id, seed) < test_fraction


@dataclass(frozen=True)
class RoutingTable:
    """Rows that every listed model answered, with dense score and cost matrices."""

    rows: tuple[Row, ...]
    models: tuple[str, ...]
    info: dict[str, ModelCard]
    scores: np.ndarray  # [n, m]
    costs: np.ndarray  # [n, m], USD; estimated where the table had none
    cost_estimated: bool

    @property
    def queries(self) -> list[str]:
        return [r.query for r in self.rows]

    @property
    def tasks(self) -> list[str]:
        return [r.task for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index: Sequence[int]) -> RoutingTable:
        idx = np.asarray(index, dtype=int)
        return RoutingTable(
            rows=tuple(self.rows[i] for i in idx),
            models=self.models,
            info=self.info,
            scores=self.scores[idx],
            costs=self.costs[idx],
            cost_estimated=self.cost_estimated,
        )

    def without_model(self, model: str) -> RoutingTable:
        keep = [j for j, m in enumerate(self.models) if m != model]
        return RoutingTable(
            rows=self.rows,
            models=tuple(self.models[j] for j in keep),
            info=self.info,
            scores=self.scores[:, keep],
            costs=self.costs[:, keep],
            cost_estimated=self.cost_estimated,
        )

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[RoutingTable, RoutingTable]:
        """Deterministic split by a hash of (seed, id): the same rows go to test every time."""

        test = [i for i, r in enumerate(self.rows) if in_test_split(r.id, test_fraction, seed)]
        train = [i for i, r in enumerate(self.rows) if not in_test_split(r.id, test_fraction, seed)]
        return self.subset(train), self.subset(test)


def load_table(
    path: Path, models: dict[str, ModelCard], *, limit: int | None = None
) -> RoutingTable:
    """Load a table; a model the table uses but the models file lacks is an error."""
    rows: list[Row] = []
    for line_no, raw in read_jsonl(path, what="routing table", error=RoutingDataError):
        try:
            rows.append(Row.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise RoutingDataError(f"{path}:{line_no}: {where}: {err['msg']}") from None
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise RoutingDataError(f"{path}: no rows")
    names = sorted({m for r in rows for m in r.outcomes})
    missing = [m for m in names if m not in models]
    if missing:
        raise RoutingDataError(
            f"the models file lacks {', '.join(missing)}, which the table {path} uses; "
            "add a description and prices for each"
        )
    complete = tuple(r for r in rows if all(m in r.outcomes for m in names))
    if not complete:
        raise RoutingDataError(f"{path}: no row has an outcome for every model")
    return build_table(complete, tuple(names), models)


def build_table(
    rows: tuple[Row, ...], names: tuple[str, ...], models: dict[str, ModelCard]
) -> RoutingTable:
    scores = np.array([[r.outcomes[m].score for m in names] for r in rows], dtype=float)
    costs = np.zeros_like(scores)
    estimated = False
    for i, r in enumerate(rows):
        for j, m in enumerate(names):
            recorded = r.outcomes[m].cost
            if recorded is not None:
                costs[i, j] = recorded
                continue
            estimated = True
            costs[i, j] = _estimated_cost(models[m], r.query, r.outcomes[m].response)
    return RoutingTable(
        rows=rows, models=names, info=models, scores=scores, costs=costs, cost_estimated=estimated
    )


def _estimated_cost(entry: ModelCard, query: str, response: str | None) -> float:
    if entry.input_price is None or entry.output_price is None:
        return float("nan")  # unknown stays unknown: reported as null, never as 0
    out = _estimate_tokens(response) if response else ASSUMED_OUTPUT_TOKENS
    return (_estimate_tokens(query) * entry.input_price + out * entry.output_price) / 1e6


def rows_to_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
