"""The learned answer-aware cascade: when to stop, when to pay for a stronger expert.

A chain is a list of stages, cheap to strong; a stage is one or more models asked
together. After stage k, logistic scorers (one per later stage j, fitted on training
rows) predict from the answers so far the chance that the answer at stage j is right:
P[k, k] is the chance that stopping now is right. The cascade escalates when some later
stage is worth its price:

    max over j > k of  value_usd * (P[k, j] - P[k, k]) - expected cost of stages k+1..j  > 0

`value_usd` is what one more correct answer is worth to the user: the single knob, swept
from "never pay" to "always pay" for the cost-quality curve. Expected stage costs are the
mean recorded costs per answer kind on the training rows. The answer at a stage is the
weighted vote of the answers so far; at the last stage, by default, the strongest
model's own answer (`final: last`): on the tables we checked, the strong model is right
more often than any consensus of cheaper ones that contradicts it.

Everything is stored as plain numbers in one JSON file (no pickles), so an artifact is
readable and loads without scikit-learn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from signoria.agents.jsonl import read_json
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.cascade.features import Answer, Vote, answer_kind
from signoria.orchestrator.cascade.features import stage_features as features_of
from signoria.orchestrator.cascade.fitting import Scorer, stage_costs, weights_by_kind
from signoria.orchestrator.cascade.pacing import Pacer
from signoria.orchestrator.cascade.priors import QueryPriors
from signoria.orchestrator.result import CascadeStep
from signoria.routers.data import RoutingDataError, RoutingTable
from signoria.routers.embedding import LIVE_CACHE, Embedder
from signoria.routers.policy import PolicyOutcome
from signoria.routers.trainable import RouterContext

FORMAT = "signoria.answer-cascade/1"


class CascadeSettings(BaseModel):
    """What a cascade is trained with; every field is settable from the CLI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: tuple[tuple[str, ...], ...] = Field(min_length=2)
    value_usd: float = Field(default=0.05, ge=0.0, description="worth of one more right answer")
    final: Literal["last", "vote"] = "last"
    regularisation: float = Field(default=1.0, gt=0.0, description="inverse L2 strength (C)")
    prior: float = Field(default=1.0, gt=0.0, description="Laplace counts for model accuracy")
    query_prior: bool = Field(
        default=False, description="add each chain model's chance of being right, from the query"
    )

    @field_validator("chain")
    @classmethod
    def _non_empty_stages(cls, chain: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if any(not stage for stage in chain):
            raise ValueError("every stage needs at least one model")
        return chain

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m for stage in self.chain for m in stage)


@dataclass(frozen=True)
class Prepared:
    """A table seen through a cascade: per stage, the features, votes and scores."""

    kinds: list[AnswerKind]
    answers: list[list[list[Answer]]]  # [row][stage] -> the answers so far
    votes: list[list[Vote]]  # [row][stage]
    probability: dict[tuple[int, int], np.ndarray]  # (k, j) -> [n]


