"""Symbolic-MoE's aggregator choice used live: the skills router names an aggregator per
query (`RoutingDecision.aggregator`), and an LLM aggregator configured `routed: true`
calls that model, as the trace shows; configured without it, its own `model`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from signoria.orchestrator.aggregators.moa import MixtureOfAgents, MoAParams
from signoria.orchestrator.aggregators.protocol import Aggregator
from signoria.orchestrator.aggregators.synthesize import Synthesize, SynthesizeParams
from signoria.orchestrator.limits import Limits
from signoria.orchestrator.pipeline import Pipeline
from signoria.orchestrator.result import ExpertCall
from signoria.routers.artifact import train_artifact
from signoria.routers.registry import ROUTERS
from signoria.routers.skills import SkillsRouter
from signoria.routers.trainable import TradeOff
from tests.conftest import scripted
from tests.routing_tiny import tiny_table

PRESENT = [
    "zero-one-ai/Yi-34B-Chat",
    "gpt-4-1106-preview",
    "claude-instant-v1",
    "mistralai/mistral-7b-chat",
]
FIXED = "claude-instant-v1"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("skills")
    train_artifact("skills", tiny_table().subset(range(40)), TradeOff(), path, baselines=())
    return path


def pipeline(artifact: Path, aggregator: Aggregator) -> Pipeline:
    params = ROUTERS.params_model("skills").model_validate({"artifact": str(artifact), "k": 2})
    return Pipeline(
        name="skills",
        router=ROUTERS.build("skills", params),
        aggregator=aggregator,
        limits=Limits(),
    )


def aggregator_calls(calls: Sequence[ExpertCall]) -> list[str]:
    return [c.expert for c in calls if c.role == "aggregator"]


async def test_the_routed_aggregator_model_is_called(artifact: Path) -> None:
    pool = {name: scripted(name, answer=f"answer of {name}") for name in PRESENT}
    query = tiny_table().queries[0]
    routed = Synthesize(SynthesizeParams(model=FIXED, routed=True))
    result = await pipeline(artifact, routed).run(query, pool)
    assert result.routing is not None
    chosen = result.routing.aggregator
    router = pipeline(artifact, routed).router
    trained = router._load()[0]  # type: ignore[attr-defined]
    assert isinstance(trained, SkillsRouter) and chosen == trained.aggregator
    assert chosen == PRESENT[0] != FIXED  # best training accuracy on these 40 rows
    assert f"aggregator: {chosen}" in result.routing.reason
    assert aggregator_calls(result.calls) == [chosen]
    assert result.answer == f"answer of {chosen}"

    # Not routed: the configured model, whatever the router says.
    fixed = Synthesize(SynthesizeParams(model=FIXED))
    result = await pipeline(artifact, fixed).run(query, pool)
    assert aggregator_calls(result.calls) == [FIXED]

    # MoA's final aggregator follows the same switch.
    moa = MixtureOfAgents(MoAParams(aggregator=FIXED, routed=True))
    result = await pipeline(artifact, moa).run(query, pool)
    assert aggregator_calls(result.calls) == [chosen]


async def test_without_the_artifacts_aggregator_the_querys_strongest_candidate(
    artifact: Path,
) -> None:
    pool = {name: scripted(name) for name in PRESENT[1:]}  # the artifact's choice absent
    routed = Synthesize(SynthesizeParams(model=FIXED, routed=True))
    result = await pipeline(artifact, routed).run(tiny_table().queries[3], pool)
    decision = result.routing
    assert decision is not None and decision.aggregator in PRESENT[1:]
    assert decision.aggregator == max(decision.scores, key=lambda m: decision.scores[m])
    assert aggregator_calls(result.calls) == [decision.aggregator]
