"""How few GPT-4 calls can buy 95% of its quality against Mixtral? Every signal, validation only.

    .venv/bin/python -m benchmarks.two_model_signals [--seeds 0 1 2 3 4]

The two-model bar of issue 18 (RouteLLM style, RouterBench's GPT-4 and Mixtral-8x7B
columns): 95% of GPT-4's quality with at most 40% of the queries sent to GPT-4. This
script asks whether any signal the table offers can rank queries well enough, without
touching a test row: per seed s the table is carved as `cascade_quality` carves it (test =
`split(0.3, seed=1000+s)`, never read), and on the training side each signal's ranking is
scored out of fold (5 folds, the cascade's `QueryPriors.out_of_fold`): a logistic
regression predicts from the signal whether each model is right, the preference for
GPT-4 is P(GPT-4 right) - P(Mixtral right), and the result is the GPT-4 call share at
which the ranking reaches 95% of GPT-4's quality (`routers.metrics.cpt`), with APGR.
Signals, cumulative where named so:
- task: which benchmark the query comes from (one-hot: known from the prompt's format);
- answer: + Mixtral's answer as read (its letter per task, the log length of its reply);
- query (head): + the query's MiniLM vector as every router embeds it (the first 256
  tokens: on the few-shot prompts of ARC and Winogrande, mostly the shared examples);
- query (tail): the same with the last 256 tokens (the question itself);
- oracle: the recorded outcomes themselves (the floor no router can pass).
One JSON document on stdout, a table on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from typing import Any

import numpy as np

from benchmarks.cascade_quality import DATA, GPT4, MIXTRAL, interval
from signoria.orchestrator.answers import extract_letter
from signoria.orchestrator.cascade.priors import QueryPriors
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.metrics import apgr, cpt, pgr_curve

LETTERS = "ABCDE"


def task_onehot(table: RoutingTable) -> np.ndarray:
    tasks = sorted({row.task or "" for row in table.rows})
    return np.array([[row.task == t for t in tasks] for row in table.rows], dtype=float)


def answer_features(table: RoutingTable, tasks: np.ndarray) -> np.ndarray:
    """Mixtral's letter (or none) crossed with the task, and its reply's log length."""
    letter = np.zeros((len(table), len(LETTERS) + 1))
    length = np.zeros((len(table), 1))
    for i, row in enumerate(table.rows):
        reply = row.outcomes[MIXTRAL].response or ""
        found = extract_letter(reply)
        letter[i, LETTERS.index(found) if found and found in LETTERS else len(LETTERS)] = 1.0
        length[i, 0] = math.log1p(len(reply)) / 8.0
    crossed = np.einsum("ni,nj->nij", tasks, letter).reshape(len(table), -1)
    return np.hstack([crossed, length * tasks])


def embed(queries: list[str], side: str) -> np.ndarray:
    """MiniLM vectors, truncated at the start (as the routers do) or at the end."""
    from signoria.routers import embedding

    model = embedding._model()
    model.tokenizer.truncation_side = "left" if side == "tail" else "right"
    try:
        vectors = model.encode(queries, batch_size=16, normalize_embeddings=True)
    finally:
        model.tokenizer.truncation_side = "right"
    return np.asarray(vectors, dtype=float)


def score_ranking(strong: np.ndarray, weak: np.ndarray, preference: np.ndarray) -> dict[str, Any]:
    curve = pgr_curve(strong, weak, preference)
    target = (0.95 * strong.mean() - weak.mean()) / (strong.mean() - weak.mean())
    return {"share_for_95pct": cpt(curve, float(target)), "apgr": apgr(curve)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    t0 = time.perf_counter()
    table = load_table(DATA / "train.jsonl", load_models(DATA / "models.json"))
    tasks = task_onehot(table)
    answers = answer_features(table, tasks)
    signals = {
        "task": tasks,
        "task + answer": np.hstack([tasks, answers]),
        "task + answer + query (head)": np.hstack([tasks, answers, embed(table.queries, "head")]),
        "task + answer + query (tail)": np.hstack([tasks, answers, embed(table.queries, "tail")]),
    }
    g, m = table.models.index(GPT4), table.models.index(MIXTRAL)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*signals, "oracle"]}
    for seed in args.seeds:
        test_side = {r.id for r in table.split(0.3, seed=1000 + seed)[1].rows}
        keep = np.array([row.id not in test_side for row in table.rows])
        strong, weak = table.scores[keep, g], table.scores[keep, m]
        right = np.stack([strong >= 0.5, weak >= 0.5], axis=1).astype(int)
        for name, x in signals.items():
            p = QueryPriors.out_of_fold(x[keep], right, (GPT4, MIXTRAL), 1.0, seed=seed)
            runs[name].append(score_ranking(strong, weak, p[:, 0] - p[:, 1]))
        runs["oracle"].append(score_ranking(strong, weak, strong - weak))
    summary = {
        name: {
            key: interval([r[key] for r in results if r[key] is not None])
            for key in ("share_for_95pct", "apgr")
        }
        for name, results in runs.items()
    }
    print(
        json.dumps(
            {
                "benchmark": "two_model_signals",
                "split": "validation (out of fold, training side only)",
                "seeds": args.seeds,
                "machine": f"{platform.machine()}, 2 cores, python {platform.python_version()}",
                "seconds": round(time.perf_counter() - t0, 1),
                "runs": runs,
                "summary": summary,
            }
        )
    )
    for name, s in summary.items():
        share, area = s["share_for_95pct"], s["apgr"]
        print(
            f"{name}: GPT-4 share for 95% {share['mean']:.3f} ± {share['ci95']:.3f}, "
            f"APGR {area['mean']:.3f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
