"""Any API provider or OpenAI-compatible server, through litellm.

The key is read from an environment variable the config names, never from the config
itself. Retries are off here: the orchestrator owns the one retry loop, so a flaky
provider is not retried twice over.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import Field

from signoria.agents.backends.remote import (
    RETRYABLE_STATUS,
    RemoteOptions,
    missing_key,
    unreachable_cause,
)
from signoria.agents.pricing import call_cost
from signoria.agents.retry_after import from_exception
from signoria.agents.streaming import AnswerStream, stream_for
from signoria.agents.tools import provider_tool_calls
from signoria.agents.types import (
    Completion,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
    ToolCall,
    Usage,
)


class LiteLLMOptions(RemoteOptions):
    model: str = Field(description="litellm model string, e.g. 'openai/gpt-4o-mini'")
    api_base: str | None = None

    def target(self) -> str:
        return self.model


def load_litellm() -> Any:
    """The litellm module, imported on first use: ~3 s, paid only by configs that use it."""
    # Use the price map bundled with the pinned release rather than fetching one at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def priced_card(card: ModelCard, model: str) -> ModelCard:
    """Fill unknown prices from litellm's price map; leave them `None` if it has none."""
    if card.input_price is not None and card.output_price is not None:
        return card
    prices = load_litellm().model_cost
    info = prices.get(model) or prices.get(model.split("/", 1)[-1])
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


def count_tokens(model: str, messages: list[Message]) -> int:
    """litellm's estimate: the model's own tokenizer when litellm knows it, else tiktoken."""
    counted: int = load_litellm().token_counter(
        model=model, messages=[m.to_openai() for m in messages]
    )
    return counted


class LiteLLMExpert:
    def __init__(self, card: ModelCard, options: LiteLLMOptions, *, client: Any = None) -> None:
        self._options = options
        self._card = priced_card(card, options.model)
        # An injected OpenAI client is the HTTP seam for fault-injection tests.
        self._client = client

    @property
    def card(self) -> ModelCard:
        return self._card

    async def count_tokens(self, messages: list[Message]) -> int:
        return count_tokens(self._options.model, messages)

    def _api_key(self, litellm: Any) -> str | None:
        """The configured key, or litellm's own lookup (e.g. $OPENAI_API_KEY) checked
        before the call: an unset credential is the operator's to fix, not a provider
        fault to retry."""
        if self._options.api_key_env is not None:
            return self._options.api_key(self._card.name)
        if self._client is not None:
            return None  # an injected client carries its own key
        found = litellm.validate_environment(
            model=self._options.model, api_base=self._options.api_base
        )
        # Only credentials: litellm also lists optional settings (OLLAMA_API_BASE) that
        # have working defaults.
        missing = [name for name in found.get("missing_keys", []) if name.endswith("_API_KEY")]
        if missing:
            raise missing_key(self._card.name, missing)
        return None

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        litellm = load_litellm()
        kwargs: dict[str, Any] = {
            "model": self._options.model,
            "messages": [m.to_openai() for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "api_base": self._options.api_base,
            "api_key": self._api_key(litellm),
            "timeout": self._options.request_timeout_s,
            "num_retries": 0,
            "max_retries": 0,
        }
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.tool_use is not None:
            kwargs.update(params.tool_use.openai_fields())
        if self._client is not None:
            kwargs["client"] = self._client
        stream = stream_for(params)
        started = time.time()
        t0 = time.perf_counter()
        try:
            if stream is None:
                response = await litellm.acompletion(**kwargs)
            else:
                text, finish, usage = await _streamed(litellm, kwargs, stream)
        except Exception as exc:  # litellm maps every provider error onto its own classes
            raise self._fault(litellm, exc) from exc
        if stream is not None:
            return self._completion(text.strip(), usage, finish, (), t0, started)
        if not getattr(response, "choices", None) or response.choices[0].message is None:
            # Valid JSON that is not a completion (a proxy's error object, an empty list):
            # a provider fault, and often a passing one.
            raise ExpertError(f"{self._card.name}: malformed response: no choices", retryable=True)
        choice = response.choices[0]
        try:
            tool_calls = provider_tool_calls(choice.message.model_dump())
        except TypeError as exc:
            detail = f"{self._card.name}: malformed response: {exc}"
            raise ExpertError(detail, retryable=True) from exc
        text = (choice.message.content or "").strip()
        usage = _usage(getattr(response, "usage", None))
        return self._completion(text, usage, choice.finish_reason, tool_calls, t0, started)

    def _completion(
        self,
        text: str,
        usage: Usage | None,
        finish: str | None,
        tool_calls: tuple[ToolCall, ...],
        t0: float,
        started: float,
    ) -> Completion:
        # A stream whose provider reported no usage leaves the cost unknown, not zero.
        cost = None if usage is None else call_cost(self._card, usage.tokens_in, usage.tokens_out)
        return Completion(
            expert=self._card.name,
            text=text,
            usage=usage or Usage(),
            cost=cost,
            latency_s=time.perf_counter() - t0,
            started_at=started,
            finish_reason=finish,
            tool_calls=tool_calls,
        )

    def _fault(self, litellm: Any, exc: Exception) -> ExpertError:
        status = getattr(exc, "status_code", None)
        retryable = status in RETRYABLE_STATUS or isinstance(
            exc, litellm.exceptions.APIConnectionError | litellm.exceptions.Timeout
        )
        where = self._options.api_base or self._options.model
        detail = unreachable_cause(exc, where) or (
            f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        )
        return ExpertError(
            f"{self._card.name}: {detail[:300]}",
            retryable=retryable,
            retry_after_s=from_exception(exc),
        )

    async def aclose(self) -> None:
        return None


def build_expert(card: ModelCard, options: LiteLLMOptions, context: object) -> LiteLLMExpert:
    return LiteLLMExpert(card, options)


def _usage(reported: Any) -> Usage:
    return Usage(
        tokens_in=int(getattr(reported, "prompt_tokens", 0) or 0),
        tokens_out=int(getattr(reported, "completion_tokens", 0) or 0),
    )


async def _streamed(
    litellm: Any, kwargs: dict[str, Any], stream: AnswerStream
) -> tuple[str, str | None, Usage | None]:
    """The call with `stream: true`: each content delta goes to `stream` as it arrives;
    the usage comes in the last chunk (`include_usage`), else it is unknown."""
    chunks = await litellm.acompletion(
        **kwargs, stream=True, stream_options={"include_usage": True}
    )
    text: list[str] = []
    finish: str | None = None
    usage: Usage | None = None
    async for chunk in chunks:
        if getattr(chunk, "usage", None) is not None:
            usage = _usage(chunk.usage)
        for choice in getattr(chunk, "choices", None) or ():
            piece = getattr(choice.delta, "content", None) or ""
            if piece:
                text.append(piece)
                stream.write(piece)
            finish = choice.finish_reason or finish
    return "".join(text), finish, usage
