"""One live query routed: latency through `Orchestrator.aask`, embedding included (issue 15).

    nice -n 5 .venv/bin/python -m benchmarks.route_latency [--seed 0] [--queries 200]

Every router of `signoria.routers.registry.TRAINABLE` is trained into one artifact (the
`graph` router and every other as its baselines) on the LLMRouter table
(`../shared/data/llmrouter`, 9 models, costs estimated), split by
`RoutingTable.split(0.08, seed)` with 5,000 training rows drawn by the seed, as in
`benchmarks/router_speed.py`. Then, for each router, a pipeline
`{router: {name: learned, artifact, router}, aggregator: first}` over the table's nine
models as `scripted` experts of zero latency is asked `--queries` test queries one at a
time through `Orchestrator.aask`, after 5 warm-up queries: so only routing (embedding the
new query, scoring, the decision) and the pipeline's own bookkeeping are timed. Every
timed query is cold: each router gets an embedding store of its own (fresh
`SIGNORIA_CACHE`), so nothing it routes was embedded before. A `fixed` pipeline over the
same scripted expert gives the floor that is not routing.

Side by side in the same run, the path this replaces: MiniLM on sentence-transformers
(`SIGNORIA_EMBEDDER=torch`, batches of 64) and GraphRouter's pass over the whole training
graph per call, timed through the same `aask` for `graph`; and the embedding of batches of
256 queries (LLMRouter test queries, GSM8K and MMLU questions) by both engines.

Also, whether a quantised MiniLM would do: ONNX Runtime's dynamic int8 of the same graph,
its single-query latency and how many of each router's test decisions it changes.

Bars: p50 <= 10 ms and p99 <= 20 ms per query for every router; embedding a batch of 256
typical queries <= 3 ms/query. Prints one JSON object on stdout and a one-line summary
on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from benchmarks.router_speed import hardware
from signoria.orchestrator.sdk import Orchestrator
from signoria.routers import embedding
from signoria.routers.artifact import load_artifact, train_artifact
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.embedding import text_key
from signoria.routers.encoder import GROUP, OnnxEncoder, TorchEncoder, export_onnx, length_groups
from signoria.routers.graph import GraphRouter
from signoria.routers.graph.features import assign_tasks, build_graph, llm_nodes
from signoria.routers.registry import TRAINABLE, needs_features
from signoria.routers.trainable import RouterContext, TradeOff, choose

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
P50_BAR_MS, P99_BAR_MS, BATCH_BAR_MS = 10.0, 20.0, 3.0
WARM_UP = 5


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def split(seed: int, train_rows: int) -> tuple[RoutingTable, RoutingTable]:
    folder = DATA / "llmrouter"
    table = load_table(folder / "train.jsonl", load_models(folder / "models.json"))
    train, test = table.split(test_fraction=0.08, seed=seed)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(train), min(train_rows, len(train)), replace=False))
    return train.subset(keep.tolist()), test


@contextmanager
def fresh_store(root: Path, name: str) -> Iterator[None]:
    """A vector store of its own for one router: every query it routes is cold."""
    before = os.environ.get("SIGNORIA_CACHE")
    os.environ["SIGNORIA_CACHE"] = str(root / name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SIGNORIA_CACHE", None)
        else:
            os.environ["SIGNORIA_CACHE"] = before


def write_config(
    directory: Path, artifact: Path, models: Sequence[str], routers: list[str]
) -> Path:
    pipelines: dict[str, Any] = {
        f"route-{name}": {
            "router": {"name": "learned", "artifact": str(artifact), "router": name},
            "aggregator": "first",
        }
        for name in routers
    }
    pipelines["not-routed"] = {
        "router": {"name": "fixed", "experts": [models[0]]},
        "aggregator": "first",
    }
    config = {
        "default_pipeline": "not-routed",
        "models": {m: {"backend": "scripted", "answer": "B"} for m in models},
        "pipelines": pipelines,
    }
    path = directory / "latency.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def time_aask(
    orch: Orchestrator,
    pipelines: dict[str, str],
    root: Path,
    warm: Sequence[str],
    timed: Sequence[str],
) -> dict[str, Any]:
    """{label: stats} for {label: pipeline}. Each pipeline is warmed (its artifact loaded)
    under a vector store of its own, then the timed queries go round-robin over the
    pipelines, the order rotating per query, so drift and order hit every router alike."""

    async def run() -> dict[str, list[float]]:
        for label, pipeline in pipelines.items():
            with fresh_store(root, label):
                for query in warm:
                    await orch.aask(query, pipeline=pipeline)
        times: dict[str, list[float]] = {label: [] for label in pipelines}
        labels = list(pipelines)
        for i, query in enumerate(timed):
            for label in labels[i % len(labels) :] + labels[: i % len(labels)]:
                t0 = time.perf_counter()
                await orch.aask(query, pipeline=pipelines[label])
                times[label].append((time.perf_counter() - t0) * 1000)
        return times

    out: dict[str, Any] = {}
    for label, values in asyncio.run(run()).items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        out[label] = {
            "n": len(values),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "mean_ms": round(statistics.fmean(values), 3),
            "p50_bar_met": p50 <= P50_BAR_MS,
            "bars_met": p50 <= P50_BAR_MS and p99 <= P99_BAR_MS,
        }
    return out


def full_pass_predict(
    self: GraphRouter, queries: Sequence[str], ctx: RouterContext
) -> torch.Tensor:
    """GraphRouter.predict before issue 15: the whole training graph, every call."""
    graph, net = self._trained()
    x = torch.tensor(ctx.features(queries), dtype=torch.float32)
    tasks = assign_tasks(graph, x, self.config.knn)
    llms = llm_nodes(ctx, graph)
    observed = torch.ones(graph.n_queries, dtype=torch.bool)
    batch = build_graph(graph, llms, observed, extra_x=x, extra_task=tasks)
    with torch.no_grad():
        out: torch.Tensor = net(batch, llms.expected_cost)
    return out


class Batch64TorchEncoder(TorchEncoder):
    """sentence-transformers as `Embedder` called it before issue 15: batches of 64."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=64, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


