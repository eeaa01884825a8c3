"""How far can agreement rules go on RouterBench at 25% of GPT-4's cost? Training rows only.

    .venv/bin/python -m benchmarks.routerbench_rule_ceiling [--seeds 0 1 2 3 4]

Issue 18 asks for 97% of GPT-4's quality at <= 25% of its cost. This script asks what the
signals a cascade reads (the agreement of cheap models' letters, the task) could give at
best, with no test row read: per seed, on the training side of `cascade_quality`'s carve
(test = `split(0.3, seed=1000+s)`, never loaded), every rule of a small family is scored
*in-sample* (so the figure is an upper bound for the family, optimistic, not a held-out
result): per task, one of
- ARC / Winogrande: always GPT-4, or ask a set of cheap models (Mixtral+Yi, +GPT-3.5,
  +Claude-Instant, Yi+GPT-3.5) and accept their letter when all agree, else GPT-4;
- MBPP: GPT-4, GPT-3.5 or Claude-Instant alone;
and the best quality within 25% (and 50%) of GPT-4's cost is reported, with the hand rule
of the issue beside it. One JSON document on stdout, a summary on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from signoria.orchestrator.answers import extract_letter
from signoria.routers.data import RoutingTable, load_models, load_table

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routerbench"
GPT4, MIXTRAL, YI, GPT35, INSTANT = (
    "gpt-4-1106-preview",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
    "gpt-3.5-turbo-1106",
    "claude-instant-v1",
)
AGREEMENT_SETS: list[tuple[str, ...]] = [
    (),  # always GPT-4
    (MIXTRAL, YI),
    (MIXTRAL, YI, GPT35),
    (MIXTRAL, YI, INSTANT),
    (YI, GPT35),
]
CODE_MODELS = [GPT4, GPT35, INSTANT]


def agreement_rule(
    table: RoutingTable, rows: np.ndarray, cheap: tuple[str, ...]
) -> tuple[float, float]:
    """(right answers, cost) of: ask `cheap`, accept their common letter, else GPT-4."""
    col = {m: table.models.index(m) for m in table.models}
    right = cost = 0.0
    for i in rows:
        if not cheap:
            right += table.scores[i, col[GPT4]]
            cost += table.costs[i, col[GPT4]]
            continue
        letters = {extract_letter(table.rows[i].outcomes[m].response or "") for m in cheap}
        cost += sum(table.costs[i, col[m]] for m in cheap)
        if len(letters) == 1 and None not in letters:
            right += table.scores[i, col[cheap[0]]]
        else:
            right += table.scores[i, col[GPT4]]
            cost += table.costs[i, col[GPT4]]
    return right, cost


def one_seed(table: RoutingTable, seed: int) -> dict[str, Any]:
    train, _ = table.split(0.3, seed=1000 + seed)
    tasks = np.array([r.task for r in train.rows])
    g4 = train.models.index(GPT4)
    ref_right, ref_cost = float(train.scores[:, g4].sum()), float(train.costs[:, g4].sum())
    per_task = {
        task: {
            cheap: agreement_rule(train, np.flatnonzero(tasks == task), cheap)
            for cheap in AGREEMENT_SETS
        }
        for task in ("arc-challenge", "winogrande")
    }
    code = np.flatnonzero(tasks == "mbpp")
    per_code = {
        m: (
            float(train.scores[code, train.models.index(m)].sum()),
            float(train.costs[code, train.models.index(m)].sum()),
        )
        for m in CODE_MODELS
    }
    rules = []
    for arc, wino, mbpp in itertools.product(AGREEMENT_SETS, AGREEMENT_SETS, CODE_MODELS):
        parts = [per_task["arc-challenge"][arc], per_task["winogrande"][wino], per_code[mbpp]]
        right, cost = sum(p[0] for p in parts), sum(p[1] for p in parts)
        rules.append(
            {
                "arc": list(arc),
                "winogrande": list(wino),
                "mbpp": mbpp,
                "quality_ratio": right / ref_right,
                "cost_ratio": cost / ref_cost,
            }
        )
    hand = next(
        r
        for r in rules
        if r["arc"] == [MIXTRAL, YI] and r["winogrande"] == [MIXTRAL, YI] and r["mbpp"] == GPT35
    )

    def best_within(ratio: float) -> dict[str, Any] | None:
        inside = [r for r in rules if r["cost_ratio"] <= ratio]
        return max(inside, key=lambda r: (r["quality_ratio"], -r["cost_ratio"]), default=None)

    front: list[dict[str, Any]] = []
    for rule in sorted(rules, key=lambda r: (r["cost_ratio"], -r["quality_ratio"])):
        if not front or rule["quality_ratio"] > front[-1]["quality_ratio"]:
            front.append(rule)

    return {
        "seed": seed,
        "train_rows": len(train),
        "gpt4_right": ref_right,
        "right_answers_97pct_may_lose": 0.03 * ref_right,
        "hand_rule": hand,
        "best_within_25pct": best_within(0.25),
        "best_within_30pct": best_within(0.3),
        "best_within_50pct": best_within(0.5),
        "pareto_front": front,
        "rules": len(rules),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    table = load_table(args.data / "train.jsonl", load_models(args.data / "models.json"))
    runs = [one_seed(table, s) for s in args.seeds]
    print(json.dumps({"benchmark": "routerbench_rule_ceiling", "seeds": args.seeds, "runs": runs}))
    for run in runs:
        line = [f"seed {run['seed']}:"]
        cheapest = run["pareto_front"][0]
        line.append(
            f"cheapest rule {cheapest['quality_ratio']:.3f} at {cheapest['cost_ratio']:.3f}"
        )
        for name in ("hand_rule", "best_within_25pct", "best_within_30pct", "best_within_50pct"):
            r = run[name]
            figure = "none" if r is None else f"{r['quality_ratio']:.3f} at {r['cost_ratio']:.3f}"
            line.append(f"{name} {figure}")
        print(" | ".join(line), file=sys.stderr)


if __name__ == "__main__":
    main()
