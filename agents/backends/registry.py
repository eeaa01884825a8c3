"""Expert backends by name: each is an options model plus a builder, imported on use.

Adding a backend is one module (its options model and a `build_expert` function), one
`register_backend` line here and one test; configs name it by `backend:` and its options
are validated by its own pydantic model. A backend module imports its client library
inside its calls, so validating a config never imports llama.cpp or litellm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from signoria.agents.backends.llamacpp import LlamaCppRuntime, LlamaCppSettings
from signoria.agents.types import Expert, ModelCard
from signoria.registry import Lazy, Registry, load_ref


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


BuildExpert = Callable[[ModelCard, Any, BuildContext], Expert]


@dataclass(frozen=True)
class Backend:
    name: str
    options: str  # "module:OptionsModel"
    build: str  # "module:build_expert"
    local: bool
    extra: str | None = None
    # Packages the module imports only inside its calls, checked before an expert is built.
    requires: tuple[str, ...] = ()
    # Heavy imports a long-running process pays up front rather than on its first request.
    preload: str | None = None

    @property
    def what(self) -> str:
        return f"backend {self.name!r}"

    def options_model(self) -> type[BaseModel]:
        model: type[BaseModel] = load_ref(self.options, what=self.what)
        return model

    def builder(self) -> BuildExpert:
        return Lazy[BuildExpert](self.build, self.extra, self.requires).load(self.what)


BACKENDS: Registry[Backend] = Registry("backend")


def register_backend(backend: Backend) -> None:
    BACKENDS.register(backend.name, backend)


def get_backend(name: str) -> Backend:
    return BACKENDS[name]


def preload_backends(names: Iterable[str]) -> None:
    for name in sorted(set(names)):
        backend = BACKENDS[name]
        if backend.preload is not None:
            load_ref(backend.preload, what=backend.what, extra=backend.extra)()


_HERE = "signoria.agents.backends"

register_backend(
    Backend(
        name="llamacpp",
        options=f"{_HERE}.llamacpp:LlamaCppOptions",
        build=f"{_HERE}.llamacpp:build_expert",
        local=True,
        extra="local",
        requires=("llama_cpp",),
    )
)
register_backend(
    Backend(
        name="litellm",
        options=f"{_HERE}.litellm:LiteLLMOptions",
        build=f"{_HERE}.litellm:build_expert",
        local=False,
        requires=("litellm",),
        preload=f"{_HERE}.litellm:load_litellm",
    )
)
register_backend(
    Backend(
        name="openai",
        options=f"{_HERE}.openai_compat:OpenAICompatOptions",
        build=f"{_HERE}.openai_compat:build_expert",
        local=False,
    )
)
register_backend(
    Backend(
        name="replay",
        options=f"{_HERE}.replay:ReplayOptions",
        build=f"{_HERE}.replay:build_expert",
        local=True,
    )
)
register_backend(
    Backend(
        name="scripted",
        options=f"{_HERE}.scripted:ScriptedBehaviour",
        build=f"{_HERE}.scripted:build_expert",
        local=True,
    )
)
