"""k samples of one prompt from one local model: k sequences in one llama.cpp batch vs one
sequence at a time (issue 15, item 1: the raw low-level loop, without Signoria).

    nice -n 5 .venv/bin/python -m benchmarks.batched_decode [--tokens 128] [--ks 1 2 4 8]

For each embedded model: a context with room for 8 sequences (llama.cpp's unified KV
cache), the chat prompt evaluated once into sequence 0 and copied to the others
(`llama_memory_seq_cp`), then `--tokens` decode steps, each one `llama_decode` of a
batch holding the next token of every sequence, each sequence sampled by its own seeded
sampler chain (temperature 0.7, as Self-MoA samples). End-of-text is ignored so that every
sequence decodes exactly `--tokens` tokens. Reported per k: wall seconds of the decode
(prompt excluded; it is shared), tokens/s over all sequences, and the time of k samples
relative to one sample (the issue's bar: <= 1.6x at k = 4). One warm-up of each k, then
the median of `--repeats`. Also checked: the same seeds give the same tokens run to run.
Prints one JSON object and a one-line summary.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import llama_cpp as ll

from signoria.agents.embedded import EMBEDDED, locate

PROMPT = (
    "<|im_start|>user\nJanet has 3 apples and buys 5 more, then gives away 2. "
    "How many apples does she have? Think step by step.<|im_end|>\n<|im_start|>assistant\n"
)
MAX_SEQ = 8


class Context:
    """One model, one context of `MAX_SEQ` sequences sharing a unified KV cache."""

    def __init__(self, path: Path, n_ctx: int, threads: int) -> None:
        model_params = ll.llama_model_default_params()
        self.model = ll.llama_model_load_from_file(str(path).encode(), model_params)
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = 512
        params.n_seq_max = MAX_SEQ
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = threads
        self.ctx = ll.llama_init_from_model(self.model, params)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.batch = ll.llama_batch_init(512, 0, MAX_SEQ)

    def tokens(self, text: str) -> list[int]:
        buffer = (ll.llama_token * 4096)()
        n = ll.llama_tokenize(
            self.vocab, text.encode(), len(text.encode()), buffer, 4096, False, True
        )
        return list(buffer[:n])

    def add(self, token: int, pos: int, seqs: list[int], logits: bool) -> None:
        b, i = self.batch, self.batch.n_tokens
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, len(seqs), logits
        for j, seq in enumerate(seqs):
            b.seq_id[i][j] = seq
        b.n_tokens = i + 1

    def decode(self) -> None:
        if ll.llama_decode(self.ctx, self.batch) != 0:
            raise RuntimeError("llama_decode failed")
        self.batch.n_tokens = 0

    def samples(
        self, prompt: list[int], k: int, steps: int, seed: int
    ) -> tuple[float, list[list[int]]]:
        """k sampled continuations of `prompt`; seconds of the decode steps alone."""
        memory = ll.llama_get_memory(self.ctx)
        ll.llama_memory_clear(memory, True)
        for pos, token in enumerate(prompt):
            self.add(token, pos, [0], pos == len(prompt) - 1)
        self.decode()
        for seq in range(1, k):
            ll.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        chains = [sampler(seed + seq) for seq in range(k)]
        out: list[list[int]] = [[ll.llama_sampler_sample(c, self.ctx, -1)] for c in chains]
        start = time.perf_counter()
        for step in range(1, steps):
            for seq in range(k):
                self.add(out[seq][-1], len(prompt) + step - 1, [seq], True)
            self.decode()
            for seq, chain in enumerate(chains):
                out[seq].append(ll.llama_sampler_sample(chain, self.ctx, seq))
        seconds = time.perf_counter() - start
        for chain in chains:
            ll.llama_sampler_free(chain)
        return seconds, out

    def close(self) -> None:
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)


def sampler(seed: int) -> Any:
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(40))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(0.95, 1))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(0.7))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(ctypes.c_uint32(seed).value))
    return chain


def bench(name: str, ks: list[int], steps: int, repeats: int, threads: int) -> dict[str, Any]:
    path = locate(EMBEDDED[name], Path("~/.cache/signoria/models").expanduser())
    context = Context(path, n_ctx=4096, threads=threads)
    try:
        prompt = context.tokens(PROMPT)
        rows: dict[str, Any] = {}
        for k in ks:
            context.samples(prompt, k, 8, seed=0)  # warm-up
            timings, first = [], None
            for r in range(repeats):
                seconds, tokens = context.samples(prompt, k, steps, seed=0)
                timings.append(seconds)
                if first is None:
                    first = tokens
                elif tokens != first:
                    raise AssertionError(f"{name} k={k}: run {r} sampled other tokens")
            wall = statistics.median(timings)
            rows[str(k)] = {
                "decode_seconds": round(wall, 3),
                "tokens_per_second": round(k * (steps - 1) / wall, 1),
                "distinct_samples": len({tuple(t) for t in first or []}),
            }
        one = rows[str(ks[0])]["decode_seconds"] if ks[0] == 1 else None
        for row in rows.values():
            row["time_vs_one_sample"] = round(row["decode_seconds"] / one, 2) if one else None
        return {"prompt_tokens": len(prompt), "by_k": rows}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    args = parser.parse_args()
    ll.llama_backend_init()
    report = {
        "tokens_per_sequence": args.tokens,
        "repeats": args.repeats,
        "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "models": {
            m: bench(m, args.ks, args.tokens, args.repeats, args.threads) for m in args.models
        },
    }
    print(json.dumps(report))
    cells = []
    for model, row in report["models"].items():
        by_k = row["by_k"]
        cells.append(
            f"{model}: "
            + ", ".join(
                f"k={k} {v['tokens_per_second']} tok/s ({v['time_vs_one_sample']}x)"
                for k, v in by_k.items()
            )
        )
    print("batched_decode (raw llama.cpp): " + "; ".join(cells))


if __name__ == "__main__":
    main()
