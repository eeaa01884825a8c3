"""Model profiles (per-skill strengths) and expert sampling, as plain array maths.

Profile: for model m and keyword v, the paper adds +1 per training query m got right and
-1 per query it got wrong, over the queries that need v. Here each vote is weighted by the
keyword's relevance to the query (a query that barely needs "geometry" says little about
geometry), and the sum is divided by the keyword's total relevance mass, so a strength is
a relevance-weighted net win rate in [-1, 1]: frequent keywords do not drown rare ones
and strengths from tables of different sizes compare.

Recruiting score of model m on a query = sum_v relevance(q, v) * strength(v, m), divided
by the query's total relevance so it stays in [-1, 1] whatever `top_k` and the similarity
scale are; that keeps the softmax temperature (0.5 in the paper) meaningful.
"""

from __future__ import annotations

import numpy as np

CORRECT = 0.5  # a score at or above this counts as a right answer


def build_profiles(relevance: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[V, m] strengths from relevance [n, V] and outcome scores [n, m]; a keyword no
    training query needs has strength 0 for every model (no evidence either way)."""
    votes = np.where(scores >= CORRECT, 1.0, -1.0)
    raw = relevance.T @ votes
    mass = relevance.sum(axis=0)[:, None]
    profiles: np.ndarray = np.divide(raw, mass, out=np.zeros_like(raw), where=mass > 0)
    return profiles


def recruit_scores(relevance: np.ndarray, profiles: np.ndarray) -> np.ndarray:
    """[n, m] relevance-weighted mean strength of each model for each query, in [-1, 1]."""
    raw = relevance @ profiles
    mass = relevance.sum(axis=1)[:, None]
    scores: np.ndarray = np.divide(raw, mass, out=np.zeros_like(raw), where=mass > 0)
    return scores


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / max(temperature, 1e-6)
    z = z - z.max()
    p: np.ndarray = np.exp(z) / np.exp(z).sum()
    return p


def sample_experts(
    scores: np.ndarray, k: int, temperature: float, rng: np.random.Generator
) -> list[int]:
    """k model indices drawn with replacement from softmax(scores / temperature): a strong
    model may be drawn several times, and then contributes several samples."""
    p = softmax(scores, temperature)
    return [int(i) for i in rng.choice(len(scores), size=k, replace=True, p=p)]
