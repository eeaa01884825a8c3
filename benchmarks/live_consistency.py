"""Live, embedded pool: an ensemble pipeline against greedy Qwen2.5-Coder-1.5B on GSM8K.

The test rows are carved before anything runs: a hash of (seed, row index) ranks the
development file's rows from index 200 on (rows 0-199 were read by earlier live runs) and
the first `--n` form the test file, written to the work directory (a transient copy, not
committed). Both pipelines run through the benchmark runner (`signoria eval run`, 1024
tokens for the GSM8K prompt, so greedy answers are not cut), alternating in chunks so that
both see the same machine load, and each chunk resumes the run (same run id): stopping
the script loses at most the items in flight, and running it again continues. The paired
comparison is `signoria eval compare` (exact McNemar, accuracy difference with a 95%
interval, latency ratio item for item).

    python -m benchmarks.live_consistency --n 200 --workdir /tmp/live-consistency

Prints a one-line summary; `--out` writes the JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from signoria.agents.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
SIGNORIA = str(Path(sys.executable).with_name("signoria"))
FIRST_UNREAD_ROW = 200


def carve(data: Path, n: int, seed: int) -> list[dict[str, Any]]:
    rows = [row for _, row in read_jsonl(data)][FIRST_UNREAD_ROW:]

    def rank(index: int) -> str:
        return hashlib.sha1(f"{seed}:{index + FIRST_UNREAD_ROW}".encode()).hexdigest()

    order = sorted(range(len(rows)), key=rank)
    return [rows[i] for i in order[:n]]


def signoria(*args: str) -> str:
    done = subprocess.run([SIGNORIA, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"signoria {' '.join(args[:2])} failed: {done.stderr.strip()[-400:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/gsm8k/train.jsonl")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="of the test carve")
    parser.add_argument("--chunk", type=int, default=10, help="items per turn of each pipeline")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "live-eval.yaml")
    parser.add_argument("--baseline", default="greedy")
    parser.add_argument("--pipeline", default="adaptive-vote")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/live-consistency"))
    parser.add_argument("--report-only", action="store_true", help="compare what is stored")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    test = args.workdir / f"gsm8k-test-seed{args.seed}-n{args.n}.jsonl"
    if not test.exists():
        rows = carve(args.data, args.n, args.seed)
        test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = f"sqlite:///{args.workdir / 'live.db'}"
    runs = [f"gsm8k-s{args.seed}-{name}" for name in (args.baseline, args.pipeline)]
    if not args.report_only:
        for limit in range(args.chunk, args.n + args.chunk, args.chunk):
            for run, pipeline in zip(runs, (args.baseline, args.pipeline), strict=True):
                signoria(
                    "eval", "run", "--benchmark", "gsm8k", "--data", str(test),
                    "-c", str(args.config), "-p", pipeline, "--db", db, "--run-id", run,
                    "--limit", str(min(limit, args.n)), "--json",
                )  # fmt: skip
    compared = json.loads(signoria("eval", "compare", *runs, "--db", db, "--json"))
    report = {
        "n_planned": args.n,
        "seed": args.seed,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        **compared,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    pair = compared["paired"][0]
    print(
        f"{args.pipeline} vs {args.baseline}: n={pair['n']} "
        f"{pair['accuracy_run']:.3f} vs {pair['accuracy_baseline']:.3f} "
        f"(diff {pair['difference']:+.3f}, McNemar p={pair['mcnemar_p']:.3g}), "
        f"latency x{pair['latency_ratio_mean']:.2f} mean, x{pair['latency_ratio_p50']:.2f} p50"
    )


if __name__ == "__main__":
    main()
