"""The Python SDK over real local models."""

from __future__ import annotations

import pytest

from signoria import AskResult, Orchestrator
from signoria.errors import UnknownNameError
from tests.conftest import TEST_CONFIG


@pytest.fixture(scope="module")
def orchestrator() -> Orchestrator:
    with Orchestrator.from_config(TEST_CONFIG) as orch:
        yield orch  # type: ignore[misc]


def test_ask_returns_a_typed_result(orchestrator: Orchestrator) -> None:
    result = orchestrator.ask("Say hello.")
    assert isinstance(result, AskResult)
    assert result.answer and result.pipeline == "fast"
    [call] = result.calls
    assert call.expert == "smollm2-135m" and call.tokens_out > 0 and call.cost == 0.0
    assert result.cost == 0.0 and result.latency_s > 0


def test_sync_calls_reuse_loaded_models(orchestrator: Orchestrator) -> None:
    orchestrator.ask("One.")
    runtime = orchestrator.pool._context.llamacpp_runtime
    loads = runtime.loads
    orchestrator.ask("Two.")
    assert runtime.loads == loads


async def test_aask_runs_in_the_callers_loop() -> None:
    async with Orchestrator.from_config(TEST_CONFIG) as orch:
        result = await orch.aask("Say hi.", pipeline="pair")
        assert {c.expert for c in result.calls} == {"smollm2-135m", "qwen2.5-coder-0.5b"}


def test_unknown_pipeline_and_empty_query(orchestrator: Orchestrator) -> None:
    with pytest.raises(UnknownNameError, match="unknown pipeline 'missing'"):
        orchestrator.ask("hi", pipeline="missing")
    with pytest.raises(ValueError, match="empty"):
        orchestrator.ask("  ")


def test_vote_on_real_samples(orchestrator: Orchestrator) -> None:
    result = orchestrator.ask("What is 2 + 3? Reply with a number.", pipeline="vote")
    # Samples run concurrently and queue on the model's lock, so the trace (in the order
    # calls finish) may list them in any order; each routing slot keeps its own seed.
    assert {c.slot: c.seed for c in result.calls} == {0: 0, 1: 1, 2: 2}
    assert result.aggregation is not None and result.aggregation.aggregator == "majority"
    assert sum(result.aggregation.votes.values()) <= 3


def test_real_timeout_falls_back_to_another_local_model(orchestrator: Orchestrator) -> None:
    result = orchestrator.ask("Write a long essay about rivers.", pipeline="impatient")
    first, fallback = result.calls
    assert first.expert == "qwen2.5-coder-0.5b" and first.error is not None
    assert "timeout" in first.error
    assert fallback.expert == "smollm2-135m" and fallback.role == "fallback"
    assert fallback.error is None and result.answer


def test_routed_pipeline_uses_the_shipped_artifact_on_real_models() -> None:
    from tests.conftest import DEFAULT_CONFIG

    with Orchestrator.from_config(DEFAULT_CONFIG) as orch:
        result = orch.ask("What is 2 + 2? Reply with the number only.", pipeline="routed")
    assert result.routing is not None and result.routing.router == "learned"
    chosen = result.routing.assignments[0].expert
    assert chosen in {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"}
    assert set(result.routing.scores) == {
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-0.5b",
        "smollm2-135m",
    }
    assert result.calls[0].expert == chosen and result.answer
