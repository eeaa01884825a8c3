"""Experts and the model pool. Imports nothing from routers, orchestrator or evals."""

from agents.errors import ModelFileError, SignoriaError, UnknownNameError
from agents.pool import ExpertPool, ModelSpec
from agents.registry import BACKENDS, register_backend
from agents.types import (
    Completion,
    Expert,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
    Usage,
)

__all__ = [
    "BACKENDS",
    "Completion",
    "Expert",
    "ExpertError",
    "ExpertPool",
    "GenerationParams",
    "Message",
    "ModelCard",
    "ModelFileError",
    "ModelSpec",
    "SignoriaError",
    "UnknownNameError",
    "Usage",
    "register_backend",
]
