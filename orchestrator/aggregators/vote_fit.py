"""Fitting `learned-vote` weights on the training side of an outcome table.

Per task (and pooled over all rows): the sharpness is chosen by cross-validation over
folds of the training rows (carved by a hash of (seed, id)), each fold scored with
accuracies counted on the others; the accuracies are then counted on all training rows,
and with the chosen weights, each expert's agreement with the weighted majority of the
others. Nothing here sees a test
row: the caller hands in the training side only (`fit_command` carves it itself).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from signoria.agents.backends.replay import OutcomeTable
from signoria.orchestrator.aggregators._voting import tally
from signoria.orchestrator.aggregators.vote_weights import (
    MIN_TASK_ROWS,
    POOLED,
    SHARPNESS,
    TEST_SHARPNESS,
    TRUST_CAP,
    Example,
    ExpertStats,
    TaskWeights,
    VoteWeights,
    VoteWeightsError,
    ballot_weight,
    examples,
    options_of,
    strongest_experts,
)
from signoria.orchestrator.answers import AnswerKind, extract_answer
from signoria.routers.data import in_test_split, split_point

# A line is part of a task's prompt template when at least this share of its queries
# carry it (and no query of another task does).
SIGNATURE_SHARE = 0.95


def _accuracy(exs: Sequence[Example], i: int) -> float:
    return (sum(e.correct[i] for e in exs) + 1) / (len(exs) + 2)


def _winner(example: Example, weights: Sequence[float], seats: Sequence[int]) -> str | None:
    ballots = {i: example.ballots[i] for i in seats}
    return tally(ballots, {i: weights[i] for i in seats}).winner


def _weights(example: Example, accuracy: Sequence[float], sharpness: float) -> list[float]:
    k = options_of(example.query)
    return [ballot_weight(p, k, sharpness, TRUST_CAP) for p in accuracy]


def vote_accuracy(
    exs: Sequence[Example], accuracy: Sequence[float], sharpness: float, absent: int | None = None
) -> float:
    """Share of `exs` the weighted vote gets right (with seat `absent` left empty)."""
    scored = [e for e in exs if e.answer is not None]
    if not scored:
        return 0.0
    seats = [i for i in range(len(accuracy)) if i != absent]
    right = sum(_winner(e, _weights(e, accuracy, sharpness), seats) == e.answer for e in scored)
    return right / len(scored)


def choose_sharpness(
    folds: Sequence[tuple[Sequence[Example], Sequence[Example]]], n: int, absent: int | None = None
) -> tuple[float, float]:
    """The sharpness with the best cross-validated accuracy (with seat `absent` empty):
    each fold's accuracies are counted on the other folds. For the full set, ties go to
    the one that does best with any one seat empty (a removed or distrusted expert);
    then to the smaller."""
    counted = [([_accuracy(fit, i) for i in range(n)], held) for fit, held in folds]
    rows = sum(len(held) for _, held in folds)

    def accuracy(s: float, seat: int | None) -> float:
        return sum(vote_accuracy(held, a, s, seat) * len(held) for a, held in counted) / rows

    def key(s: float) -> tuple[float, float, float]:
        empty = 0.0 if absent is not None else sum(accuracy(s, i) for i in range(n)) / n
        return (accuracy(s, absent), empty, -s)

    best = max(SHARPNESS, key=key)
    return best, key(best)[0]


def _agreement(
    exs: Sequence[Example], accuracy: Sequence[float], i: int, absent: int | None = None
) -> tuple[float, float]:
    """Expert i's agreement with the Nitzan-Paroush majority of the others (seat `absent`
    empty), and how often that majority is right; items where the others tie or state
    nothing are not counted, as in the live test."""
    agreed = seen = others_right = scored = 0
    seats = [j for j in range(len(accuracy)) if j not in (i, absent)]
    for e in exs:
        weights = _weights(e, accuracy, TEST_SHARPNESS)
        result = tally({j: e.ballots[j] for j in seats}, {j: weights[j] for j in seats})
        if result.winner is None or result.tied or e.ballots[i] is None:
            continue
        seen += 1
        agreed += e.ballots[i] == result.winner
        if e.answer is not None:
            scored += 1
            others_right += result.winner == e.answer
    return (agreed + 1) / (seen + 2), (others_right + 1) / (scored + 2)


def _stats(
    exs: Sequence[Example], accuracy: Sequence[float], names: Sequence[str], i: int
) -> ExpertStats:
    agreement, others_accuracy = _agreement(exs, accuracy, i)
    return ExpertStats(
        accuracy=accuracy[i],
        n=len(exs),
        agreement=agreement,
        others_accuracy=others_accuracy,
        without={m: _agreement(exs, accuracy, i, j) for j, m in enumerate(names) if j != i},
    )


def signatures(exs: Sequence[Example]) -> dict[str, tuple[str, ...]]:
    """Per task, up to three template lines its queries carry and no other task's do."""
    lines_by_task: dict[str, Counter[str]] = {}
    sizes = Counter(e.task for e in exs)
    for e in exs:
        lines = {line.strip() for line in e.query.splitlines() if len(line.strip()) >= 12}
        lines_by_task.setdefault(e.task, Counter()).update(lines)
    found = {}
    for task, counts in lines_by_task.items():
        elsewhere = set().union(*(set(c) for t, c in lines_by_task.items() if t != task))
        common = [
            line
            for line, count in counts.most_common()
            if count >= SIGNATURE_SHARE * sizes[task] and line not in elsewhere
        ]
        found[task] = tuple(common[:3])
    return found


