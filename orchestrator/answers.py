"""Final-answer extraction from free text: numbers, multiple-choice letters, short text.

Shared by voting aggregators and the benchmark scorers so that "the same answer" means
the same thing everywhere. Conventions follow common eval harnesses: the last number
for arithmetic (preferring an explicit `#### n` or "answer is n"), the stated letter
for multiple choice.
"""

from __future__ import annotations

import math
import re
import string
from typing import Literal

AnswerKind = Literal["auto", "number", "letter", "text"]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
# Checked in this order: an explicit GSM8K-style "#### n", then "the answer is n".
_MARKED_NUMBERS = (
    re.compile(rf"####\s*\$?\s*({_NUMBER})"),
    re.compile(rf"answer\s*(?:is|:)\s*\$?\s*\**\s*\$?({_NUMBER})", re.IGNORECASE),
)
_ANY_NUMBER = re.compile(_NUMBER)
# Lower-case letters count only in "c)" form: "the answer is a number" names no option.
_MARKED_LETTER = re.compile(
    r"(?i:answer|option|choice)\s*(?i:is|:)?\s*\(?\**\s*([A-D]|[a-d](?=\)))\b(?![A-Za-z])"
)
_LEADING_LETTER = re.compile(r"^\s*\(?([A-D])[\).:](?:\s|$)")
_LONE_LETTER = re.compile(r"(?:^|[\s(\[*])([A-D])(?:[\s)\].,:*]|$)")
_OPTIONS_IN_QUERY = re.compile(r"(?:^|\n)\s*\(?[A-D][\).:]\s", re.MULTILINE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _clean_number(raw: str) -> str:
    value = raw.replace(",", "").rstrip(".")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return "0" if value in {"-0", ""} else value


def extract_number(text: str) -> str | None:
    for pattern in _MARKED_NUMBERS:
        marked = pattern.findall(text)
        if marked:
            return _clean_number(marked[-1])
    found = _ANY_NUMBER.findall(text)
    return _clean_number(found[-1]) if found else None


def extract_letter(text: str) -> str | None:
    for pattern in (_MARKED_LETTER, _LEADING_LETTER):
        found = pattern.findall(text)
        if found:
            return str(found[-1]).upper() if pattern is _MARKED_LETTER else str(found[0]).upper()
    lone = _LONE_LETTER.findall(text)
    return str(lone[-1]).upper() if lone else None


def normalise_text(text: str) -> str | None:
    lowered = text.lower().translate(str.maketrans("", "", string.punctuation))
    collapsed = " ".join(_ARTICLES.sub(" ", lowered).split())
    return collapsed or None


_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[).:]\s", re.MULTILINE)


def option_letters(query: str, default: str = "ABCD") -> str:
    """The option letters a prompt offers ("A) ...", "B. ...", "(C) ..." line starts).

    What a lie must choose from (a "C" on a two-option item is no lie a reader would
    believe) and what sets the chance level of a multiple-choice vote.
    """
    found = sorted(set(_OPTION_LINE.findall(query)))
    return "".join(found) if len(found) >= 2 else default


def infer_kind(query: str) -> AnswerKind:
    if len(_OPTIONS_IN_QUERY.findall(query)) >= 2:
        return "letter"
    if re.search(r"\d", query):
        return "number"
    return "text"


def extract_answer(text: str, kind: AnswerKind, query: str = "") -> str | None:
    """The comparable answer in `text`, or `None` when it states none."""
    if kind == "auto":
        kind = infer_kind(query)
    if kind == "number":
        return extract_number(text)
    if kind == "letter":
        return extract_letter(text)
    return normalise_text(text)


# Phrases that try to steer whoever reads the text next (an LLM aggregator, a judge)
# rather than answer the question. Voting aggregators flag such answers so the trace
# shows the attempt; the answer still counts as exactly one ballot.
_INJECTION = re.compile(
    r"ignore\s+(?:all\s+)?(?:the\s+|any\s+)?(?:previous|prior|above)\s+instructions"
    r"|ignore\s+all\s+previous"
    r"|disregard\s+(?:all\s+)?(?:of\s+)?the\s+above"
    r"|system\s+prompt"
    r"|you\s+are\s+now\b",
    re.IGNORECASE,
)


def looks_injected(text: str) -> bool:
    """Whether `text` contains a prompt-injection phrase ("ignore previous instructions",
    "disregard the above", "system prompt", "you are now", ...)."""
    return _INJECTION.search(text) is not None


_REFERENCE_LETTERS = "ABCDEFGHIJ"


def reference_kind(reference: str | None) -> AnswerKind:
    """How answers are compared with a reference: a lone option letter, a number, or text."""
    if reference is None:
        return "text"
    if len(reference.strip()) == 1 and reference.strip().upper() in _REFERENCE_LETTERS:
        return "letter"
    if extract_number(reference) == reference.strip().replace(",", ""):
        return "number"
    return "text"


def same_answer(extracted: str, reference: str, kind: AnswerKind) -> bool:
    """Whether an extracted answer is the reference: numbers within rounding, letters by
    letter, text once normalised (the exact match of QA harnesses)."""
    if kind == "number":
        try:
            return math.isclose(float(extracted), float(reference), rel_tol=1e-6, abs_tol=1e-9)
        except ValueError:
            return False
    if kind == "letter":
        return extracted == reference.strip().upper()
    return extracted == normalise_text(reference)
