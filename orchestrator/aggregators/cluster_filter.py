"""Cluster & Filter: split the answers into two clusters and drop the smaller one.

The unsupervised defence against one deceptive agent among several (the paper embeds the
answers and runs KMeans with k=2): honest answers resemble each other, a liar's does not,
so the liar lands in the smaller cluster. Here the answers are clustered

- by extracted answer when there is one (numbers, MCQ letters): the most common answer
  against all the others, which is where 2-means on one-hot answers converges anyway;
- otherwise by a deterministic 2-means over bag-of-words vectors (numpy; the first
  answer and the one farthest from it seed the two centroids).

The larger cluster is kept; a tie keeps the cluster holding the first answer. The
smaller cluster is `flagged`. `cluster-inform` uses the same split but keeps everything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import (
    DefenceVote,
    Verdict,
    cast_ballots,
    injected,
    merge_flags,
    tally,
)
from signoria.orchestrator.aggregators.protocol import answered
from signoria.orchestrator.answers import AnswerKind, infer_kind

_WORD = re.compile(r"[a-z0-9]+")
_MAX_ITERATIONS = 50

Vectors = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Split:
    """Two clusters of the answered completions: the one kept and the one dropped."""

    kept: tuple[int, ...]
    dropped: tuple[int, ...]
    votes: dict[str, float]
    # The kept completion whose text stands for the cluster (None: the first clean one).
    representative: int | None
    by: str  # "answer" or "words"


def _larger_first(a: Sequence[int], b: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(kept, dropped): the larger cluster, or on a tie the one holding the first answer."""
    a, b = tuple(sorted(a)), tuple(sorted(b))
    if len(a) != len(b):
        return (a, b) if len(a) > len(b) else (b, a)
    return (a, b) if min(a + b) in a else (b, a)


def split_by_answer(query: str, completions: Sequence[Completion], kind: AnswerKind) -> Split:
    ballots = cast_ballots(query, completions, kind)
    top = tally(ballots)
    kept, dropped = _larger_first(top.supporters, [i for i in ballots if i not in top.supporters])
    representative = None
    if kept != top.supporters:
        # The scattered "everyone else" cluster won: stand for it with its own top answer.
        inner = tally({i: ballots[i] for i in kept})
        representative = inner.supporters[0] if inner.supporters else None
    return Split(kept, dropped, top.votes, representative, by="answer")


def bag_of_words(texts: Sequence[str]) -> Vectors:
    """Unit-length word-count vectors (a row of zeros for a text without words)."""
    tokens = [_WORD.findall(t.lower()) for t in texts]
    vocabulary = {w: j for j, w in enumerate(sorted({w for ts in tokens for w in ts}))}
    vectors = np.zeros((len(texts), max(1, len(vocabulary))))
    for i, ts in enumerate(tokens):
        for w in ts:
            vectors[i, vocabulary[w]] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return unit


def two_means(vectors: Vectors) -> npt.NDArray[np.int_]:
    """Labels 0/1 from a deterministic 2-means: no random restarts, so no seed to pin."""
    first = vectors[0]
    far = int(np.argmax(((vectors - first) ** 2).sum(axis=1)))
    if far == 0 or np.allclose(vectors[far], first):
        return np.zeros(len(vectors), dtype=np.int_)  # every answer is the same point
    centroids = np.stack([first, vectors[far]])
    labels: npt.NDArray[np.int_] | None = None
    for _ in range(_MAX_ITERATIONS):
        distances = ((vectors[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        new = np.argmin(distances, axis=1)  # a tie goes to centroid 0
        if labels is not None and (new == labels).all():
            break
        labels = new
        if not (labels == 0).any() or not (labels == 1).any():
            break
        centroids = np.stack([vectors[labels == c].mean(axis=0) for c in (0, 1)])
    assert labels is not None
    return labels


def split_by_words(completions: Sequence[Completion]) -> Split:
    ok = answered(completions)
    vectors = bag_of_words([completions[i].text for i in ok])
    labels = two_means(vectors)
    groups = [[ok[j] for j in range(len(ok)) if labels[j] == c] for c in (0, 1)]
    kept, dropped = _larger_first(*groups)
    # The member nearest the kept cluster's centre speaks for it (ties: the first).
    rows = [ok.index(i) for i in kept]
    centre = vectors[rows].mean(axis=0)
    nearest = kept[int(np.argmin(((vectors[rows] - centre) ** 2).sum(axis=1)))]
    return Split(kept, dropped, {}, nearest, by="words")


def split(query: str, completions: Sequence[Completion], kind: AnswerKind) -> Split:
    """Cluster by extracted answer when the answers have one, else by their words."""
    resolved = infer_kind(query) if kind == "auto" else kind
    if resolved != "text":
        by_answer = split_by_answer(query, completions, resolved)
        if by_answer.votes:
            return by_answer
    return split_by_words(completions)


class ClusterFilter(DefenceVote):
    name = "cluster-filter"

    @staticmethod
    def verdict(query: str, completions: Sequence[Completion], kind: AnswerKind) -> Verdict:
        if not answered(completions):
            return Verdict(kept=())
        parts = split(query, completions, kind)
        return Verdict(
            kept=parts.kept,
            flagged=merge_flags(parts.dropped, injected(completions)),
            votes=parts.votes,
            representative=parts.representative,
        )
