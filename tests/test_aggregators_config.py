"""The aggregation example config loads, and MoA runs on a real local model."""

from __future__ import annotations

from typing import Any

from signoria import Orchestrator
from signoria.orchestrator.aggregators.registry import AGGREGATORS
from signoria.orchestrator.config import load_config, parse_config
from tests.conftest import ROOT

AGGREGATION_CONFIG = ROOT / "configs" / "aggregation.yaml"


def test_aggregation_config_loads_and_every_aggregator_builds() -> None:
    config = load_config(AGGREGATION_CONFIG)
    assert set(config.pipelines) == {
        "moa",
        "self-moa-seq",
        "smoa",
        "weighted-vote",
        "guarded-moa",
        "dropout-vote",
        "synthesize-letter",
        "guarded-synthesize-letter",
    }
    for spec in config.pipelines.values():
        AGGREGATORS.build(spec.aggregator.name, spec.aggregator.params)
    seq = config.pipelines["self-moa-seq"].aggregator.params
    assert (seq.window, seq.keep) == (3, 1)  # type: ignore[attr-defined]
    guard = config.pipelines["guarded-moa"].aggregator.params
    assert guard.inner.name == "synthesize"  # type: ignore[attr-defined]


def tiny_moa_config() -> dict[str, Any]:
    smollm = "smollm2-135m"
    return {
        "default_pipeline": "moa",
        "runtime": {"llamacpp": {"n_threads": 2, "memory_cap_mb": 1024}},
        "models": {
            smollm: {
                "backend": "llamacpp",
                "source": {"embedded": smollm},
                "context_length": 1024,
                "input_price": 0.0,
                "output_price": 0.0,
            }
        },
        "pipelines": {
            "moa": {
                "router": {"name": "fixed", "experts": [smollm], "samples": 2, "temperature": 0.7},
                "aggregator": {"name": "moa", "layers": [[smollm, smollm]], "aggregator": smollm},
                "limits": {"max_tokens": 16},
            }
        },
    }


async def test_moa_mechanics_on_a_real_local_model() -> None:
    async with Orchestrator(parse_config(tiny_moa_config())) as orchestrator:
        result = await orchestrator.aask("What is 2 + 3?")
    agg = result.aggregation
    assert result.answer and agg is not None and agg.aggregator == "moa" and agg.rounds == 2
    assert agg.error is None and agg.chosen == (0, 1)
    assert [c.role for c in result.calls] == ["expert"] * 2 + ["aggregator"] * 3
    assert all(c.error is None and c.tokens_out > 0 for c in result.calls)
    # The layer-2 prompts carry layer 1's answers, so they are longer than the question.
    layer1 = max(c.tokens_in for c in result.calls if c.role == "expert")
    assert all(c.tokens_in > layer1 for c in result.calls if c.role == "aggregator")
