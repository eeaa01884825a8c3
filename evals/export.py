"""Export a stored run as a routing-outcome table, the format routers train on.

One line per item: each model's own answer (its first successful call for the item,
before any aggregation) scored against the reference, with that call's cost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.datasets import EvalItem, answer_kind
from evals.scoring import score
from orchestrator.storage import Store
from orchestrator.storage.schema import Item


def outcome_row(item: Item, benchmark: str | None) -> dict[str, Any]:
    probe = EvalItem(
        key=item.item_key,
        task=benchmark or "outcomes",
        prompt=item.query,
        reference=item.reference,
        kind=answer_kind(benchmark, item.reference),
        question=item.query,
    )
    outcomes: dict[str, dict[str, Any]] = {}
    for call in item.calls:
        if call.role == "aggregator" or call.error is not None or call.expert in outcomes:
            continue
        value, _ = score(probe, call.text)
        outcomes[call.expert] = {"score": value, "cost": call.cost, "response": call.text}
    return {
        "id": item.item_key,
        "task": benchmark,
        "query": item.query,
        "reference": item.reference,
        "outcomes": outcomes,
    }


def export_outcomes(store: Store, run_id: str, path: Path) -> int:
    """Write the table; returns the number of rows (items with at least one answer)."""
    run = store.require_run(run_id)
    rows = [outcome_row(item, run.benchmark) for item in store.items(run_id)]
    rows = [row for row in rows if row["outcomes"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return len(rows)


def models_file(cards: dict[str, Any], path: Path) -> None:
    """The models file beside an outcome table: description and prices per model."""
    path.write_text(json.dumps(cards, indent=2))
