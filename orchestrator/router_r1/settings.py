"""The settings of a Router-R1 training run, given as `--option KEY=VALUE` and validated.

Defaults are the small CPU run of this project (SmolLM2-135M, a few dozen GRPO steps);
`docs/routers.md` gives the paper's full-scale values for a GPU (Qwen2.5-3B-Instruct,
batch 64, learning rate 1e-6, ...), which the same command takes as options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from signoria.errors import UsageError
from signoria.registry import validation_problem


class TrainSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: str = Field(
        default="smollm2-135m",
        description="embedded model name, a .gguf path, or a transformers checkpoint",
    )
    experts: tuple[str, ...] | None = Field(
        default=None, description="models of the table the policy may ask; default: all"
    )
    cost_weight: float = Field(
        default=0.0, ge=0.0, le=1.0, description="the paper's cost coefficient (lambda)"
    )
    max_rounds: int = Field(default=2, ge=1, le=8, description="expert calls per episode")
    steps: int = Field(
        default=40, ge=0, description="GRPO optimiser steps; 0: the warm-up alone (a baseline)"
    )
    prompts_per_step: int = Field(default=4, ge=1, description="questions per GRPO step")
    generations: int = Field(default=4, ge=2, description="episodes per question (the group)")
    learning_rate: float = Field(default=5e-6, gt=0.0)
    temperature: float = Field(default=1.0, gt=0.0, le=2.0, description="of the rollouts")
    kl: float = Field(default=0.0, ge=0.0, description="KL penalty to the starting policy")
    max_turn_tokens: int = Field(default=160, ge=16, description="tokens of one policy turn")
    information_limit: int = Field(
        default=400, ge=50, description="characters of a reply the policy reads"
    )
    warmup_steps: int = Field(
        default=0, ge=0, description="format warm-up (SFT) steps, a question each; 0: none"
    )
    warmup_learning_rate: float = Field(default=5e-5, gt=0.0)
    live_config: Path | None = Field(
        default=None,
        description="a config whose experts answer sub-questions the table did not record",
    )
    latency_db: str | None = Field(
        default=None,
        description="a Signoria database whose recorded calls give each expert's latency",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="of the policy's weights (bfloat16 on a GPU)"
    )
    lora_rank: int | None = Field(default=None, ge=1, description="train a LoRA adapter")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads")
    export: bool = Field(default=True, description="also write policy.gguf (from a GGUF)")

    @field_validator("experts")
    @classmethod
    def _one_expert_at_least(cls, experts: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if experts is not None and not experts:
            raise ValueError("give at least one")
        return experts

    def trainer_args(self, work_dir: Path, seed: int) -> dict[str, Any]:
        """The arguments both trainers (the warm-up's SFT, GRPO) take alike: a log line a
        step, no checkpoints or trackers, the device there is, the weights' precision."""
        from signoria.orchestrator.router_r1.policy_model import has_gpu

        return {
            "output_dir": str(work_dir),
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "seed": seed,
            "disable_tqdm": True,
            "use_cpu": not has_gpu(),
            "bf16": self.dtype == "bfloat16",
            "fp16": self.dtype == "float16",
        }

    @classmethod
    def parse(cls, options: dict[str, Any]) -> TrainSettings:
        """From `--option` pairs; an error names the bad option."""
        if isinstance(options.get("experts"), str):
            options = {**options, "experts": [e for e in options["experts"].split(",") if e]}
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            where, message = validation_problem(exc)
            raise UsageError(f"--option {where or 'option'}: {message}") from None
