"""`/metrics` after known traffic (issue #14, operations item 2): the real server on
127.0.0.1, scraped with httpx and parsed with prometheus-client's own parser, so every
count below is what a Prometheus server would store."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server_process import RunningServer, running_server

PRICE = 100.0  # USD per 1M tokens
CONFIG = f"""
default_pipeline: quick
runtime:
  breaker: {{failures: 2, cooldown_s: 600}}
models:
  priced: {{backend: scripted, answer: "forty two", input_price: {PRICE}, output_price: {PRICE}}}
  free: {{backend: scripted, answer: "12"}}
  twin: {{backend: scripted, answer: "12"}}
  loner: {{backend: scripted, answer: "13"}}
  dead: {{backend: scripted, behaviour: error, retryable: true}}
pipelines:
  quick:
    router: {{name: fixed, experts: [priced]}}
    aggregator: first
    limits: {{max_tokens: 8, retries: 0}}
  vote:
    router: {{name: fixed, experts: [free, twin, loner]}}
    aggregator: {{name: agreement-vote, answer: number}}
  dead:
    router: {{name: fixed, experts: [dead]}}
    aggregator: first
    limits: {{retries: 0}}
"""
HI = [{"role": "user", "content": "What is 6 + 6?"}]
KEY = "metrics-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("metrics")
    (root / "config.yaml").write_text(CONFIG)
    args = ("-c", str(root / "config.yaml"), "--db", f"sqlite:///{root / 'm.db'}")
    with running_server(*args, log=root / "server.log", api_keys=KEY) as running:
        yield running


def scrape(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_need_a_key(server: RunningServer) -> None:
    assert httpx.get(f"{server.base_url}/metrics", timeout=10).status_code == 401


def test_counts_after_known_traffic(server: RunningServer) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}

    def post(model: str) -> int:
        body = {"model": model, "messages": HI}
        url = f"{server.base_url}/v1/chat/completions"
        return httpx.post(url, json=body, headers=auth, timeout=30).status_code

    assert [post("signoria/quick") for _ in range(3)] == [200] * 3
    assert [post("signoria/vote") for _ in range(2)] == [200] * 2
    assert [post("signoria/dead") for _ in range(2)] == [503] * 2
    assert post("signoria/nope") == 404  # never reaches a pipeline: not counted
    s = scrape(server)

    assert value(s, "signoria_requests_total", model="signoria/quick", status="200") == 3
    assert value(s, "signoria_requests_total", model="signoria/vote", status="200") == 2
    assert value(s, "signoria_requests_total", model="signoria/dead", status="503") == 2
    assert value(s, "signoria_request_seconds_count", pipeline="quick") == 3
    ok = {"role": "expert", "outcome": "ok"}
    assert value(s, "signoria_expert_calls_total", expert="priced", **ok) == 3
    assert value(s, "signoria_expert_calls_total", expert="loner", **ok) == 2
    assert (
        value(s, "signoria_expert_calls_total", expert="dead", role="expert", outcome="error") == 2
    )
    assert value(s, "signoria_expert_call_seconds_count", expert="priced") == 3
    tokens_out = value(s, "signoria_tokens_total", expert="priced", direction="out")
    tokens_in = value(s, "signoria_tokens_total", expert="priced", direction="in")
    assert tokens_out > 0 and tokens_in > 0
    spend = value(s, "signoria_spend_usd_total", expert="priced")
    assert spend == pytest.approx((tokens_in + tokens_out) * PRICE / 1e6)
    # Unknown prices are counted as unpriced, never as 0 USD of spend.
    assert value(s, "signoria_unpriced_calls_total", expert="free") == 2
    assert ("signoria_spend_usd_total", frozenset({("expert", "free")})) not in s
    assert value(s, "signoria_routed_total", pipeline="vote", expert="twin") == 2
    assert value(s, "signoria_aggregations_total", aggregator="agreement-vote") == 2
    assert value(s, "signoria_aggregation_disagreements_total", aggregator="agreement-vote") == 2
    assert value(s, "signoria_flagged_answers_total", aggregator="agreement-vote") == 2
    # Two failures opened the dead expert's breaker; the others never failed.
    assert value(s, "signoria_breaker_state", expert="dead", state="open") == 1
    assert value(s, "signoria_breaker_state", expert="priced", state="closed") == 1
    assert value(s, "signoria_in_flight") == 0
