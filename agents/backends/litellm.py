"""Any API provider or OpenAI-compatible server, through litellm.

The key is read from an environment variable the config names, never from the config
itself. Retries are off here: the orchestrator owns the one retry loop, so a flaky
provider is not retried twice over.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.errors import SignoriaError
from agents.pricing import call_cost
from agents.retry_after import from_exception
from agents.types import (
    Availability,
    Completion,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
    Usage,
)

_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LiteLLMOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="litellm model string, e.g. 'openai/gpt-4o-mini'")
    api_base: str | None = None
    api_key_env: str | None = Field(
        default=None, description="name of the environment variable that holds the key"
    )
    request_timeout_s: float = Field(default=600.0, gt=0)

    def availability(self) -> Availability:
        missing = self.api_key_env is not None and not os.environ.get(self.api_key_env)
        detail = self.model + (f" (${self.api_key_env} not set)" if missing else "")
        return Availability(available=not missing, detail=detail)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "api_key must not be written in a config file; put it in an environment "
                "variable and name that variable with api_key_env"
            )
        return data


def _litellm() -> Any:
    # Use the price map bundled with the pinned release rather than fetching one at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def priced_card(card: ModelCard, model: str) -> ModelCard:
    """Fill unknown prices from litellm's price map; leave them `None` if it has none."""
    if card.input_price is not None and card.output_price is not None:
        return card
    info = _litellm().model_cost.get(model) or _litellm().model_cost.get(model.split("/", 1)[-1])
    if not info:
        return card
    per_in, per_out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if per_in is None or per_out is None:
        return card
    return card.model_copy(
        update={
            "input_price": card.input_price if card.input_price is not None else per_in * 1e6,
            "output_price": card.output_price if card.output_price is not None else per_out * 1e6,
        }
    )


class LiteLLMExpert:
    def __init__(self, card: ModelCard, options: LiteLLMOptions, *, client: Any = None) -> None:
        self._options = options
        self._card = priced_card(card, options.model)
        # An injected OpenAI client is the HTTP seam for fault-injection tests.
        self._client = client

    @property
    def card(self) -> ModelCard:
        return self._card

    def _api_key(self) -> str | None:
        name = self._options.api_key_env
        if name is None:
            return None
        key = os.environ.get(name)
        if not key:
            raise SignoriaError(
                f"model {self._card.name!r} reads its API key from ${name}, which is not set"
            )
        return key

    async def count_tokens(self, messages: list[Message]) -> int:
        counted: int = _litellm().token_counter(
            model=self._options.model, messages=[m.model_dump() for m in messages]
        )
        return counted

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        litellm = _litellm()
        kwargs: dict[str, Any] = {
            "model": self._options.model,
            "messages": [m.model_dump() for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "api_base": self._options.api_base,
            "api_key": self._api_key(),
            "timeout": self._options.request_timeout_s,
            "num_retries": 0,
            "max_retries": 0,
        }
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if self._client is not None:
            kwargs["client"] = self._client
        started = time.time()
        t0 = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:  # litellm maps every provider error onto its own classes
            status = getattr(exc, "status_code", None)
            retryable = status in _RETRYABLE_STATUS or isinstance(
                exc, litellm.exceptions.APIConnectionError | litellm.exceptions.Timeout
            )
            raise ExpertError(
                f"{self._card.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                retryable=retryable,
                retry_after_s=from_exception(exc),
            ) from exc
        if not getattr(response, "choices", None) or response.choices[0].message is None:
            # Valid JSON that is not a completion (a proxy's error object, an empty list):
            # a provider fault, and often a passing one.
            raise ExpertError(f"{self._card.name}: malformed response: no choices", retryable=True)
        choice = response.choices[0]
        reported = getattr(response, "usage", None)
        usage = Usage(
            tokens_in=int(getattr(reported, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(reported, "completion_tokens", 0) or 0),
        )
        return Completion(
            expert=self._card.name,
            text=(choice.message.content or "").strip(),
            usage=usage,
            cost=call_cost(self._card, usage.tokens_in, usage.tokens_out),
            latency_s=time.perf_counter() - t0,
            started_at=started,
            finish_reason=choice.finish_reason,
        )

    async def aclose(self) -> None:
        return None
