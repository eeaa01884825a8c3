"""The training task: questions of a routing-outcome table, answered from its recordings.

A policy in training asks experts as it would in service. The route of a question that is
the row's own question, written anew or as asked (at least `QUESTION_COVERAGE` of its
words), gets that expert's recorded response and its recorded cost (replay). Any other
question (a sub-question of the policy's) goes to the live expert when the task has live
experts (`LiveExperts`: a Signoria config's pool, called through the same call runner as
in service), and otherwise gets no answer, as a replay cannot know what the expert would
have said. The episode is then scored by the paper's reward against the row's reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from signoria.agents.backends.replay import QUESTION_COVERAGE, coverage
from signoria.agents.types import Message
from signoria.orchestrator.answers import extract_answer, reference_kind
from signoria.orchestrator.router_r1 import prompt
from signoria.orchestrator.router_r1.episode import Episode
from signoria.orchestrator.router_r1.prompt import ExpertDescriptor
from signoria.orchestrator.router_r1.reward import exact_match
from signoria.orchestrator.router_r1.tags import Route
from signoria.routers.data import RoutingDataError, RoutingTable, Row

NOT_RECORDED = "no recorded answer to that question: ask the question itself"


@dataclass(frozen=True)
class Reply:
    text: str | None
    cost: float | None
    error: str | None = None


# Asks a live expert a question: (expert, question) -> its reply.
LiveExperts = Callable[[str, str], Reply]


@dataclass(frozen=True)
class Outcome:
    """What an episode earned: the terms of the reward."""

    format_ok: bool
    correct: bool
    cost: float | None  # USD of the routed calls; None when a price is unknown
    routes: int


@dataclass(frozen=True)
class RoutingTask:
    """Rows with a reference, the experts the policy may ask, and how it is told so."""

    rows: tuple[Row, ...]
    experts: tuple[str, ...]
    descriptors: tuple[ExpertDescriptor, ...]
    max_rounds: int
    information_limit: int
    live: LiveExperts | None = None

    @classmethod
    def of(
        cls,
        table: RoutingTable,
        experts: tuple[str, ...],
        descriptors: tuple[ExpertDescriptor, ...],
        *,
        max_rounds: int,
        information_limit: int,
        live: LiveExperts | None = None,
    ) -> RoutingTask:
        missing = [e for e in experts if e not in table.models]
        if missing:
            raise RoutingDataError(
                f"experts {', '.join(missing)} are not in the table "
                f"(models: {', '.join(table.models)})"
            )
        rows = tuple(r for r in table.rows if r.reference is not None)
        if not rows:
            raise RoutingDataError("no row has a reference answer to score the policy against")
        return cls(rows, experts, descriptors, max_rounds, information_limit, live)

    @property
    def system(self) -> str:
        return prompt.system_prompt(self.descriptors, self.max_rounds)

    def episode(self, row: Row) -> Episode:
        return Episode(
            question=row.query,
            system=self.system,
            experts=self.experts,
            max_rounds=self.max_rounds,
            information_limit=self.information_limit,
        )

    def call_costs(self) -> list[float | None]:
        """What one call of each expert cost on each question: the cost scale's start."""
        return [self.rows[i].outcomes[e].cost for i in range(len(self.rows)) for e in self.experts]

    def reply(self, row: Row, route: Route) -> Reply:
        """The recorded answer to a route, a live expert's, or why there is none.

        A route the replay cannot answer still costs what asking that expert about this
        question costs (its recorded cost): an expert is paid for every question it is
        asked. Were it free, a policy would learn to ask garbled questions and guess,
        which costs nothing in replay and a full call in service."""
        recorded = row.outcomes[route.expert]
        cost = None if recorded.cost is None or math.isnan(recorded.cost) else recorded.cost
        if coverage(route.query, row.query) < QUESTION_COVERAGE:
            if self.live is not None:
                return self.live(route.expert, route.query)
            return Reply(None, cost, NOT_RECORDED)
        if recorded.response is None:
            return Reply(None, cost, "no recorded response")
        return Reply(recorded.response, cost)

    def outcome(self, row: Row, episode: Episode, costs: list[float | None]) -> Outcome:
        answer = episode.answer.text if episode.answer is not None else None
        correct = row.reference is not None and exact_match(answer, row.reference, row.query)
        known = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
        return Outcome(episode.format_ok, correct, known, len(episode.routes))

    def demonstrations(self, row: Row) -> list[list[Message]]:
        """Well-formed episodes for the format warm-up, one per expert: each routes the
        row's question to that expert and copies its reply, right or wrong. Every expert
        asked alike teaches the format and the reading of a reply, not whom to ask nor
        the right answer (a demonstration of one expert per question is learnt by heart
        as "this question, that expert")."""
        return [self._demonstration(row, expert) for expert in self.experts]

    def _demonstration(self, row: Row, expert: str) -> list[Message]:
        episode = self.episode(row)
        episode.observe(
            f"<think> I will ask {expert} and read its reply. </think>\n"
            f"<search> {expert}: {row.query.strip()} </search>"
        )
        reply = self.reply(row, episode.routes[-1])
        episode.inform(reply.text, error=reply.error)
        said = (reply.text or "").strip()
        kind = reference_kind(row.reference)
        stated = extract_answer(said, kind, row.query) if kind != "text" else None
        episode.observe(
            f"<think> {expert} replied. </think>\n<answer> {stated or said[:200]} </answer>"
        )
        return episode.messages
