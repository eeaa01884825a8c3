"""OpenTelemetry spans of every served request: request -> route -> expert calls ->
aggregation, with the ids of the stored trace.

The spans are written from the request's `AskResult` once it is done, with the recorded
start times and latencies, so they agree with the store to the call: the request span
carries the request id (the completion id and the record's item key), each call span the
call's position in the stored trace (`signoria.call.position`), expert, role, seed,
tokens and cost. Calls an aggregator made (synthesis, judges) sit under the aggregation
span, the others under the request. Optional: `pip install 'signoria[otel]'`; `signoria
serve --otel` exports over OTLP/HTTP to `$OTEL_EXPORTER_OTLP_ENDPOINT` (the SDK's own
settings apply).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from signoria.errors import ConfigError
from signoria.orchestrator.result import AskResult, ExpertCall

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

_NS = 1_000_000_000


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


class RequestTracer:
    """Writes one span tree per request to a tracer provider's tracer."""

    def __init__(self, provider: TracerProvider) -> None:
        self.tracer: Tracer = provider.get_tracer("signoria")

    def export(
        self, request_id: str, model: str, status: int, result: AskResult | None, error: str | None
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        end = time.time()
        latency = result.latency_s if result is not None else 0.0
        starts = [c.started_at for c in result.calls if c.started_at] if result else []
        start = min([end - latency, *starts])
        attributes: dict[str, Any] = {
            "signoria.request_id": request_id,
            "signoria.model": model,
            "signoria.status": status,
        }
        if result is not None:
            attributes["signoria.pipeline"] = result.pipeline
            if result.cost is not None:
                attributes["signoria.cost_usd"] = result.cost
        root = self.tracer.start_span(
            "signoria.request", start_time=_ns(start), attributes=attributes
        )
        if error is not None:
            root.set_status(Status(StatusCode.ERROR, error[:500]))
        context = trace.set_span_in_context(root)
        if result is not None:
            self._children(result, start, end, context)
        root.end(end_time=_ns(max(end, start)))

    def _children(self, result: AskResult, start: float, end: float, context: Any) -> None:
        from opentelemetry import trace

        expert_calls = [(i, c) for i, c in enumerate(result.calls) if c.role != "aggregator"]
        aggregator_calls = [(i, c) for i, c in enumerate(result.calls) if c.role == "aggregator"]
        first_call = min((c.started_at for _, c in expert_calls if c.started_at), default=start)
        if result.routing is not None:
            routing = result.routing
            span = self.tracer.start_span(
                "signoria.route",
                context=context,
                start_time=_ns(start),
                attributes={
                    "signoria.router": routing.router,
                    "signoria.experts": [a.expert for a in routing.assignments],
                    "signoria.reason": routing.reason,
                },
            )
            span.end(end_time=_ns(max(first_call, start)))
        for position, call in expert_calls:
            self._call(position, call, context, start)
        aggregate = result.aggregation
        if aggregate is None:
            return
        expert_end = max((c.started_at + c.latency_s for _, c in expert_calls), default=start)
        agg_start = min((c.started_at for _, c in aggregator_calls), default=expert_end)
        span = self.tracer.start_span(
            "signoria.aggregate",
            context=context,
            start_time=_ns(min(agg_start, expert_end)),
            attributes={
                "signoria.aggregator": aggregate.aggregator,
                "signoria.chosen": list(aggregate.chosen),
                "signoria.flagged": list(aggregate.flagged),
                "signoria.votes": [f"{k}={v:g}" for k, v in aggregate.votes.items()],
            },
        )
        inner = trace.set_span_in_context(span)
        for position, call in aggregator_calls:
            self._call(position, call, inner, agg_start)
        span.end(end_time=_ns(max(end, agg_start)))

    def _call(self, position: int, call: ExpertCall, context: Any, default_start: float) -> None:
        from opentelemetry.trace import Status, StatusCode

        # A call refused before it ran (budget, open breaker) has no start of its own.
        begin = call.started_at or default_start
        attributes: dict[str, Any] = {
            "signoria.call.position": position,
            "signoria.expert": call.expert,
            "signoria.role": call.role,
            "signoria.attempt": call.attempt,
            "signoria.tokens_in": call.tokens_in,
            "signoria.tokens_out": call.tokens_out,
        }
        for key, value in (("seed", call.seed), ("slot", call.slot), ("cost_usd", call.cost)):
            if value is not None:
                attributes[f"signoria.{key}"] = value
        if call.finish_reason is not None:
            attributes["signoria.finish_reason"] = call.finish_reason
        span: Span = self.tracer.start_span(
            f"signoria.call {call.expert}",
            context=context,
            start_time=_ns(begin),
            attributes=attributes,
        )
        if call.error:
            span.set_status(Status(StatusCode.ERROR, call.error[:500]))
        span.end(end_time=_ns(begin + call.latency_s))


def otlp_provider() -> SdkTracerProvider:
    """A provider exporting over OTLP/HTTP in batches (`signoria serve --otel`)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            "--otel needs OpenTelemetry's SDK and OTLP exporter: pip install 'signoria[otel]'"
        ) from None
    provider = SdkProvider(resource=Resource.create({"service.name": "signoria"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