def _task_weights(
    exs: Sequence[Example],
    names: Sequence[str],
    signature: tuple[str, ...],
    folds: int,
    seed: int,
) -> TaskWeights:
    n = len(names)
    fold_of = {e.key: int(split_point(f"fold/{e.key}", seed) * folds) for e in exs}
    splits: list[tuple[Sequence[Example], Sequence[Example]]] = [
        ([e for e in exs if fold_of[e.key] != f], [e for e in exs if fold_of[e.key] == f])
        for f in range(folds)
    ]
    # Too few rows to hold any out: choose on them all.
    splits = [(fit, held) for fit, held in splits if fit and held] or [(exs, exs)]
    sharpness, cv_acc = choose_sharpness(splits, n)
    without = {m: choose_sharpness(splits, n, absent=i)[0] for i, m in enumerate(names)}
    accuracy = [_accuracy(exs, i) for i in range(n)]
    return TaskWeights(
        signature=signature,
        sharpness=sharpness,
        without=without,
        cv_accuracy=cv_acc,
        experts={m: _stats(exs, accuracy, names, i) for i, m in enumerate(names)},
    )


def fit_weights(
    rows: Sequence[Mapping[str, Any]],
    experts: Sequence[str],
    *,
    answer: AnswerKind = "auto",
    folds: int = 4,
    seed: int = 0,
    fitted_on: Mapping[str, Any] | None = None,
) -> VoteWeights:
    """Vote weights of `experts` (seat order) from training `rows`."""
    exs = examples(rows, experts, answer)
    if len(exs) < MIN_TASK_ROWS:
        raise VoteWeightsError(
            f"{len(exs)} rows with a response of every expert: need at least {MIN_TASK_ROWS}"
        )
    names = list(experts)
    by_task: dict[str, list[Example]] = {}
    for e in exs:
        by_task.setdefault(e.task, []).append(e)
    marks = signatures(exs)
    tasks = {POOLED: _task_weights(exs, names, (), folds, seed)}
    for task, group in sorted(by_task.items()):
        if task != POOLED and len(group) >= MIN_TASK_ROWS:
            tasks[task] = _task_weights(group, names, marks[task], folds, seed)
    return VoteWeights(
        answer=answer,
        experts=tuple(names),
        fitted_on={"rows": len(exs), **(fitted_on or {})},
        tasks=tasks,
    )


def training_rows(
    table: OutcomeTable, test_fraction: float, seed: int, answer: AnswerKind
) -> list[dict[str, Any]]:
    """The rows outside the test split whose reference states an answer of `answer`'s kind."""
    return [
        row
        for row in table.rows
        if not in_test_split(str(row["id"]), test_fraction, seed)
        and row.get("reference") is not None
        and extract_answer(str(row["reference"]), answer, str(row["query"])) is not None
    ]


def fit_command(
    *,
    data: Path,
    out: Path,
    experts: Sequence[str],
    top: int,
    test_fraction: float,
    seed: int,
    answer: AnswerKind,
    as_json: bool,
) -> VoteWeights:
    """`signoria aggregator fit`: weights from the training side of `data`, saved to `out`."""
    if not 0.0 <= test_fraction < 1.0:
        raise VoteWeightsError("--test-fraction must be in [0, 1)")
    rows = training_rows(OutcomeTable.load(data), test_fraction, seed, answer)
    chosen = list(experts) or strongest_experts(rows, top)
    provenance = {"table": str(data), "test_fraction": test_fraction, "seed": seed}
    weights = fit_weights(rows, chosen, answer=answer, seed=seed, fitted_on=provenance)
    weights.save(out)
    summary = {
        "out": str(out),
        "experts": chosen,
        "rows": weights.fitted_on["rows"],
        "tasks": {
            name: {"sharpness": t.sharpness, "signature": list(t.signature)}
            for name, t in weights.tasks.items()
        },
    }
    print(json.dumps(summary) if as_json else _describe(weights, out))
    return weights


def _describe(weights: VoteWeights, out: Path) -> str:
    lines = [f"wrote {out}: {weights.fitted_on['rows']} training rows"]
    for name, task in weights.tasks.items():
        accuracy = ", ".join(f"{m} {s.accuracy:.3f}" for m, s in task.experts.items())
        lines.append(f"  {name}: sharpness {task.sharpness:g}; accuracy {accuracy}")
    return "\n".join(lines)
