"""The Ray executor: a real local Ray cluster with two workers, real SmolLM2 answers.

Same items, same pipeline, same seeds: the answers must match the asyncio executor's
item for item (the `vote` pipeline samples three times at temperature 0.8, so seeds are
what makes them equal), and the stored run must be complete and resumable the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoria.evals.datasets import load_items
from signoria.evals.executors import AsyncioExecutor, Executor, RayExecutor
from signoria.evals.runner import run_eval
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.storage import Store
from tests.conftest import ROOT

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

CONFIG = ROOT / "tests" / "configs" / "local.yaml"


@pytest.fixture(scope="module", autouse=True)
def local_cluster() -> Iterator[None]:
    """One local Ray cluster (2 CPUs) for the module; executors join it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


DATA = ROOT / "tests" / "fixtures" / "gsm8k.jsonl"


def answers(tmp_path: Path, name: str, make: type[Executor] | None) -> dict[str, str | None]:
    items = load_items("gsm8k", DATA, 6)
    store = Store.open(f"sqlite:///{tmp_path / name}.db")
    with Orchestrator.from_config(CONFIG) as orchestrator:
        executor = (
            RayExecutor(CONFIG, workers=2) if make is RayExecutor else AsyncioExecutor(orchestrator)
        )
        try:
            outcome = orchestrator.run_sync(
                run_eval(
                    orchestrator,
                    store,
                    items,
                    pipeline="vote",
                    benchmark="gsm8k",
                    data_path=DATA,
                    run_id=name,
                    executor=executor,
                )
            )
        finally:
            if isinstance(executor, RayExecutor):
                executor.close()
    assert outcome.complete and outcome.completed == 6
    records = store.items(name)
    store.close()
    errors = [item.error for item in records if item.error]
    assert not errors, errors
    return {item.item_key: item.answer for item in records}


def test_ray_executor_gives_the_asyncio_executors_answers(tmp_path: Path) -> None:
    local = answers(tmp_path, "local", AsyncioExecutor)
    distributed = answers(tmp_path, "ray", RayExecutor)
    assert len(local) == 6 and distributed == local


def test_two_workers_are_two_processes() -> None:
    executor = RayExecutor(None, workers=2)
    try:
        calls = [a.__ray_call__.remote(lambda _: os.getpid()) for a in executor._actors]
        pids = set(ray.get(calls))
    finally:
        executor.close()
    assert len(pids) == 2 and os.getpid() not in pids
