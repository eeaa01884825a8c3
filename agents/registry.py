"""Expert backends by name: each is an options model plus a builder.

Adding a backend is one module, one `register_backend` call and one test; configs name it
by `backend:` and its options are validated by its own pydantic model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from agents.backends.litellm import LiteLLMExpert, LiteLLMOptions, load_litellm
from agents.backends.llamacpp import LlamaCppExpert, LlamaCppRuntime, LlamaCppSettings
from agents.backends.openai_compat import OpenAICompatExpert, OpenAICompatOptions
from agents.backends.replay import ReplayExpert, ReplayOptions, load_table
from agents.backends.scripted import ScriptedBehaviour, ScriptedExpert
from agents.plugins import Registry
from agents.sources import EmbeddedSource, HubSource, PathSource
from agents.types import Availability, Expert, ModelCard


class LlamaCppOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: EmbeddedSource | PathSource | HubSource

    def availability(self) -> Availability:
        return self.source.availability()


class BuildContext:
    """Shared state that backends need to build experts: one local runtime per pool."""

    def __init__(self, llamacpp: LlamaCppSettings) -> None:
        self._settings = llamacpp
        self._runtime: LlamaCppRuntime | None = None

    @property
    def llamacpp_runtime(self) -> LlamaCppRuntime:
        if self._runtime is None:
            self._runtime = LlamaCppRuntime(self._settings)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


@dataclass(frozen=True)
class Backend:
    name: str
    options: type[BaseModel]
    build: Callable[[ModelCard, Any, BuildContext], Expert]
    local: bool
    # Heavy imports a long-running process pays up front rather than on its first request.
    preload: Callable[[], object] | None = None


BACKENDS: Registry[Backend] = Registry("backend")


def register_backend(backend: Backend) -> None:
    BACKENDS.register(backend.name, backend)


def get_backend(name: str) -> Backend:
    return BACKENDS[name]


def preload_backends(names: Iterable[str]) -> None:
    for name in sorted(set(names)):
        preload = BACKENDS[name].preload
        if preload is not None:
            preload()


register_backend(
    Backend(
        name="llamacpp",
        options=LlamaCppOptions,
        build=lambda card, opts, ctx: LlamaCppExpert(card, opts.source, ctx.llamacpp_runtime),
        local=True,
    )
)
register_backend(
    Backend(
        name="litellm",
        options=LiteLLMOptions,
        build=lambda card, opts, ctx: LiteLLMExpert(card, opts),
        local=False,
        preload=load_litellm,
    )
)
register_backend(
    Backend(
        name="openai",
        options=OpenAICompatOptions,
        build=lambda card, opts, ctx: OpenAICompatExpert(card, opts),
        local=False,
    )
)
register_backend(
    Backend(
        name="replay",
        options=ReplayOptions,
        build=lambda card, opts, ctx: ReplayExpert(card, load_table(opts.table), opts.model),
        local=True,
    )
)
register_backend(
    Backend(
        name="scripted",
        options=ScriptedBehaviour,
        build=lambda card, opts, ctx: ScriptedExpert(card, opts),
        local=True,
    )
)
