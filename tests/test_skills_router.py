"""Skill-based recruiting (Symbolic-MoE): keyword and profile maths by hand, training and
routing on the tiny RouterBench fixture, the live router over scripted experts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signoria.agents.types import ModelCard
from signoria.routers.artifact import train_artifact
from signoria.routers.data import Outcome, Row, build_table
from signoria.routers.embedding import DIM, Embedder, text_key
from signoria.routers.registry import ROUTERS, TRAINABLE
from signoria.routers.skills import SkillsLiveParams, SkillsRouter
from signoria.routers.skills.keywords import (
    MAX_KEYWORD_CHARS,
    VOCABULARY,
    llm_keywords,
    map_keywords,
    parse_keywords,
)
from signoria.routers.skills.profiles import build_profiles, recruit_scores, sample_experts
from signoria.routers.trainable import RouterContext, TradeOff
from tests.conftest import scripted
from tests.routing_tiny import tiny_context, tiny_table

R = 1 / np.sqrt(2)


def unit(*weights: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(weights)] = weights
    return v / np.linalg.norm(v)


def hand_made() -> tuple[SkillsRouter, RouterContext]:
    """3 queries, 2 keywords, 2 models. q1 needs algebra only, q2 history only, q3 both
    (relevance 1/sqrt 2 each). A is right on q1 and q3, B on q2 and q3."""
    vectors = {
        "algebra": unit(1, 0),
        "history": unit(0, 1),
        "q1": unit(1, 0),
        "q2": unit(0, 1),
        "q3": unit(1, 1),
    }
    embedder = Embedder({text_key(t): v for t, v in vectors.items()})
    marks = {"q1": (1.0, 0.0), "q2": (0.0, 1.0), "q3": (1.0, 1.0)}
    rows = tuple(
        Row(
            id=q,
            task="t",
            query=q,
            outcomes={"A": Outcome(score=a, cost=0.001), "B": Outcome(score=b, cost=0.002)},
        )
        for q, (a, b) in marks.items()
    )
    info = {"A": ModelCard(name="A"), "B": ModelCard(name="B")}
    table = build_table(rows, ("A", "B"), info)
    ctx = RouterContext.from_table(table, TradeOff(alpha=1.0, beta=0.0), embedder=embedder)
    router = SkillsRouter(vocabulary=("algebra", "history"), top_k=2)
    router.fit(table, ctx)
    return router, ctx


def test_profiles_by_hand() -> None:
    router, ctx = hand_made()
    # algebra: A +1 (q1) +R (q3), B -1 +R; mass 1 + R. history mirrors it.
    mass = 1 + R
    expected = np.array([[(1 + R) / mass, (R - 1) / mass], [(R - 1) / mass, (1 + R) / mass]])
    np.testing.assert_allclose(router.profiles, expected, atol=1e-6)
    assert expected[0, 1] == pytest.approx(-0.171573, abs=1e-6)
    # q1's keywords: algebra with relevance 1 (history has similarity 0: dropped).
    assert router.keywords("q1", ctx) == [("algebra", pytest.approx(1.0))]
    scores = router.scores(["q1", "q2", "q3"], ctx)
    np.testing.assert_allclose(scores[0], expected[0], atol=1e-6)
    np.testing.assert_allclose(scores[2], [(R * expected[0, 0] + R * expected[1, 0]) / (2 * R)] * 2)
    # Performance-first utilities are strengths rescaled to [0, 1]: q1 -> A, q2 -> B.
    assert router.utilities(["q1", "q2"], ctx).argmax(axis=1).tolist() == [0, 1]
    # Equal accuracy (2/3 each): the cheaper model aggregates.
    assert router.aggregator == "A"


def test_profile_of_unused_keyword_is_zero_and_recruit_scores_bounded() -> None:
    relevance = np.array([[0.5, 0.0, 0.0], [0.2, 0.3, 0.0]])
    scores = np.array([[1.0, 0.0], [0.0, 0.7]])
    profiles = build_profiles(relevance, scores)
    assert profiles[2].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(profiles[1], [-1.0, 1.0])
    np.testing.assert_allclose(profiles[0], [(0.5 - 0.2) / 0.7, (-0.5 + 0.2) / 0.7])
    out = recruit_scores(np.vstack([relevance, np.zeros(3)]), profiles)
    assert np.all(np.abs(out) <= 1.0) and out[2].tolist() == [0.0, 0.0]


def test_sampling_is_seeded_and_repeats_strong_models() -> None:
    scores = np.array([1.0, -1.0, -1.0])
    draw = [sample_experts(scores, 5, 0.5, np.random.default_rng(7)) for _ in range(2)]
    assert draw[0] == draw[1]
    assert draw[0].count(0) >= 2  # the strong model gives several samples


def test_trains_routes_recruits_and_groups(tmp_path: Path) -> None:
    table = tiny_table()
    train, test = table.split(0.25)
    ctx = tiny_context(train)
    router = TRAINABLE.load("skills")()
    router.fit(train, ctx)
    u = router.utilities(test.queries, ctx)
    assert u.shape == (len(test), len(table.models)) and np.isfinite(u).all()
    assert isinstance(router, SkillsRouter)
    assert router.aggregator == "gpt-4-1106-preview"  # best training accuracy

    query = test.queries[0]
    picks = router.recruit(query, 6, ctx, seed=3)
    assert len(picks) == 6 and picks == router.recruit(query, 6, ctx, seed=3)
    assert len(set(picks)) < 6 or router.recruit(query, 40, ctx, seed=3) != []
    many = router.recruit(query, 40, ctx)
    assert len(set(many)) < len(many)  # with replacement: repeats
    only = router.recruit(query, 4, ctx, among=["claude-v1", "claude-v2"])
    assert set(only) <= {"claude-v1", "claude-v2"}

    queries = test.queries[:10]
    groups = router.group_by_expert(queries, 3, ctx)
    assert sum(len(v) for v in groups.values()) == 30
    for i, q in enumerate(queries):  # a batch recruits what single queries recruit
        assert sorted(router.recruit(q, 3, ctx)) == sorted(
            m for m, idx in groups.items() for j in idx if j == i
        )

    router.save(tmp_path)
    again = SkillsRouter()
    again.load(tmp_path, ctx)
    np.testing.assert_array_equal(again.utilities(test.queries, ctx), u)
    assert again.recruit(query, 6, ctx, seed=3) == picks


def test_keywords_from_embeddings_are_relevant() -> None:
    table = tiny_table()
    ctx = tiny_context(table)
    router = SkillsRouter()
    code_skills = {"coding", "programming", "writing functions", "python", "algorithms"}
    code_skills |= {"list processing", "string manipulation", "sorting", "recursion"}
    code = [r.query for r in table.rows if r.task == "mbpp"]
    named = [{w for w, _ in router.keywords(q, ctx)} for q in code]
    assert all(len(n) == 3 for n in named)
    assert sum(bool(n & code_skills) for n in named) >= 0.9 * len(code)
    assert len(VOCABULARY) >= 60 and all(len(w) <= MAX_KEYWORD_CHARS for w in VOCABULARY)
    mapped = map_keywords(["algebra", "python code"], VOCABULARY, ctx)
    assert mapped[VOCABULARY.index("algebra")] == pytest.approx(1.0, abs=1e-5)
    assert mapped[VOCABULARY.index("python")] > 0.5


async def test_llm_keywords_keep_repeated_short_ones() -> None:
    answer = "1. Algebra\n- geometry, a very long keyword phrase here, algebra"
    expert = scripted("kw", answer=answer)
    words = await llm_keywords(expert, "What is 2x = 4?", runs=5)
    assert words == ["algebra", "geometry"] and expert.calls == 5
    assert parse_keywords("Physics; 'chemistry'.\n\n") == ["physics", "chemistry"]


async def test_live_router_recruits_from_the_pool(tmp_path: Path) -> None:
    table = tiny_table().subset(range(40))
    train_artifact("skills", table, TradeOff(), tmp_path, baselines=())
    params = ROUTERS.params_model("skills").model_validate({"artifact": str(tmp_path), "k": 4})
    assert isinstance(params, SkillsLiveParams) and params.model_refs() == {}
    router = ROUTERS.build("skills", params)
    present = ["gpt-4-1106-preview", "claude-instant-v1", "mistralai/mistral-7b-chat"]
    pool = {name: scripted(name) for name in [*present, "not-profiled"]}
    decision = await router.route(table.queries[0], pool, budget_usd=None)
    assert decision.router == "skills" and len(decision.assignments) == 4
    assert {a.expert for a in decision.assignments} <= set(present)
    assert [a.seed for a in decision.assignments] == [0, 1, 2, 3]
    assert decision.reason.startswith("skills: ") and "not in pool, skipped" in decision.reason
    assert set(decision.scores) == set(present)
    again = await router.route(table.queries[0], pool, budget_usd=None)
    assert again.assignments == decision.assignments
    cheap = await router.route(table.queries[0], pool, budget_usd=1e-9)
    assert {a.expert for a in cheap.assignments} == {"mistralai/mistral-7b-chat"}
