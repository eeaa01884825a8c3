"""Aggregation that never loses to its best expert: learned-vote against the best single
expert and majority-without-the-liar, on held-out splits of the MCQ replay.

Per seed: the table's rows are split by a hash of (seed, id) *first*; the five best
experts are chosen and learned-vote's weights fitted on the training side only; every
aggregator then runs on the test side, clean and with one scripted liar in each of the
five seats, under a new name (what `signoria redteam` does) and impersonating the expert
whose seat it took (a compromised endpoint: the name keeps its fitted weight). Each
setting is one `run_redteam` call: the clean pass, then the attacked pass with the same
aggregator instances, then majority with the liar's seat left empty.

    python -m benchmarks.aggregation_replay --data ../shared/data/routerbench/train.jsonl

Writes JSON (`--out`) and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from signoria.agents.backends.replay import OutcomeTable, ReplayExpert, load_table
from signoria.agents.types import Expert, ModelCard
from signoria.evals.adversaries import ScriptedAdversary
from signoria.evals.redteam import (
    NAIVE,
    WITHOUT_LIARS,
    is_letter,
    replay_items,
    run_redteam,
    split_table,
    strongest_models,
    target_table,
)
from signoria.orchestrator.aggregators.first import FirstAnswer, FirstParams
from signoria.orchestrator.aggregators.learned_vote import LearnedVote, LearnedVoteParams
from signoria.orchestrator.aggregators.majority import MajorityParams, MajorityVote
from signoria.orchestrator.aggregators.protocol import Aggregator
from signoria.orchestrator.aggregators.reputation_vote import ReputationParams, ReputationVote
from signoria.orchestrator.aggregators.vote_fit import fit_weights
from signoria.orchestrator.answers import extract_letter

LIAR = "adversary-1"
# Two-sided 95% Student t quantiles by degrees of freedom, for mean +- CI over seeds.
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def interval(values: list[float]) -> dict[str, float]:
    """Mean, 95% CI half-width over seeds (t), and the worst seed, in points."""
    mean = statistics.mean(values)
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return {"mean": round(mean, 2), "ci95": round(half, 2), "min": round(min(values), 2)}


def aggregators(weights: Path) -> dict[str, Aggregator]:
    """Fresh instances: the stateful votes start every setting with no history."""
    return {
        NAIVE: MajorityVote(MajorityParams(answer="letter")),
        "first": FirstAnswer(FirstParams()),
        "reputation-vote": ReputationVote(ReputationParams(answer="letter")),
        "learned-vote": LearnedVote(LearnedVoteParams(weights=weights)),
        "learned-vote (no trust)": LearnedVote(LearnedVoteParams(weights=weights, trust=False)),
    }


async def one_seed(table: OutcomeTable, seed: int, k: int, fraction: float) -> dict[str, Any]:
    train, test = split_table(table, fraction, seed)
    models = strongest_models(train, k)
    rows = [r for r in train.rows if is_letter(r.get("reference"))]
    weights = fit_weights(rows, models, answer="letter", seed=seed)
    path = Path(tempfile.mkdtemp()) / f"weights-{seed}.json"
    weights.save(path)
    items = replay_items(test, models, None)
    targets = target_table(items)
    honest: dict[str, Expert] = {
        m: ReplayExpert(ModelCard(name=m, backend="replay"), table, m) for m in models
    }
    singles = {
        m: sum(
            extract_letter(str(test.by_query[i.prompt]["outcomes"][m]["response"])) == i.reference
            for i in items
        )
        / len(items)
        for m in models
    }
    settings: dict[str, Any] = {}
    for seat, model in enumerate(models):
        for mode in ("new-name", "impersonating"):
            name = LIAR if mode == "new-name" else model
            liar = ScriptedAdversary(ModelCard(name=name, backend="adversary"), targets.get)
            reports = await run_redteam(
                items,
                honest=honest,
                adversaries={LIAR: liar},
                aggregators=aggregators(path),
                concurrency=1,
                replace=seat,
            )
            settings[f"seat{seat}-{mode}"] = {
                agg: {"clean": r.clean_acc, "attacked": r.attacked_acc, "persuaded": r.persuaded}
                for agg, r in reports.items()
            }
    return {
        "seed": seed,
        "n_train_rows": len(rows),
        "n_test": len(items),
        "experts": models,
        "sharpness": {t: w.sharpness for t, w in weights.tasks.items()},
        "single_accuracy": singles,
        "settings": settings,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per aggregator: clean minus the best single expert (best on the test split itself,
    the harsher reference), and per setting attacked minus majority-without-the-liar."""
    names = [a for a in runs[0]["settings"]["seat0-new-name"] if a != WITHOUT_LIARS]
    out: dict[str, Any] = {"clean_minus_best_single": {}, "attacked_minus_without_liar": {}}
    for agg in names:
        clean = [
            100
            * (r["settings"]["seat0-new-name"][agg]["clean"] - max(r["single_accuracy"].values()))
            for r in runs
        ]
        out["clean_minus_best_single"][agg] = interval(clean)
        per_setting = {}
        for setting in runs[0]["settings"]:
            gaps = [
                100
                * (
                    r["settings"][setting][agg]["attacked"]
                    - r["settings"][setting][WITHOUT_LIARS]["attacked"]
                )
                for r in runs
            ]
            per_setting[setting] = interval(gaps)
        out["attacked_minus_without_liar"][agg] = per_setting
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--experts", type=int, default=5)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13, 14])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/aggregation_replay.json")
    )
    args = parser.parse_args()
    started = time.perf_counter()
    table = load_table(args.data)
    runs = [
        asyncio.run(one_seed(table, seed, args.experts, args.test_fraction)) for seed in args.seeds
    ]
    summary = summarise(runs)
    result = {
        "command": "python -m benchmarks.aggregation_replay "
        f"--data {args.data} --experts {args.experts} --test-fraction {args.test_fraction} "
        f"--seeds {' '.join(map(str, args.seeds))}",
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    learned = summary["attacked_minus_without_liar"]["learned-vote"]
    worst = min(learned.values(), key=lambda s: s["min"])
    clean = summary["clean_minus_best_single"]["learned-vote"]
    print(
        f"learned-vote over {len(runs)} seeds, n_test {[r['n_test'] for r in runs]}: clean - best "
        f"single {clean['mean']:+.2f} +- {clean['ci95']:.2f} pts (worst seed {clean['min']:+.2f}); "
        f"attacked - majority-without-liar, worst setting mean {worst['mean']:+.2f} +- "
        f"{worst['ci95']:.2f} (worst seed {worst['min']:+.2f}); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
