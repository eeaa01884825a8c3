"""Local inference: Signoria's `llamacpp` expert vs raw llama-cpp-python on the same GGUF.

    .venv/bin/python -m benchmarks.local_inference [--repeats 5] [--max-tokens 64] [--json]

For each embedded model, the expert is built from the embedded default config exactly as
`signoria ask` builds it (its runtime, threads, context length), and a raw `Llama` is
loaded from the same file with the same n_ctx, n_threads and n_threads_batch. Both get
the same chat prompts at temperature 0, interleaved call by call so drift hits both alike.

Prompt processing and generation are timed apart, from the outside, the same way for both:
- pp: a fresh prompt (~200 tokens, a different one each repeat so no KV-cache prefix
  helps) with max_tokens=1; rate = prompt tokens / wall time of the call;
- tg: the same prompt again with max_tokens=N; llama-cpp-python reuses the cached prefix
  in both paths, so the call is generation; rate = completion tokens / wall time.
Wall time includes everything the path adds (the expert's thread hop, lock, logits
processor for cancellation, result conversion). Reported: medians over the repeats and
the expert/raw ratio per rate. Bar (issue 7): >= 0.95x for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from typing import Any

from signoria.agents.backends.llamacpp import LlamaCppExpert
from signoria.agents.pool import ExpertPool
from signoria.agents.types import GenerationParams, Message
from signoria.orchestrator.config import load_config

TOPICS = ["rivers", "bridges", "comets", "orchards", "glaciers", "harbours", "libraries"]


def prompt(repeat: int) -> list[dict[str, str]]:
    """~200 tokens, different from the first words on so no prefix is shared across repeats
    beyond the chat template's own."""
    topic = TOPICS[repeat % len(TOPICS)]
    facts = " ".join(
        f"Fact {i}: the {topic} of region {repeat * 31 + i} are {i * 7 % 13} km apart."
        for i in range(12)
    )
    return [{"role": "user", "content": f"Run {repeat}. {facts} Which region is listed first?"}]


def timed_raw(
    llama: Any, messages: list[dict[str, str]], max_tokens: int
) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    out = llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
    return time.perf_counter() - t0, out["usage"]


def timed_expert(
    loop: asyncio.AbstractEventLoop,
    expert: LlamaCppExpert,
    messages: list[dict[str, str]],
    max_tokens: int,
) -> tuple[float, dict[str, int]]:
    chat = [Message.model_validate(m) for m in messages]
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    t0 = time.perf_counter()
    out = loop.run_until_complete(expert.generate(chat, params=params))
    elapsed = time.perf_counter() - t0
    usage = out.usage
    return elapsed, {"prompt_tokens": usage.tokens_in, "completion_tokens": usage.tokens_out}


def measure(run: Any, repeat: int, max_tokens: int) -> dict[str, float]:
    messages = prompt(repeat)
    pp_s, pp_usage = run(messages, 1)
    tg_s, tg_usage = run(messages, max_tokens)
    return {
        "pp_tok_s": pp_usage["prompt_tokens"] / pp_s,
        "tg_tok_s": tg_usage["completion_tokens"] / tg_s,
        "prompt_tokens": pp_usage["prompt_tokens"],
        "completion_tokens": tg_usage["completion_tokens"],
    }


def bench_model(name: str, pool: ExpertPool, repeats: int, max_tokens: int) -> dict[str, Any]:
    from llama_cpp import Llama

    expert = pool[name]
    assert isinstance(expert, LlamaCppExpert)
    settings = expert._runtime.settings  # the settings the default config gives the runtime
    raw = Llama(
        model_path=str(expert.model_path()),
        n_ctx=expert.card.context_length,
        n_threads=settings.n_threads,
        n_threads_batch=settings.n_threads,
        verbose=False,
    )
    loop = asyncio.new_event_loop()  # one loop for every call, as in the server
    paths = {
        "raw": lambda m, n: timed_raw(raw, m, n),
        "signoria": lambda m, n: timed_expert(loop, expert, m, n),
    }
    for run in paths.values():  # warm-up: loads the expert's model, touches every page
        measure(run, 1000, 4)
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in paths}
    for r in range(repeats):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for label in order:
            samples[label].append(measure(paths[label], r, max_tokens))
    raw.close()
    loop.close()
    row: dict[str, Any] = {"model": name, "n": repeats, "n_ctx": expert.card.context_length}
    for label, rows in samples.items():
        for key in ("pp_tok_s", "tg_tok_s"):
            values = [s[key] for s in rows]
            row[f"{label}_{key}"] = round(statistics.median(values), 1)
            row[f"{label}_{key}_range"] = [round(min(values), 1), round(max(values), 1)]
        row[f"{label}_tokens"] = [(s["prompt_tokens"], s["completion_tokens"]) for s in rows]
    row["pp_ratio"] = round(row["signoria_pp_tok_s"] / row["raw_pp_tok_s"], 3)
    row["tg_ratio"] = round(row["signoria_tg_tok_s"] / row["raw_tg_tok_s"], 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--models", nargs="*", help="embedded model names (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = load_config(None)
    pool = ExpertPool(config.models, config.runtime.llamacpp)
    names = args.models or [n for n in pool if isinstance(pool[n], LlamaCppExpert)]
    rows = [bench_model(name, pool, args.repeats, args.max_tokens) for name in names]
    report = {
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores",
        "n_threads": config.runtime.llamacpp.n_threads,
        "max_tokens": args.max_tokens,
        "greedy": "temperature 0, no seed needed",
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report))
    worst = min(min(r["pp_ratio"], r["tg_ratio"]) for r in rows)
    print(
        "local_inference: "
        + "; ".join(
            f"{r['model']} pp {r['signoria_pp_tok_s']}/{r['raw_pp_tok_s']} tok/s "
            f"({r['pp_ratio']}x), tg {r['signoria_tg_tok_s']}/{r['raw_tg_tok_s']} tok/s "
            f"({r['tg_ratio']}x)"
            for r in rows
        )
        + f"; worst ratio {worst} (bar 0.95)"
    )


if __name__ == "__main__":
    main()
