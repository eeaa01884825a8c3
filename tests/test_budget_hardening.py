"""A request's recorded spend never exceeds its budget, whatever a provider reports, and a
budget refusal is a 402 the OpenAI client does not retry (issue #17, items 1 and 2).

The server, its CLI, uvicorn, the SQLite store and the official `openai` client are real.
The lying providers are fault injection: `scripted` experts that report more than they
produce, and the stub upstream of benchmarks/stub_server.py (`--overrun 500`: 500 words
and 500 completion tokens whatever `max_tokens` says) behind the real `openai` backend.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from signoria.agents.types import Completion, Message, ModelCard, Usage
from signoria.orchestrator.limits import Budget, BudgetExceeded
from signoria.orchestrator.metering import cut_to_tokens, meter
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.records import ItemRecord
from tests.conftest import ROOT
from tests.server_process import RunningServer, free_port, running_server

MAX_TOKENS = 8
PRICE = 100.0  # USD per 1M tokens, in and out: 1e-4 a token
PER_TOKEN = PRICE / 1_000_000
HI = [{"role": "user", "content": "hi"}]
LONG_ANSWER = " ".join(f"word{i}" for i in range(300))

_PRICED = f"input_price: {PRICE}, output_price: {PRICE}"
CONFIG = """
default_pipeline: honest
runtime:
  breaker: {{failures: 5, cooldown_s: 5.0}}
models:
  honest: {{backend: scripted, answer: "forty two", {priced}}}
  # Each lying expert of the focused tests is its own, so their circuit breakers (one per
  # expert, shared by every request) do not depend on the order the tests run in.
  liar: {{backend: scripted, answer: "42", report_tokens_out: 500, {priced}}}
  liar-then-synth: {{backend: scripted, answer: "42", report_tokens_out: 500, {priced}}}
  liar-for-breaker: {{backend: scripted, answer: "42", report_tokens_out: 500, {priced}}}
  long: {{backend: scripted, answer: "{long}", {priced}}}
  costly: {{backend: scripted, answer: "42", report_cost_usd: 0.05, {priced}}}
  upstream:
    backend: openai
    base_url: "{upstream}"
    model: stub
    {priced_block}
  # The soak's own experts: lying in every way, shared by several pipelines.
  soak-liar: {{backend: scripted, answer: "42", report_tokens_out: 500, {priced}}}
  soak-long: {{backend: scripted, answer: "{long}", {priced}}}
  soak-costly: {{backend: scripted, answer: "42", report_cost_usd: 0.05, {priced}}}
  soak-upstream:
    backend: openai
    base_url: "{upstream}"
    model: stub
    {priced_block}
