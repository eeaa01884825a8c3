"""Pipelines, aggregators, limits, the SDK and the CLI.

from orchestrator import Orchestrator
result = Orchestrator.from_config().ask("What is 17 * 3?")
"""

from orchestrator.config import ConfigError, SignoriaConfig, load_config
from orchestrator.limits import Limits, RequestLimits
from orchestrator.pipeline import Pipeline, PipelineFailed
from orchestrator.result import Aggregate, AskResult, ExpertCall
from orchestrator.sdk import Orchestrator

__all__ = [
    "Aggregate",
    "AskResult",
    "ConfigError",
    "ExpertCall",
    "Limits",
    "Orchestrator",
    "Pipeline",
    "PipelineFailed",
    "RequestLimits",
    "SignoriaConfig",
    "load_config",
]
