"""Router-R1 through the rest of the product: a pipeline whose router asks no expert and
whose aggregator makes every call itself, served by a real `signoria serve` on 127.0.0.1
to the official `openai` client, and evaluated, batched by expert and exported by the real
`signoria eval` commands over a recorded outcome table.

The policy is scripted (it writes exactly the turns a test needs); the served experts are
scripted, the evaluated ones replay the table and find a question the policy wrote anew.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI

from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.browse import served_request
from tests.server_process import SIGNORIA, running_server
from tests.test_router_r1_loop import QUESTION, answer, config, route

SECOND = "Which planet is closest to the sun? A) Mercury B) Venus"


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_served_to_the_openai_client_and_recorded_with_its_turns(tmp_path: Path) -> None:
    turns = [route("strong"), answer("B"), route("cheap", SECOND), answer("A")]
    cfg = write_config(tmp_path / "r1.yaml", config(turns))
    db = f"sqlite:///{tmp_path / 'served.db'}"
    with running_server("--config", str(cfg), "--db", db, log=tmp_path / "serve.log") as server:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
        models = {m.id: (m.model_extra or {})["signoria"]["kind"] for m in client.models.list()}
        assert models["signoria/r1"] == "pipeline"
        assert {models[name] for name in ("cheap", "strong", "policy")} == {"expert"}

        done = client.chat.completions.create(
            model="signoria/r1", messages=[{"role": "user", "content": QUESTION}]
        )
        assert done.choices[0].message.content == "B"
        assert done.choices[0].finish_reason == "stop"
        trace = (done.model_extra or {})["signoria"]
        assert trace["routing"]["router"] == "none" and trace["routing"]["assignments"] == []
        calls = [(c["expert"], c["role"], c["slot"], c["error"]) for c in trace["calls"]]
        assert calls == [
            ("policy", "aggregator", None, None),
            ("strong", "expert", 0, None),
            ("policy", "aggregator", None, None),
        ]
        served = trace["aggregation"]
        assert served["aggregator"] == "router-r1" and served["chosen"] == [0]
        assert [(t["action"], t["expert"], t["query"]) for t in served["turns"]] == [
            ("route", "strong", QUESTION),
            ("answer", None, None),
        ]
        assert served["turns"][0]["reply"] == "<information> B </information>"
        assert done.usage is not None and done.usage.total_tokens > 0

        # Streamed: the answer exists whole once the policy wrote it; the trace comes last.
        stream = client.chat.completions.create(
            model="signoria/r1", messages=[{"role": "user", "content": SECOND}], stream=True
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "A"
        last = (chunks[-1].model_extra or {})["signoria"]["aggregation"]
        assert [t["expert"] for t in last["turns"]] == ["cheap", None]

        # The console's page of the request shows the turns from the stored record.
        page = httpx.get(f"{server.base_url}/console/requests/{done.id}")
        assert page.status_code == 200 and '<table id="turns">' in page.text
        assert "&lt;information&gt; B &lt;/information&gt;" in page.text

    store = Store.open(db)
    try:
        record = served_request(store, done.id)
        streamed = served_request(store, chunks[0].id)
    finally:
        store.close()
    assert record is not None and streamed is not None
    assert (record.answer, record.pipeline, record.error) == ("B", "r1", None)
    assert [(c.expert, c.role, c.error) for c in record.calls] == [
        (e, r, x) for e, r, _, x in calls
    ]
    assert record.routing[0].experts == []
    [aggregation] = record.aggregations
    assert [t.model_dump(mode="json") for t in aggregation.turns] == served["turns"]
    assert [(i.position, i.outcome, i.call_position) for i in aggregation.inputs] == [
        (0, "chosen", 1)
    ]
    assert streamed.answer == "A" and streamed.aggregations[0].turns[0].expert == "cheap"


# A recorded table the policy's experts replay: each question asked anew finds its row.
TABLE = [
    {
        "id": "plants",
        "task": "science",
        "query": "Which gas do plants take in from the air?\nA) oxygen\nB) carbon dioxide\nAnswer:",
        "reference": "B",
        "outcomes": {
            "cheap": {"score": 0.0, "cost": 0.001, "response": "A"},
            "strong": {"score": 1.0, "cost": 0.01, "response": "B"},
        },
    },
    {
        "id": "planets",
        "task": "science",
        "query": "Which planet is closest to the sun?\nA) Mercury\nB) Venus\nAnswer:",
        "reference": "A",
        "outcomes": {
            "cheap": {"score": 1.0, "cost": 0.001, "response": "A"},
            "strong": {"score": 1.0, "cost": 0.01, "response": "A"},
        },
    },
]
# The policy's turns, item after item (the runner answers them in order at concurrency 1):
# a question written anew for the first, the item's own question for the second.
POLICY = [
    route("strong", "Which gas do the plants take in from the air: oxygen or carbon dioxide?"),
    answer("B"),
    route("cheap", str(TABLE[1]["query"])),
    answer("A"),
]


@pytest.fixture
def replayed(tmp_path: Path) -> tuple[Path, Path]:
    """(the outcome table, a config whose router-r1 experts replay it)."""
    table = tmp_path / "table.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in TABLE))
    raw = config(POLICY)
    for name in ("cheap", "strong"):
        raw["models"][name] = {"backend": "replay", "table": str(table), "match": "question"}
    return table, write_config(tmp_path / "r1.yaml", raw)


def signoria(*args: str) -> str:
    done = subprocess.run([SIGNORIA, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("executor", ["asyncio", "by-expert"])
def test_eval_run_over_an_outcome_table(
    replayed: tuple[Path, Path], tmp_path: Path, executor: str
) -> None:
    table, cfg = replayed
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = ["eval", "run", "--benchmark", "outcomes", "--data", str(table), "-c", str(cfg)]
    reply = json.loads(
        signoria(*run, "-p", "r1", "--db", db, "--run-id", "r1", "--executor", executor,
                 "--concurrency", "1", "--json")
    )  # fmt: skip
    assert reply["outcome"]["completed"] == 2 and reply["outcome"]["failed"] == 0
    summary = reply["summary"]
    assert summary["accuracy"] == 1.0 and summary["cost"] == pytest.approx(0.011)
    assert summary["calls"] == 6

    store = Store.open(db)
    try:
        plants, planets = store.items("r1")
    finally:
        store.close()
    assert [(c.expert, c.role, c.text) for c in plants.calls] == [
        ("policy", "aggregator", POLICY[0]),
        ("strong", "expert", "B"),
        ("policy", "aggregator", POLICY[1]),
    ]
    assert plants.answer == "B" and plants.scores[0].value == 1.0
    assert plants.routing[0].experts == []
    [turn, _] = plants.aggregations[0].turns
    assert (turn.expert, turn.slot, turn.reply) == ("strong", 0, "<information> B </information>")
    assert planets.answer == "A" and planets.aggregations[0].turns[0].expert == "cheap"

    # An outcome row holds what a model answered to the item's own question: strong
    # answered a question the policy wrote for the first item, not the item.
    out = tmp_path / "exported.jsonl"
    assert "1 rows written" in signoria("eval", "export", "r1", "--outcomes", str(out), "--db", db)
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["id"] == "planets"
    assert row["outcomes"] == {"cheap": {"score": 1.0, "cost": 0.001, "response": "A"}}
