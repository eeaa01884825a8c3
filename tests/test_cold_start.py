"""Loading a model is not answering (issue #17, item 8): the load of a local model runs on
its own clock (`limits.load_timeout_s`), not the call's timeout, and `signoria serve`
loads the configured local models at startup, with `/health` and `/ready` saying when.

The real paths use the real GGUF models through llama-cpp-python and the real server on
127.0.0.1. A `scripted` expert with `load_s` is fault injection: a load slower than any
real one here, to make the timing cases exact.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from signoria.orchestrator.pipeline import PipelineFailed
from tests.aggregation_helpers import build, pipeline, pool
from tests.conftest import scripted
from tests.server_process import RunningServer, running_server

HI = [{"role": "user", "content": "hi"}]


async def test_a_slow_load_is_not_charged_to_the_call_timeout() -> None:
    slow = scripted("slow", answer="42", load_s=0.6)
    result = await pipeline(["slow"], build("first"), expert_timeout_s=0.2).run("hi", pool(slow))
    assert result.answer == "42" and slow.loads == 1
    assert result.calls[0].error is None


async def test_a_load_past_its_own_limit_fails_the_call_and_goes_on() -> None:
    slow = scripted("slow", answer="42", load_s=0.6)
    limited = pipeline(["slow"], build("first"), load_timeout_s=0.2, retries=0)
    with pytest.raises(PipelineFailed, match=r"still loading after 0\.2s"):
        await limited.run("hi", pool(slow))
    await asyncio.sleep(0.6)  # the load was not abandoned: the next call finds it done
    assert (await limited.run("hi", pool(slow))).answer == "42"
    assert slow.loads == 1


async def test_concurrent_first_calls_share_one_load() -> None:
    slow = scripted("slow", answer="42", load_s=0.3)
    three = pipeline(["slow"], build("majority"), samples=3, expert_timeout_s=0.2)
    result = await three.run("hi", pool(slow))
    assert result.answer == "42" and slow.loads == 1 and slow.calls == 3


def _config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "cold.yaml"
    path.write_text(body)
    return str(path)


def _wait_ready(server: RunningServer, within_s: float = 120.0) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        ready = httpx.get(f"{server.base_url}/ready", timeout=5)
        if ready.status_code == 200:
            health: dict[str, object] = ready.json()
            return health
        assert ready.status_code == 503 and ready.json()["ready"] is False
        time.sleep(0.1)
    raise AssertionError(f"not ready in {within_s}s:\n{server.log_tail()}")


SLOW_LOAD = """
default_pipeline: big
models:
  # A load of 3 s (fault injection, the same `load()` path as a GGUF's): a real model's
  # load time depends on the page cache (1 GB from disk ~3 s, already cached well under
  # a second), so it cannot be relied on to overrun the timeout.
  big: {backend: scripted, answer: "hi", load_s: 3.0}
pipelines:
  big:
    router: {name: fixed, experts: [big]}
    aggregator: first
    # The load alone overruns this timeout; the call does not.
    limits: {expert_timeout_s: 2.2, max_tokens: 1, retries: 0}
"""


def test_a_lazy_servers_first_call_is_not_timed_out_by_the_load(tmp_path: Path) -> None:
    config = _config(tmp_path, SLOW_LOAD)
    args = ("-c", config, "--no-record", "--lazy")
    with running_server(*args, log=tmp_path / "server.log") as server:
        health = httpx.get(f"{server.base_url}/health", timeout=5).json()
        assert health["ready"] is True and health["models"]["loaded"] == []
        started = time.perf_counter()
        reply = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "signoria/big", "messages": HI},
            timeout=120,
        )
        waited = time.perf_counter() - started
    assert reply.status_code == 200, reply.text
    [call] = reply.json()["signoria"]["calls"]
    assert call["error"] is None
    # The client waited for the load and the call, more than the call's timeout; the call
    # itself (generation only) stayed inside it.
    assert waited > 3.0 and call["latency_s"] < 2.2


def test_serve_loads_local_models_at_startup_and_says_when_ready(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        """
default_pipeline: tiny
runtime:
  llamacpp: {n_threads: 2}
models:
  smollm2-135m: {backend: llamacpp, source: {embedded: smollm2-135m}, context_length: 512}
  # fault injection: a load slow enough to watch /ready say 503 first
  slow: {backend: scripted, answer: "42", load_s: 2.0}
  missing:
    backend: llamacpp
    source: {path: /nonexistent/model.gguf}
pipelines:
  tiny: {router: {name: fixed, experts: [smollm2-135m]}, aggregator: first}
""",
    )
    with running_server("-c", config, "--no-record", log=tmp_path / "server.log") as server:
        early = httpx.get(f"{server.base_url}/ready", timeout=5)
        health = _wait_ready(server)
        log = server.log_tail(200)
    assert early.status_code == 503
    assert early.json()["models"]["loading"]
    models = health["models"]
    assert isinstance(models, dict)
    assert models["loaded"] == ["smollm2-135m", "slow"]
    assert models["loading"] == [] and models["no_room"] == []
    assert list(models["failed"]) == ["missing"] and "/nonexistent" in models["failed"]["missing"]
    assert "local models ready" in log and "could not preload missing" in log


def test_models_that_do_not_fit_the_memory_cap_stay_lazy(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        """
default_pipeline: tiny
runtime:
  llamacpp: {n_threads: 2, memory_cap_mb: 64}
models:
  smollm2-135m: {backend: llamacpp, source: {embedded: smollm2-135m}, context_length: 512}
pipelines:
  tiny:
    router: {name: fixed, experts: [smollm2-135m]}
    aggregator: first
    limits: {max_tokens: 2}
""",
    )
    with running_server("-c", config, "--no-record", log=tmp_path / "server.log") as server:
        health = _wait_ready(server)
        reply = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "signoria/tiny", "messages": HI},
            timeout=120,
        )
    models = health["models"]
    assert isinstance(models, dict)
    assert models["no_room"] == ["smollm2-135m"] and models["loaded"] == []
    assert reply.status_code == 200, reply.text  # loaded on first use, as before
