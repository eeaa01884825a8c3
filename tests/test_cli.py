"""The `signoria` command as a user runs it: real subprocesses, real models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_CONFIG

SIGNORIA = str(Path(sys.executable).parent / "signoria")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIGNORIA, *args], capture_output=True, text=True, timeout=600)


def test_ask_json_on_the_embedded_default_answers_arithmetic() -> None:
    done = run("ask", "--pipeline", "single", "What is 17 * 3?", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1  # exactly one JSON object on stdout
    result = json.loads(lines[0])
    assert set(result) == {"answer", "pipeline", "calls", "cost", "latency_s", "finish_reason"}
    assert "51" in result["answer"] and result["pipeline"] == "single"
    call = result["calls"][0]
    assert {"expert", "tokens_in", "tokens_out", "latency_s", "cost", "error"} <= set(call)
    assert call["tokens_out"] > 0 and call["error"] is None and call["cost"] == 0.0


def test_self_moa_shows_samples_and_an_aggregation_call() -> None:
    done = run("ask", "-c", str(TEST_CONFIG), "-p", "self-moa", "What is 2 + 2?", "--json")
    assert done.returncode == 0, done.stderr
    calls = json.loads(done.stdout)["calls"]
    roles = [(c["expert"], c["role"]) for c in calls]
    assert roles == [("smollm2-135m", "expert")] * 3 + [("smollm2-135m", "aggregator")]


def test_readable_output_has_answer_and_trace() -> None:
    done = run("ask", "-c", str(TEST_CONFIG), "Say hi.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert "smollm2-135m" in done.stderr and "total" in done.stderr


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["ask", "-p", "nope", "hi"], "error: unknown pipeline 'nope'", 1),
        (["ask", "-c", "/nonexistent.yaml", "hi"], "config file not found", 2),
        (["ask", "   "], "error: the query is empty", 1),
        (["ask"], "error: Missing argument", 2),
        (["frobnicate"], "error: No such command", 2),
    ],
)
def test_errors_are_one_line_and_non_zero(args: list[str], message: str, code: int) -> None:
    done = run(*args)
    assert done.returncode == code
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEST_CONFIG.read_text().replace("samples: 3", "samples: three"))
    done = run("ask", "-c", str(bad), "hi")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {bad}: pipelines.self-moa.router.samples: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_failing_pipeline_exits_non_zero_with_its_reason(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(
        "default_pipeline: p\n"
        "models: {dead: {backend: scripted, behaviour: error, retryable: false}}\n"
        "pipelines: {p: {router: {name: fixed, experts: [dead]}, aggregator: first}}\n"
    )
    done = run("ask", "-c", str(config), "hi", "--json")
    reason = "pipeline 'p': no expert answered (dead: 503 Service Unavailable)"
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {reason}"]
    # --json: one object on stdout too, with the error and the trace of what was tried.
    [line] = done.stdout.strip().splitlines()
    failure = json.loads(line)
    assert failure["error"] == {"message": reason, "type": "command_failed", "exit_code": 1}
    assert [c["expert"] for c in failure["result"]["calls"]] == ["dead"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["ask", "-p", "nope", "hi", "--json"], 1),
        (["ask", "-c", "/nonexistent.yaml", "hi", "--json"], 2),
        (["eval", "run", "--benchmark", "hellaswag", "--data", "x", "--json"], 2),
    ],
)
def test_json_failures_are_one_json_object_on_stdout(args: list[str], code: int) -> None:
    done = run(*args)
    assert done.returncode == code
    [line] = done.stdout.strip().splitlines()
    error = json.loads(line)["error"]
    assert error["exit_code"] == code and error["message"] in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_models_list_shows_the_pool() -> None:
    done = run("models", "list", "--json")
    assert done.returncode == 0, done.stderr
    models = {m["name"]: m for m in json.loads(done.stdout)["models"]}
    assert set(models) == {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"}
    assert all(m["available"] and m["backend"] == "llamacpp" for m in models.values())
    assert models["smollm2-135m"]["size_bytes"] == 98_362_432
    table = run("models", "list")
    assert "qwen2.5-coder-1.5b" in table.stdout and "1.12 GB" in table.stdout
