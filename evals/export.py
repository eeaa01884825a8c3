"""Export a stored run as a routing-outcome table, the format routers train on.

One line per item: each model's own answer (its first successful call for the item,
before any aggregation) scored against the reference, with that call's cost. Answers to
the questions a routing policy wrote (Router-R1) answer those, not the item, and are left
out: a run where only such a policy called experts exports no rows. A run of
recorded server traffic (kind "serve") has no references: its rows come from the
feedback clients gave (`evals/traffic.py`), and requests without any are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from signoria.evals.datasets import EvalItem, answer_kind
from signoria.evals.scoring import score
from signoria.evals.traffic import TrafficRows, first_answers, outcome_of
from signoria.orchestrator.config import SignoriaConfig
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.records import ItemRecord


def outcome_row(item: ItemRecord, benchmark: str | None) -> dict[str, Any]:
    probe = EvalItem(
        key=item.item_key,
        task=benchmark or "outcomes",
        prompt=item.query,
        reference=item.reference,
        kind=answer_kind(benchmark, item.reference),
        question=item.query,
    )
    outcomes: dict[str, dict[str, Any]] = {}
    for model, call in first_answers(item).items():
        outcomes[model] = outcome_of(call, score(probe, call.text)[0])
    return {
        "id": item.item_key,
        "task": benchmark,
        "query": item.query,
        "reference": item.reference,
        "outcomes": outcomes,
    }


def collect_rows(store: Store, run_ids: Sequence[str]) -> TrafficRows:
    """The rows of each run, one after another; serve runs through their feedback."""
    collected = TrafficRows()
    for one in run_ids:
        run = store.require_run(one)
        for item in store.items(one):
            if run.kind == "serve":
                collected.add(item)
                continue
            row = outcome_row(item, run.benchmark)
            if row["outcomes"]:
                collected.rows.append(row)
    return collected


def write_rows(rows: Sequence[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def export_outcomes(store: Store, run_id: str | Sequence[str], path: Path) -> int:
    """Write the table of one run, or of several one after another (e.g. an MMLU and a
    GSM8K run of the same pool); returns the number of rows (items with an answer)."""
    run_ids = [run_id] if isinstance(run_id, str) else list(run_id)
    rows = collect_rows(store, run_ids).rows
    write_rows(rows, path)
    return len(rows)


def model_entries(config: SignoriaConfig) -> dict[str, dict[str, Any]]:
    """What the models file says of each configured model: description and prices."""
    keys = {"description", "input_price", "output_price", "params_b"}
    return {name: spec.card.model_dump(include=keys) for name, spec in config.models.items()}


def models_file(cards: dict[str, Any], path: Path) -> None:
    """The models file beside an outcome table: description and prices per model."""
    path.write_text(json.dumps(cards, indent=2))
