"""The expert pool: model specs from config turned into named, ready-to-call experts."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, SerializeAsAny

from signoria.agents.backends.llamacpp import LlamaCppSettings
from signoria.agents.backends.registry import Backend, BuildContext, get_backend
from signoria.agents.types import Expert, ModelCard
from signoria.errors import UnknownNameError
from signoria.registry import BuiltOnUse


class ModelSpec(BaseModel):
    """A model as configured: its card, and its backend's options once the backend's own
    model has validated them. In YAML both sit flat under the model's name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    card: ModelCard
    # Dumped as the backend's own options model (the base class would dump as {}).
    options: SerializeAsAny[BaseModel]

    @property
    def backend(self) -> str:
        return self.card.backend or ""


class ExpertPool(BuiltOnUse[ModelSpec, Expert]):
    """Name -> expert mapping that owns the shared local runtime.

    Experts are built on first use, so a pool whose config names a local model costs
    nothing (and needs no llama.cpp) until that model is called.
    """

    def __init__(self, specs: Mapping[str, ModelSpec], llamacpp: LlamaCppSettings) -> None:
        super().__init__(specs)
        self._context = BuildContext(llamacpp)

    def build(self, name: str, spec: ModelSpec) -> Expert:
        return get_backend(spec.backend).builder()(spec.card, spec.options, self._context)

    def missing(self, name: str) -> Exception:
        return UnknownNameError(f"unknown model {name!r} (pool: {', '.join(sorted(self))})")

    def spec(self, name: str) -> ModelSpec:
        return self._specs[name]

    def card(self, name: str) -> ModelCard:
        """A model's card without building its expert (listing needs no backend)."""
        spec = self._specs.get(name)
        return self[name].card if spec is None else spec.card

    def backend(self, name: str) -> Backend:
        return get_backend(self._specs[name].backend)

    def add(self, expert: Expert) -> None:
        """Register an already-built expert (SDK users with a custom backend)."""
        self[expert.card.name] = expert

    async def aclose(self) -> None:
        for expert in self.built():
            await expert.aclose()
        self._context.close()
