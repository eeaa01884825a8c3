"""Time to first token with streaming as the answer is written, against the full answer.

Before issue 14 a stream started only once the whole answer existed, so its first token
came at the full-answer time; that is the baseline, measured in the same run as the
non-streamed request's time to its answer. Starts `signoria serve` on 127.0.0.1 with the
product's settings (API keys on, recording on to SQLite) and, per pipeline, alternates a
streamed request (time to its first content chunk, time to its end) with a non-streamed
one (time to its answer), after one warm-up of each:

- `scripted-single`: one scripted expert, 0.05 s to its first word, then 100 words at
  20 ms each (a known pace, like an API model at 50 tokens/s);
- `scripted-moa`: two scripted proposers (0.5 s each, concurrent) and a scripted
  synthesis writing 100 words at 20 ms (only the synthesis streams);
- `local-0.5b`: Qwen2.5-Coder-0.5B through llama.cpp, greedy, 128 tokens, each request
  a prompt of its own (so the first token includes reading it).

    .venv/bin/python -m benchmarks.stream_ttft --rounds 5

Prints one JSON object and a one-line summary per pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.overhead import KEY, free_port, process

ROOT = Path(__file__).resolve().parent.parent
WORDS = " ".join(f"w{i}" for i in range(100))
CONFIG = f"""
default_pipeline: scripted-single
runtime:
  llamacpp: {{n_threads: 2}}
models:
  writer: {{backend: scripted, answer: "{WORDS}", latency_s: 0.05, token_latency_s: 0.02}}
  proposer-a: {{backend: scripted, answer: "twelve", latency_s: 0.5}}
  proposer-b: {{backend: scripted, answer: "thirteen", latency_s: 0.5}}
  synth: {{backend: scripted, answer: "{WORDS}", latency_s: 0.05, token_latency_s: 0.02}}
  qwen2.5-coder-0.5b:
    backend: llamacpp
    source: {{embedded: qwen2.5-coder-0.5b}}
    context_length: 2048
pipelines:
  scripted-single:
    router: {{name: fixed, experts: [writer]}}
    aggregator: first
  scripted-moa:
    router: {{name: fixed, experts: [proposer-a, proposer-b]}}
    aggregator: {{name: synthesize, model: synth}}
  local-0.5b:
    router: {{name: fixed, experts: [qwen2.5-coder-0.5b]}}
    aggregator: first
    limits: {{max_tokens: 128, max_tokens_cap: 128}}
"""
# Each request its own prompt: a repeated one would be answered from llama.cpp's prompt
# cache, and the first token would not include reading the prompt.
TOPICS = ["a hash map", "a B-tree", "a bloom filter", "a skip list", "a heap", "a trie",
          "a ring buffer", "an LRU cache", "a red-black tree", "a union-find", "a quadtree",
          "a suffix array", "a rope", "a deque", "a treap"]  # fmt: skip
_asked = iter(range(10**6))


def question() -> list[dict[str, str]]:
    i = next(_asked)
    topic = TOPICS[i % len(TOPICS)]
    return [{"role": "user", "content": f"Explain in detail how {topic} works ({i})."}]


def streamed(client: httpx.Client, url: str, model: str) -> tuple[float, float, int]:
    """(seconds to the first content chunk, seconds to the end, content chunks)."""
    body = {"model": model, "messages": question(), "stream": True}
    t0 = time.perf_counter()
    first, pieces = None, 0
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                pieces += 1
                first = first if first is not None else time.perf_counter() - t0
    assert first is not None, "no content arrived"
    return first, time.perf_counter() - t0, pieces


def whole(client: httpx.Client, url: str, model: str) -> float:
    t0 = time.perf_counter()
    client.post(url, json={"model": model, "messages": question()}).raise_for_status()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--pipelines", nargs="+", default=["scripted-single", "scripted-moa", "local-0.5b"]
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="signoria-ttft-"))
    config = workdir / "config.yaml"
    config.write_text(CONFIG)
    port = free_port()
    argv = [
        str(ROOT / ".venv" / "bin" / "signoria"), "serve", "-c", str(config), "--port", str(port),
        "--db", f"sqlite:///{workdir / 'records.db'}", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "SIGNORIA_API_KEYS": KEY}
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {}
    with process(argv, f"{base}/ready", env=env):
        headers = {"Authorization": f"Bearer {KEY}"}
        url = f"{base}/v1/chat/completions"
        with httpx.Client(headers=headers, timeout=600) as client:
            for pipeline in args.pipelines:
                model = f"signoria/{pipeline}"
                streamed(client, url, model), whole(client, url, model)  # warm-up
                runs = [
                    (streamed(client, url, model), whole(client, url, model))
                    for _ in range(args.rounds)
                ]
                ttft = [s[0] for s, _ in runs]
                end = [s[1] for s, _ in runs]
                full = [w for _, w in runs]
                results[pipeline] = {
                    "n": args.rounds,
                    "ttft_s_median": statistics.median(ttft),
                    "stream_end_s_median": statistics.median(end),
                    "full_answer_s_median": statistics.median(full),
                    "ttft_over_full": statistics.median(ttft) / statistics.median(full),
                    "content_chunks": runs[0][0][2],
                    "ttft_s": ttft,
                    "full_answer_s": full,
                }
    report = {
        "benchmark": "stream_ttft",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}",
        "settings": {"auth": True, "recording": "sqlite"},
        "results": results,
    }
    print(json.dumps(report, indent=2))
    for name, r in results.items():
        print(
            f"{name}: first token {r['ttft_s_median']:.3f} s vs full answer "
            f"{r['full_answer_s_median']:.3f} s (x{r['ttft_over_full']:.3f}, n={r['n']}, "
            f"{r['content_chunks']} chunks)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
