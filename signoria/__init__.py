"""Signoria: route queries to local and API LLM experts and aggregate their answers.

    from signoria import Orchestrator

    with Orchestrator.from_config() as signoria:
        print(signoria.ask("What is 17 * 3?").answer)

The subpackages are `signoria.agents` (experts and the pool), `signoria.routers`,
`signoria.orchestrator` (pipelines, aggregators, SDK, server, CLI) and `signoria.evals`.
In a source checkout they are the repository's top-level folders, linked here; a wheel
carries them as ordinary folders.

The names below are imported on first use, so `import signoria` (and the CLI's start-up)
costs nothing until one of them is needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from signoria.agents.types import Completion, GenerationParams, Message, ModelCard
    from signoria.errors import ConfigError, SignoriaError, UnknownNameError
    from signoria.orchestrator.config import SignoriaConfig, load_config
    from signoria.orchestrator.limits import Limits, RequestLimits
    from signoria.orchestrator.pipeline import Pipeline, PipelineFailed
    from signoria.orchestrator.result import Aggregate, AskResult, ExpertCall
    from signoria.orchestrator.sdk import Orchestrator

_EXPORTS = {
    "Aggregate": "signoria.orchestrator.result",
    "AskResult": "signoria.orchestrator.result",
    "Completion": "signoria.agents.types",
    "ConfigError": "signoria.errors",
    "ExpertCall": "signoria.orchestrator.result",
    "GenerationParams": "signoria.agents.types",
    "Limits": "signoria.orchestrator.limits",
    "Message": "signoria.agents.types",
    "ModelCard": "signoria.agents.types",
    "Orchestrator": "signoria.orchestrator.sdk",
    "Pipeline": "signoria.orchestrator.pipeline",
    "PipelineFailed": "signoria.orchestrator.pipeline",
    "RequestLimits": "signoria.orchestrator.limits",
    "SignoriaConfig": "signoria.orchestrator.config",
    "SignoriaError": "signoria.errors",
    "UnknownNameError": "signoria.errors",
    "load_config": "signoria.orchestrator.config",
}

__all__ = [
    "Aggregate",
    "AskResult",
    "Completion",
    "ConfigError",
    "ExpertCall",
    "GenerationParams",
    "Limits",
    "Message",
    "ModelCard",
    "Orchestrator",
    "Pipeline",
    "PipelineFailed",
    "RequestLimits",
    "SignoriaConfig",
    "SignoriaError",
    "UnknownNameError",
    "__version__",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'signoria' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
