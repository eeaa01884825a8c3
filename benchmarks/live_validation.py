"""Choosing adaptive-vote's sample cap on validation rows only (issue 18, the live bar).

The live bar asks for a win over greedy Qwen2.5-Coder-1.5B on GSM8K at <= 3x its
latency. `max_samples` trades the two; it is chosen here, on rows of the development file
that the test carve (benchmarks/live_consistency.py: rows >= 200) never uses, from one
run of adaptive-vote at the widest setting (agree 2, max 4):

    signoria eval run --benchmark gsm8k --data <rows 100-139> -c configs/live-eval.yaml \\
        -p adaptive-vote --db sqlite:///val.db --run-id val-adaptive4
    python -m benchmarks.live_validation --db sqlite:///val.db --run val-adaptive4

A run at max 4 contains every narrower policy: sampling is sequential and stops at the
first agreement, so the policy "at most m answers" saw exactly the first calls of the
trace until it agreed or had m. Each is replayed with the aggregator's own vote
(`cast_ballots`/`tally`, ties to the greedy answer) and scored with the runner's scorer;
its latency is the sum of the calls it made (they run one after another), the greedy
baseline's the first call's. Prints one JSON object: per cap, accuracy, greedy accuracy,
the latency ratio (mean over mean, as `eval compare` reports it; and the mean of the
per-item ratios) and the chosen cap: the most accurate whose latency ratio stays under
`--latency-bar` (2.7: a margin under the bar's 3x, since the test rows will differ).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from signoria.agents.types import Completion
from signoria.evals.datasets import EvalItem
from signoria.evals.scoring import score
from signoria.orchestrator.aggregators._voting import cast_ballots, tally
from signoria.orchestrator.aggregators.adaptive_vote import settled
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.records import ItemRecord


def replay(item: ItemRecord, cap: int, agree: int = 2) -> tuple[str, float]:
    """The answer and latency of the policy 'at most `cap` answers' on this item."""
    calls = [c for c in item.calls if c.role == "expert"]
    got: list[Completion] = []
    latency = 0.0
    for call in calls:
        if len(got) >= cap or (got and settled(cast_ballots(item.query, got, "number"), agree)):
            break
        got.append(Completion(expert=call.expert, text=call.text, error=call.error))
        latency += call.latency_s
    winner = tally(cast_ballots(item.query, got, "number")).winner
    return (winner or ""), latency


def as_eval_item(item: ItemRecord) -> EvalItem:
    return EvalItem(
        key=item.item_key,
        task="gsm8k",
        prompt=item.query,
        question=item.query,
        reference=item.reference,
        kind="number",
    )


def evaluate(items: list[ItemRecord], caps: list[int]) -> dict[str, Any]:
    greedy_latency = sum(i.calls[0].latency_s for i in items)
    greedy_correct = 0
    rows: dict[str, Any] = {}
    for item in items:
        question = as_eval_item(item)
        greedy_correct += score(question, item.calls[0].text)[0] or 0
    for cap in caps:
        correct, latency, ratios = 0.0, 0.0, []
        for item in items:
            question = as_eval_item(item)
            answer, spent = replay(item, cap)
            correct += score(question, answer)[0] or 0.0
            latency += spent
            ratios.append(spent / item.calls[0].latency_s)
        rows[str(cap)] = {
            "accuracy": correct / len(items),
            # As `signoria eval compare` reports it: total (mean) over total (mean).
            "latency_ratio": latency / greedy_latency,
            "per_item_ratio_mean": sum(ratios) / len(ratios),
        }
    return {"n": len(items), "greedy_accuracy": greedy_correct / len(items), "caps": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--run", default="val-adaptive4")
    parser.add_argument("--latency-bar", type=float, default=2.7)
    args = parser.parse_args()
    store = Store.open(args.db)
    items = [i for i in store.items(args.run) if i.error is None and i.calls]
    store.close()
    report = evaluate(items, [2, 3, 4])
    inside = {c: r for c, r in report["caps"].items() if r["latency_ratio"] <= args.latency_bar}
    report["chosen_max_samples"] = (
        int(max(inside, key=lambda c: (inside[c]["accuracy"], -int(c)))) if inside else None
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
