"""Ensemble critical path: does an MoA layer cost its slowest proposer, not their sum?

Latency-scripted experts (the `scripted` backend sleeping a fixed time per call) make the
ideal wall time exact: for MoA it is router layer (slowest expert) + each extra layer
(slowest proposer) + the aggregator; for Self-MoA, the slowest sample + the aggregator.
Each pipeline runs side by side with its sequential baseline (the same calls one after
another, as a loop over experts would make them), `--repeats` times after one warm-up.

    python -m benchmarks.ensemble_critical_path --repeats 20

Prints one JSON object (per pipeline: ideal, sequential sum, measured p50/max wall,
ratio measured/ideal) and a one-line summary. Bar (issues 5 and 7): ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from typing import Any

from signoria.agents.types import GenerationParams, Message
from signoria.orchestrator.config import SignoriaConfig, parse_config
from signoria.orchestrator.sdk import Orchestrator

LATENCY = {"fast": 0.10, "mid": 0.20, "slow": 0.30, "agg": 0.15}


def config(latency: dict[str, float]) -> SignoriaConfig:
    models = {
        name: {"backend": "scripted", "answer": f"{name} says 51", "latency_s": seconds}
        for name, seconds in latency.items()
    }
    three = ["fast", "mid", "slow"]
    pipelines = {
        "moa-2-layers": {
            "router": {"name": "fixed", "experts": three},
            "aggregator": {"name": "moa", "layers": [three], "aggregator": "agg"},
        },
        "self-moa-6": {
            "router": {"name": "fixed", "experts": ["slow"], "samples": 6},
            "aggregator": {"name": "synthesize", "model": "agg"},
        },
    }
    raw = {"default_pipeline": "moa-2-layers", "models": models, "pipelines": pipelines}
    return parse_config(raw, "<benchmark>")


def ideal_and_sequential(name: str, latency: dict[str, float]) -> tuple[float, float]:
    layer = [latency["fast"], latency["mid"], latency["slow"]]
    if name == "moa-2-layers":
        return 2 * max(layer) + latency["agg"], 2 * sum(layer) + latency["agg"]
    return latency["slow"] + latency["agg"], 6 * latency["slow"] + latency["agg"]


async def sequential(orch: Orchestrator, name: str) -> float:
    """The same calls awaited one by one: what a loop over experts costs."""
    calls = ["fast", "mid", "slow"] * 2 if name == "moa-2-layers" else ["slow"] * 6
    question = [Message(role="user", content="What is 17 * 3?")]
    start = time.perf_counter()
    for model in [*calls, "agg"]:
        await orch.pool[model].generate(question, params=GenerationParams(max_tokens=8))
    return time.perf_counter() - start


async def measure(orch: Orchestrator, name: str, repeats: int) -> dict[str, Any]:
    await orch.aask("What is 17 * 3?", pipeline=name)  # warm-up
    walls, loops = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = await orch.aask("What is 17 * 3?", pipeline=name)
        walls.append(time.perf_counter() - start)
        assert result.answer, "the pipeline gave no answer"
        loops.append(await sequential(orch, name))
    ideal, summed = ideal_and_sequential(name, LATENCY)
    return {
        "ideal_s": round(ideal, 4),
        "sum_of_calls_s": round(summed, 4),
        "wall_p50_s": round(statistics.median(walls), 4),
        "wall_max_s": round(max(walls), 4),
        "sequential_p50_s": round(statistics.median(loops), 4),
        "ratio_p50_to_ideal": round(statistics.median(walls) / ideal, 3),
        "ratio_max_to_ideal": round(max(walls) / ideal, 3),
        "speedup_vs_sequential": round(statistics.median(loops) / statistics.median(walls), 2),
    }


async def main(repeats: int) -> dict[str, Any]:
    orch = Orchestrator(config(LATENCY))
    try:
        results = {name: await measure(orch, name, repeats) for name in orch.pipelines}
    finally:
        await orch.aclose()
    return {
        "n": repeats,
        "latency_s": LATENCY,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "pipelines": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    report = asyncio.run(main(args.repeats))
    print(json.dumps(report))
    worst = max(p["ratio_max_to_ideal"] for p in report["pipelines"].values())
    parts = ", ".join(
        f"{name} p50 {p['wall_p50_s']:.3f}s vs ideal {p['ideal_s']:.2f}s "
        f"({p['ratio_p50_to_ideal']}x; {p['speedup_vs_sequential']}x faster than sequential)"
        for name, p in report["pipelines"].items()
    )
    print(f"ensemble critical path, n={args.repeats}: {parts}; worst max/ideal {worst}x")
