"""GRPO on Router-R1 episodes, with TRL's `GRPOTrainer`.

TRL samples the questions, groups `generations` episodes per question, computes the
group-relative advantages and the clipped policy loss; this module gives it the two
things that are Router-R1's own: the multi-turn rollout (`rollout.generate`, through
TRL's `rollout_func`, with the experts' turns masked out of the loss by `env_mask`) and
the paper's reward (format, then exact match, traded against cost by `cost_weight`).
Each step's reward and its terms (format-valid share, accuracy, cost, routes) are logged
by TRL and kept in the artifact's training log.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from signoria.orchestrator.router_r1.reward import CostScale, reward
from signoria.orchestrator.router_r1.rollout import generate, outcomes
from signoria.orchestrator.router_r1.settings import TrainSettings
from signoria.orchestrator.router_r1.steplog import step_log
from signoria.orchestrator.router_r1.task import RoutingTask
from signoria.routers.data import Row


def _prompt(task: RoutingTask, row: Row) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in task.episode(row).messages]


class EpisodeReward:
    """The paper's reward of each episode, on a cost scale that follows training."""

    __name__ = "router_r1_reward"  # TRL names each reward function's logged mean by it

    def __init__(self, cost_weight: float, scale: CostScale) -> None:
        self.cost_weight = cost_weight
        self.scale = scale

    def __call__(
        self,
        *,
        format_ok: list[bool],
        correct: list[bool],
        cost: list[float],
        routes: list[int],
        log_metric: Any = None,
        **_: Any,
    ) -> list[float]:
        scored = [
            reward(
                format_ok=ok,
                correct=right,
                cost_reward=self.scale(None if math.isnan(usd) else usd),
                cost_weight=self.cost_weight,
            )
            for ok, right, usd in zip(format_ok, correct, cost, strict=True)
        ]
        if log_metric is not None:
            n = len(scored)
            log_metric("format_ok", sum(format_ok) / n)
            log_metric("accuracy", sum(correct) / n)
            log_metric("routes", sum(routes) / n)
            known = [c for c in cost if not math.isnan(c)]
            if known:
                log_metric("cost_usd", sum(known) / len(known))
        return scored


def train_grpo(
    policy: Any,
    tokenizer: Any,
    task: RoutingTask,
    settings: TrainSettings,
    *,
    seed: int,
    work_dir: Path,
    log_path: Path,
) -> Any:
    """Run GRPO; returns the trained model."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    by_question = {row.query: row for row in task.rows}
    dataset = Dataset.from_list([{"prompt": _prompt(task, row)} for row in task.rows])
    scorer = EpisodeReward(settings.cost_weight, CostScale.seeded(task.call_costs()))

    def rollout(prompts: list[list[dict[str, str]]], trainer: Any) -> dict[str, Any]:
        rows = [by_question[p[-1]["content"]] for p in prompts]
        played = generate(
            trainer.model,
            tokenizer,
            task,
            rows,
            max_turn_tokens=settings.max_turn_tokens,
            temperature=settings.temperature,
        )
        results = outcomes(task, played)
        return {
            "prompt_ids": [r.prompt_ids for r in played],
            "completion_ids": [r.completion_ids for r in played],
            "env_mask": [r.env_mask for r in played],
            "logprobs": None,
            "format_ok": [o.format_ok for o in results],
            "correct": [o.correct for o in results],
            "cost": [math.nan if o.cost is None else o.cost for o in results],
            "routes": [o.routes for o in results],
        }

    config = GRPOConfig(
        **settings.trainer_args(work_dir, seed),
        per_device_train_batch_size=settings.prompts_per_step * settings.generations,
        num_generations=settings.generations,
        gradient_accumulation_steps=1,
        max_steps=settings.steps,
        learning_rate=settings.learning_rate,
        beta=settings.kl,
        temperature=settings.temperature,
        max_completion_length=settings.max_turn_tokens * (settings.max_rounds + 1) * 4,
        remove_unused_columns=False,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[scorer],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=rollout,
        peft_config=_lora(settings),
        callbacks=[step_log(log_path, "grpo")],
    )
    trainer.train()
    return trainer.model


def _lora(settings: TrainSettings) -> Any:
    if settings.lora_rank is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_rank, lora_alpha=2 * settings.lora_rank, task_type="CAUSAL_LM"
    )
