"""The expert pool: model specs from config turned into named, ready-to-call experts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import BaseModel, ConfigDict, Field

from agents.backends.llamacpp import LlamaCppSettings
from agents.errors import UnknownNameError
from agents.registry import Backend, BuildContext, get_backend
from agents.types import Expert, ModelCard


class ModelSpec(BaseModel):
    """A model as written in a config: card fields, a backend, and that backend's options.

    Backend options sit beside the card fields (flat YAML); `options` holds them once the
    backend's own model has validated them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str
    context_length: int = Field(default=2048, ge=128)
    input_price: float | None = Field(default=None, ge=0.0)
    output_price: float | None = Field(default=None, ge=0.0)
    description: str = ""
    skills: tuple[str, ...] = ()
    params_b: float | None = None
    options: BaseModel

    def card(self, name: str) -> ModelCard:
        return ModelCard(
            name=name,
            **self.model_dump(exclude={"options"}),
        )


class ExpertPool(Mapping[str, Expert]):
    """Read-only name -> expert mapping that owns the shared local runtime."""

    def __init__(self, specs: Mapping[str, ModelSpec], llamacpp: LlamaCppSettings) -> None:
        self._context = BuildContext(llamacpp)
        self._specs = dict(specs)
        self._experts: dict[str, Expert] = {
            name: get_backend(spec.backend).build(spec.card(name), spec.options, self._context)
            for name, spec in self._specs.items()
        }

    def __getitem__(self, name: str) -> Expert:
        try:
            return self._experts[name]
        except KeyError:
            known = ", ".join(sorted(self._experts))
            raise UnknownNameError(f"unknown model {name!r} (pool: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._experts)

    def __contains__(self, name: object) -> bool:
        # Mapping's default relies on KeyError, which __getitem__ turns into a clearer error.
        return name in self._experts

    def __len__(self) -> int:
        return len(self._experts)

    def spec(self, name: str) -> ModelSpec:
        return self._specs[name]

    def backend(self, name: str) -> Backend:
        return get_backend(self._specs[name].backend)

    def add(self, expert: Expert) -> None:
        """Register an already-built expert (SDK users with a custom backend)."""
        self._experts[expert.card.name] = expert

    async def aclose(self) -> None:
        for expert in self._experts.values():
            await expert.aclose()
        self._context.close()
