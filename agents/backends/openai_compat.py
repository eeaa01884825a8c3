"""An OpenAI-compatible server (vLLM, llama.cpp's server, TGI, OpenAI itself) over httpx.

litellm speaks to a hundred providers by translating every request and response; for a
server that already speaks the OpenAI wire format that translation is pure overhead
(several ms of CPU a call, most of Signoria's added latency in front of a fast server;
docs/benchmarks.md). This backend posts the request as is over one pooled client per
expert and maps provider faults onto `ExpertError` the way the litellm backend does, so
the orchestrator's one retry loop sees no difference. The client is httpx's API over
aiohttp's connection pool (httpx-aiohttp): httpx's own pool collapses at tens of
concurrent requests (150 vs 1,040 requests/s at 64 in flight against the same stub).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import Field

from signoria.agents.backends.litellm import count_tokens, priced_card
from signoria.agents.backends.remote import (
    RETRYABLE_STATUS,
    RemoteOptions,
    unreachable_cause,
)
from signoria.agents.pricing import call_cost
from signoria.agents.retry_after import header, retry_after_seconds
from signoria.agents.streaming import AnswerStream, stream_for
from signoria.agents.tools import provider_tool_calls
from signoria.agents.types import (
    Completion,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
    Usage,
)


class OpenAICompatOptions(RemoteOptions):
    base_url: str = Field(description="the server's API root, e.g. 'http://10.0.0.5:8000/v1'")
    model: str = Field(description="the model name the server expects in the request body")
    max_connections: int = Field(default=256, ge=1, description="pooled connections per expert")

    def target(self) -> str:
        return f"{self.model} at {self.base_url}"


class OpenAICompatExpert:
    def __init__(
        self,
        card: ModelCard,
        options: OpenAICompatOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._options = options
        self._card = priced_card(card, options.model)
        self._url = options.base_url.rstrip("/") + "/chat/completions"
        # An injected transport is the HTTP seam for fault-injection tests.
        self._transport = transport
        # A pooled client belongs to the event loop that opened its connections.
        self._client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    @property
    def card(self) -> ModelCard:
        return self._card

    def _client_for_this_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            limits = httpx.Limits(
                max_connections=self._options.max_connections,
                max_keepalive_connections=self._options.max_connections,
            )
            transport = self._transport or AiohttpTransport(limits=limits)
            client = httpx.AsyncClient(
                transport=transport,
                limits=limits,
                timeout=self._options.request_timeout_s,
            )
            self._client = (loop, client)
        return self._client[1]

    def _headers(self) -> dict[str, str]:
        key = self._options.api_key(self._card.name)
        return {} if key is None else {"Authorization": f"Bearer {key}"}

    async def count_tokens(self, messages: list[Message]) -> int:
        # Only budgets ask before a call; litellm's counter is a fair estimate for any model.
        return count_tokens(self._options.model, messages)

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        body: dict[str, Any] = {
            "model": self._options.model,
            "messages": [m.to_openai() for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        tool_use = params.tool_use
        if tool_use is not None:
            body.update(tool_use.openai_fields())
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        headers = self._headers()
        started = time.time()
        t0 = time.perf_counter()
        stream = stream_for(params)
        try:
            if stream is None:
                response = await self._client_for_this_loop().post(
                    self._url, json=body, headers=headers
                )
                if response.status_code != 200:
                    raise self._status_error(response)
                choice, usage = self._parse(response)
            else:
                choice, usage = await self._streamed(body, headers, stream)
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
            # refused, reset, dropped mid-body, timed out: all worth another try
            detail = unreachable_cause(exc, self._url) or f"{type(exc).__name__}: {exc}"
            raise self._fault(detail) from exc
        # A server that does not report usage leaves the cost unknown, not zero.
        cost = None if usage is None else call_cost(self._card, usage.tokens_in, usage.tokens_out)
        return Completion(
            expert=self._card.name,
            text=(choice["message"].get("content") or "").strip(),
            usage=usage or Usage(),
            cost=cost,
            latency_s=time.perf_counter() - t0,
            started_at=started,
            finish_reason=choice.get("finish_reason"),
            tool_calls=choice["tool_calls"],
        )

    async def _streamed(
        self, body: dict[str, Any], headers: dict[str, str], stream: AnswerStream
    ) -> tuple[dict[str, Any], Usage | None]:
        """The same call with `stream: true`: each content delta goes to `stream` as it
        arrives; the result has the one-piece call's shape (usage when the server sends
        it in a last chunk, as `stream_options.include_usage` asks; else unknown)."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        text: list[str] = []
        finish: str | None = None
        usage: Usage | None = None
        client = self._client_for_this_loop()
        async with client.stream("POST", self._url, json=body, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                raise self._status_error(response)
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                try:
                    chunk = json.loads(line[5:])
                except json.JSONDecodeError as exc:
                    raise self._fault("malformed stream chunk") from exc
                if isinstance(chunk.get("usage"), dict):
                    reported = chunk["usage"]
                    usage = Usage(
                        tokens_in=int(reported.get("prompt_tokens") or 0),
                        tokens_out=int(reported.get("completion_tokens") or 0),
                    )
                for choice in chunk.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        text.append(piece)
                        stream.write(piece)
                    finish = choice.get("finish_reason") or finish
        message = {"content": "".join(text)}
        return {"message": message, "finish_reason": finish, "tool_calls": ()}, usage

    def _fault(
        self, detail: str, *, retryable: bool = True, retry_after_s: float | None = None
    ) -> ExpertError:
        return ExpertError(
            f"{self._card.name}: {detail[:300]}", retryable=retryable, retry_after_s=retry_after_s
        )

    def _status_error(self, response: httpx.Response) -> ExpertError:
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = response.text
        return self._fault(
            f"HTTP {response.status_code}: {message.splitlines()[0] if message else ''}",
            retryable=response.status_code in RETRYABLE_STATUS,
            retry_after_s=retry_after_seconds(header(response.headers, "retry-after")),
        )

    def _parse(self, response: httpx.Response) -> tuple[dict[str, Any], Usage | None]:
        """The first choice and the usage, or a retryable fault: a server that answers 200
        with something other than a completion (a proxy's error page, truncated JSON, an
        empty list) is a passing provider fault as far as a caller can tell."""
        try:
            payload = response.json()
            choice = payload["choices"][0]
            if not isinstance(choice.get("message"), dict):
                raise TypeError("no message")
            choice = {**choice, "tool_calls": provider_tool_calls(choice["message"])}
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._fault(f"malformed response: {type(exc).__name__}") from exc
        reported = payload.get("usage")
        if not isinstance(reported, dict):
            return choice, None
        usage = Usage(
            tokens_in=int(reported.get("prompt_tokens") or 0),
            tokens_out=int(reported.get("completion_tokens") or 0),
        )
        return choice, usage

    async def aclose(self) -> None:
        if self._client is not None:
            loop, client = self._client
            self._client = None
            if loop is asyncio.get_running_loop():
                await client.aclose()


def build_expert(
    card: ModelCard, options: OpenAICompatOptions, context: object
) -> OpenAICompatExpert:
    return OpenAICompatExpert(card, options)
