"""The benchmark runner: every item through a pipeline, each stored as soon as it is done.

Items are stored one transaction each, keyed by (run, item key), so a run killed at any
moment — SIGKILL included — is resumed by running the same run id again: stored items are
skipped, the rest are done, none twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from signoria.evals.datasets import EvalItem
from signoria.evals.executors import AsyncioExecutor, Executor
from signoria.evals.metrics import flat_metrics, run_metrics
from signoria.evals.scoring import score
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.storage import Store

OnItem = Callable[[AskResult | None], None]


class RunOutcome(BaseModel):
    run_id: str
    total: int
    skipped: int  # stored by an earlier, interrupted invocation
    completed: int
    failed: int
    complete: bool


async def run_eval(
    orchestrator: Orchestrator,
    store: Store,
    items: Sequence[EvalItem],
    *,
    pipeline: str,
    benchmark: str,
    data_path: Path,
    run_id: str | None = None,
    concurrency: int = 1,
    on_start: Callable[[int, int], None] | None = None,
    on_item: OnItem | None = None,
    executor: Executor | None = None,
) -> RunOutcome:
    """Answer the items not yet stored for `run_id` and store each as it finishes.

    `executor` decides where answers are computed (default: `concurrency` items in flight
    on this event loop); storing stays here, so resume works the same for every executor.
    """
    orchestrator.pipeline(pipeline)  # an unknown pipeline fails before a run is created
    run_id = store.create_run(
        kind="eval",
        pipeline=pipeline,
        benchmark=benchmark,
        run_id=run_id,
        data_path=str(data_path),
        config={"items": len(items), "concurrency": concurrency},
    )
    done = store.done_keys(run_id)
    todo = [(position, item) for position, item in enumerate(items) if item.key not in done]
    if on_start is not None:
        on_start(len(items), len(items) - len(todo))
    executor = executor or AsyncioExecutor(orchestrator, concurrency)
    failures = 0
    async for position, item, result, error in executor.answers(todo, pipeline):
        failures += error is not None
        value, extracted = score(item, result.answer)
        await asyncio.to_thread(
            store.record_item,
            run_id,
            item_key=item.key,
            query=item.prompt,
            reference=item.reference,
            result=result,
            error=error,
            score=value,
            extracted=extracted,
            position=position,
        )
        if on_item is not None:
            on_item(result)
    complete = store.count_items(run_id) >= len(items)
    if complete:
        store.finish_run(run_id, flat_metrics(run_metrics(store.items(run_id))))
    return RunOutcome(
        run_id=run_id,
        total=len(items),
        skipped=len(items) - len(todo),
        completed=len(todo),
        failed=failures,
        complete=complete,
    )
