"""Batch by expert (Symbolic-MoE) against a per-query loop, on the embedded pool.

    nice -n 5 .venv/bin/python -m benchmarks.batch_by_expert --n 100 --k 3 --seed 0 > out.json

Queries: `--n` MMLU dev items held out by a hash of (seed, id). The skills router is
trained on the local loop's outcome table (runs `local-mmlu-letter` and `local-gsm8k` of
the local-loop database, see benchmarks/local_loop.py) minus those items, and recruits
`--k` experts per query (k=3 as in the paper; sampled with replacement, so a strong model
may answer a query several times). Every call: greedy (temperature 0), the letter-only
system prompt, `--max-tokens` tokens.

The local runtime gets a memory cap computed from the files (the runtime's 1.25 x file
size estimate): the largest model fits, the largest plus the smallest does not.
`--page-cache cold` plays a machine whose RAM holds one model: after every call the files
of the models the runtime does not hold are dropped from the OS page cache
(posix_fadvise DONTNEED), so a reload reads the file again, as it would there. The default,
`warm`, is this machine as it is (24 GiB: every evicted file stays cached and a reload
costs little more than a call). Each
schedule starts on a fresh runtime (no model loaded); the per-model load measurement
before them warms the OS page cache for both alike. Reported: wall time, queries/s, model
loads, call counts, per-model load and call time, answer agreement between the two
orders, majority-vote accuracy. The JSON object goes to stdout, the summary line to
stderr. The bar (issue 7): grouped loads == distinct experts and a throughput ratio >= 3.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from importlib.metadata import version
from pathlib import Path
from typing import Any

from signoria.agents.registry import LlamaCppOptions

from benchmarks.batch_schedule import BatchResult, Call, majority, run_by_expert, run_per_query
from signoria.agents.backends.llamacpp import (
    _OVERHEAD,
    LlamaCppExpert,
    LlamaCppRuntime,
    LlamaCppSettings,
)
from signoria.agents.sources import resolve
from signoria.agents.types import Expert, GenerationParams, Message, ModelCard
from signoria.evals.datasets import EvalItem, load_items
from signoria.evals.export import export_outcomes, model_entries
from signoria.evals.scoring import score
from signoria.orchestrator.config import SignoriaConfig, home, load_config
from signoria.orchestrator.storage import Store
from signoria.routers.data import RoutingTable, load_table
from signoria.routers.skills import SkillsRouter
from signoria.routers.skills.profiles import CORRECT
from signoria.routers.trainable import RouterContext, TradeOff

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
SYSTEM = "Answer with only the letter of the correct option."


def outcome_table(db: str, runs: list[str], cfg: SignoriaConfig) -> RoutingTable:
    info = {name: ModelCard.from_entry(name, e) for name, e in model_entries(cfg).items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outcomes.jsonl"
        if export_outcomes(Store.open(db), runs, path) == 0:
            sys.exit(f"error: runs {runs} in {db} have no outcomes")
        return load_table(path, info)


def held_out(items: list[EvalItem], n: int, seed: int) -> list[EvalItem]:
    def rank(item: EvalItem) -> str:
        return hashlib.sha256(f"{seed}:{item.key}".encode()).hexdigest()

    return sorted(items, key=rank)[:n]


def simulate_loads(calls: list[Call], size: dict[str, int], cap: int) -> dict[str, int]:
    """Loads per expert of the runtime's LRU policy for a call sequence (one model per
    file and n_ctx here): the per-model split that `runtime.loads` does not give."""
    loaded: OrderedDict[str, int] = OrderedDict()
    loads = dict.fromkeys(size, 0)
    for _, name in calls:
        if name in loaded:
            loaded.move_to_end(name)
            continue
        while loaded and sum(loaded.values()) + size[name] > cap:
            loaded.popitem(last=False)
        loaded[name] = size[name]
        loads[name] += 1
    return {name: n for name, n in loads.items() if n}


def messages(item: EvalItem) -> list[Message]:
    return [Message(role="system", content=SYSTEM), Message(role="user", content=item.prompt)]


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class OneModelMachine:
    """An expert on a machine whose RAM holds one model: after each call, the files of
    models the runtime has evicted leave the page cache too."""

    def __init__(self, inner: LlamaCppExpert, runtime: LlamaCppRuntime, files: list[Path]):
        self.inner, self.runtime, self.files = inner, runtime, files
        self.card = inner.card

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Any:
        try:
            return await self.inner.generate(messages, params=params)
        finally:
            held = set(self.runtime.loaded_paths())
            for path in self.files:
                if path not in held:
                    drop_from_page_cache(path)

    async def count_tokens(self, messages: list[Message]) -> int:
        return await self.inner.count_tokens(messages)

    async def aclose(self) -> None:
        return None


def pool_on(runtime: LlamaCppRuntime, cfg: SignoriaConfig, cold: bool) -> dict[str, Expert]:
    pool: dict[str, Expert] = {}
    experts = {}
    for name, spec in cfg.models.items():
        assert isinstance(spec.options, LlamaCppOptions), f"{name} is not a llamacpp model"
        experts[name] = LlamaCppExpert(spec.card, spec.options.source, runtime)
    files = [expert.model_path() for expert in experts.values()]
    if cold:
        for path in files:  # every schedule starts from disk
            drop_from_page_cache(path)
    for name, expert in experts.items():
        pool[name] = OneModelMachine(expert, runtime, files) if cold else expert
    return pool


async def measure_model(
    name: str,
    cfg: SignoriaConfig,
    settings: LlamaCppSettings,
    probes: list[list[Message]],
    params: GenerationParams,
    cold: bool,
) -> dict[str, float]:
    """What one (re)load costs: building the model on a cold runtime (a token count
    triggers it), then the first call, which also pays for touching the mmapped weights;
    against the median call of the loaded model over further prompts."""
    runtime = LlamaCppRuntime(settings)
    try:
        expert = pool_on(runtime, cfg, cold)[name]
        t0 = time.perf_counter()
        await expert.count_tokens(probes[0])
        load_s = time.perf_counter() - t0
        first = (await expert.generate(probes[0], params=params)).latency_s
        warm = [(await expert.generate(p, params=params)).latency_s for p in probes[1:]]
    finally:
        runtime.close()
    call = statistics.median(warm)
    return {
        "load_s": round(load_s, 3),
        "first_call_s": round(first, 3),
        "call_s_median": round(call, 3),
        # A reload costs the load plus the first call's extra time over a warm call.
        "switch_cost_s": round(load_s + max(0.0, first - call), 3),
    }


async def run_schedule(
    schedule: str,
    cfg: SignoriaConfig,
    settings: LlamaCppSettings,
    queries: list[list[Message]],
    groups: dict[str, list[int]],
    params: GenerationParams,
    order: list[str],
    cold: bool,
) -> tuple[BatchResult, int]:
    runtime = LlamaCppRuntime(settings)  # nothing loaded
    try:
        run = run_by_expert if schedule == "grouped" else run_per_query
        result = await run(queries, groups, pool_on(runtime, cfg, cold), params, order)
        return result, runtime.loads
    finally:
        runtime.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 queries")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--page-cache", choices=["warm", "cold"], default="warm")
    parser.add_argument("--db", default=f"sqlite:///{home() / 'local-loop.db'}")
    parser.add_argument("--runs", nargs="+", default=["local-mmlu-letter", "local-gsm8k"])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/mmlu/dev.jsonl")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    args = parser.parse_args()
    n = 10 if args.quick else args.n
    cfg = load_config(args.config)
    load_before = os.getloadavg()

    # Recruitment: the skills router trained without the benchmark's queries.
    table = outcome_table(args.db, args.runs, cfg)
    bench = held_out(load_items("mmlu", args.data), n, args.seed)
    keys = {item.key for item in bench}
    train = table.subset([i for i, row in enumerate(table.rows) if row.id not in keys])
    ctx = RouterContext.from_table(train, TradeOff.scenario("performance"), seed=args.seed)
    router = SkillsRouter()
    router.fit(train, ctx)
    groups = router.group_by_expert([it.prompt for it in bench], args.k, ctx, seed=args.seed)
    accuracy = dict(zip(train.models, (train.scores >= CORRECT).mean(axis=0).tolist(), strict=True))
    # Strongest first: majority-vote ties go to the model with the best training accuracy.
    order = sorted(groups, key=lambda m: -accuracy[m])

    # The cap: the largest model fits, the largest plus the smallest does not.
    settings0 = cfg.runtime.llamacpp
    cache = settings0.cache_dir.expanduser()
    size = {}
    for name, spec in cfg.models.items():
        assert isinstance(spec.options, LlamaCppOptions)
        size[name] = int(resolve(spec.options.source, cache).stat().st_size * _OVERHEAD)
    largest, smallest = max(size.values()), min(size.values())
    cap_mb = math.ceil((largest + smallest / 2) / MIB)
    assert largest <= cap_mb * MIB < largest + smallest
    settings = settings0.model_copy(update={"memory_cap_mb": cap_mb, "cache_dir": cache})
    names = sorted(size)
    fit_pairs = [
        f"{a} + {b}"
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if size[a] + size[b] <= cap_mb * MIB
    ]

    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.0, seed=args.seed)
    queries = [messages(it) for it in bench]
    print(f"n={n} k={args.k} cap={cap_mb} MiB; measuring loads", file=sys.stderr)
    cold = args.page_cache == "cold"
    models = {
        name: await measure_model(name, cfg, settings, queries[:4], params, cold) for name in order
    }
    results: dict[str, Any] = {}
    runs: dict[str, BatchResult] = {}
    for schedule in ("grouped", "per_query"):
        print(f"running {schedule}", file=sys.stderr)
        result, loads = await run_schedule(
            schedule, cfg, settings, queries, groups, params, order, cold
        )
        runs[schedule] = result
        votes = await majority([it.question for it in bench], result, kind="letter")
        scores = [score(it, v.text)[0] or 0.0 for it, v in zip(bench, votes, strict=True)]
        switches = sum(a[1] != b[1] for a, b in itertools.pairwise(result.calls))
        simulated = simulate_loads(result.calls, size, cap_mb * MIB)
        results[schedule] = {
            "wall_s": round(result.seconds, 2),
            "queries_per_s": round(n / result.seconds, 4),
            "loads": loads,
            "loads_per_model_simulated": simulated,
            "simulation_matches_runtime": sum(simulated.values()) == loads,
            "expert_switches": switches,
            "calls": len(result.calls),
            "executed_calls": result.executed,
            "errors": result.errors,
            "vote_accuracy": round(statistics.mean(scores), 4),
            "vote_answers": [v.text for v in votes],
        }

    grouped, per_query = runs["grouped"], runs["per_query"]
    pairs = [
        (a.text, b.text)
        for ra, rb in zip(grouped.completions, per_query.completions, strict=True)
        for a, b in zip(ra, rb, strict=True)
    ]
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    votes_agree = statistics.fmean(
        a == b
        for a, b in zip(
            results["grouped"].pop("vote_answers"),
            results["per_query"].pop("vote_answers"),
            strict=True,
        )
    )
    ratio = per_query.seconds / grouped.seconds  # same n: the queries/s ratio
    extra = {m: results["per_query"]["loads_per_model_simulated"].get(m, 0) - 1 for m in groups}
    explained = results["grouped"]["wall_s"] + sum(
        extra[m] * models[m]["switch_cost_s"] for m in groups
    )
    # If every call of the batch paid a reload: the most any schedule change could gain.
    calls = grouped.calls_per_expert()
    base = sum(calls[m] * models[m]["call_s_median"] for m in calls)
    bound = sum(calls[m] * (models[m]["call_s_median"] + models[m]["switch_cost_s"]) for m in calls)
    distinct = len(groups)
    bar = results["grouped"]["loads"] == distinct and ratio >= 3.0
    summary = (
        f"batch-by-expert n={n} k={args.k} page cache {args.page_cache}: "
        f"grouped {results['grouped']['wall_s']}s "
        f"({results['grouped']['loads']} loads) vs per-query {results['per_query']['wall_s']}s "
        f"({results['per_query']['loads']} loads); throughput ratio {ratio:.2f}x; "
        f"distinct experts {distinct}; agreement {agreement:.3f}; bar {'met' if bar else 'NOT met'}"
    )
    report = {
        "benchmark": "batch_by_expert",
        "n": n,
        "k": args.k,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "page_cache": args.page_cache,
        "temperature": 0.0,
        "queries": f"MMLU dev, {n} items held out by sha256(seed:id); letter-only system prompt",
        "router": {
            "name": "skills",
            "trained_on": f"{len(train)} rows of runs {args.runs} (held-out items excluded)",
            "recruited_calls": {m: len(v) for m, v in groups.items()},
        },
        "distinct_experts": distinct,
        "memory_cap_mb": cap_mb,
        "estimated_mib": {m: round(s / MIB, 1) for m, s in size.items()},
        "pairs_that_fit_under_cap": fit_pairs,
        "models": models,
        "grouped": results["grouped"],
        "per_query": results["per_query"],
        "calls_per_expert": calls,
        "throughput_ratio": round(ratio, 3),
        "call_agreement": round(agreement, 4),
        "vote_agreement": round(votes_agree, 4),
        "per_query_wall_predicted_s": round(explained, 1),
        "ratio_if_every_call_reloaded": round(bound / base, 2),
        "bar": {
            "loads_equal_distinct": results["grouped"]["loads"] == distinct,
            "ratio_at_least_3": ratio >= 3.0,
        },
        "hardware": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "n_threads": settings.n_threads,
            "python": platform.python_version(),
            "llama_cpp_python": version("llama-cpp-python"),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "date": time.strftime("%Y-%m-%d"),
        "summary": summary,
    }
    print(json.dumps(report, indent=1))
    print(summary, file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