pipelines:
{pipelines}
"""


def _pipeline(name: str, router: str, aggregator: str = "first") -> str:
    return (
        f"  {name}:\n    router: {router}\n    aggregator: {aggregator}\n"
        f"    limits: {{max_tokens: {MAX_TOKENS}, retries: 0}}\n"
    )


def _fixed(*experts: str, samples: int = 1) -> str:
    return f"{{name: fixed, experts: [{', '.join(experts)}], samples: {samples}}}"


SYNTH = "{name: synthesize, model: honest}"
PIPELINES = {
    "honest": (_fixed("honest"), "first"),
    "liar": (_fixed("liar"), "first"),
    "liar-then-synth": (_fixed("liar-then-synth"), SYNTH),
    "liar-for-breaker": (_fixed("liar-for-breaker"), "first"),
    "long": (_fixed("long"), "first"),
    "costly": (_fixed("costly"), "first"),
    "upstream": (_fixed("upstream"), "first"),
    "soak-single": (_fixed("soak-liar"), "first"),
    "soak-upstream": (_fixed("soak-upstream"), "first"),
    "soak-vote": (_fixed("soak-liar", samples=3), "{name: majority, answer: auto}"),
    "soak-ensemble": (_fixed("honest", "soak-liar", "soak-long", "soak-upstream"), SYNTH),
    "soak-mixed": (_fixed("soak-costly", "soak-long", "honest"), "{name: majority}"),
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stub OpenAI-compatible provider that ignores max_tokens, on a free port."""
    port = free_port()
    log = (tmp_path_factory.mktemp("stub") / "stub.log").open("wb")
    args = ["--port", str(port), "--latency-ms", "0", "--overrun", "500"]
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.stub_server", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the stub upstream exited"
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the stub upstream did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'budget.db'}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstream: str, db_url: str
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("server")
    config = folder / "budget.yaml"
    pipelines = "".join(_pipeline(name, *spec) for name, spec in PIPELINES.items())
    priced_block = f"input_price: {PRICE}\n    output_price: {PRICE}"
    config.write_text(
        CONFIG.format(
            priced=_PRICED,
            long=LONG_ANSWER,
            upstream=upstream,
            priced_block=priced_block,
            pipelines=pipelines,
        )
    )
    args = ("--config", str(config), "--db", db_url, "--max-concurrent", "64")
    with running_server(*args, log=folder / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def chat(model: str, budget: float | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": HI, "max_tokens": MAX_TOKENS, **extra}
    if budget is not None:
        body["signoria"] = {"budget_usd": budget}
    return body


def stored(db_url: str) -> dict[str, ItemRecord]:
    store = Store.open(db_url)
    try:
        run = store.runs(kind="serve")[-1]
        return {item.item_key: item for item in store.items(run.id)}
    finally:
        store.close()


def spend(item: ItemRecord) -> float:
    return sum(c.cost or 0.0 for c in item.calls)


# The rule, at the seam every backend goes through.


async def test_metering_caps_an_over_report_and_cuts_the_text_by_the_counter() -> None:
    class ByCharacter:
        """An expert whose counter gives each character a token, framing included."""

        card = ModelCard(name="c", backend="scripted", input_price=PRICE, output_price=PRICE)

        async def count_tokens(self, messages: list[Message]) -> int:
            return 3 + sum(len(m.content) for m in messages)

        async def generate(self, messages: list[Message], *, params: Any) -> Completion:
            raise NotImplementedError

        async def aclose(self) -> None:
            return None

    expert = ByCharacter()
    assert await cut_to_tokens("abc defgh ij", expert, 8) == "abc"  # at a word boundary
    assert await cut_to_tokens("abcdefghijkl", expert, 5) == "abcde"  # inside one long word
    assert await cut_to_tokens("abc", expert, 8) == "abc"
    lying = Completion(expert="c", text="ab cd", usage=Usage(tokens_in=2, tokens_out=500))
    lying = lying.model_copy(update={"cost": (2 + 500) * PER_TOKEN})
    metered = await meter(lying, expert, 8)
    assert metered.over_reported and metered.reported_tokens_out == 500
    assert metered.completion.usage.tokens_out == 8
    assert metered.completion.cost == pytest.approx((2 + 8) * PER_TOKEN)
    assert metered.completion.text == "ab cd"  # it fits: only the usage lied
    honest = Completion(
        expert="c", text="ab", usage=Usage(tokens_in=2, tokens_out=2), cost=4 * PER_TOKEN
    )
    assert (await meter(honest, expert, 8)).completion == honest


def test_the_budget_charges_at_most_the_reservation_and_closes_on_the_claims() -> None:
    card = ModelCard(name="m", backend="scripted", input_price=PRICE, output_price=PRICE)
    budget = Budget(0.005)
    reserved = budget.reserve(card, 1, MAX_TOKENS)
    assert reserved == pytest.approx(9 * PER_TOKEN)
    assert budget.settle(reserved, 0.0501, reported=0.0501) == reserved
    assert budget.spent == pytest.approx(reserved) and budget.claimed == pytest.approx(0.0501)
    with pytest.raises(BudgetExceeded, match="reported"):
        budget.reserve(card, 1, MAX_TOKENS)  # the provider claims the whole budget


# Each kind of lie through the real server.


def test_an_over_reporting_expert_is_charged_its_reservation_and_flagged(
    http: httpx.Client, db_url: str
) -> None:
    response = http.post("/v1/chat/completions", json=chat("signoria/liar", budget=0.002))
    assert response.status_code == 200, response.text
    data = response.json()
    [call] = data["signoria"]["calls"]
    assert call["flags"] == ["over_reported"]
    assert (call["tokens_out"], call["reported_tokens_out"]) == (MAX_TOKENS, 500)
    reserved = (1 + MAX_TOKENS) * PER_TOKEN
    assert call["cost"] == pytest.approx(reserved) and data["signoria"]["cost"] <= 0.002
    assert call["reported_cost"] == pytest.approx((1 + 500) * PER_TOKEN)
    assert data["usage"]["completion_tokens"] == MAX_TOKENS  # what is passed on is capped
    item = stored(db_url)[response.headers["x-request-id"]]
    [row] = item.calls
    assert row.flags == ("over_reported",) and row.reported_tokens_out == 500
    assert row.tokens_out == MAX_TOKENS and spend(item) <= 0.002
    assert item.cost is not None and item.cost <= 0.002


def test_once_the_claims_spend_the_budget_no_further_call_is_made(
    http: httpx.Client, db_url: str
) -> None:
    # $0.02 would pay the synthesis call after the liar's $0.0009; the liar claims $0.05.
    body = chat("signoria/liar-then-synth", budget=0.02)
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "42"  # the proposal
    item = stored(db_url)[response.headers["x-request-id"]]
    liar, synth = item.calls
    assert liar.flags == ("over_reported",)
    assert synth.role == "aggregator" and synth.flags == ("budget_refused",)
    assert synth.error is not None and "reported $0.050" in synth.error
    assert spend(item) <= 0.02


def test_a_provider_that_ignores_max_tokens_is_cut_at_max_tokens(
    http: httpx.Client, db_url: str
) -> None:
    # No budget at all: what is charged and passed on is held to max_tokens anyway.
    response = http.post("/v1/chat/completions", json=chat("signoria/long"))
    assert response.status_code == 200, response.text
    answer = response.json()["choices"][0]["message"]["content"]
    assert answer == " ".join(f"word{i}" for i in range(MAX_TOKENS))
    [row] = stored(db_url)[response.headers["x-request-id"]].calls
    assert row.flags == ("over_reported",) and row.reported_tokens_out == 300
    assert row.tokens_out == MAX_TOKENS and row.cost == pytest.approx(9 * PER_TOKEN)


def test_a_reported_cost_above_the_price_of_max_tokens_is_capped(
    http: httpx.Client, db_url: str
) -> None:
    response = http.post("/v1/chat/completions", json=chat("signoria/costly", budget=0.002))
    assert response.status_code == 200, response.text
    [row] = stored(db_url)[response.headers["x-request-id"]].calls
    assert row.flags == ("over_reported",) and row.reported_cost == pytest.approx(0.05)
    assert row.cost == pytest.approx(9 * PER_TOKEN) and row.reported_tokens_out is None


def test_an_openai_compatible_upstream_reporting_500_tokens_for_8(
    http: httpx.Client, db_url: str
) -> None:
    response = http.post("/v1/chat/completions", json=chat("signoria/upstream", budget=0.002))
    assert response.status_code == 200, response.text
    [call] = response.json()["signoria"]["calls"]
    assert "over_reported" in call["flags"] and call["finish_reason"] == "length"
    item = stored(db_url)[response.headers["x-request-id"]]
    [row] = item.calls
    assert (row.tokens_out, row.reported_tokens_out) == (MAX_TOKENS, 500)
    assert row.reported_cost is not None and row.reported_cost > 0.05  # $0.0512 claimed
    assert 0 < len(row.text.split()) < MAX_TOKENS  # "forty-two" is more than one token
    assert spend(item) <= 0.002


def test_an_over_reporting_provider_opens_its_circuit_breaker(http: httpx.Client) -> None:
    statuses = []
    for _ in range(6):
        response = http.post("/v1/chat/completions", json=chat("signoria/liar-for-breaker"))
        statuses.append(response.status_code)
    assert statuses == [200] * 5 + [503]  # five faults in a row open it
    assert "circuit open after 5 consecutive failures" in response.json()["error"]["message"]
    honest = http.post("/v1/chat/completions", json=chat("signoria/honest", budget=0.002))
    assert honest.status_code == 200 and honest.json()["signoria"]["calls"][0]["flags"] == []


# Item 2: a budget refusal is the client's, not a server fault.


def test_a_budget_refusal_is_a_402_the_openai_client_does_not_retry(
    server: RunningServer, db_url: str
) -> None:
    before = set(stored(db_url))
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")
    assert client.max_retries == 2  # the default, which retries 408, 409, 429 and 5xx
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="signoria/honest",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=MAX_TOKENS,
            extra_body={"signoria": {"budget_usd": 0.0001}},
        )
    error = info.value
    assert error.status_code == 402
    assert error.code == "budget_exceeded" and error.type == "budget_error"
    assert error.response.headers["x-should-retry"] == "false"
    new = {key: item for key, item in stored(db_url).items() if key not in before}
    assert list(new) == [error.response.headers["x-request-id"]]  # seen once, recorded
    [item] = new.values()
    assert item.error is not None and "budget exceeded" in item.error
    assert [c.flags for c in item.calls] == [("budget_refused",)]


def test_a_streamed_budget_refusal_is_the_same_402(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", json=chat("signoria/honest", budget=0.0001, stream=True)
    )
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "budget_exceeded"


# The invariant, over a soak with lying providers.

SOAK_MODELS = ("soak-single", "soak-upstream", "soak-vote", "soak-ensemble", "soak-mixed")
SOAK_BUDGETS = (0.0005, 0.002, 0.005, 0.02)
SOAK_REQUESTS = 200


async def test_soak_no_request_spends_more_than_its_budget(
    server: RunningServer, db_url: str
) -> None:
    plan = list(
        itertools.islice(
            itertools.cycle(itertools.product(SOAK_MODELS, SOAK_BUDGETS)), SOAK_REQUESTS
        )
    )
    gate = asyncio.Semaphore(8)

    async def send(client: httpx.AsyncClient, model: str, budget: float) -> httpx.Response:
        async with gate:
            return await client.post("/v1/chat/completions", json=chat(model, budget=budget))

    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        responses = await asyncio.gather(*(send(client, m, b) for m, b in plan))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 402, 503}, statuses
    assert statuses.count(200) > SOAK_REQUESTS // 5 and 402 in statuses
    for response in responses:
        if response.status_code == 503:  # a lying expert's breaker is open, nothing else
            assert "circuit open" in response.json()["error"]["message"], response.text
        if response.status_code == 402:
            assert response.json()["error"]["code"] == "budget_exceeded"
    items = stored(db_url)
    budgets = {r.headers["x-request-id"]: b for r, (_, b) in zip(responses, plan, strict=True)}
    assert set(budgets) <= set(items)  # every request recorded, refusals included
    flags = set()
    worst = 0.0
    for key, budget in budgets.items():
        item = items[key]
        worst = max(worst, spend(item) / budget)
        for call in item.calls:
            flags.update(call.flags)
            assert call.tokens_out <= MAX_TOKENS, call
            if call.expert == "honest":
                assert "over_reported" not in call.flags
    assert worst <= 1.0, f"a request spent {worst:.2f} x its budget"
    assert {"over_reported", "budget_refused"} <= flags
