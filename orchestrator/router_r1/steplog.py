"""The training log: each logged step of the warm-up and of GRPO, one JSON line as it
comes, so that a killed run keeps its curve and the artifact keeps the whole of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def step_log(path: Path, phase: str) -> Any:
    """A transformers `TrainerCallback` appending `{"phase", "step", ...logs}` to `path`."""
    from transformers import TrainerCallback

    class StepLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs:
                with path.open("a") as f:
                    f.write(json.dumps({"phase": phase, "step": state.global_step, **logs}) + "\n")

    return StepLog()