class AnswerCascade:
    name: ClassVar[str] = "answer-cascade"
    sweep_param: ClassVar[str] = "value_usd"

    def __init__(
        self,
        settings: CascadeSettings,
        weights: dict[str, dict[str, float]],
        scorers: dict[tuple[int, int], Scorer],
        stage_cost: dict[str, list[float]],
        priors: QueryPriors | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.weights = weights
        self.scorers = scorers
        self.stage_cost = stage_cost
        self.priors = priors
        # Where query embeddings come from (only with `query_prior`); shared caches welcome.
        self.embedder = embedder

    # -- training ------------------------------------------------------------------------

    @classmethod
    def fit(
        cls, table: RoutingTable, settings: CascadeSettings, embedder: Embedder | None = None
    ) -> AnswerCascade:
        missing = [m for m in settings.models if m not in table.models]
        if missing:
            raise RoutingDataError(f"the chain names models the table lacks: {missing}")
        kinds = [answer_kind(q) for q in table.queries]
        weights = weights_by_kind(table, kinds, settings.prior)
        stage_cost = stage_costs(table, kinds, settings.chain)
        cascade = cls(settings, weights, {}, stage_cost, embedder=embedder)
        answers = [cascade._answers(table, i, kinds[i]) for i in range(len(table))]
        priors = cascade._fit_priors(table)
        last = len(settings.chain) - 1
        # Whether the answer at stage j is right: the label of every scorer P[k, j].
        right = [
            np.array(
                [
                    cascade._score(table, i, answers[i][j], kinds[i], j) >= 0.5
                    for i in range(len(table))
                ]
            ).astype(int)
            for j in range(last + 1)
        ]
        for k in range(last):
            x = np.stack(
                [
                    cascade._features(answers[i][k], kinds[i], priors[i])[0]
                    for i in range(len(table))
                ]
            )
            for j in range(k, last + 1):
                cascade.scorers[(k, j)] = Scorer.fit(x, right[j], settings.regularisation)
        return cascade

    def _fit_priors(self, table: RoutingTable) -> np.ndarray:
        """Out-of-fold query priors of the training rows ([n, 0] without `query_prior`);
        the priors kept for new queries are fitted on all of them."""
        models = self.settings.models
        if not self.settings.query_prior:
            return np.zeros((len(table), 0))
        x = self.embed(table.queries)
        right = (table.scores[:, [table.models.index(m) for m in models]] >= 0.5).astype(int)
        c = self.settings.regularisation
        self.priors = QueryPriors.fit(x, right, models, c)
        return QueryPriors.out_of_fold(x, right, models, c)

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            self.embedder = Embedder(keep_new=LIVE_CACHE)
        return self.embedder.embed(queries)

    def query_priors(self, queries: Sequence[str]) -> np.ndarray:
        """[n, chain models] for new queries; [n, 0] when the cascade uses none."""
        if self.priors is None:
            return np.zeros((len(queries), 0))
        return self.priors.predict(self.embed(queries))

    def with_value(self, value_usd: float) -> AnswerCascade:
        settings = self.settings.model_copy(update={"value_usd": value_usd})
        return AnswerCascade(
            settings, self.weights, self.scorers, self.stage_cost, self.priors, self.embedder
        )

    # -- deciding --------------------------------------------------------------------------

    def _features(
        self, answers: Sequence[Answer], kind: AnswerKind, prior: np.ndarray | None = None
    ) -> tuple[np.ndarray, Vote]:
        x, vote = features_of(answers, kind, self.weights.get(kind) or self.weights["all"])
        return (x if prior is None else np.concatenate([x, prior])), vote

    def chosen(self, answers: Sequence[Answer], kind: AnswerKind, stage: int) -> int:
        """Index of the answer the cascade returns when it stops after `stage`."""
        return self.answer_index(answers, self._features(answers, kind)[1], stage)

    def answer_index(self, answers: Sequence[Answer], vote: Vote, stage: int) -> int:
        """Which answer the cascade returns after `stage`."""
        if stage == len(self.settings.chain) - 1 and self.settings.final == "last":
            return len(answers) - 1
        return vote.first if vote.first is not None else len(answers) - 1

    def decide(
        self,
        stage: int,
        probabilities: Sequence[float],
        kind: AnswerKind,
        value_usd: float | None = None,
    ) -> tuple[bool, int, float, float | None]:
        """(accept, next stage, its gain, its expected extra cost) from P[stage, j], j >= stage.

        Going on means either the next stage (worth it if some stage j before the last,
        reached through every stage up to j, pays for itself) or straight to the last
        stage, skipping the ones between: paying them on the way to the strongest model
        would buy nothing its answer does not already bring. `value_usd`: the knob now
        (a pacer's), else the trained one.
        """
        last = len(self.settings.chain) - 1
        if stage >= last:
            return True, last, 0.0, None
        costs = self._stage_costs(kind)
        now = probabilities[0]
        value = self.settings.value_usd if value_usd is None else value_usd
        options = []
        for j, p in enumerate(probabilities[1:], start=stage + 1):
            extra = float(costs[last]) if j == last else float(sum(costs[stage + 1 : j + 1]))
            options.append(
                (value * (p - now) - extra, j if j == last else stage + 1, p - now, extra)
            )
        worth, target, gain, extra = max(options, key=lambda option: option[0])
        return worth <= 0.0, target, gain, extra

    def step(
        self,
        stage: int,
        answers: Sequence[Answer],
        kind: AnswerKind,
        prior: np.ndarray | None = None,
        value_usd: float | None = None,
    ) -> CascadeStep:
        """The live decision after `stage` (answers in chain order, all stages so far;
        `prior`: the query's row of `query_priors` when the cascade uses them; `value_usd`:
        a pacer's knob, else the trained one)."""
        x, vote = self._features(answers, kind, prior)
        last = len(self.settings.chain) - 1
        if stage >= last:
            index = self.answer_index(answers, vote, stage)
            return CascadeStep(
                stage=stage,
                models=self.settings.chain[stage],
                score=1.0,
                gain=0.0,
                extra_cost=None,
                accept=True,
                answer=answers[index].value,
            )
        probabilities = [
            float(self.scorers[(stage, j)].probability(x)[0]) for j in range(stage, last + 1)
        ]
        value = self.settings.value_usd if value_usd is None else value_usd
        accept, target, gain, extra = self.decide(stage, probabilities, kind, value)
        return CascadeStep(
            stage=stage,
            models=self.settings.chain[stage],
            score=probabilities[0],
            gain=gain,
            extra_cost=extra,
            accept=accept,
            next_stage=None if accept else target,
            answer=answers[self.answer_index(answers, vote, stage)].value,
            value_usd=value,
        )

    # -- offline ----------------------------------------------------------------------------

    def _answers(self, table: RoutingTable, i: int, kind: AnswerKind) -> list[list[Answer]]:
        row = table.rows[i]
        so_far: list[Answer] = []
        per_stage: list[list[Answer]] = []
        for stage in self.settings.chain:
            for model in stage:
                response = row.outcomes[model].response
                if response is None:
                    raise RoutingDataError(
                        f"row {row.id}: no recorded response of {model}: an answer-aware "
                        "cascade learns from the answers, so the table must record them"
                    )
                so_far.append(Answer.of(model, response, kind, row.query))
            per_stage.append(list(so_far))
        return per_stage

    def _score(
        self, table: RoutingTable, i: int, answers: Sequence[Answer], kind: AnswerKind, stage: int
    ) -> float:
        model = answers[self.chosen(answers, kind, stage)].model
        return float(table.scores[i, table.models.index(model)])

    def prepare(self, table: RoutingTable) -> Prepared:
        kinds = [answer_kind(q) for q in table.queries]
        answers = [self._answers(table, i, kinds[i]) for i in range(len(table))]
        last = len(self.settings.chain) - 1
        votes: list[list[Vote]] = [[] for _ in answers]
        probability: dict[tuple[int, int], np.ndarray] = {}
        priors = self.query_priors(table.queries)
        for k in range(last + 1):
            pairs = [self._features(answers[i][k], kinds[i], priors[i]) for i in range(len(table))]
            for i, (_, vote) in enumerate(pairs):
                votes[i].append(vote)
            if k < last and pairs:
                x = np.stack([p[0] for p in pairs])
                for j in range(k, last + 1):
                    probability[(k, j)] = self.scorers[(k, j)].probability(x)
        return Prepared(kinds=kinds, answers=answers, votes=votes, probability=probability)

    def expected_spend(self, kind: AnswerKind, stages: Sequence[int]) -> float:
        """Mean training cost of the given stages for this kind of answer."""
        costs = self._stage_costs(kind)
        return float(sum(costs[k] for k in stages))

    def _stage_costs(self, kind: AnswerKind) -> list[float]:
        """Each stage's mean training cost for this kind of answer (all kinds' when the
        training rows had none of it)."""
        return self.stage_cost.get(kind) or self.stage_cost["all"]

    def outcome(
        self, table: RoutingTable, prepared: Prepared | None = None, pacer: Pacer | None = None
    ) -> PolicyOutcome:
        """What the cascade does on each row: the score of its answer, the recorded cost
        of every call it made, and the calls per model. With a `pacer`, the rows are
        queries arriving in table order, each decided at the pacer's knob of the moment."""
        prepared = prepared or self.prepare(table)
        last = len(self.settings.chain) - 1
        score = np.zeros(len(table))
        cost = np.zeros(len(table))
        calls = np.zeros((len(table), len(table.models)))
        offsets = np.cumsum([0, *(len(stage) for stage in self.settings.chain)])
        for i in range(len(table)):
            every = prepared.answers[i][last]  # every stage's answers, in chain order
            called: list[Answer] = []
            k = 0
            while True:
                stage = self.settings.chain[k]
                called += every[offsets[k] : offsets[k + 1]]
                columns = [table.models.index(m) for m in stage]
                cost[i] += table.costs[i, columns].sum()
                calls[i, columns] += 1.0
                if k == last:
                    break
                p = [float(prepared.probability[(k, j)][i]) for j in range(k, last + 1)]
                value = None if pacer is None else pacer.value_usd
                accept, k_next, _, _ = self.decide(k, p, prepared.kinds[i], value)
                if accept:
                    break
                k = k_next
            model = called[self.chosen(called, prepared.kinds[i], k)].model
            score[i] = table.scores[i, table.models.index(model)]
            if pacer is not None:
                pacer.spent(float(np.nan_to_num(cost[i])))
        return PolicyOutcome(score=score, cost=cost, calls=calls)

    # -- Sweepable ----------------------------------------------------------------------------

    def sweep_values(self, ctx: RouterContext | None = None) -> Sequence[float]:
        """From never escalating to always escalating, on a log scale of USD per answer."""
        return [0.0, *np.geomspace(1e-4, 100.0, 97).tolist(), 1e9]

    def outcome_at(
        self, value: float, table: RoutingTable, ctx: RouterContext | None = None
    ) -> PolicyOutcome:
        return self.with_value(value).outcome(table, self._prepared(table))

    def _prepared(self, table: RoutingTable) -> Prepared:
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] is not table:
            self._cache = (table, self.prepare(table))
        return self._cache[1]

    # -- storage ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "settings": self.settings.model_dump(mode="json"),
            "weights": self.weights,
            "stage_cost": self.stage_cost,
            "priors": None if self.priors is None else self.priors.to_json(),
            "scorers": [
                {"from": k, "to": j, "coef": s.coef.tolist(), "intercept": s.intercept}
                for (k, j), s in sorted(self.scorers.items())
            ],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> AnswerCascade:
        raw = read_json(path, what="cascade file", error=RoutingDataError)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise RoutingDataError(f"{path}: not a cascade file (format {FORMAT})")
        try:
            settings = CascadeSettings.model_validate(raw["settings"])
            scorers = {
                (int(s["from"]), int(s["to"])): Scorer(
                    np.asarray(s["coef"], dtype=float), float(s["intercept"])
                )
                for s in raw["scorers"]
            }
            weights = {
                str(k): {str(m): float(w) for m, w in v.items()} for k, v in raw["weights"].items()
            }
            stage_cost = {str(k): [float(c) for c in v] for k, v in raw["stage_cost"].items()}
            priors = QueryPriors.from_json(raw["priors"]) if raw.get("priors") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise RoutingDataError(f"{path}: malformed cascade file ({exc})") from None
        return cls(settings, weights, scorers, stage_cost, priors)
