"""Generation speed of each embedded model, with Signoria's explicit n_threads against
llama-cpp-python's default (n_threads = half the cores, rounded, which is 1 on 2 cores).

    .venv/bin/python -m benchmarks.tokens_per_second [--repeats 3] [--max-tokens 128] [--json]

Each configuration generates the same greedy continuation `--repeats` times after one
warm-up call; configurations are interleaved so drift hits all of them alike. Reported:
median decode tokens/s (completion tokens / wall time of the call, load excluded) and
the spread (min-max).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from signoria.agents.embedded import EMBEDDED
from signoria.agents.sources import EmbeddedSource, resolve
from signoria.orchestrator.config import home

PROMPT = [{"role": "user", "content": "Count from 1 to 100, separated by commas."}]


def load(path: Path, n_threads: int | None) -> Any:
    from llama_cpp import Llama

    kwargs: dict[str, Any] = {"model_path": str(path), "n_ctx": 1024, "verbose": False}
    if n_threads is not None:
        kwargs.update(n_threads=n_threads, n_threads_batch=n_threads)
    return Llama(**kwargs)


def one_call(llama: Any, max_tokens: int) -> tuple[int, float]:
    llama.reset()
    t0 = time.perf_counter()
    out = llama.create_chat_completion(messages=PROMPT, max_tokens=max_tokens, temperature=0.0)
    return int(out["usage"]["completion_tokens"]), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    configs = {f"signoria (n_threads={cores})": cores, "library default": None}
    rows = []
    for name, model in EMBEDDED.items():
        path = resolve(EmbeddedSource(embedded=name), home() / "models")
        loaded = {label: load(path, threads) for label, threads in configs.items()}
        for llama in loaded.values():
            one_call(llama, 8)  # warm-up
        speeds: dict[str, list[float]] = {label: [] for label in configs}
        tokens: dict[str, list[int]] = {label: [] for label in configs}
        for _ in range(args.repeats):
            for label, llama in loaded.items():
                n, seconds = one_call(llama, args.max_tokens)
                speeds[label].append(n / seconds)
                tokens[label].append(n)
        for label in configs:
            rows.append(
                {
                    "model": name,
                    "file_mb": round(model.size / 1e6),
                    "config": label,
                    "n": args.repeats,
                    "tokens_out": tokens[label],
                    "tok_s_median": round(statistics.median(speeds[label]), 1),
                    "tok_s_min": round(min(speeds[label]), 1),
                    "tok_s_max": round(max(speeds[label]), 1),
                }
            )
        for llama in loaded.values():
            llama.close()
    report = {
        "hardware": f"{platform.machine()}, {cores} cores, {platform.processor() or 'cpu'}",
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"hardware: {report['hardware']}; repeats: {args.repeats}; greedy, no seed needed")
    print(f"{'model':22} {'config':26} {'tok/s median':>12} {'min-max':>13}")
    for r in rows:
        print(
            f"{r['model']:22} {r['config']:26} {r['tok_s_median']:12} "
            f"{r['tok_s_min']:>6}-{r['tok_s_max']:<6}"
        )
    base = {r["model"]: r["tok_s_median"] for r in rows if r["config"] == "library default"}
    for r in rows:
        if r["config"] != "library default":
            print(f"{r['model']}: {r['tok_s_median'] / base[r['model']]:.2f}x the library default")


if __name__ == "__main__":
    main()
