"""Model ids <-> the orchestrator's pipelines and experts.

`signoria/<pipeline>` (or the bare pipeline name) is a configured pipeline; a raw expert
name is that one expert. An unknown id is a 404, never a silent fallback to a default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from signoria.orchestrator.sdk import Orchestrator, TargetKind
from signoria.orchestrator.server.errors import ApiError, bad_request
from signoria.orchestrator.server.schemas import ModelInfo, ModelObject

PIPELINE_PREFIX = "signoria/"


@dataclass(frozen=True)
class Target:
    """What a model id resolved to."""

    kind: TargetKind
    name: str


class Catalog:
    """Model ids <-> the orchestrator's pipelines and experts."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.created = int(time.time())

    def expert_names(self) -> list[str]:
        return list(self.orchestrator.pool)

    def resolve(self, model_id: str) -> Target | None:
        name = model_id.removeprefix(PIPELINE_PREFIX)
        if self.orchestrator.kind(name) == "pipeline":
            return Target("pipeline", name)
        if self.orchestrator.kind(model_id) == "expert":
            return Target("expert", model_id)
        return None

    def kind_and_name(self, model_id: str) -> tuple[str, str]:
        target = self.require(model_id)
        return target.kind, target.name

    def require(self, model_id: str) -> Target:
        target = self.resolve(model_id)
        if target is None:
            raise ApiError(
                404,
                f"model {model_id!r} does not exist; GET /v1/models lists the ids",
                param="model",
                code="model_not_found",
            )
        return target

    def require_tool_use(self, target: Target, param: str) -> None:
        """A 400 naming the model ids that take tools, when `target` does not."""
        if self.orchestrator.accepts_tool_use(target.name):
            return
        takers = [
            PIPELINE_PREFIX + name
            for name in self.orchestrator.pipelines
            if self.orchestrator.accepts_tool_use(name)
        ]
        raise bad_request(
            f"pipeline {target.name!r} combines several answers, so no one call could take "
            f"{param}; it is taken by expert ids and by the pipelines "
            f"{', '.join(takers) or '(none configured)'}",
            param=param,
            code="unsupported",
        )

    def model(self, model_id: str, target: Target) -> ModelObject:
        if target.kind == "pipeline":
            spec = self.orchestrator.config.pipelines[target.name]
            limits, description, system = spec.limits, spec.description, spec.system
        else:
            card = self.orchestrator.pool.card(target.name)
            description, system = card.description or card.backend or "", None
            limits = self.orchestrator.pipeline(target.name).limits
        info = ModelInfo(
            kind=target.kind,
            description=description,
            system_prompt=system,
            rewrites_messages=system is not None,
            max_tokens=limits.max_tokens,
            max_tokens_cap=limits.max_tokens_cap,
            tools=self.orchestrator.accepts_tool_use(target.name),
        )
        return ModelObject(id=model_id, created=self.created, signoria=info)

    def models(self) -> list[ModelObject]:
        ids = [PIPELINE_PREFIX + p for p in self.orchestrator.pipelines]
        ids += self.expert_names()
        return [self.model(i, self.require(i)) for i in ids]
