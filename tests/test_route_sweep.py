"""Issue 18's router defects and whole curves: the shared embedding cache, `route eval
--sweep` and `--router`, the SVM and the oracle, fine CPT, quiet stderr, router options."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from signoria.agents.types import ModelCard
from signoria.routers import embedding
from signoria.routers.artifact import load_artifact, train_artifact
from signoria.routers.baselines import Cheapest, KNNRouter, SVMRouter
from signoria.routers.data import Outcome, RoutingTable, Row, build_table
from signoria.routers.evaluate import evaluate
from signoria.routers.metrics import oracle_choice, pgr_curve, two_model_report
from signoria.routers.registry import ROUTERS, TRAINABLE
from signoria.routers.sweep import sweep_report
from signoria.routers.trainable import RouterContext, TradeOff, choose
from tests.routing_tiny import FIXTURES, tiny_context, tiny_table

SIGNORIA = str(Path(sys.executable).parent / "signoria")
TABLE = FIXTURES / "routing_tiny.jsonl"
MODELS = FIXTURES / "routing_tiny.models.json"
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIGNORIA, *args], capture_output=True, text=True, timeout=600)


def two_models(table: RoutingTable) -> RoutingTable:
    for model in table.models:
        if model not in {STRONG, WEAK}:
            table = table.without_model(model)
    return table


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIGNORIA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_sweep_and_a_second_eval_embed_nothing_new(fresh_cache: Path, tmp_path: Path) -> None:
    tiny = tiny_table().subset(range(60))
    # Texts no other test embedded, so the counts below are this test's alone.
    rows = tuple(r.model_copy(update={"query": f"{r.query} [{tmp_path.name}]"}) for r in tiny.rows)
    train, test = replace(tiny, rows=rows).split(0.3, seed=0)
    before = embedding.ENCODED["texts"]
    train_artifact("threshold", train, TradeOff(), tmp_path / "a", baselines=("knn", "random"))
    assert embedding.ENCODED["texts"] - before == len(set(train.queries))
    trained = embedding.ENCODED["texts"]
    evaluate(tmp_path / "a", test)
    first_eval = embedding.ENCODED["texts"] - trained
    assert first_eval == len(set(test.queries) - set(train.queries))
    # A second artifact on the same rows, a sweep and a second eval: all from the store.
    train_artifact("knn", train, TradeOff(), tmp_path / "b", baselines=("random",))
    sweep_report(tmp_path / "a", test)
    evaluate(tmp_path / "b", test)
    assert embedding.ENCODED["texts"] == trained + first_eval
    assert (fresh_cache / "embeddings" / "minilm.sqlite").exists()


def test_the_store_is_keyed_by_embedder_model(fresh_cache: Path) -> None:
    store = embedding.default_store()
    assert store is not None and store.model == embedding.model_id()
    store.put([(embedding.text_key("x"), np.ones(embedding.DIM, dtype=np.float32))])
    other = embedding.EmbeddingStore(store.path, "another-model")
    assert other.get([embedding.text_key("x")]) == {}
    assert np.array_equal(
        store.get([embedding.text_key("x")])[embedding.text_key("x")], np.ones(384)
    )


def test_the_oracle_pays_for_the_cheaper_of_two_right_models() -> None:
    rows = tuple(
        Row(
            id=str(i),
            task="t",
            query=f"q{i}",
            outcomes={"A": Outcome(score=1.0, cost=1.0), "B": Outcome(score=s, cost=0.1)},
        )
        for i, s in enumerate([1.0, 0.0, 1.0])
    )
    table = build_table(rows, ("A", "B"), {"A": ModelCard(name="A"), "B": ModelCard(name="B")})
    ctx = RouterContext.from_table(table, TradeOff.scenario("performance"))
    assert oracle_choice(table, ctx.reward(table)).tolist() == [1, 0, 1]


def test_svm_predicts_per_model_quality_and_does_not_collapse() -> None:
    table = tiny_table()
    train, test = table.split(0.3, seed=0)
    for scenario in ("performance", "balanced"):
        ctx = tiny_context(train, TradeOff.scenario(scenario))
        svm, cheapest = SVMRouter(), Cheapest()
        svm.fit(train, ctx)
        cheapest.fit(train, ctx)
        picked = choose(svm.utilities(test.queries, ctx))
        assert (picked != cheapest.index).mean() > 0.2, scenario
        assert len(set(picked.tolist())) >= 2
        quality = svm.quality(test.queries, ctx)
        assert quality.shape == (len(test), len(table.models))
        assert ((quality >= 0) & (quality <= 1)).all()
    # Performance-first it picks better answers than the cheapest model does.
    rows = np.arange(len(test))
    ctx = tiny_context(train, TradeOff.scenario("performance"))
    svm.fit(train, ctx)
    chosen = choose(svm.utilities(test.queries, ctx))
    assert test.scores[rows, chosen].mean() > test.scores[:, cheapest.index].mean()


def test_knn_numpy_prediction_is_scikit_learns_own() -> None:
    """Same scores as KNeighborsRegressor.predict, on new queries and on training ones
    (distance 0: the query's own row alone), hence the same decisions."""
    table = tiny_table()
    train, test = table.split(0.3, seed=0)
    ctx = tiny_context(train, TradeOff.scenario("balanced"))
    knn = KNNRouter()
    knn.fit(train, ctx)
    for queries in (test.queries, train.queries[:20]):
        x = ctx.features(queries)
        np.testing.assert_allclose(knn.predict(x), knn.model.predict(x), atol=1e-5)
        expected = ctx.utility(np.asarray(knn.model.predict(x), dtype=float))
        assert (choose(knn.utilities(queries, ctx)) == choose(expected)).all()


def test_svm_probabilities_are_scikit_learns_own() -> None:
    """The numpy form of the calibrated SVMs gives predict_proba's numbers."""
    table = tiny_table()
    train, test = table.split(0.3, seed=0)
    ctx = tiny_context(train, TradeOff.scenario("balanced"))
    svm = SVMRouter()
    svm.fit(train, ctx)
    x = ctx.features(test.queries)
    reference = np.stack(
        [
            np.full(len(test), m) if isinstance(m, float) else m.predict_proba(x)[:, 1]
            for m in svm.models
        ],
        axis=1,
    )
    assert any(not isinstance(m, float) for m in svm.models)
    np.testing.assert_allclose(svm.quality(test.queries, ctx), reference, rtol=1e-9, atol=1e-12)


def test_cpt_is_read_per_query_and_rounded() -> None:
    strong = np.zeros(40)
    strong[7] = 1.0  # strong beats weak on one row of forty
    weak = np.zeros(40)
    preference = np.zeros(40)
    preference[7] = 1.0
    assert pgr_curve(strong, weak, preference)[1] == (0.025, 1.0)
    rows = tuple(
        Row(
            id=str(i),
            task="t",
            query=f"q{i}",
            outcomes={"S": Outcome(score=s, cost=1.0), "W": Outcome(score=w, cost=0.1)},
        )
        for i, (s, w) in enumerate(zip(strong, weak, strict=True))
    )
    table = build_table(rows, ("S", "W"), {"S": ModelCard(name="S"), "W": ModelCard(name="W")})
    report = two_model_report(table, 0, 1, preference)
    assert report["cpt50"] == 0.025 and report["cpt80"] == 0.025  # a 5% grid said 0.05
    assert len(report["pgr_curve"]) == 21
    assert report["apgr"] == round(report["apgr"], 4)


@pytest.fixture(scope="module")
def two_model_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RoutingTable]:
    table = two_models(tiny_table())
    train, test = table.split(0.3, seed=0)
    out = tmp_path_factory.mktemp("two")
    train_artifact("threshold", train, TradeOff(), out, baselines=("knn", "random", "cheapest"))
    return out, test