def typical_queries(test: RoutingTable, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    gsm8k = [json.loads(line)["question"] for line in (DATA / "gsm8k" / "train.jsonl").open()]
    mmlu = [json.loads(line)["question"] for line in (DATA / "mmlu" / "dev.jsonl").open()]

    def pick(texts: Sequence[str]) -> list[str]:
        return [texts[i] for i in rng.choice(len(texts), 256, replace=False)]

    return {
        "llmrouter test queries": pick(test.queries),
        "gsm8k": pick(gsm8k),
        "mmlu dev": pick(mmlu),
    }


def embedding_batches(sets: dict[str, list[str]]) -> dict[str, Any]:
    model = embedding._model()
    onnx, old, grouped = embedding.encoder(), Batch64TorchEncoder(model), TorchEncoder(model)
    tokenizer = model.tokenizer
    out: dict[str, Any] = {"engine": onnx.engine, "group": GROUP}
    for name, texts in sets.items():
        ids = tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
        lengths = [len(i) for i in ids]
        row: dict[str, Any] = {
            "tokens_p50_p90_max": [int(np.percentile(lengths, q)) for q in (50, 90, 100)],
            "groups": len(length_groups(lengths)),
        }
        for label, engine in (
            ("before (torch, batch 64)", old),
            ("torch, groups of 8", grouped),
            (onnx.engine, onnx),
        ):
            engine.encode(texts[:GROUP])  # warm-up
            timings = []
            for _ in range(3):
                t0 = time.perf_counter()
                engine.encode(texts)
                timings.append((time.perf_counter() - t0) * 1000 / len(texts))
            row[label] = round(statistics.median(timings), 3)
        row["speedup"] = round(row["before (torch, batch 64)"] / row[onnx.engine], 2)
        row["bar_met"] = row[onnx.engine] <= BATCH_BAR_MS
        out[name] = row
    return out


def int8_check(
    artifact: Path, names: Sequence[str], test: RoutingTable, timed: Sequence[str], root: Path
) -> dict[str, Any]:
    """Would a quantised MiniLM do? ONNX Runtime's dynamic int8 (per channel) of the same
    graph: its single-query latency next to fp32's, and, per router of the artifact,
    how many test decisions it changes (the issue accepts it only if decisions stay)."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = embedding.encoder()
    if not isinstance(fp32, OnnxEncoder):
        return {"skipped": f"the encoder is {fp32.engine}, not onnxruntime"}
    export_onnx(embedding._model(), root / "fp32.onnx")
    quantize_dynamic(
        root / "fp32.onnx", root / "int8.onnx", weight_type=QuantType.QInt8, per_channel=True
    )
    session = onnxruntime.InferenceSession(
        str(root / "int8.onnx"), providers=["CPUExecutionProvider"]
    )
    int8 = OnnxEncoder(session, fp32.tokenizer, fp32.max_length)
    out: dict[str, Any] = {}
    for label, engine in (("fp32", fp32), ("int8", int8)):
        engine.encode(timed[:GROUP])
        times = []
        for query in timed:
            t0 = time.perf_counter()
            engine.encode([query])
            times.append((time.perf_counter() - t0) * 1000)
        out[f"{label} single-query p50/p99 ms"] = [
            round(percentile(times, 50), 2),
            round(percentile(times, 99), 2),
        ]
    vectors = {"fp32": fp32.encode(test.queries), "int8": int8.encode(test.queries)}
    cosine = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    out["cosine min/median"] = [round(float(cosine.min()), 4), round(float(np.median(cosine)), 4)]
    keys = [text_key(q) for q in test.queries]
    rows = np.arange(len(test))
    decisions: dict[str, Any] = {}
    for name in names:
        router, ctx = load_artifact(artifact, name)
        chosen = {}
        for label, matrix in vectors.items():
            ctx.embedder.cache.update(zip(keys, matrix, strict=True))
            chosen[label] = choose(router.utilities(test.queries, ctx))
        decisions[name] = {
            "same_decision": round(float((chosen["fp32"] == chosen["int8"]).mean()), 3),
            "quality fp32": round(float(test.scores[rows, chosen["fp32"]].mean()), 4),
            "quality int8": round(float(test.scores[rows, chosen["int8"]].mean()), 4),
        }
    out["decisions on the test split"] = decisions
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=200, help="timed queries per router")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--routers", nargs="*", help="only these besides graph (a quick look)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    started = datetime.datetime.now(datetime.UTC)
    train, test = split(args.seed, args.train_rows)
    queries = test.queries
    if len(queries) < args.queries + WARM_UP:
        raise SystemExit(f"{len(queries)} test queries, fewer than {args.queries + WARM_UP}")
    warm, timed = queries[:WARM_UP], queries[WARM_UP : WARM_UP + args.queries]
    names = [n for n in TRAINABLE if n != "graph" and (not args.routers or n in args.routers)]
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "seed": args.seed,
        "train_rows": len(train),
        "timed_queries_per_router": len(timed),
        "hardware": hardware(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with fresh_store(root, "training"):
            t0 = time.perf_counter()
            train_artifact(
                "graph",
                train,
                TradeOff.scenario("balanced"),
                root / "artifact",
                seed=args.seed,
                baselines=tuple(names),
            )
            report["train_seconds"] = round(time.perf_counter() - t0, 1)
        config = write_config(root, root / "artifact", train.models, ["graph", *names])
        pipelines = {"(not routed: fixed)": "not-routed"}
        pipelines |= {name: f"route-{name}" for name in ["graph", *names]}
        with Orchestrator.from_config(config) as orch:
            results = time_aask(orch, pipelines, root, warm, timed)
        fast_predict, fast_encoder = GraphRouter.predict, embedding._ENCODER
        GraphRouter.predict = full_pass_predict  # type: ignore[method-assign]
        embedding._ENCODER = Batch64TorchEncoder(embedding._model())
        try:
            with Orchestrator.from_config(config) as orch:
                before = time_aask(orch, {"graph": "route-graph"}, root / "before", warm, timed)
        finally:
            GraphRouter.predict = fast_predict  # type: ignore[method-assign]
            embedding._ENCODER = fast_encoder
        report["aask"] = results
        report["before (torch MiniLM, full graph pass)"] = before
        report["graph_p50_ratio"] = round(results["graph"]["p50_ms"] / before["graph"]["p50_ms"], 3)
        with fresh_store(root, "int8"):
            learned = [n for n in ["graph", *names] if needs_features(n)]
            report["int8_minilm"] = int8_check(root / "artifact", learned, test, timed, root)
    report["embedding_batch_256"] = embedding_batches(typical_queries(test, args.seed))
    report["summary"] = summary(report)
    print(json.dumps(report))
    print(report["summary"], file=sys.stderr)


def summary(report: dict[str, Any]) -> str:
    aask = {k: v for k, v in report["aask"].items() if not k.startswith("(")}
    worst = max(aask, key=lambda k: aask[k]["p99_ms"])
    met = [k for k, v in aask.items() if v["bars_met"]]
    p50_met = [k for k, v in aask.items() if v["p50_bar_met"]]
    batches = report["embedding_batch_256"]
    engine = batches["engine"]
    cells = ", ".join(
        f"{k} {v[engine]} ms/q ({v['speedup']}x)" for k, v in batches.items() if isinstance(v, dict)
    )
    graph, old = aask["graph"], report["before (torch MiniLM, full graph pass)"]["graph"]
    return (
        f"route_latency: {len(met)}/{len(aask)} routers meet p50<=10 and p99<=20 ms, "
        f"{len(p50_met)}/{len(aask)} p50<=10 ms, through aask "
        f"(n={report['timed_queries_per_router']} cold queries each); "
        f"graph p50 {graph['p50_ms']} ms p99 {graph['p99_ms']} ms "
        f"vs before {old['p50_ms']} / {old['p99_ms']} ms "
        f"(ratio {report['graph_p50_ratio']}); worst p99 {worst} {aask[worst]['p99_ms']} ms; "
        f"batch of 256: {cells}"
    )


if __name__ == "__main__":
    main()
