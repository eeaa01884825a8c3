"""The schemathesis part of benchmarks/hostile_client.py: fuzz the served `/openapi.json`
with `model` restricted to the given ids (so generated requests reach pipelines), and
read every request and response back from the HAR report for the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import httpx

SCHEMATHESIS = "schemathesis==4.32.5"
BENCH_VENV = Path.home() / ".cache" / "signoria-bench" / "schemathesis"


class Exchange(NamedTuple):
    status: int
    request_id: str | None
    budget: float | None
    model: str
    body: str


def schemathesis_venv() -> Path:
    binary = BENCH_VENV / "bin" / "schemathesis"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        pip = [str(BENCH_VENV / "bin" / "python"), "-m", "pip", "install", "-q", SCHEMATHESIS]
        subprocess.run(pip, check=True)
    return binary


def run_schemathesis(
    base_url: str,
    key: str,
    ids: list[str],
    directory: Path,
    examples: int,
    seed: int,
    max_time_s: int,
) -> tuple[dict[str, Any], list[Exchange]]:
    """Run schemathesis; its summary and every request it sent, as the server answered."""
    spec = httpx.get(f"{base_url}/openapi.json").json()
    model = spec["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"]
    model.clear()
    model.update({"type": "string", "enum": ids})
    spec_path, har = directory / "openapi.json", directory / "schemathesis.har"
    spec_path.write_text(json.dumps(spec))
    argv = [
        str(schemathesis_venv()),
        "run",
        str(spec_path),
        "--url",
        base_url,
        "-H",
        f"Authorization: Bearer {key}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-time",
        str(max_time_s),
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--no-color",
    ]
    done = subprocess.run(argv, capture_output=True, text=True)
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    exchanges = []
    for entry in entries:
        status = int(entry["response"]["status"])
        sent = entry["request"].get("postData", {}).get("text", "")
        answer = entry["response"]["content"].get("text", "")
        request_id = budget = None
        if entry["request"]["url"].endswith("/chat/completions") and status == 200:
            request_id, budget = _response_id(answer), _budget(sent)
        exchanges.append(Exchange(status, request_id, budget, model_of(sent), answer))
    summary = {"requests": len(entries), "exit_code": done.returncode, "tail": done.stdout[-600:]}
    return summary, exchanges


def error_code(text: str) -> str | None:
    try:
        code = json.loads(text)["error"]["code"]
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def model_of(text: str) -> str:
    try:
        model = json.loads(text).get("model")
    except (ValueError, RecursionError, AttributeError):
        return ""
    return model if isinstance(model, str) else ""


def _response_id(text: str) -> str | None:
    if text.startswith("data:"):  # a stream: every chunk carries the id
        text = text.split("\n", 1)[0].removeprefix("data:").strip()
    try:
        value = json.loads(text).get("id")
    except (ValueError, RecursionError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _budget(text: str) -> float | None:
    try:
        options = json.loads(text).get("signoria") or {}
        value = options.get("budget_usd")
    except (ValueError, RecursionError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None
