"""Config errors name the file and the dotted key; the shipped configs load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from signoria.errors import ConfigError
from signoria.orchestrator.config import load_config, parse_config
from tests.conftest import DEFAULT_CONFIG, TEST_CONFIG


def base() -> dict[str, Any]:
    return {
        "default_pipeline": "one",
        "models": {
            "a": {"backend": "scripted", "answer": "7", "input_price": 1.0, "output_price": 2.0},
            "b": {"backend": "litellm", "model": "openai/x", "api_base": "http://127.0.0.1:9"},
        },
        "pipelines": {
            "one": {"router": {"name": "fixed", "experts": ["a"]}, "aggregator": "first"}
        },
    }


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "x.yaml")
    return str(info.value)


def test_shipped_configs_load() -> None:
    default = load_config(DEFAULT_CONFIG)
    assert {"single", "vote", "self-moa"} <= set(default.pipelines)
    assert load_config(TEST_CONFIG).default_pipeline == "fast"


def test_backend_options_and_card_fields_are_split() -> None:
    config = parse_config(base())
    spec = config.models["a"]
    assert spec.card.input_price == 1.0
    assert spec.options.model_dump()["answer"] == "7"  # type: ignore[attr-defined]
    assert config.models["b"].card.input_price is None  # unknown stays unknown


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["pipelines"]["one"]["router"].update(samples=0),
            "x.yaml: pipelines.one.router.samples: Input should be greater than or equal to 1",
        ),
        (
            lambda c: c["pipelines"]["one"]["router"].update(sample=2),
            "x.yaml: pipelines.one.router.sample: Extra inputs are not permitted",
        ),
        (
            lambda c: c["pipelines"]["one"].update(limits={"budget_usd": "lots"}),
            "x.yaml: pipelines.one.limits.budget_usd: Input should be a valid number",
        ),
        (
            lambda c: c["pipelines"]["one"]["router"].update(name="psychic"),
            "x.yaml: pipelines.one.router.name: unknown router 'psychic'",
        ),
        (
            lambda c: c["pipelines"]["one"].update(aggregator={"name": "telepathy"}),
            "x.yaml: pipelines.one.aggregator.name: unknown aggregator 'telepathy'",
        ),
        (
            lambda c: c["pipelines"]["one"]["router"].update(experts=["a", "ghost"]),
            "x.yaml: pipelines.one.router.experts[1]: unknown model 'ghost'",
        ),
        (
            lambda c: c["pipelines"]["one"].update(limits={"fallback": "ghost"}),
            "x.yaml: pipelines.one.limits.fallback: unknown model 'ghost'",
        ),
        (
            lambda c: c["models"]["a"].update(backend="carrier-pigeon"),
            "x.yaml: models.a.backend: unknown backend 'carrier-pigeon'",
        ),
        (
            lambda c: c["models"]["a"].update(latency_s=-1),
            "x.yaml: models.a.latency_s: Input should be greater than or equal to 0",
        ),
        (
            lambda c: c["models"]["b"].update(api_key="sk-secret"),
            "x.yaml: models.b: Value error, api_key must not be written in a config file",
        ),
        (
            lambda c: c.update(default_pipeline="nope"),
            "x.yaml: default_pipeline: no pipeline named 'nope'",
        ),
        (lambda c: c.update(pipelines={}), "x.yaml: pipelines: must be a non-empty mapping"),
        (lambda c: c.update(colour="blue"), "x.yaml: colour: Extra inputs are not permitted"),
        (
            lambda c: c.update(runtime={"breaker": {"failures": 0}}),
            "x.yaml: runtime.breaker.failures: Input should be greater than or equal to 1",
        ),
    ],
)
def test_errors_point_at_the_bad_key(mutate: Any, message: str) -> None:
    raw = base()
    mutate(raw)
    assert error_of(raw).startswith(message)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text(yaml.safe_dump(["a", "list"]))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)
