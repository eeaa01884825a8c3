"""Reputation-vote without history: the attacked pass alone, on a fresh aggregator.

`signoria redteam` runs the clean pass first with the same aggregator instance, so the
honest experts arrive at the attacked pass with a track record. This script measures the
harder case where nobody has one: a fresh ReputationVote sees only the attacked items.

    python -m benchmarks.reputation_cold_start --data ../shared/data/routerbench/train.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from signoria.agents.backends.replay import ReplayExpert, load_table
from signoria.agents.types import Expert, ModelCard
from signoria.evals.adversaries import ScriptedAdversary
from signoria.evals.redteam import RedteamItem, replay_items, strongest_models, target_table
from signoria.orchestrator.aggregators.reputation_vote import ReputationParams, ReputationVote
from signoria.orchestrator.answers import extract_letter
from signoria.orchestrator.limits import Limits
from signoria.orchestrator.pipeline import Pipeline


async def attacked_pass(
    items: list[RedteamItem], seats: list[str], pool: dict[str, Expert]
) -> list[str | None]:
    pipeline = Pipeline.fixed(
        seats,
        aggregator=ReputationVote(ReputationParams(answer="letter")),
        limits=Limits(max_experts=len(seats), retries=0),
        name="cold",
    )
    # One item at a time, in table order: the history a fresh instance builds is ordered.
    return [extract_letter((await pipeline.run(i.prompt, pool)).answer) for i in items]


def main(data: Path, experts: int) -> dict[str, object]:
    table = load_table(data)
    models = strongest_models(table, experts)
    items = replay_items(table, models, None)
    targets = target_table(items)
    liar = ScriptedAdversary(ModelCard(name="adversary-1", backend="adversary"), targets.get)
    pool: dict[str, Expert] = {
        m: ReplayExpert(ModelCard(name=m, backend="replay"), table, m) for m in models
    }
    pool["adversary-1"] = liar
    report: dict[str, object] = {"n": len(items), "experts": models}
    for seat, seats in (
        ("weakest", [*models[:-1], "adversary-1"]),
        ("strongest", ["adversary-1", *models[1:]]),
    ):
        pairs = list(zip(asyncio.run(attacked_pass(items, seats, pool)), items, strict=True))
        report[seat] = {
            "attacked_acc": sum(a == i.reference for a, i in pairs) / len(items),
            "persuaded": sum(a == targets[i.prompt] for a, i in pairs) / len(items),
        }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--experts", type=int, default=5)
    args = parser.parse_args()
    result = main(args.data, args.experts)
    print(json.dumps(result))
    print(
        f"reputation-vote, cold, n={result['n']}: attacked accuracy "
        + ", ".join(f"{s} seat {result[s]['attacked_acc']:.3f}" for s in ("weakest", "strongest"))  # type: ignore[index]
    )
