"""The hand-written hostile requests of `benchmarks/hostile_client.py`, one per promise of
issue 17, each with the statuses a correct server may answer it with.

A case is raw bytes and headers, not a dict: half of them are bodies no JSON library
would produce (100,000 brackets, a 5,000-digit integer, a lone surrogate escape).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

USER = [{"role": "user", "content": "What is 6 * 7?"}]


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    expect: tuple[int, ...]
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/chat/completions"
    # The budget the request runs under when it is answered (for spend/budget).
    budget_usd: float | None = None


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER, **extra}


def cases(single: str, ensemble: str, expert: str, cap_usd: float) -> list[Case]:
    """Every case against the served ids: `single` and `ensemble` are pipeline ids,
    `expert` a raw expert id (it honours the client's seed)."""
    deep = b'{"model": "' + single.encode() + b'", "messages": ' + b"[" * 100_000
    deep += b"]" * 100_000 + b"}"
    huge = b'{"model": "' + single.encode() + b'", "messages": ' + json.dumps(USER).encode()
    surrogate_body = (
        b'{"model": "' + single.encode() + b'", "messages": '
        b'[{"role": "user", "content": "a\\ud800b"}]}'
    )
    ok = (200,)
    bad = (400, 422)
    return [
        Case("plain request", _json(_chat(single)), ok, budget_usd=cap_usd),
        Case("plain ensemble request", _json(_chat(ensemble)), ok, budget_usd=cap_usd),
        Case("streamed request", _json(_chat(single, stream=True)), ok, budget_usd=cap_usd),
        Case("100k nested brackets", deep, (400,)),
        Case("5,000-digit max_tokens", huge + b', "max_tokens": ' + b"9" * 5000 + b"}", bad),
        Case("5,000-digit unknown field", huge + b', "x": ' + b"7" * 5000 + b"}", bad),
        Case("lone surrogate in content", surrogate_body, bad),
        Case(
            "lone surrogate, streamed",
            surrogate_body[:-1] + b', "stream": true}',
            bad,
        ),
        Case("seed 2**70 on an expert", _json(_chat(expert, seed=2**70)), bad),
        Case(
            "seed -1 on an expert",
            _json(_chat(expert, seed=-1)),
            (200, 400, 422),
            budget_usd=cap_usd,
        ),
        Case("max_tokens: true", _json(_chat(single, max_tokens=True)), bad),
        Case("stream: 'yes'", _json(_chat(single, stream="yes")), bad),
        Case("temperature: '1'", _json(_chat(expert, temperature="1")), bad),
        Case("five stop strings", _json(_chat(single, stop=["a", "b", "c", "d", "e"])), bad),
        Case(
            "user message without content",
            _json({"model": single, "messages": [{"role": "user"}]}),
            bad,
        ),
        Case("max_tokens over the cap", _json(_chat(single, max_tokens=10**6)), bad),
        Case(
            "budget below one call",
            _json(_chat(ensemble, signoria={"budget_usd": 1e-9})),
            (400, 402),
        ),
        Case("unknown model", _json(_chat("no-such-model")), (404,)),
        Case(
            "text/plain body (a cross-site form post)",
            _json(_chat(single)),
            (415,),
            headers={"Content-Type": "text/plain"},
        ),
        Case(
            "foreign Origin",
            _json(_chat(single)),
            (403,),
            headers={"Origin": "https://evil.example"},
        ),
        Case(
            "foreign Host (DNS rebinding)",
            _json(_chat(single)),
            (400, 421),
            headers={"Host": "evil.example"},
        ),
        Case(
            "feedback with a 5,000-digit score",
            b'{"request_id": "chatcmpl-x", "score": ' + b"1" * 5000 + b"}",
            bad,
            path="/v1/feedback",
        ),
    ]
