"""The benchmark runner end to end: real models, a real SQLite file, a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signoria.evals.metrics import mcnemar_p, paired, wilson_interval
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.records import ItemRecord, ScoreRecord
from tests.conftest import TEST_CONFIG

SIGNORIA = str(Path(sys.executable).parent / "signoria")
FIXTURES = Path(__file__).parent / "fixtures"


def signoria(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIGNORIA, *args], capture_output=True, text=True, timeout=600)


def eval_args(db: str, run_id: str, *extra: str) -> list[str]:
    return [
        "eval",
        "run",
        "--benchmark",
        "gsm8k",
        "--data",
        str(FIXTURES / "gsm8k.jsonl"),
        "-c",
        str(TEST_CONFIG),
        "-p",
        "fast",
        "--db",
        db,
        "--run-id",
        run_id,
        *extra,
    ]


def test_sigkill_mid_run_then_resume_stores_every_item_exactly_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    proc = subprocess.Popen(
        [SIGNORIA, *eval_args(db, "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = Store.open(db)
    try:
        # Poll the real database until some, not all, items are in. The bound is generous:
        # on a loaded machine the first items (model load included) can take minutes.
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline and proc.poll() is None:
            if store.get_run("killed") is not None and store.count_items("killed") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        partial = store.count_items("killed")
        assert 3 <= partial < 8
        assert store.require_run("killed").status == "running"

        done = signoria(*eval_args(db, "killed", "--json"))
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout)["outcome"]
        assert outcome["skipped"] == partial and outcome["completed"] == 8 - partial
        items = store.items("killed")
        assert len(items) == 8 and len({i.item_key for i in items}) == 8
        assert [i.position for i in items] == list(range(8))
        assert all(len(i.calls) == 1 and len(i.scores) == 1 for i in items)
        assert store.require_run("killed").status == "complete"
        assert store.metrics("killed")["n"] == 8
    finally:
        store.close()
        if proc.poll() is None:
            proc.kill()


def test_report_compare_and_export(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    first = signoria(*eval_args(db, "a", "--limit", "3"))
    assert first.returncode == 0, first.stderr
    second = signoria(
        "eval",
        "run",
        "--benchmark",
        "mmlu",
        "--data",
        str(FIXTURES / "mmlu.jsonl"),
        "-c",
        str(TEST_CONFIG),
        "-p",
        "pair",
        "--limit",
        "2",
        "--db",
        db,
        "--run-id",
        "b",
        "--concurrency",
        "2",
    )
    assert second.returncode == 0, second.stderr

    report = signoria("eval", "report", "a", "--db", db, "--out", str(tmp_path / "rep"), "--json")
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)["summary"]
    assert summary["n"] == 3 and summary["call_share"] == {"smollm2-135m": 1.0}
    low, high = summary["accuracy_ci95"]
    assert 0.0 <= low <= summary["accuracy"] <= high <= 1.0
    assert summary["cost"] == 0.0 and summary["latency_s"]["p50"] > 0
    for name in ("summary.json", "summary.md", "accuracy_vs_cost.png", "call_share.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert (tmp_path / "rep" / "call_share.png").read_bytes()[:4] == b"\x89PNG"
    assert "95% Wilson CI" in (tmp_path / "rep" / "summary.md").read_text()

    compare = signoria("eval", "compare", "a", "b", "--db", db, "--json")
    assert compare.returncode == 0, compare.stderr
    runs = json.loads(compare.stdout)["runs"]
    assert [(r["run"], r["benchmark"]) for r in runs] == [("a", "gsm8k"), ("b", "mmlu")]
    # Different items: nothing to pair, and the paired view says so rather than guessing.
    [pair] = json.loads(compare.stdout)["paired"]
    assert (pair["baseline"], pair["run"], pair["n"], pair["difference"]) == ("a", "b", 0, None)
    assert runs[1]["call_share"] == {"smollm2-135m": 0.5, "qwen2.5-coder-0.5b": 0.5}

    listed = signoria("runs", "list", "--db", db, "--json")
    assert listed.returncode == 0, listed.stderr
    by_id = {r["run"]["id"]: r for r in json.loads(listed.stdout)["runs"]}
    assert by_id["a"]["items"] == 3 and by_id["a"]["run"]["status"] == "complete"
    assert by_id["a"]["accuracy"] == summary["accuracy"] and by_id["a"]["cost"] == 0.0
    table_view = signoria("runs", "list", "--db", db)
    assert table_view.returncode == 0 and "gsm8k" in table_view.stdout

    table = tmp_path / "outcomes.jsonl"
    models = tmp_path / "models.json"
    exported = signoria(
        "eval",
        "export",
        "b",
        "--outcomes",
        str(table),
        "--models",
        str(models),
        "-c",
        str(TEST_CONFIG),
        "--db",
        db,
    )
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {"id", "task", "query", "reference", "outcomes"}
        assert set(row["outcomes"]) == {"smollm2-135m", "qwen2.5-coder-0.5b"}
        for outcome in row["outcomes"].values():
            assert outcome["score"] in (0.0, 1.0) and outcome["cost"] == 0.0
            assert outcome["response"]
    assert json.loads(models.read_text())["smollm2-135m"]["input_price"] == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["eval", "run", "--benchmark", "hellaswag", "--data", str(FIXTURES / "gsm8k.jsonl")],
            "error: Invalid value for '--benchmark': 'hellaswag' is not one of",
        ),
        (
            ["eval", "run", "--benchmark", "gsm8k", "--data", "/nonexistent.jsonl"],
            "error: data file not found",
        ),
        (
            [
                "eval",
                "run",
                "--benchmark",
                "gsm8k",
                "--data",
                str(FIXTURES / "gsm8k.jsonl"),
                "-c",
                str(TEST_CONFIG),
                "-p",
                "nope",
            ],
            "error: unknown pipeline 'nope'",
        ),
        (["eval", "report", "ghost"], "error: no run 'ghost'"),
        (
            [
                "eval",
                "run",
                "--benchmark",
                "gsm8k",
                "--data",
                str(FIXTURES / "gsm8k.jsonl"),
                "--db",
                "nosuchdialect://x",
            ],
            "error: cannot open database",
        ),
    ],
)
def test_eval_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    env_db = ["--db", f"sqlite:///{tmp_path / 'x.db'}"] if "--db" not in args else []
    done = signoria(*args, *env_db)
    # a value that is wrong as configuration (a choice, a database URL) exits with 2
    configuration = "is not one of" in message or "cannot open database" in message
    assert done.returncode == (2 if configuration else 1)
    assert done.stderr.strip().splitlines()[-1].startswith(message), done.stderr


def test_resuming_with_another_pipeline_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    assert signoria(*eval_args(db, "r", "--limit", "1")).returncode == 0
    other = signoria(
        "eval",
        "run",
        "--benchmark",
        "gsm8k",
        "--data",
        str(FIXTURES / "gsm8k.jsonl"),
        "-c",
        str(TEST_CONFIG),
        "-p",
        "pair",
        "--db",
        db,
        "--run-id",
        "r",
        "--limit",
        "1",
    )
    assert other.returncode == 1
    assert "exists with pipeline 'fast'" in other.stderr


def test_wilson_interval_matches_hand_computed_values() -> None:
    low, high = wilson_interval(8, 10)  # p = 0.8, n = 10
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 4) == (0.0, pytest.approx(0.4899, abs=1e-4))


def _item(key: str, right: bool | None, latency_s: float) -> ItemRecord:
    scores = (
        () if right is None else (ScoreRecord(metric="exact", value=float(right), extracted=None),)
    )
    return ItemRecord(
        item_key=key, position=None, query="q", reference="1", answer="1", error=None,
        cost=0.0, latency_s=latency_s, calls=(), routing=(), aggregations=(), scores=scores,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("only_a", "only_b", "p"), [(0, 0, 1.0), (0, 5, 0.0625), (2, 8, 0.109375), (10, 10, 1.0)]
)
def test_mcnemar_exact_p(only_a: int, only_b: int, p: float) -> None:
    assert mcnemar_p(only_a, only_b) == pytest.approx(p)


def test_paired_compares_only_the_items_both_runs_scored() -> None:
    """A run still in progress is compared on what it has done: items the other run lacks,
    or that one of them did not score, are left out of both sides."""
    base = [
        _item("a", True, 1.0),
        _item("b", False, 1.0),
        _item("c", False, 2.0),
        _item("x", True, 9),
    ]
    run = [
        _item("a", True, 2.0),
        _item("b", True, 3.0),
        _item("c", False, 4.0),
        _item("d", True, 1),
    ]
    pair = paired(base, [*run, _item("e", None, 1.0)])
    assert (pair["n"], pair["both_right"], pair["only_run"], pair["only_baseline"]) == (3, 1, 1, 0)
    assert pair["neither"] == 1 and pair["mcnemar_p"] == 1.0
    assert pair["difference"] == pytest.approx(1 / 3)
    assert pair["latency_ratio_mean"] == pytest.approx(9.0 / 4.0)
    assert pair["latency_ratio_p50"] == pytest.approx(3.0 / 1.0)
