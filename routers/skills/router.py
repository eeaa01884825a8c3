"""Symbolic-MoE skill-based recruiting as a trainable router ("skills").

fit: keywords of every training query (embedding option, see `keywords`) -> per-model
skill profiles from the recorded outcomes (`profiles.build_profiles`).
route: the query's keywords -> each model's recruiting score -> either one choice (the
`utilities` argmax every trainable router offers, so it is evaluated like the rest) or
k experts sampled with replacement (`recruit`, the paper's way, for an aggregator).

Aggregator: the paper picks the model best at choosing the right answer among one
correct and two wrong candidates. Building that synthetic set needs responses and
reference answers that not every table has, so here the aggregator is the model with the
best training accuracy (ties to the cheaper): a documented simplification, cheap and
available for any outcome table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from signoria.routers.data import RoutingTable
from signoria.routers.embedding import text_key
from signoria.routers.skills.keywords import VOCABULARY, embedding_keywords
from signoria.routers.skills.profiles import CORRECT, build_profiles, recruit_scores, sample_experts
from signoria.routers.trainable import RouterContext


def query_rng(seed: int, query: str) -> np.random.Generator:
    """An RNG fixed by (seed, query text): a query recruits the same experts alone or in a
    batch, in any order, and on every run."""
    return np.random.default_rng([seed, int(text_key(query)[:15], 16)])


class SkillsRouter:
    name: ClassVar[str] = "skills"
    sweep_param: ClassVar[str] = "alpha"  # utilities = ctx.utility(strength)

    def __init__(
        self,
        vocabulary: Sequence[str] = VOCABULARY,
        top_k: int = 3,
        temperature: float = 0.5,
    ) -> None:
        self.vocabulary = tuple(vocabulary)
        self.top_k = top_k
        self.temperature = temperature
        self.models: tuple[str, ...] = ()
        self.profiles = np.zeros((len(self.vocabulary), 0))
        self.aggregator = ""

    def relevance(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        return embedding_keywords(queries, self.vocabulary, ctx, self.top_k)

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        self.models = table.models
        self.profiles = build_profiles(self.relevance(table.queries, ctx), table.scores)
        accuracy = (table.scores >= CORRECT).mean(axis=0)
        best = np.lexsort((ctx.expected_cost, -accuracy))[0]  # last key sorts first
        self.aggregator = table.models[int(best)]

    def keywords(self, query: str, ctx: RouterContext) -> list[tuple[str, float]]:
        """The query's keywords with their relevance, most relevant first."""
        row = self.relevance([query], ctx)[0]
        order = np.argsort(-row, kind="stable")
        return [(self.vocabulary[i], float(row[i])) for i in order if row[i] > 0]

    def scores(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        """[n, m] recruiting scores in [-1, 1] (columns: `self.models`)."""
        return recruit_scores(self.relevance(queries, ctx), self.profiles)

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        """Strength rescaled to [0, 1] as predicted quality, then the trade-off:
        alpha * strength - beta * normalised cost."""
        self._check(ctx)
        strength = (self.scores(queries, ctx) + 1.0) / 2.0
        return ctx.utility(strength)

    def recruit(
        self,
        query: str,
        k: int,
        ctx: RouterContext,
        *,
        among: Sequence[str] | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """k experts sampled with replacement from softmax(score / temperature), limited
        to `among` when given (the live pool); reproducible for a (seed, query)."""
        return self._recruit_rows([query], k, ctx, among, temperature, seed)[0]

    def group_by_expert(
        self,
        queries: Sequence[str],
        k: int,
        ctx: RouterContext,
        *,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> dict[str, list[int]]:
        """Batch mode: model -> indices of the queries it was recruited for, so each
        model is loaded once per batch. A query appears once per sample: recruited twice,
        its index is listed twice (two samples from that model)."""
        groups: dict[str, list[int]] = {}
        rows = self._recruit_rows(queries, k, ctx, None, temperature, seed)
        for i, names in enumerate(rows):
            for name in names:
                groups.setdefault(name, []).append(i)
        return dict(sorted(groups.items()))

    def _recruit_rows(
        self,
        queries: Sequence[str],
        k: int,
        ctx: RouterContext,
        among: Sequence[str] | None,
        temperature: float | None,
        seed: int | None,
    ) -> list[list[str]]:
        cols = [j for j, m in enumerate(self.models) if among is None or m in among]
        if not cols:
            raise ValueError("none of the candidate experts has a skill profile")
        scores = self.scores(queries, ctx)[:, cols]
        t = self.temperature if temperature is None else temperature
        s = ctx.seed if seed is None else seed
        return [
            [self.models[cols[j]] for j in sample_experts(row, k, t, query_rng(s, q))]
            for q, row in zip(queries, scores, strict=True)
        ]

    def _check(self, ctx: RouterContext) -> None:
        if tuple(ctx.models) != self.models:
            raise ValueError(
                f"skills router trained for {list(self.models)}, asked for {list(ctx.models)}"
            )

    def save(self, directory: Path) -> None:
        state = {
            "vocabulary": list(self.vocabulary),
            "top_k": self.top_k,
            "temperature": self.temperature,
            "models": list(self.models),
            "profiles": self.profiles.tolist(),
            "aggregator": self.aggregator,
        }
        (directory / "skills.json").write_text(json.dumps(state))

    def load(self, directory: Path, ctx: RouterContext) -> None:
        state = json.loads((directory / "skills.json").read_text())
        self.vocabulary = tuple(state["vocabulary"])
        self.top_k = int(state["top_k"])
        self.temperature = float(state["temperature"])
        self.models = tuple(state["models"])
        self.profiles = np.asarray(state["profiles"], dtype=float).reshape(
            len(self.vocabulary), len(self.models)
        )
        self.aggregator = str(state["aggregator"])
