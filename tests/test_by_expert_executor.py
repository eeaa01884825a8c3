"""`signoria eval run --executor by-expert`: the Symbolic-MoE schedule as a product path.

A batch is routed first, its calls run expert by expert through each request's own call
runner, then each item is aggregated and stored. Same answers as the per-query executor;
with a memory cap that holds one model, each model is loaded once per batch.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from signoria import Orchestrator
from signoria.evals.datasets import EvalItem
from signoria.evals.executors import AsyncioExecutor, ByExpertExecutor, Executor
from signoria.evals.runner import run_eval
from signoria.orchestrator.config import parse_config
from signoria.orchestrator.storage import Store

SIGNORIA = str(Path(sys.executable).parent / "signoria")
FIXTURES = Path(__file__).parent / "fixtures"


def items(n: int) -> list[EvalItem]:
    return [
        EvalItem(
            key=f"q{i}",
            task="gsm8k",
            prompt=f"What is {i} + {i}?",
            reference=str(2 * i),
            kind="number",
            question=f"What is {i} + {i}?",
        )
        for i in range(n)
    ]


def scripted_config(answer_b: str = "The answer is 4.") -> dict[str, object]:
    return {
        "default_pipeline": "pair",
        "models": {
            "a": {"backend": "scripted", "answer": "The answer is 4."},
            "b": {"backend": "scripted", "answer": answer_b},
            "dead": {"backend": "scripted", "behaviour": "error", "retryable": False},
        },
        "pipelines": {
            "pair": {
                "router": {"name": "fixed", "experts": ["b", "a"]},
                "aggregator": {"name": "majority", "answer": "number"},
            },
            "dead": {"router": {"name": "fixed", "experts": ["dead"]}, "aggregator": "first"},
        },
    }


async def run(
    orchestrator: Orchestrator, executor: Executor, n: int, pipeline: str = "pair"
) -> list[tuple[str, str | None, list[str]]]:
    # A file: the runner stores from a worker thread, and every connection to an
    # in-memory SQLite database is a database of its own.
    with tempfile.TemporaryDirectory() as tmp:
        return await _run(orchestrator, executor, n, pipeline, f"sqlite:///{tmp}/runs.db")


async def _run(
    orchestrator: Orchestrator, executor: Executor, n: int, pipeline: str, db: str
) -> list[tuple[str, str | None, list[str]]]:
    store = Store.open(db)
    try:
        await run_eval(
            orchestrator,
            store,
            items(n),
            pipeline=pipeline,
            benchmark="gsm8k",
            data_path=Path("x.jsonl"),
            run_id="r",
            executor=executor,
        )
        return [(i.item_key, i.answer, [c.expert for c in i.calls]) for i in store.items("r")]
    finally:
        store.close()


async def test_calls_run_expert_by_expert_and_answers_match_the_per_query_run() -> None:
    orchestrator = Orchestrator(parse_config(scripted_config()))
    started: list[str] = []
    for name in ("a", "b"):
        expert = orchestrator.pool[name]
        generate = expert.generate

        async def logged(messages, *, params, _name=name, _generate=generate):  # type: ignore[no-untyped-def]
            started.append(_name)
            return await _generate(messages, params=params)

        expert.generate = logged  # type: ignore[method-assign]
    batched = await run(orchestrator, ByExpertExecutor(orchestrator, batch=3), 5)
    # Two batches (3 + 2 items): within each, every call of a before any call of b.
    assert started == ["a"] * 3 + ["b"] * 3 + ["a"] * 2 + ["b"] * 2
    started.clear()
    per_query = await run(orchestrator, AsyncioExecutor(orchestrator, 1), 5)
    assert started == ["b", "a"] * 5
    # Same answers and the same calls; each trace lists its calls in the order they ran.
    assert [(k, a, sorted(c)) for k, a, c in batched] == [
        (k, a, sorted(c)) for k, a, c in per_query
    ]
    assert [answer for _, answer, _ in batched] == ["The answer is 4."] * 5


async def test_a_failing_pipeline_is_stored_as_a_failed_item() -> None:
    orchestrator = Orchestrator(parse_config(scripted_config()))
    stored = await run(orchestrator, ByExpertExecutor(orchestrator, batch=2), 3, "dead")
    assert [(answer, calls) for _, answer, calls in stored] == [(None, ["dead"])] * 3


def test_real_gguf_batch_loads_each_model_once(tmp_path: Path) -> None:
    """Two models (one file under two context lengths) under a cap that holds one: the
    batch loads each once for four items, and answers as the per-query run does."""
    config = tmp_path / "pair.yaml"
    config.write_text(
        "default_pipeline: pair\n"
        "runtime: {llamacpp: {n_threads: 2, memory_cap_mb: 160}}\n"
        "models:\n"
        "  short: {backend: llamacpp, source: {embedded: smollm2-135m}, context_length: 512,"
        " input_price: 0.0, output_price: 0.0}\n"
        "  long: {backend: llamacpp, source: {embedded: smollm2-135m}, context_length: 1024,"
        " input_price: 0.0, output_price: 0.0}\n"
        "pipelines:\n"
        "  pair:\n"
        "    router: {name: fixed, experts: [long, short]}\n"
        "    aggregator: first\n"
        "    limits: {max_tokens: 2}\n"
    )
    loads: dict[str, int] = {}
    answers: dict[str, list[tuple[str, str | None, list[str]]]] = {}
    for name in ("by-expert", "asyncio"):
        with Orchestrator.from_config(config) as orchestrator:
            executor: Executor = (
                ByExpertExecutor(orchestrator, batch=4)
                if name == "by-expert"
                else AsyncioExecutor(orchestrator, 1)
            )
            answers[name] = orchestrator.run_sync(run(orchestrator, executor, 4))
            loads[name] = orchestrator.pool._context.llamacpp_runtime.loads
    assert loads["by-expert"] == 2  # == distinct experts
    assert [(k, a) for k, a, _ in answers["by-expert"]] == [
        (k, a) for k, a, _ in answers["asyncio"]
    ]
    assert all(answer for _, answer, _ in answers["by-expert"])


def test_the_cli_runs_and_resumes_a_by_expert_run(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    config = tmp_path / "pair.yaml"
    config.write_text(
        "default_pipeline: pair\n"
        "models: {a: {backend: scripted, answer: '#### 4'}, b: {backend: scripted}}\n"
        "pipelines: {pair: {router: {name: fixed, experts: [a, b]}, aggregator: first}}\n"
    )
    args = [SIGNORIA, "eval", "run", "--benchmark", "gsm8k", "--data"]
    args += [str(FIXTURES / "gsm8k.jsonl"), "-c", str(config), "--db", db, "--run-id", "b"]
    args += ["--executor", "by-expert", "--concurrency", "4"]
    first = subprocess.run([*args, "--limit", "3"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "resuming: 3/" in again.stderr
    store = Store.open(db)
    try:
        stored = store.items("b")
        assert len({i.item_key for i in stored}) == len(stored) > 3
        assert all([c.expert for c in i.calls] == ["a", "b"] for i in stored)
    finally:
        store.close()
