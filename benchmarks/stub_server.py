"""A load target, not a model: an OpenAI-compatible endpoint with a fixed latency.

It answers every chat completion with the same short text after `--latency-ms`, so what
a benchmark measures in front of it is the overhead of whatever sits in between (the
Signoria server, the LiteLLM proxy). With `--fault-rate` it also misbehaves the way real
providers do (500, 429 with Retry-After, a hang, a dropped connection, malformed JSON),
for the soak run. With `--overrun N` it is a provider that ignores `max_tokens`: every
answer is N words and reports N completion tokens, whatever it was asked for (the budget
tests, tests/test_budget_hardening.py, put it behind the `openai` backend).

    python -m benchmarks.stub_server --port 9100 --latency-ms 50 [--fault-rate 0.2] [--overrun 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAULTS = ("500", "429", "hang", "drop", "malformed")


def completion(model: str, overrun: int | None = None) -> dict[str, Any]:
    text = "The answer is 42." if overrun is None else " ".join(["forty-two"] * overrun)
    tokens = 6 if overrun is None else overrun
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens},
    }


class Dropped(Response):
    """Starts a response it never finishes: the connection closes mid-body, as when a
    provider's load balancer drops it."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"400")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "chatcm', "more_body": True})
        raise ConnectionAbortedError("injected dropped connection")


def app(
    latency_s: float, fault_rate: float, hang_s: float, seed: int, overrun: int | None = None
) -> Starlette:
    rng = random.Random(seed)
    counts: dict[str, int] = {"ok": 0, **{f: 0 for f in FAULTS}}

    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        await asyncio.sleep(latency_s)
        fault = rng.choice(FAULTS) if rng.random() < fault_rate else "ok"
        counts[fault] += 1
        if fault == "500":
            return JSONResponse({"error": {"message": "injected 500"}}, status_code=500)
        if fault == "429":
            return JSONResponse(
                {"error": {"message": "injected 429"}},
                status_code=429,
                headers={"Retry-After": "0.2"},
            )
        if fault == "hang":
            await asyncio.sleep(hang_s)
        if fault == "drop":
            return Dropped()
        if fault == "malformed":
            return Response(b'{"choices": [', media_type="application/json")
        return JSONResponse(completion(str(body.get("model", "stub")), overrun))

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    async def stats(request: Request) -> Response:
        return JSONResponse(counts)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/stats", stats),
        ]
    )


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overrun", type=int, default=None, help="words (and tokens) per answer")
    args = parser.parse_args()
    uvicorn.run(
        app(args.latency_ms / 1000, args.fault_rate, args.hang_s, args.seed, args.overrun),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )
