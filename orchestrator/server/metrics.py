"""`/metrics` in Prometheus' text format: what a team's dashboards and alerts read.

Everything is counted from the same `AskResult` the store records, once per request, so
a scrape agrees with the trace: requests and statuses, latency per pipeline and per
expert, tokens, USD spend (priced calls only; a call of unknown price is counted as
unpriced, never as 0 USD), circuit-breaker state, requests in flight, the routing call
share per model, and what the aggregators did: how often the answers they combined
disagreed and how many answers they flagged as suspect (reputation-vote's deceptive
experts). Each app has its own registry, so several apps in one process never mix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from signoria.orchestrator.result import AskResult
from signoria.orchestrator.server.workers import MULTIPROCESS_ENV

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: a scripted expert answers in a millisecond, a local 1.5B model in a minute.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BREAKER_STATES = ("closed", "half-open", "open")


class _Breakers(Collector):
    """The breakers' state read at scrape time (1 for the current state of each expert)."""

    def __init__(self, states: Callable[[], Mapping[str, str]]) -> None:
        self.states = states

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "signoria_breaker_state",
            "Circuit-breaker state per expert (1 for the current state)",
            labels=["expert", "state"],
        )
        for expert, current in sorted(self.states().items()):
            for state in BREAKER_STATES:
                family.add_metric([expert, state], 1.0 if state == current else 0.0)
        return [family]


class ServerMetrics:
    def __init__(self, breaker_states: Callable[[], Mapping[str, str]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "signoria_requests", "Chat completions by model id and status", ["model", "status"],
            registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "signoria_request_seconds", "Pipeline wall time per request", ["pipeline"],
            buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "signoria_in_flight", "Requests being answered", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.calls = Counter(
            "signoria_expert_calls", "Expert calls by outcome", ["expert", "role", "outcome"],
            registry=r,
        )  # fmt: skip
        self.call_seconds = Histogram(
            "signoria_expert_call_seconds", "Latency per expert call", ["expert"],
            buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "signoria_tokens", "Tokens per expert", ["expert", "direction"], registry=r
        )
        self.spend = Counter("signoria_spend_usd", "USD of priced calls", ["expert"], registry=r)
        self.unpriced = Counter(
            "signoria_unpriced_calls", "Calls whose cost is unknown", ["expert"], registry=r
        )
        self.routed = Counter(
            "signoria_routed", "Experts chosen by the router", ["pipeline", "expert"], registry=r
        )
        self.aggregations = Counter(
            "signoria_aggregations", "Aggregations run", ["aggregator"], registry=r
        )
        self.disagreements = Counter(
            "signoria_aggregation_disagreements",
            "Aggregations whose inputs did not all give the same answer",
            ["aggregator"],
            registry=r,
        )
        self.flagged = Counter(
            "signoria_flagged_answers",
            "Answers an aggregator flagged as suspect (e.g. a deceptive expert)",
            ["aggregator"],
            registry=r,
        )
        self.cache = Counter(
            "signoria_cache_lookups", "Response-cache lookups of cacheable requests", ["result"],
            registry=r,
        )  # fmt: skip
        self._breakers = _Breakers(breaker_states)
        r.register(self._breakers)

    def observe(self, model: str, status: int, result: AskResult | None) -> None:
        """Count one finished request (its answer or the partial result of a failure)."""
        self.requests.labels(model, str(status)).inc()
        if result is None:
            return
        self.request_seconds.labels(result.pipeline).observe(result.latency_s)
        for call in result.calls:
            outcome = "error" if call.error else "ok"
            self.calls.labels(call.expert, call.role, outcome).inc()
            self.call_seconds.labels(call.expert).observe(call.latency_s)
            self.tokens.labels(call.expert, "in").inc(call.tokens_in)
            self.tokens.labels(call.expert, "out").inc(call.tokens_out)
            if call.cost is None:
                self.unpriced.labels(call.expert).inc()
            else:
                self.spend.labels(call.expert).inc(call.cost)
        if result.routing is not None:
            for assignment in result.routing.assignments:
                self.routed.labels(result.pipeline, assignment.expert).inc()
        aggregate = result.aggregation
        if aggregate is not None:
            self.aggregations.labels(aggregate.aggregator).inc()
            if len(aggregate.votes) > 1:
                self.disagreements.labels(aggregate.aggregator).inc()
            if aggregate.flagged:
                self.flagged.labels(aggregate.aggregator).inc(len(aggregate.flagged))

    def render(self) -> bytes:
        """This registry; under `serve --workers N`, every live worker's counts summed
        (prometheus_client's multiprocess mode, which `workers.run_workers` turns on
        before the fork), with the breakers of the worker that answered."""
        if not os.environ.get(MULTIPROCESS_ENV):
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        combined = CollectorRegistry()
        MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        combined.register(self._breakers)
        return generate_latest(combined)
