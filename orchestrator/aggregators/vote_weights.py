"""Vote weights learned from outcomes, per expert and per task, for `learned-vote`.

Why these weights. For independent voters of accuracy p choosing among k options, the
vote most likely to be right weighs each ballot by the log-odds of its accuracy against
chance, w = log(p (k-1) / (1-p)) (Nitzan & Paroush 1982; k = 2 gives log(p / (1-p))).
Real experts are not independent: weaker models tend to make the same mistakes, so their
summed log-odds overstate the evidence against a strong expert, and a Nitzan-Paroush vote
of RouterBench's five best models loses to GPT-4 alone. One exponent per task, the
`sharpness` s (w ** s), corrects for that: s = 0 is a plain majority, s = 1 is
Nitzan-Paroush, a large s follows the strongest expert unless the others agree against
it. s is chosen by cross-validation on the training rows, for the full set of experts
and for each set of all but one (who is left changes the best exponent); the accuracies
are then counted on all training rows.

The file also records, per expert and task, how often an honest expert agreed with the
Nitzan-Paroush (unsharpened) majority of the others on the training rows (`agreement`),
and how often that majority was right (`others_accuracy`), with everyone and with each
other expert missing: what `learned-vote`'s trust test compares live behaviour with.

File (JSON, written by `signoria aggregator fit`):
    {"format": "signoria.vote-weights/1", "answer": "letter", "experts": [...],
     "fitted_on": {...}, "tasks": {"*": {...}, "arc-challenge": {"signature": [...],
     "sharpness": 6.0, "experts": {MODEL: {"accuracy", "n", "agreement", "others_accuracy"}}}}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from signoria.errors import SignoriaError
from signoria.orchestrator.answers import AnswerKind, extract_answer, option_letters

FORMAT: Literal["signoria.vote-weights/1"] = "signoria.vote-weights/1"
POOLED = "*"  # the weights of all training rows together: for a query of no known task
SHARPNESS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
MIN_TASK_ROWS = 30  # fewer rows than this: the task uses the pooled weights
CORRECT = 0.5  # a recorded score at or above this is a right answer
# The weight of a ballot that earns nothing (no better than chance, mostly distrusted):
# small but not zero, so that among such ballots the vote is still a plain majority.
# (learned-vote leaves unknown and exposed experts out of the vote altogether.)
FLOOR = 0.05
# Resting trust of a known expert: the most a trust test can end at, and what the
# weights are fitted with, so an honest expert at rest votes exactly as fitted.
TRUST_CAP = 0.99
# The trust test compares an expert with the others' Nitzan-Paroush (unsharpened) vote:
# a sharpened one is whatever its strongest member says, and when that member lies, the
# honest ones would look like liars for agreeing with each other.
TEST_SHARPNESS = 1.0
_CLIP = 0.01  # rates are kept in [0.01, 0.99]: no single item is infinitely telling


class VoteWeightsError(SignoriaError):
    pass


class ExpertStats(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    accuracy: float  # Laplace-smoothed share of right answers
    n: int
    agreement: float | None = None  # P(agrees with the others' weighted majority)
    others_accuracy: float | None = None  # P(the others' weighted majority is right)
    # (agreement, others_accuracy) when that other expert does not vote: who is left
    # changes how often an honest expert agrees with them.
    without: dict[str, tuple[float, float]] = {}


class TaskWeights(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Lines every training query of the task carries and no other task's does (its
    # prompt template): how a live query is recognised as this task.
    signature: tuple[str, ...] = ()
    sharpness: float
    # The sharpness fitted for the others when one expert does not vote (absent, or
    # distrusted): the best exponent depends on who is left.
    without: dict[str, float] = {}
    cv_accuracy: float | None = None  # the chosen sharpness, cross-validated
    experts: dict[str, ExpertStats]


class VoteWeights(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["signoria.vote-weights/1"] = FORMAT
    answer: AnswerKind
    experts: tuple[str, ...]  # the experts fitted together, strongest first
    fitted_on: dict[str, Any] = {}
    tasks: dict[str, TaskWeights]

    def task_of(self, query: str) -> str:
        """The task whose prompt template the query carries, else the pooled weights."""
        lines = {line.strip() for line in query.splitlines()}
        for name, task in self.tasks.items():
            if task.signature and all(s in lines for s in task.signature):
                return name
        return POOLED

    def stats(self, task: str, expert: str) -> ExpertStats | None:
        known = self.tasks.get(task, self.tasks[POOLED]).experts
        return known.get(expert) or self.tasks[POOLED].experts.get(expert)

    def sharpness(self, task: str, missing: Sequence[str] = ()) -> float:
        """The task's sharpness for a vote without the `missing` fitted experts: fitted
        for the full set and for each set of all but one (more missing: the full set's)."""
        weights = self.tasks.get(task, self.tasks[POOLED])
        if len(missing) == 1 and missing[0] in weights.without:
            return weights.without[missing[0]]
        return weights.sharpness

    def weight(self, task: str, expert: str, options: int, trust: float, sharpness: float) -> float:
        stats = self.stats(task, expert)
        if stats is None:
            return FLOOR
        return ballot_weight(stats.accuracy, options, sharpness, trust)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> VoteWeights:
        try:
            weights = cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise VoteWeightsError(
                f"vote weights not found: {path} (fit them: signoria aggregator fit)"
            ) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise VoteWeightsError(f"{path}: not vote weights ({where}: {err['msg']})") from None
        if POOLED not in weights.tasks:
            raise VoteWeightsError(f"{path}: no pooled ({POOLED!r}) weights")
        return weights


def options_of(query: str) -> int:
    """k of the chance level 1/k: the options the query offers; 2 (plain log-odds) when
    it offers none, e.g. a number or free text."""
    return len(option_letters(query, default="AB"))


def _clip(rate: float) -> float:
    return min(1.0 - _CLIP, max(_CLIP, rate))


def ballot_weight(accuracy: float, options: int, sharpness: float, trust: float) -> float:
    """(log-odds of trust * accuracy against chance) ** sharpness, at least FLOOR.

    A liar's ballot is always wrong, so an expert honest with probability `trust` is
    right with probability trust * accuracy; at or below chance it earns no weight.
    """
    p = min(1.0 - 1e-6, trust * accuracy)
    evidence = math.log(p * (options - 1) / (1.0 - p)) if p > 0 else 0.0
    return max(FLOOR, evidence**sharpness) if evidence > 0 else FLOOR


def trust_evidence(
    stats: ExpertStats, options: int, agreed: bool, missing: Sequence[str] = ()
) -> float:
    """Log-likelihood ratio, honest against lying, of one agreement or disagreement with
    the weighted majority of the others. Honest: agrees as often as on the training rows.
    Lying (always a wrong option, any of the k-1): agrees only when that majority is
    wrong and picked the same option. 0 when the two cannot be told apart. With one of
    the others `missing`, the rates fitted without it."""
    rates = (stats.agreement, stats.others_accuracy)
    if len(missing) == 1 and missing[0] in stats.without:
        rates = stats.without[missing[0]]
    if rates[0] is None or rates[1] is None:
        return 0.0
    honest = _clip(rates[0])
    liar = _clip((1.0 - rates[1]) / max(1, options - 1))
    if honest <= liar:
        return 0.0
    return math.log(honest / liar) if agreed else math.log((1.0 - honest) / (1.0 - liar))


@dataclass(frozen=True)
class Example:
    """One training row: each expert's ballot and whether the table scored it right."""

    key: str
    task: str
    query: str
    answer: str | None  # the reference, extracted like a ballot
    ballots: tuple[str | None, ...]  # in expert order
    correct: tuple[bool, ...]


def examples(
    rows: Sequence[Mapping[str, Any]], experts: Sequence[str], kind: AnswerKind
) -> list[Example]:
    """Rows on which every expert has a recorded response."""
    found = []
    for row in rows:
        outcomes = [(row.get("outcomes") or {}).get(m) or {} for m in experts]
        if any(o.get("response") is None for o in outcomes):
            continue
        query = str(row["query"])
        reference = row.get("reference")
        found.append(
            Example(
                key=str(row["id"]),
                task=str(row.get("task") or POOLED),
                query=query,
                answer=None if reference is None else extract_answer(str(reference), kind, query),
                ballots=tuple(extract_answer(str(o["response"]), kind, query) for o in outcomes),
                correct=tuple(float(o.get("score") or 0.0) >= CORRECT for o in outcomes),
            )
        )
    return found


def strongest_experts(rows: Sequence[Mapping[str, Any]], k: int) -> list[str]:
    """The k models with the best mean recorded score over `rows` (ties by name)."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        for model, outcome in (row.get("outcomes") or {}).items():
            if outcome.get("response") is not None:
                totals.setdefault(model, []).append(float(outcome.get("score") or 0.0))
    ranked = sorted(totals, key=lambda m: (-sum(totals[m]) / len(totals[m]), m))
    if len(ranked) < k:
        raise VoteWeightsError(f"the rows have {len(ranked)} models with answers, fewer than {k}")
    return ranked[:k]
