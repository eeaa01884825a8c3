"""OpenTelemetry spans of served requests (issue #14, operations item 2).

In process: the span tree of an ensemble request, exported to the SDK's in-memory
exporter. Through the real server: `signoria serve --otel` exports over OTLP/HTTP to a
receiver on 127.0.0.1 (a plain HTTP server that decodes the protobuf bodies with
OpenTelemetry's own message types), and the spans carry the ids of the stored trace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from signoria.orchestrator.config import parse_config
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.server.app import create_app
from signoria.orchestrator.server.settings import ServerSettings
from signoria.orchestrator.storage import Store
from tests.server_process import running_server

ENSEMBLE = {
    "default_pipeline": "moa",
    "models": {
        "a": {"backend": "scripted", "answer": "12", "latency_s": 0.02},
        "b": {"backend": "scripted", "answer": "13", "latency_s": 0.02},
        "judge": {"backend": "scripted", "answer": "12, after reading both"},
    },
    "pipelines": {
        "moa": {
            "router": {"name": "fixed", "experts": ["a", "b"]},
            "aggregator": {"name": "synthesize", "model": "judge"},
        }
    },
}
HI = [{"role": "user", "content": "What is 6 + 6?"}]


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_an_ensemble_request_is_one_tree_of_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        Orchestrator(parse_config(ENSEMBLE)), ServerSettings(record=False), None, provider
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "signoria/moa", "messages": HI}
        )
    assert response.status_code == 200
    spans = list(exporter.get_finished_spans())
    (root,) = by_name(spans, "signoria.request")
    assert root.attributes is not None and root.parent is None
    assert root.attributes["signoria.request_id"] == response.headers["X-Request-Id"]
    assert root.attributes["signoria.pipeline"] == "moa"
    (route,) = by_name(spans, "signoria.route")
    (aggregate,) = by_name(spans, "signoria.aggregate")
    calls = {s.name: s for s in spans if s.name.startswith("signoria.call ")}
    assert set(calls) == {"signoria.call a", "signoria.call b", "signoria.call judge"}
    root_id = root.context.span_id
    for child in (route, aggregate, calls["signoria.call a"], calls["signoria.call b"]):
        assert child.parent is not None and child.parent.span_id == root_id
    judge = calls["signoria.call judge"]
    assert judge.parent is not None and judge.parent.span_id == aggregate.context.span_id
    assert aggregate.attributes is not None
    assert aggregate.attributes["signoria.aggregator"] == "synthesize"
    assert len({s.context.trace_id for s in spans}) == 1
    # Children lie within the request; expert calls take their recorded latency.
    for span in spans:
        assert root.start_time is not None and root.end_time is not None
        assert span.start_time is not None and span.end_time is not None
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time
    a = calls["signoria.call a"]
    assert a.end_time is not None and a.start_time is not None
    assert (a.end_time - a.start_time) / 1e9 >= 0.02


class _Receiver(BaseHTTPRequestHandler):
    spans: list[Any] = []  # noqa: RUF012 (the test's shared sink)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                _Receiver.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[str]:
    _Receiver.spans = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_serve_otel_exports_spans_with_the_stored_ids(receiver: str, tmp_path: Path) -> None:
    import yaml

    config = tmp_path / "moa.yaml"
    config.write_text(yaml.safe_dump(ENSEMBLE))
    db = f"sqlite:///{tmp_path / 'traced.db'}"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with running_server(
        "-c", str(config), "--db", db, "--otel", log=tmp_path / "s.log", env=env
    ) as server:
        url = f"{server.base_url}/v1/chat/completions"
        response = httpx.post(url, json={"model": "signoria/moa", "messages": HI}, timeout=30)
        assert response.status_code == 200
        deadline = time.monotonic() + 20
        while len(_Receiver.spans) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    request_id = response.headers["X-Request-Id"]
    spans = {s.name: s for s in _Receiver.spans}
    assert set(spans) == {
        "signoria.request",
        "signoria.route",
        "signoria.aggregate",
        "signoria.call a",
        "signoria.call b",
        "signoria.call judge",
    }
    assert _attributes(spans["signoria.request"])["signoria.request_id"] == request_id
    store = Store.open(db)
    (run,) = store.runs(kind="serve")
    (item,) = store.items(run.id)
    store.close()
    assert item.item_key == request_id
    stored = {call.expert: index for index, call in enumerate(item.calls)}
    for expert, position in stored.items():
        assert _attributes(spans[f"signoria.call {expert}"])["signoria.call.position"] == position


def test_serve_otel_without_the_sdk_is_a_one_line_error(tmp_path: Path) -> None:
    """An install without the `otel` extra: the SDK and the exporter cannot be imported
    (a `sitecustomize` on the path blocks them, as their absence would)."""
    import os
    import subprocess

    from tests.server_process import SIGNORIA, server_env

    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(('opentelemetry.sdk', 'opentelemetry.exporter')):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Absent())\n"
    )
    env = {**server_env(None), "PYTHONPATH": str(shadow)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [SIGNORIA, "serve", "--otel", "--no-record", "--port", "1", "--lazy"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=os.getcwd(),
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'signoria[otel]'" in lines[0], done.stderr
