"""The local routing loop: the embedded pool's own outcome table, routers trained on it.

    # 1. every embedded model answers each query (stored, resumable):
    signoria eval run --benchmark mmlu --data ../shared/data/mmlu/dev.jsonl \
        -c configs/live-eval.yaml -p all-experts-letter --db $DB --run-id local-mmlu-letter
    signoria eval run --benchmark gsm8k --data ../shared/data/gsm8k/train.jsonl --limit 40 \
        -c configs/live-eval.yaml -p all-experts --db $DB --run-id local-gsm8k
    # 2. this script: export both runs, split 75/25 by id, train and evaluate, and write the
    #    artifact that the `routed` pipeline of configs/default.yaml uses
    .venv/bin/python -m benchmarks.local_loop --db $DB --runs local-mmlu-letter local-gsm8k

Local models cost nothing per token, so every router is trained for quality
(performance-first); the interesting figure is whether per-query routing beats always
asking the strongest model, and the call share shows when it collapses onto one model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from signoria.agents.types import ModelCard
from signoria.evals.export import export_outcomes, model_entries
from signoria.orchestrator.config import load_config
from signoria.orchestrator.storage import Store
from signoria.routers.artifact import train_artifact
from signoria.routers.data import load_table
from signoria.routers.evaluate import evaluate
from signoria.routers.trainable import TradeOff

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "configs" / "artifacts" / "local-pool"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--router", default="knn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--table-out", type=Path, default=ROOT / "benchmarks" / "results" / "local_outcomes.jsonl"
    )
    args = parser.parse_args()

    export_outcomes(Store.open(args.db), args.runs, args.table_out)
    cfg = load_config(ROOT / "configs" / "default.yaml")
    info = {name: ModelCard.from_entry(name, e) for name, e in model_entries(cfg).items()}
    table = load_table(args.table_out, info)
    train, test = table.split(0.25, seed=args.seed)
    out = Path(tempfile.mkdtemp(prefix="local-loop-"))
    t0 = time.perf_counter()
    timings = train_artifact(
        args.router,
        train,
        TradeOff.scenario("performance"),
        out,
        seed=args.seed,
        source={"train": "local outcome table, 75% split"},
    )
    result = evaluate(out, test)
    print(
        f"local outcome table: {len(table)} rows ({len(train)} train / {len(test)} test), "
        f"models {', '.join(table.models)}; trained in {time.perf_counter() - t0:.1f}s"
    )
    print("| router | quality | call share |\n|---|---|---|")
    for name, r in {args.router: result, **result["baselines"]}.items():
        share = ", ".join(f"{m} {100 * s:.0f}%" for m, s in r["call_share"].items())
        print(f"| {name} | {r['quality']:.3f} | {share} |")
    print(
        json.dumps(
            {"n_train": len(train), "n_test": len(test), "fit_seconds": timings, "result": result}
        )
    )
    if ARTIFACT.exists():
        shutil.rmtree(ARTIFACT)
    shutil.copytree(out, ARTIFACT)
    print(f"artifact written to {ARTIFACT}")


if __name__ == "__main__":
    main()
