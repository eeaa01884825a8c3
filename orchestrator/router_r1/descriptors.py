"""Where the experts' descriptors come from: model cards, outcome tables, recorded calls.

A descriptors file (JSON, `{name: {description, input_price, output_price, accuracy,
examples, cost_per_call, latency_s}}`) is what a trained policy's artifact keeps, so that
it is served with the descriptors it learned on; `measure` computes one from an outcome
table (the share of queries each model got right, its mean recorded cost) and the
median latency of each expert's recorded calls.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from signoria.agents.jsonl import read_json
from signoria.agents.types import ModelCard
from signoria.errors import ConfigError
from signoria.orchestrator.router_r1.prompt import ExpertDescriptor
from signoria.registry import validation_problem
from signoria.routers.data import RoutingTable


def load_descriptors(path: Path) -> dict[str, ExpertDescriptor]:
    """A descriptors file; an error names the file and the expert's bad field."""
    raw = read_json(path, what="descriptors file", error=ConfigError)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must map expert names to descriptors")
    found: dict[str, ExpertDescriptor] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: {name}: must be a mapping of descriptor fields")
        try:
            found[name] = ExpertDescriptor.model_validate({**entry, "name": name})
        except ValidationError as exc:
            where, message = validation_problem(exc)
            raise ConfigError(f"{path}: {name}.{where}: {message}") from None
    return found


def save_descriptors(descriptors: Sequence[ExpertDescriptor], path: Path) -> None:
    body = {d.name: d.model_dump(exclude={"name"}) for d in descriptors}
    path.write_text(json.dumps(body, indent=1) + "\n")


def measure(
    table: RoutingTable,
    experts: Sequence[str],
    cards: Mapping[str, ModelCard],
    latencies: Mapping[str, Sequence[float]] | None = None,
) -> tuple[ExpertDescriptor, ...]:
    """Descriptors with each expert's performance on `table` (a training split: never
    the rows a policy is evaluated on) and, when given, its recorded call latencies."""
    found = []
    for name in experts:
        column = table.models.index(name)
        costs = [c for c in table.costs[:, column] if not math.isnan(c)]
        measured = {
            "accuracy": float(table.scores[:, column].mean()),
            "examples": len(table),
            # Unknown costs stay unknown: a mean over some rows would understate it.
            "cost_per_call": float(sum(costs) / len(costs))
            if len(costs) == len(table) and costs
            else None,
        }
        seconds = (latencies or {}).get(name)
        if seconds:
            measured["latency_s"] = float(statistics.median(seconds))
        found.append(ExpertDescriptor.of(cards[name]).model_copy(update=measured))
    return tuple(found)
