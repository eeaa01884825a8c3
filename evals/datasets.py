"""Benchmark loaders: GSM8K, MMLU and routing-outcome tables into one item shape.

Prompts follow common harness conventions: zero-shot chain of thought ending in
`#### <number>` for GSM8K, the lettered-options question for MMLU. Item keys are stable
across runs of the same file (position plus a hash of the question), which is what lets
a killed run resume exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from signoria.agents.jsonl import read_jsonl
from signoria.errors import SignoriaError
from signoria.orchestrator.answers import AnswerKind, extract_number, reference_kind

Benchmark = Literal["gsm8k", "mmlu", "outcomes"]
LETTERS = "ABCDEFGHIJ"


class DatasetError(SignoriaError):
    pass


class EvalItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    task: str
    prompt: str
    reference: str | None
    kind: AnswerKind
    question: str
    # Completion tokens per call that the item's prompt needs (None: the pipeline's own
    # default); asked of the pipeline like a client's max_tokens, so its cap still holds.
    max_tokens: int | None = None


def _key(task: str, index: int, text: str) -> str:
    return f"{task}-{index:05d}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


# What each benchmark prompt needs so that the greedy baseline states its answer before
# the limit: chain of thought on GSM8K, a worked choice on MMLU. Measured with the
# runner's greedy Qwen2.5-Coder-1.5B (docs/benchmarks.md, "Token limits of the benchmark
# prompts"): 192 cut most MMLU answers before a letter, 512 still cut 3 of 20 on each set
# (worked answers of 520+ tokens, not loops); 1024 leaves room for the longest.
PROMPT_MAX_TOKENS: dict[str, int] = {"gsm8k": 1024, "mmlu": 1024}

GSM8K_PROMPT = (
    "Solve the following math problem step by step. "
    "On the last line, write the final answer as '#### <number>'.\n\n{question}"
)
MMLU_PROMPT = (
    "The following is a multiple choice question about {subject}.\n\n{question}\n{options}\n"
    # No example letter here: with "e.g. 'The answer is (B)'" the Self-MoA aggregator
    # answered B on 27 of 44 items (25% of references are B); see docs/benchmarks.md.
    "Answer with the letter of the correct option (A, B, C or D)."
)


def gsm8k_item(index: int, row: dict[str, Any]) -> EvalItem:
    question = str(row["question"])
    reference = extract_number(str(row["answer"]).split("####")[-1])
    return EvalItem(
        key=_key("gsm8k", index, question),
        task="gsm8k",
        prompt=GSM8K_PROMPT.format(question=question),
        reference=reference,
        kind="number",
        question=question,
        max_tokens=PROMPT_MAX_TOKENS["gsm8k"],
    )


def mmlu_item(index: int, row: dict[str, Any]) -> EvalItem:
    question = str(row["question"])
    choices = list(row["choices"])
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    subject = str(row.get("subject", "general knowledge")).replace("_", " ")
    answer = row["answer"]
    reference = LETTERS[answer] if isinstance(answer, int) else str(answer).strip().upper()
    return EvalItem(
        key=_key("mmlu", index, question + options),
        task=f"mmlu/{row.get('subject', 'unknown')}",
        prompt=MMLU_PROMPT.format(subject=subject, question=question, options=options),
        reference=reference,
        kind="letter",
        question=question,
        max_tokens=PROMPT_MAX_TOKENS["mmlu"],
    )


def answer_kind(benchmark: str | None, reference: str | None) -> AnswerKind:
    """How answers of a stored run are compared, from its benchmark and reference."""
    if benchmark == "gsm8k":
        return "number"
    if benchmark == "mmlu":
        return "letter"
    return reference_kind(reference)


def outcome_item(index: int, row: dict[str, Any]) -> EvalItem:
    query = str(row["query"])
    reference = None if row.get("reference") is None else str(row["reference"])
    return EvalItem(
        key=str(row.get("id") or _key("outcomes", index, query)),
        task=str(row.get("task", "outcomes")),
        prompt=query,
        reference=reference,
        kind=reference_kind(reference),
        question=query,
    )


LOADERS: dict[str, Callable[[int, dict[str, Any]], EvalItem]] = {
    "gsm8k": gsm8k_item,
    "mmlu": mmlu_item,
    "outcomes": outcome_item,
}


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return read_jsonl(path, error=DatasetError)


def load_items(benchmark: str, path: Path, limit: int | None = None) -> list[EvalItem]:
    """The first `limit` items of a JSONL file; a malformed row names its line."""
    if benchmark not in LOADERS:
        raise DatasetError(f"unknown benchmark {benchmark!r} (known: {', '.join(LOADERS)})")
    make = LOADERS[benchmark]
    items: list[EvalItem] = []
    for index, (line_no, row) in enumerate(_rows(path)):
        if limit is not None and index >= limit:
            break
        try:
            items.append(make(index, row))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{path}:{line_no}: not a {benchmark} row ({type(exc).__name__}: {exc})"
            ) from None
    if not items:
        raise DatasetError(f"{path}: no items")
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        raise DatasetError(f"{path}: item keys are not unique")
    return items
