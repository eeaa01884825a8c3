"""Per-request limits and the USD budget that guards every call before it is made."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from signoria.agents.pricing import call_cost
from signoria.agents.types import ModelCard


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_experts: int = Field(default=8, ge=1, description="calls a routing decision may ask for")
    max_tokens: int = Field(
        default=256, ge=1, description="completion tokens per call when the request sets none"
    )
    max_tokens_cap: int | None = Field(
        default=None,
        ge=1,
        description="the most completion tokens a request may ask for; None: no pipeline cap",
    )
    budget_usd: float | None = Field(default=None, ge=0.0, description="USD cap per request")
    deadline_s: float | None = Field(default=300.0, gt=0, description="wall-clock cap")
    expert_timeout_s: float | None = Field(default=120.0, gt=0, description="per call")
    load_timeout_s: float | None = Field(
        default=600.0,
        gt=0,
        description="loading a local model before its first call, on its own clock",
    )
    fallback_timeout_s: float | None = Field(
        default=None, gt=0, description="per fallback call; defaults to expert_timeout_s"
    )
    retries: int = Field(default=1, ge=0, description="extra attempts on retryable errors")
    retry_backoff_s: float = Field(
        default=0.25, ge=0.0, description="base of the full-jitter exponential backoff"
    )
    retry_backoff_max_s: float = Field(default=10.0, ge=0.0, description="cap on one wait")
    fallback: str | None = Field(default=None, description="model called when an expert fails")

    @model_validator(mode="after")
    def _default_within_cap(self) -> Limits:
        if self.max_tokens_cap is not None and self.max_tokens > self.max_tokens_cap:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) is above max_tokens_cap ({self.max_tokens_cap})"
            )
        return self

    def model_refs(self) -> dict[str, str]:
        return {"fallback": self.fallback} if self.fallback else {}

    def tightened(self, overrides: RequestLimits | None) -> Limits:
        """These limits with a request's own applied.

        Budget, experts and deadline may only tighten. `max_tokens` is what the caller
        asked for, in either direction: the pipeline's `max_tokens` is only the default
        for callers that ask nothing, and `max_tokens_cap` (when set) holds a request to
        at most that many, visibly (the answer says `length` if it hit the cap, and the
        result keeps both numbers).
        """
        if overrides is None:
            return self
        update: dict[str, float | int] = {}
        for key, value in overrides.model_dump(exclude_none=True).items():
            if key == "ceiling_tokens":
                continue
            current = getattr(self, key)
            if key == "max_tokens":
                cap = self.max_tokens_cap
                update[key] = value if cap is None else min(cap, value)
            else:
                update[key] = value if current is None else min(current, value)
        if overrides.ceiling_tokens is not None:
            # A server's cap holds the pipeline's default too, not only what was asked.
            asked = int(update.get("max_tokens", self.max_tokens))
            update["max_tokens"] = min(asked, overrides.ceiling_tokens)
        return self.model_copy(update=update)


class RequestLimits(BaseModel):
    """Limits a caller (SDK user, REST client) may set per request: budget, experts and
    deadline never above the pipeline's own; `max_tokens` up to its `max_tokens_cap`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1)
    budget_usd: float | None = Field(default=None, ge=0.0)
    max_experts: int | None = Field(default=None, ge=1)
    deadline_s: float | None = Field(default=None, gt=0)
    # The most completion tokens any call of the request may have, whoever set the number
    # (a server's --max-tokens-cap over a pipeline default above it).
    ceiling_tokens: int | None = Field(default=None, ge=1)


class BudgetExceeded(Exception):
    pass


class Budget:
    """Reserves a call's worst-case cost before the call and settles the real cost after.

    Worst case is the counted prompt plus `max_tokens` of output. A model with an unknown
    price cannot be proven to fit, so under a budget it is refused rather than risked.

    A call is charged at most its reservation, so the request's recorded spend never
    exceeds its budget, whatever a backend reports. What the backends *claimed* is kept
    apart (`claimed` >= `spent`): a provider may bill what it reported, so later calls
    must fit under the claims, and once the claims reach the limit the budget is spent
    and the request makes no further calls.
    """

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.spent = 0.0
        self.claimed = 0.0
        self.reserved = 0.0

    @property
    def enforced(self) -> bool:
        return self.limit_usd is not None

    def reserve(self, card: ModelCard, tokens_in: int, max_tokens: int) -> float:
        if self.limit_usd is None:
            return 0.0
        worst = call_cost(card, tokens_in, max_tokens)
        if worst is None:
            raise BudgetExceeded(f"{card.name} has no known price; a budget cannot cover it")
        left = self.limit_usd - self.claimed - self.reserved
        if worst > left:
            claims = (
                f" (its calls reported ${self.claimed:.6f}, ${self.spent:.6f} charged)"
                if self.claimed > self.spent
                else ""
            )
            raise BudgetExceeded(
                f"{card.name} may cost up to ${worst:.6f} but ${max(left, 0.0):.6f} of the "
                f"${self.limit_usd:.6f} budget is left{claims}"
            )
        self.reserved += worst
        return worst

    def settle(
        self, reserved: float, actual: float | None, reported: float | None = None
    ) -> float | None:
        """Book a finished call and return what it is charged.

        `actual` is the call's cost as passed on, `reported` what its backend claimed
        (default: `actual`). Under a budget the charge is at most the reservation; an
        unknown cost keeps the whole reservation as spent (the safe side) and stays
        unknown in the record.
        """
        self.reserved -= reserved
        claim = reported if reported is not None else actual
        self.claimed += reserved if claim is None else max(claim, actual or 0.0)
        if actual is None:
            self.spent += reserved
            return None
        charged = actual if self.limit_usd is None else min(actual, reserved)
        self.spent += charged
        return charged
