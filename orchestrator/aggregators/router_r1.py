"""Router-R1 in service: a policy model thinks, asks experts, reads their replies, answers.

The pipeline's router asks no expert up front (`router: none`); this aggregator runs the
policy's loop (Zhang et al. 2025, "Router-R1"): each policy turn is a call of the policy
expert, each `<search> EXPERT: QUESTION </search>` a call of that expert, both through
the request's own call runner (budget, deadline, retries, breakers, trace): policy turns
are recorded as aggregator calls, routed questions as expert calls in slots 0, 1, ... The
trace's `aggregation.turns` shows every turn: thought, route, reply read, answer.

What can go wrong has one outcome each:
- a malformed turn: the policy is told which rule it broke and asked again, up to
  `format_retries` times; then the request is answered with what it has (the last
  expert reply it read), and the trace says so;
- a routed call that fails (budget refused, timeout, provider error): the policy reads
  that the expert could not answer, and goes on;
- a failed policy call: the request is answered with what it has;
- `max_rounds` routes taken: the policy is told to answer; a further route is malformed.
With nothing to answer with, the request fails with its whole trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from signoria.agents.types import Completion, GenerationParams, Message
from signoria.errors import ConfigError
from signoria.orchestrator.aggregators.protocol import AggregationContext
from signoria.orchestrator.result import Aggregate, PolicyTurn
from signoria.orchestrator.router_r1 import prompt
from signoria.orchestrator.router_r1.descriptors import load_descriptors
from signoria.orchestrator.router_r1.episode import Episode
from signoria.orchestrator.router_r1.tags import STOP, Answer, Malformed, Route

NAME = "router-r1"


class RouterR1Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: str = Field(description="the expert that thinks, routes and answers")
    experts: tuple[str, ...] = Field(min_length=1, description="the experts it may ask")
    max_rounds: int = Field(default=4, ge=0, le=16, description="most expert calls per query")
    format_retries: int = Field(default=1, ge=0, le=4, description="re-asks after a bad turn")
    policy_max_tokens: int = Field(default=256, ge=8, description="tokens of one policy turn")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="of the policy")
    seed: int | None = Field(default=None, description="of the policy's sampling")
    information_limit: int = Field(
        default=2000, ge=100, description="characters of an expert reply the policy reads"
    )
    descriptors: Path | None = Field(
        default=None,
        description="descriptors file (a trained policy's descriptors.json); default: cards",
    )

    @field_validator("descriptors")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                load_descriptors(path)  # a bad file is an error of the config, at its key
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return path

    def model_refs(self) -> dict[str, str]:
        refs = {"policy": self.policy}
        refs.update({f"experts[{i}]": name for i, name in enumerate(self.experts)})
        return refs


class RouterR1:
    def __init__(self, params: RouterR1Params) -> None:
        self.params = params
        self.measured = {} if params.descriptors is None else load_descriptors(params.descriptors)

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        p = self.params
        cards = {name: ctx.card(name) for name in p.experts}
        descriptors = prompt.descriptors_for(p.experts, cards, self.measured)
        episode = Episode(
            question=query,
            system=prompt.system_prompt(descriptors, p.max_rounds),
            experts=p.experts,
            max_rounds=p.max_rounds,
            information_limit=p.information_limit,
        )
        loop = _Loop(self.params, episode, ctx)
        return await loop.run()


class _Loop:
    """The state of one request's loop: the episode, the replies read, the trace."""

    def __init__(self, params: RouterR1Params, episode: Episode, ctx: AggregationContext) -> None:
        self.params = params
        self.episode = episode
        self.ctx = ctx
        self.turns: list[PolicyTurn] = []
        self.replies: list[tuple[int, Completion]] = []  # (slot, call) the policy read
        self.slots = 0

    async def run(self) -> Aggregate:
        retries = self.params.format_retries
        while True:
            call = await self._policy_turn()
            if not call.ok:
                self._trace("failed", note=call.error)
                return self._with_what_it_has(f"the policy's call failed: {call.error}")
            action = self.episode.observe(call.text)
            if isinstance(action, Answer):
                self._trace("answer", think=action.think, reply=action.text)
                return self._answered(action.text, call.finish_reason)
            if isinstance(action, Malformed):
                self._trace("malformed", think=action.think, reply=call.text, note=action.reason)
                if retries == 0:
                    return self._with_what_it_has(f"malformed turn: {action.reason}")
                retries -= 1
                self.episode.remind(action.reason)
                continue
            await self._route(action)

    async def _policy_turn(self) -> Completion:
        p = self.params
        params = GenerationParams(
            max_tokens=p.policy_max_tokens, temperature=p.temperature, seed=p.seed, stop=STOP
        )
        return await self.ctx.call(p.policy, list(self.episode.messages), params)

    async def _route(self, route: Route) -> None:
        slot = self.slots
        self.slots += 1
        messages = [
            Message(role="system", content=prompt.expert_instruction()),
            Message(role="user", content=route.query),
        ]
        params = GenerationParams(max_tokens=self.ctx.max_tokens, temperature=0.0)
        if self.ctx.ask is None:
            raise RuntimeError("router-r1 needs a pipeline that lets it ask experts")
        reply = await self.ctx.ask(route.expert, messages, params, slot)
        if reply.ok and reply.text.strip():
            self.replies.append((slot, reply))
            read = self.episode.inform(reply.text)
        else:
            read = self.episode.inform(None, error=reply.error or "an empty reply")
        self._trace(
            "route",
            think=route.think,
            expert=route.expert,
            query=route.query,
            slot=slot,
            reply=read,
            note=reply.error,
        )

    def _trace(self, action: str, **fields: object) -> None:
        self.turns.append(
            PolicyTurn.model_validate({"turn": len(self.turns) + 1, "action": action, **fields})
        )

    def _answered(self, text: str, finish_reason: str | None) -> Aggregate:
        return Aggregate(
            aggregator=NAME,
            text=text,
            chosen=tuple(slot for slot, _ in self.replies),
            rounds=len(self.turns),
            turns=tuple(self.turns),
            finish_reason=finish_reason,
        )

    def _with_what_it_has(self, why: str) -> Aggregate:
        """The last expert reply the policy read, as the answer; or no answer."""
        if not self.replies:
            return Aggregate(
                aggregator=NAME,
                text="",
                rounds=len(self.turns),
                turns=tuple(self.turns),
                error=f"{why}; no expert reply to answer with",
            )
        slot, reply = self.replies[-1]
        return Aggregate(
            aggregator=NAME,
            text=reply.text,
            chosen=(slot,),
            rounds=len(self.turns),
            turns=tuple(self.turns),
            error=f"{why}; answered with {reply.expert}'s reply",
            finish_reason=reply.finish_reason,
        )
