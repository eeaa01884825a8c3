"""Configuration: YAML in `configs/`, validated into pydantic models.

Every error names the file and the dotted key that is wrong, e.g.
`configs/x.yaml: pipelines.vote.router.samples: Input should be greater than or equal to 1`.
Strategy sections (`router:`, `aggregator:`, a model's backend options) are validated by
the params model registered under their name, so new strategies need no change here.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from signoria.agents.backends.llamacpp import LlamaCppSettings
from signoria.agents.backends.registry import BACKENDS
from signoria.agents.pool import ModelSpec
from signoria.agents.types import ModelCard
from signoria.errors import ConfigError
from signoria.orchestrator.aggregators.registry import AGGREGATORS
from signoria.orchestrator.keylimits import KeyDeclaration
from signoria.orchestrator.limits import Limits
from signoria.orchestrator.resilience import BreakerSettings
from signoria.registry import (
    Strategies,
    StrategyConfigError,
    StrategySpec,
    model_refs,
    parse_strategy,
    validation_problem,
)
from signoria.routers.registry import ROUTERS

M = TypeVar("M", bound=BaseModel)

# Card fields sit beside the backend's options, flat under a model's name in YAML.
_CARD_KEYS = set(ModelCard.model_fields) - {"name"}


class PipelineSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    system: str | None = None
    router: StrategySpec
    aggregator: StrategySpec
    limits: Limits = Limits()


class RuntimeSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    llamacpp: LlamaCppSettings = Field(default_factory=lambda: LlamaCppSettings())
    breaker: BreakerSettings = Field(
        default_factory=BreakerSettings, description="per-expert circuit breakers"
    )


class SignoriaConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default_pipeline: str
    runtime: RuntimeSpec = RuntimeSpec()
    models: dict[str, ModelSpec]
    pipelines: dict[str, PipelineSpec]
    # API keys with their own limits, the key itself read from an environment variable;
    # `signoria serve` keeps the database's keys in step with these (orchestrator/keylimits.py).
    keys: dict[str, KeyDeclaration] = Field(default_factory=dict)


def home() -> Path:
    """Signoria's data dir: models, artifacts, the default database."""
    from platformdirs import user_data_dir

    return Path(os.environ.get("SIGNORIA_HOME") or user_data_dir("signoria"))


def default_config_path() -> Path:
    env = os.environ.get("SIGNORIA_CONFIG")
    if env:
        return Path(env)
    return Path(str(resources.files("signoria.configs") / "default.yaml"))


def load_config(path: str | Path | None = None) -> SignoriaConfig:
    source = Path(path) if path is not None else default_config_path()
    try:
        raw = yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_config(raw, str(source))


def parse_config(raw: Any, source: str = "<config>") -> SignoriaConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    data = dict(raw)
    data.setdefault("runtime", {})
    if isinstance(data["runtime"], dict):
        llama = dict(data["runtime"].get("llamacpp") or {})
        llama.setdefault("cache_dir", home() / "models")
        data["runtime"] = {**data["runtime"], "llamacpp": llama}
    data["models"] = {
        name: _model_spec(spec, f"models.{name}", source)
        for name, spec in _mapping(data, "models", source).items()
    }
    data["pipelines"] = {
        name: _pipeline_spec(spec, f"pipelines.{name}", source)
        for name, spec in _mapping(data, "pipelines", source).items()
    }
    config = _validate(SignoriaConfig, data, "", source)
    _check_references(config, source)
    return config


def _mapping(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{source}: {key}: must be a non-empty mapping of name -> settings")
    return value


def _validate(model: type[M], data: Any, path: str, source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where, message = validation_problem(exc)
        loc = ".".join(p for p in (path, where) if p)
        raise ConfigError(f"{source}: {loc or '<top>'}: {message}") from None


def _model_spec(raw: Any, path: str, source: str) -> ModelSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {path}: must be a mapping")
    if "backend" not in raw:
        raise ConfigError(f"{source}: {path}.backend: required (one of: {', '.join(BACKENDS)})")
    if raw["backend"] not in BACKENDS:
        raise ConfigError(
            f"{source}: {path}.backend: unknown backend {raw['backend']!r} "
            f"(known: {', '.join(BACKENDS)})"
        )
    name = path.removeprefix("models.")
    fields = {k: v for k, v in raw.items() if k in _CARD_KEYS}
    extra = {k: v for k, v in raw.items() if k not in _CARD_KEYS}
    options = _validate(BACKENDS[raw["backend"]].options_model(), extra, path, source)
    card = _validate(ModelCard, {**fields, "name": name}, path, source)
    return ModelSpec(card=card, options=options)


def _strategy(raw: Any, registry: Strategies[Any], path: str, source: str) -> StrategySpec:
    try:
        return parse_strategy(raw, registry)
    except StrategyConfigError as exc:
        where = ".".join(p for p in (path, exc.where) if p)
        raise ConfigError(f"{source}: {where}: {exc.message}") from None


def _pipeline_spec(raw: Any, path: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {path}: must be a mapping")
    spec = dict(raw)
    for key, registry in (("router", ROUTERS), ("aggregator", AGGREGATORS)):
        if key not in spec:
            raise ConfigError(f"{source}: {path}.{key}: required")
        spec[key] = _strategy(spec[key], registry, f"{path}.{key}", source)
    return _validate(PipelineSpec, spec, path, source)


def _check_references(config: SignoriaConfig, source: str) -> None:
    if config.default_pipeline not in config.pipelines:
        raise ConfigError(
            f"{source}: default_pipeline: no pipeline named {config.default_pipeline!r}"
        )
    for name, declared in config.keys.items():
        for field, known in (("pipelines", config.pipelines), ("experts", config.models)):
            for target in getattr(declared, field) or ():
                if target not in known:
                    raise ConfigError(
                        f"{source}: keys.{name}.{field}: unknown {field[:-1]} {target!r} "
                        f"({field}: {', '.join(sorted(known))})"
                    )
    for name, pipeline in config.pipelines.items():
        sections = {
            "router": pipeline.router.params,
            "aggregator": pipeline.aggregator.params,
            "limits": pipeline.limits,
        }
        for section, params in sections.items():
            for key, model in model_refs(params).items():
                if model not in config.models:
                    raise ConfigError(
                        f"{source}: pipelines.{name}.{section}.{key}: unknown model {model!r} "
                        f"(models: {', '.join(sorted(config.models))})"
                    )
