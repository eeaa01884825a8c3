"""`signoria route train --router router-r1`: warm-up, GRPO, a self-contained artifact.

The library call behind the command: load the table and the policy, measure the
experts' descriptors on the training rows, warm the format up when asked, train with
GRPO, then save the policy (transformers checkpoint and, from a GGUF, a GGUF for the
`llamacpp` backend), its descriptors, its training log and the serving snippet.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from signoria.agents.embedded import EMBEDDED
from signoria.agents.types import ModelCard
from signoria.errors import MissingExtraError
from signoria.orchestrator.router_r1 import artifact
from signoria.orchestrator.router_r1.descriptors import measure, save_descriptors
from signoria.orchestrator.router_r1.reward import CostScale
from signoria.orchestrator.router_r1.settings import TrainSettings
from signoria.orchestrator.router_r1.task import LiveExperts, RoutingTask
from signoria.routers.data import RoutingDataError, RoutingTable

NEEDS = ("torch", "transformers", "trl", "datasets", "accelerate")


def check_installed(settings: TrainSettings) -> None:
    """Fail before any loading when the `rl` extra is missing (one line naming it)."""
    from_gguf = settings.export or settings.policy in EMBEDDED or settings.policy.endswith(".gguf")
    needed = [*NEEDS, *(("gguf",) if from_gguf else ())]
    if settings.lora_rank is not None:
        needed.append("peft")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"router-r1 training needs {', '.join(missing)}, which is not installed: "
            "pip install 'signoria[rl]'"
        )


def routing_task(
    table: RoutingTable,
    cards: dict[str, ModelCard],
    settings: TrainSettings,
    live: LiveExperts | None = None,
) -> RoutingTask:
    experts = tuple(settings.experts or table.models)
    unknown = [e for e in experts if e not in table.models]
    if unknown:
        raise RoutingDataError(
            f"experts {', '.join(unknown)} are not in the table (models: {', '.join(table.models)})"
        )
    return RoutingTask.of(
        table,
        experts,
        measure(table, experts, cards, _latencies(settings.latency_db, experts)),
        max_rounds=settings.max_rounds,
        information_limit=settings.information_limit,
        live=live,
    )


def _latencies(db: str | None, experts: tuple[str, ...]) -> dict[str, list[float]]:
    if db is None:
        return {}
    from signoria.orchestrator.storage import Store
    from signoria.orchestrator.storage.browse import call_latencies

    store = Store.open(db, migrate=False)
    try:
        return call_latencies(store, list(experts))
    finally:
        store.close()


def train_policy(
    task: RoutingTask,
    settings: TrainSettings,
    out: Path,
    *,
    seed: int,
    cache_dir: Path,
    source: dict[str, Any],
) -> artifact.R1Manifest:
    import torch
    from transformers import set_seed

    from signoria.orchestrator.router_r1.grpo import train_grpo
    from signoria.orchestrator.router_r1.policy_model import load_policy
    from signoria.orchestrator.router_r1.warmup import warm_up

    check_installed(settings)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    out.mkdir(parents=True, exist_ok=True)
    log = out / artifact.TRAIN_LOG
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    set_seed(seed)
    policy = load_policy(settings.policy, cache_dir, dtype=settings.dtype)
    model = policy.model
    work = out / ".work"
    if settings.warmup_steps:
        model = warm_up(
            model, policy.tokenizer, task, settings, seed=seed, work_dir=work, log_path=log
        )
    if settings.steps:
        model = train_grpo(
            model, policy.tokenizer, task, settings, seed=seed, work_dir=work, log_path=log
        )
    if settings.lora_rank is not None:
        model = model.merge_and_unload()
    model.save_pretrained(out / artifact.POLICY_DIR)
    policy.tokenizer.save_pretrained(out / artifact.POLICY_DIR)
    gguf = None
    if settings.export and policy.gguf is not None:
        from signoria.orchestrator.router_r1.gguf_export import export_gguf

        gguf = export_gguf(model, policy.gguf, out / artifact.POLICY_GGUF).name
    descriptors = out / artifact.DESCRIPTORS
    save_descriptors(task.descriptors, descriptors)
    manifest = artifact.R1Manifest(
        policy=settings.policy,
        gguf=gguf,
        experts=task.experts,
        max_rounds=task.max_rounds,
        information_limit=task.information_limit,
        cost_weight=settings.cost_weight,
        cost_scale=CostScale.seeded(task.call_costs()).bounds(),
        settings=settings.model_dump(mode="json"),
        seed=seed,
        trained_on={**source, "rows": len(task.rows)},
        seconds=round(time.perf_counter() - started, 1),
    )
    artifact.write_artifact(out, manifest, descriptors)
    return manifest
