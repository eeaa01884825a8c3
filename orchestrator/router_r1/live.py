"""Live experts for training: a policy's own sub-questions answered by the real experts.

A recorded table answers only its own questions; a policy that splits a question into
sub-questions needs experts that answer anything. These are the experts of a Signoria
config, asked exactly as in service (the expert's instruction and the sub-question,
through `Orchestrator.aask` and so the call runner: timeouts, retries, breakers, prices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from signoria.agents.types import Message
from signoria.errors import UsageError
from signoria.orchestrator.pipeline import PipelineFailed
from signoria.orchestrator.router_r1.prompt import expert_instruction
from signoria.orchestrator.router_r1.task import LiveExperts, Reply
from signoria.orchestrator.sdk import Orchestrator


def live_experts(config: Path, experts: Sequence[str]) -> tuple[LiveExperts, Callable[[], None]]:
    """(ask, close): `ask(expert, question)` calls the config's expert of that name."""
    orchestrator = Orchestrator.from_config(config)
    missing = [e for e in experts if orchestrator.kind(e) != "expert"]
    if missing:
        orchestrator.close()
        raise UsageError(f"{config}: no model {', '.join(missing)} in its models to ask live")

    def ask(expert: str, question: str) -> Reply:
        messages = [
            Message(role="system", content=expert_instruction()),
            Message(role="user", content=question),
        ]
        try:
            result = orchestrator.run_sync(orchestrator.aask(messages, pipeline=expert))
        except PipelineFailed as failed:
            return Reply(None, failed.result.cost, str(failed))
        return Reply(result.answer, result.cost)

    return ask, orchestrator.close