def test_threshold_two_model_metrics_use_its_preference(
    two_model_artifact: tuple[Path, RoutingTable],
) -> None:
    out, test = two_model_artifact
    result = evaluate(out, test)
    router, ctx = load_artifact(out)
    strong = test.models.index(STRONG)
    expected = two_model_report(test, strong, 1 - strong, router.preference(test.queries, ctx))  # type: ignore[attr-defined]
    assert result["two_model"]["apgr"] == expected["apgr"]
    # One-hot utilities rank only two blocks; the preference ranks every query.
    assert result["two_model"]["cpt50"] == expected["cpt50"]


def test_route_eval_reports_a_baseline_with_router(
    two_model_artifact: tuple[Path, RoutingTable],
) -> None:
    out, test = two_model_artifact
    result = evaluate(out, test, "knn")
    assert result["router"] == "knn" and "two_model" in result
    assert "threshold" in result["baselines"] and "knn" not in result["baselines"]


def test_route_list_names_every_router_and_its_knob() -> None:
    done = run("route", "list", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert set(listing["trainable"]) == set(TRAINABLE) and set(listing["live"]) == set(ROUTERS)
    knobs = {name: entry["sweep"] for name, entry in listing["trainable"].items()}
    assert knobs["threshold"] == "share" and knobs["pareto"] == "budget_usd"
    assert knobs["cascade"] == "threshold" and knobs["knn"] == "alpha" == knobs["svm"]
    assert knobs["random"] is None and knobs["cheapest"] is None
    assert listing["answer-aware"]["answer-cascade"]["sweep"] == "value_usd"


def test_route_train_help_lists_every_trainable_router() -> None:
    done = run("route", "train", "--help")
    flat = " ".join(done.stdout.split())
    assert all(name in flat for name in TRAINABLE), flat


def test_route_cli_options_sweep_json_plot_and_quiet(tmp_path: Path) -> None:
    out = tmp_path / "art"
    base = ("route", "train", "--train", str(TABLE), "--models", str(MODELS), "--out", str(out))
    for bad, message in (
        (
            "shar=0.3",
            "error: router 'threshold' has no option shar (known: predictor, share, strong, weak)",
        ),
        ("share=2", "error: router 'threshold' option share: Input should be less than or"),
    ):
        failed = run(*base, "--router", "threshold", "--option", bad)
        assert failed.returncode == 2
        assert failed.stderr.strip().splitlines()[0].startswith(message)
    done = run(*base, "--router", "threshold", "--option", "share=0.3", "--quiet")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    policy = json.loads((out / "routers" / "threshold" / "policy.json").read_text())
    assert policy["config"]["share"] == 0.3 and policy["share"] == 0.3
    assert json.loads((out / "config.json").read_text())["options"] == {"share": 0.3}
    plot = tmp_path / "curves.png"
    swept = run(
        *("route", "eval", "--artifact", str(out), "--test", str(TABLE)),
        *("--sweep", "--json", "--plot", str(plot)),
    )
    assert swept.returncode == 0, swept.stderr
    assert swept.stderr == ""  # no progress bars into a pipe
    result = json.loads(swept.stdout)
    assert result["router"] == "threshold" and result["sweep_param"] == "share"
    curve = result["curve"]
    assert [p["param"] for p in curve][:2] == [0.0, 0.025] and len(curve) == 41
    assert set(curve[0]) == {"param", "quality", "cost", "call_share"}
    assert curve[0]["call_share"] == {"mistralai/mistral-7b-chat": 1.0}
    assert {"random", "cheapest", "best-single", "oracle", *json.loads(MODELS.read_text())} <= set(
        result["baselines"]
    )
    summary = result["summary"]
    assert {"cheapest_reaching_reference", "best_within_25pct", "best_within_50pct", "auc"} <= set(
        summary
    )
    assert {"knn", "mlp", "svm", "mf"} <= set(result["curves"])
    assert set(result["not_swept"]) == {"random", "best-single", "cheapest"}
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_knob_sweep_leaves_the_router_as_it_was(tmp_path: Path) -> None:
    table = tiny_table().subset(range(80))
    ctx = tiny_context(table)
    for name in ("threshold", "pareto", "cascade"):
        router = TRAINABLE.load(name)()
        router.fit(table, ctx)
        from signoria.routers.sweep import sweeper

        before = router.knob()
        policy, _ = sweeper(router, ctx, table, dict(table.info))
        assert policy is not None and policy.sweep_param == router.sweep_param
        outcomes = [policy.outcome_at(v, table, ctx) for v in policy.sweep_values(ctx)]
        assert router.knob() == before
        costs = [o.total_cost() or 0.0 for o in outcomes]
        assert costs[0] <= costs[-1], name  # cheapest setting first


def test_an_unknown_cost_stays_unknown_on_the_curve(tmp_path: Path) -> None:
    table = tiny_table().subset(range(60))
    costs = table.costs.copy()
    costs[0, :] = np.nan
    unknown = replace(table, costs=costs)
    train_artifact("knn", table, TradeOff(), tmp_path / "a", baselines=("random",))
    result = sweep_report(tmp_path / "a", unknown)
    assert all(p["cost"] is None for p in result["curve"])
