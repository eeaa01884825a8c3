"""A format warm-up before GRPO: supervised fine-tuning on well-formed episodes.

GRPO learns from differences between the episodes of one question; a policy that never
writes a well-formed turn scores -1 on every episode and learns nothing. Small chat
models are such policies (SmolLM2-135M writes the format on none of a dozen tries), so a
few supervised steps on demonstrations come first, as a "cold start" before RL does
(DeepSeek-R1). Each question is demonstrated once per expert, each episode copying that
expert's reply, so they teach the format and the reading of a reply, not which expert to
ask nor the right answer: that is left to GRPO and its reward.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from signoria.orchestrator.router_r1.settings import TrainSettings
from signoria.orchestrator.router_r1.steplog import step_log
from signoria.orchestrator.router_r1.task import RoutingTask


def demonstrations(task: RoutingTask, questions: int, seed: int) -> list[dict[str, Any]]:
    """Prompt/completion pairs, one per policy turn of the demonstrated episodes of
    `questions` questions drawn at random (every expert asked on each)."""
    rows = random.Random(seed).sample(task.rows, min(questions, len(task.rows)))
    pairs = []
    for row in rows:
        for episode in task.demonstrations(row):
            messages = [{"role": m.role, "content": m.content} for m in episode]
            for end, message in enumerate(messages):
                if message["role"] == "assistant":
                    pairs.append({"prompt": messages[:end], "completion": [message]})
    return pairs


def warm_up(
    policy: Any,
    tokenizer: Any,
    task: RoutingTask,
    settings: TrainSettings,
    *,
    seed: int,
    work_dir: Path,
    log_path: Path,
) -> Any:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    batch = 2 * len(task.experts)  # one question's turns, every expert asked
    pairs = demonstrations(task, settings.warmup_steps, seed)
    config = SFTConfig(
        **settings.trainer_args(work_dir, seed),
        per_device_train_batch_size=batch,
        max_steps=settings.warmup_steps,
        learning_rate=settings.warmup_learning_rate,
        completion_only_loss=True,
    )
    trainer = SFTTrainer(
        model=policy,
        args=config,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        callbacks=[step_log(log_path, "warmup")],
    )
    trainer.train()
    return trainer.model
