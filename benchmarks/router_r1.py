"""Router-R1 on this CPU: does GRPO raise a small policy's held-out reward?

The task, built from the RouterBench table: its ARC-Challenge and Winogrande questions
(the asked question only, in-prompt examples cut), three experts with their recorded
answers and costs: Mistral-7B (cheap, weak), Yi-34B (cheap, strong), GPT-4 (dear,
strongest). With the cost weight 0.3, the best choice is Yi-34B: right nearly as often
as GPT-4 at a tenth of its cost.

Protocol (`--seed s`): the test rows are carved first (a hash of the row id and s,
`--test-n` rows), written to the work dir and read only by `eval`; `--validation` sets
them aside unread and evaluates on rows carved from the training side instead. The run
of record trains once, in the validation run (whose training rows exclude both carves),
looks at the validation figures, and then evaluates those same policies once on the test
rows (`--trained-in` that run's work dir; WORKDIR is `--workdir`, by default
/tmp/router-r1). The policy is trained by the product's own command on the other rows: a
format warm-up (`warm`, which is also the baseline GRPO must beat), then GRPO from it
(`trained`). Every policy is then run on the test rows through the product path:
`signoria eval run` of a `router-r1` pipeline whose policy is the GGUF served by
llama.cpp and whose experts replay the recorded answers. The untrained policy (the
embedded SmolLM2-135M as it ships), best-single and random routing are scored on the
same rows. Nothing is chosen on the test rows: the settings below are fixed in advance.

    python -m benchmarks.router_r1 build train eval report --validation --test-n 100 --steps 24
    python -m benchmarks.router_r1 build eval report --test-n 100 --trained-in WORKDIR/validation0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.router_r1_report import report
from signoria.agents.backends.replay import asked_question
from signoria.agents.jsonl import read_jsonl
from signoria.routers.data import split_point

ROOT = Path(__file__).resolve().parent.parent
SIGNORIA = str(Path(sys.executable).with_name("signoria"))
DATA = ROOT.parent / "shared" / "data" / "routerbench"
TASKS = ("arc-challenge", "winogrande")
EXPERTS = ("mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat", "gpt-4-1106-preview")
# Fixed before any run (not tuned on the test rows).
SETTINGS = {
    "policy": "smollm2-135m",
    "experts": ",".join(EXPERTS),
    "cost_weight": 0.3,
    "max_rounds": 2,
    "prompts_per_step": 4,
    "generations": 4,
    "learning_rate": 5e-6,
    "temperature": 1.0,
    "max_turn_tokens": 128,
    "information_limit": 400,
}


def run(*args: str) -> str:
    started = time.perf_counter()
    done = subprocess.run([SIGNORIA, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"signoria {' '.join(args[:3])} failed: {done.stderr.strip()[-600:]}")
    print(f"  signoria {' '.join(args[:3])}: {time.perf_counter() - started:.0f}s", flush=True)
    return done.stdout


def build(work: Path, seed: int, test_n: int, validation: bool) -> None:
    rows = []
    for _, row in read_jsonl(DATA / "train.jsonl"):
        if row["task"] in TASKS and all(m in row["outcomes"] for m in EXPERTS):
            outcomes = {m: row["outcomes"][m] for m in EXPERTS}
            rows.append({**row, "query": asked_question(row["query"]), "outcomes": outcomes})
    order = sorted(rows, key=lambda r: split_point(r["id"], 7_000 + seed))
    test, train = order[:test_n], order[test_n:]
    if validation:  # the test rows set aside unread; "test" is carved from the training side
        test, train = train[:test_n], train[test_n:]
    for name, part in (("test", test), ("train", train)):
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    cards = json.loads((DATA / "models.json").read_text())
    (work / "models.json").write_text(json.dumps({m: cards[m] for m in EXPERTS}, indent=1))
    print(f"built: {len(train)} training rows, {len(test)} test rows (seed {seed})")


def options(extra: dict[str, Any]) -> list[str]:
    pairs = []
    for key, value in {**SETTINGS, **extra}.items():
        pairs += ["--option", f"{key}={value}"]
    return pairs


def train(work: Path, seed: int, steps: int, warmup: int) -> None:
    common = ["route", "train", "--router", "router-r1", "--train", str(work / "train.jsonl")]
    common += ["--models", str(work / "models.json"), "--seed", str(seed), "--quiet"]
    warm = work / "warm"
    if not (warm / "manifest.json").is_file():
        run(*common, "--out", str(warm), *options({"steps": 0, "warmup_steps": warmup}))
    trained = work / "trained"
    if not (trained / "manifest.json").is_file():
        run(*common, "--out", str(trained), *options({"steps": steps, "policy": str(warm)}))


def eval_config(work: Path, trained_in: Path) -> dict[str, Any]:
    cards = json.loads((work / "models.json").read_text())
    models: dict[str, Any] = {
        name: {
            "backend": "replay",
            "table": str(work / "test.jsonl"),
            "match": "question",
            "input_price": card["input_price"],
            "output_price": card["output_price"],
            "description": card["description"],
        }
        for name, card in cards.items()
    }
    policies = {
        "untrained": {"embedded": "smollm2-135m"},
        "warm": {"path": str(trained_in / "warm" / "policy.gguf")},
        "trained": {"path": str(trained_in / "trained" / "policy.gguf")},
    }
    manifest = json.loads((trained_in / "trained" / "manifest.json").read_text())
    pipelines: dict[str, Any] = {}
    for name, source in policies.items():
        models[f"policy-{name}"] = {
            "backend": "llamacpp",
            "source": source,
            "context_length": 4096,
            "input_price": 0.0,
            "output_price": 0.0,
        }
        pipelines[f"r1-{name}"] = {
            "router": {"name": "none"},
            "aggregator": {
                "name": "router-r1",
                "policy": f"policy-{name}",
                "experts": list(EXPERTS),
                "max_rounds": manifest["max_rounds"],
                "information_limit": manifest["information_limit"],
                "policy_max_tokens": SETTINGS["max_turn_tokens"],
                "descriptors": str(trained_in / "trained" / "descriptors.json"),
            },
            "limits": {"max_tokens": 64, "deadline_s": 600, "expert_timeout_s": 300},
        }
    return {
        "default_pipeline": "r1-trained",
        "runtime": {"llamacpp": {"n_threads": 2, "memory_cap_mb": 4096}},
        "models": models,
        "pipelines": pipelines,
    }


def evaluate(work: Path, trained_in: Path) -> None:
    config = work / "eval.yaml"
    config.write_text(yaml.safe_dump(eval_config(work, trained_in), sort_keys=False))
    db = f"sqlite:///{work / 'eval.db'}"
    for policy in ("untrained", "warm", "trained"):
        run(
            "eval", "run", "--benchmark", "outcomes", "--data", str(work / "test.jsonl"),
            "-c", str(config), "-p", f"r1-{policy}", "--db", db, "--run-id", f"r1-{policy}",
            "--json",
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phases", nargs="+", choices=["build", "train", "eval", "report"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/router-r1"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=40, help="GRPO steps")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up questions (SFT steps)")
    parser.add_argument(
        "--validation", action="store_true", help="evaluate on a validation carve of the train side"
    )
    parser.add_argument("--out", type=Path, help="the report's JSON")
    parser.add_argument(
        "--trained-in",
        type=Path,
        help="evaluate the policies trained in this work dir (default: this run's own)",
    )
    args = parser.parse_args()
    work = args.workdir / f"{'validation' if args.validation else 'seed'}{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if "build" in args.phases:
        build(work, args.seed, args.test_n, args.validation)
    if "train" in args.phases:
        train(work, args.seed, args.steps, args.warmup)
    trained_in = args.trained_in or work
    if "eval" in args.phases:
        evaluate(work, trained_in)
    if "report" in args.phases:
        result = report(work, trained_in, EXPERTS, seed=args.seed)
        result["trained_in"] = str(trained_in)
        result["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version()}
        if args.out:
            args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
