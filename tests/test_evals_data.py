"""Loaders and scoring on fixtures cut from the shared development data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signoria.evals.datasets import DatasetError, EvalItem, load_items
from signoria.evals.scoring import score

FIXTURES = Path(__file__).parent / "fixtures"


def test_gsm8k_items_have_numeric_references_and_stable_keys() -> None:
    items = load_items("gsm8k", FIXTURES / "gsm8k.jsonl")
    assert items[0].reference == "72" and items[0].kind == "number"
    assert "#### <number>" in items[0].prompt
    assert [i.key for i in items] == [i.key for i in load_items("gsm8k", FIXTURES / "gsm8k.jsonl")]
    assert len(load_items("gsm8k", FIXTURES / "gsm8k.jsonl", limit=2)) == 2


def test_mmlu_items_list_lettered_options() -> None:
    [first, *_] = load_items("mmlu", FIXTURES / "mmlu.jsonl")
    assert first.kind == "letter" and first.reference in {"A", "B", "C", "D"}
    assert "\nA. " in first.prompt and "\nD. " in first.prompt


def test_outcome_tables_infer_the_answer_kind() -> None:
    items = load_items("outcomes", FIXTURES / "routerbench.jsonl")
    assert {i.kind for i in items} <= {"letter", "text"}
    assert items[0].key == json.loads((FIXTURES / "routerbench.jsonl").open().readline())["id"]


@pytest.mark.parametrize(
    ("kind", "reference", "text", "expected"),
    [
        ("number", "72", "48 + 24 = 72\n#### 72", 1.0),
        ("number", "72", "The answer is 72.0", 1.0),
        ("number", "1200", "She pays $1,200 in total.", 1.0),
        ("number", "72", "#### 71", 0.0),
        ("number", "72", "I cannot tell", 0.0),
        ("letter", "B", "The answer is (B).", 1.0),
        ("letter", "B", "A. because ...", 0.0),
        ("text", "Paris", "paris.", 1.0),
    ],
)
def test_scoring_on_tricky_outputs(kind: str, reference: str, text: str, expected: float) -> None:
    item = EvalItem(
        key="k",
        task="t",
        prompt="p",
        reference=reference,
        kind=kind,  # type: ignore[arg-type]
        question="q",
    )
    assert score(item, text)[0] == expected


def test_bad_files_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "answer": "#### 1"}\nnot json\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not valid JSON"):
        load_items("gsm8k", bad)
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: not a mmlu row"):
        load_items("mmlu", bad)
    with pytest.raises(DatasetError, match="data file not found"):
        load_items("gsm8k", tmp_path / "absent.jsonl")
    with pytest.raises(DatasetError, match="unknown benchmark 'hellaswag'"):
        load_items("hellaswag", bad)
