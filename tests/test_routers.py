"""Routing data, metrics, baselines, artifacts, `route train/eval` and the live router."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from signoria.routers.artifact import BASELINES, load_artifact, train_artifact
from signoria.routers.data import RoutingDataError, load_models, load_table
from signoria.routers.learned import LearnedRouter, LearnedRouterParams
from signoria.routers.metrics import apgr, cpt, pgr_curve, summarise
from signoria.routers.trainable import RouterContext, TradeOff
from tests.conftest import scripted

FIXTURES = Path(__file__).parent / "fixtures"
TABLE = FIXTURES / "routing_tiny.jsonl"
MODELS = FIXTURES / "routing_tiny.models.json"
SIGNORIA = str(Path(sys.executable).parent / "signoria")


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    return load_table(TABLE, load_models(MODELS))


@pytest.fixture(scope="module")
def artifact(table, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    train, _ = table.split(0.25, seed=0)
    out = tmp_path_factory.mktemp("artifact")
    train_artifact("knn", train, TradeOff.scenario("balanced"), out, seed=0)
    return out


def test_a_models_file_lacking_a_table_model_is_a_clear_error(tmp_path: Path) -> None:
    models = json.loads(MODELS.read_text())
    del models["claude-v2"]
    partial = tmp_path / "models.json"
    partial.write_text(json.dumps(models))
    with pytest.raises(RoutingDataError, match="models file lacks claude-v2"):
        load_table(TABLE, load_models(partial))


def test_malformed_rows_name_their_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(TABLE.read_text().splitlines()[0] + '\n{"id": "x", "task": "t"}\n')
    with pytest.raises(RoutingDataError, match=r"bad.jsonl:2: query: Field required"):
        load_table(bad, load_models(MODELS))


def test_split_is_deterministic_and_disjoint(table) -> None:  # type: ignore[no-untyped-def]
    train, test = table.split(0.25, seed=0)
    again, _ = table.split(0.25, seed=0)
    assert [r.id for r in train.rows] == [r.id for r in again.rows]
    assert not {r.id for r in train.rows} & {r.id for r in test.rows}
    assert len(train) + len(test) == len(table)


def test_pgr_apgr_cpt_match_hand_computed_values() -> None:
    strong = np.array([1.0, 1.0, 1.0, 0.0])  # mean 0.75
    weak = np.array([0.0, 0.0, 1.0, 0.0])  # mean 0.25; gap 0.5
    preference = np.array([0.9, 0.8, 0.1, 0.2])  # send q0, q1 first, then q3, then q2
    curve = pgr_curve(strong, weak, preference, points=5)  # shares 0, .25, .5, .75, 1
    # share .25 -> q0 strong: mean .5 -> PGR .5; .5 -> q0,q1: .75 -> 1.0; .75 adds q3 (0 vs
    # 0): 1.0; 1.0 adds q2 (1 vs 1): 1.0.
    assert [round(p, 6) for _, p in curve] == [0.0, 0.5, 1.0, 1.0, 1.0]
    # Trapezoid over steps of .25: (0+.5)/2*.25 + (.5+1)/2*.25 + 1*.25 + 1*.25 = 0.75
    assert apgr(curve) == pytest.approx(0.75)
    assert cpt(curve, 0.5) == 0.25 and cpt(curve, 0.8) == 0.5
    assert cpt(pgr_curve(weak, weak + 1, preference), 2.0) is None


def test_summary_reports_call_share_and_unknown_cost(table) -> None:  # type: ignore[no-untyped-def]
    choice = np.zeros(len(table), dtype=int)
    ctx = RouterContext.from_table(table, TradeOff())
    summary = summarise(table, choice, ctx.reward(table))
    assert summary["call_share"] == {table.models[0]: 1.0}
    assert summary["quality"] == pytest.approx(table.scores[:, 0].mean())
    unknown = table.costs.copy()
    unknown[0, 0] = np.nan
    from dataclasses import replace

    assert summarise(replace(table, costs=unknown), choice, ctx.reward(table))["cost"] is None


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_round_trips_through_the_artifact(artifact: Path, table, name: str) -> None:  # type: ignore[no-untyped-def]
    router, ctx = load_artifact(artifact, name)
    queries = table.queries[:20]
    first = router.utilities(queries, ctx)
    assert first.shape == (20, len(table.models))
    router_again, ctx_again = load_artifact(artifact, name)
    np.testing.assert_allclose(router_again.utilities(queries, ctx_again), first)


def test_best_single_and_cheapest_pick_what_their_names_say(artifact: Path, table) -> None:  # type: ignore[no-untyped-def]
    train, _ = table.split(0.25, seed=0)
    router, ctx = load_artifact(artifact, "cheapest")
    assert (
        ctx.models[int(np.argmax(router.utilities(["q"], ctx)[0]))]
        == table.models[int(np.argmin(ctx.expected_cost))]
    )
    best, bctx = load_artifact(artifact, "best-single")
    rewards = bctx.reward(train).mean(axis=0)
    assert int(np.argmax(best.utilities(["q"], bctx)[0])) == int(np.argmax(rewards))


def test_route_cli_train_and_eval(tmp_path: Path) -> None:
    out = tmp_path / "art"
    train = subprocess.run(
        [
            SIGNORIA,
            "route",
            "train",
            "--router",
            "mlp",
            "--train",
            str(TABLE),
            "--models",
            str(MODELS),
            "--out",
            str(out),
            "--scenario",
            "performance",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr
    assert json.loads((out / "config.json").read_text())["trade_off"] == {"alpha": 1.0, "beta": 0.0}
    done = subprocess.run(
        [
            SIGNORIA,
            "route",
            "eval",
            "--artifact",
            str(out),
            "--test",
            str(TABLE),
            "--json",
            "--plot",
            str(tmp_path / "plane.png"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["router"] == "mlp" and result["n"] == 200
    assert {"random", "best-single", "cheapest", "oracle", "knn", "svm", "mf"} <= set(
        result["baselines"]
    )
    oracle = result["baselines"]["oracle"]["reward"]
    assert all(b["reward"] <= oracle + 1e-9 for b in result["baselines"].values())
    assert sum(result["call_share"].values()) == pytest.approx(1.0)
    assert (tmp_path / "plane.png").read_bytes()[:4] == b"\x89PNG"


def test_route_cli_errors_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [SIGNORIA, "route", "eval", "--artifact", str(tmp_path), "--test", str(TABLE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not a router artifact (no config.json)"
    ]


async def test_learned_router_routes_live_queries_over_the_pool(artifact: Path, table) -> None:  # type: ignore[no-untyped-def]
    router = LearnedRouter(LearnedRouterParams(artifact=artifact, k=2))
    pool = {m: scripted(m) for m in table.models[:6]}
    decision = await router.route(table.queries[0], pool, budget_usd=None)
    assert len(decision.assignments) == 2
    assert all(a.expert in pool for a in decision.assignments)
    chosen = decision.assignments[0].expert
    assert decision.scores[chosen] == max(decision.scores.values())
    assert "not in pool" in decision.reason


def test_router_options_set_validated_config_fields() -> None:
    from signoria.routers.artifact import ArtifactError, build
    from signoria.routers.commands import parse_options

    options = parse_options(["anchor_margin=0.2", "epochs=5"])
    assert options == {"anchor_margin": 0.2, "epochs": 5}
    graph = build("graph", options)
    assert graph.config.anchor_margin == 0.2 and graph.config.epochs == 5  # type: ignore[attr-defined]
    with pytest.raises(ArtifactError, match=r"has no option anchor\b.*known: hidden, epochs"):
        build("graph", {"anchor": 1})
    with pytest.raises(ArtifactError, match=r"option epochs: Input should be greater than"):
        build("graph", {"epochs": 0})
    with pytest.raises(ArtifactError, match="router 'mlp' takes no options"):
        build("mlp", {"hidden": 3})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["epochs"])


def test_route_cli_passes_options_to_the_router(tmp_path: Path) -> None:
    out = tmp_path / "art"
    base = [SIGNORIA, "route", "train", "--train", str(TABLE), "--models", str(MODELS)]
    bad = subprocess.run(
        [*base, "--router", "mlp", "--out", str(out), "--option", "hidden=3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2  # a usage error
    assert bad.stderr.strip().splitlines() == ["error: router 'mlp' takes no options"]
    done = subprocess.run(
        [
            *base,
            *("--router", "graph", "--out", str(out), "--scenario", "performance"),
            *("--option", "anchor_margin=0.2", "--option", "epochs=3"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "routers" / "graph" / "graph_router.json").read_text())
    assert saved["config"]["anchor_margin"] == 0.2 and saved["config"]["epochs"] == 3
    assert saved["anchor"] in json.loads((out / "config.json").read_text())["models"]


def test_a_broken_artifact_manifest_is_one_clear_error(tmp_path: Path) -> None:
    from signoria.routers.artifact import ArtifactError, read_manifest

    with pytest.raises(ArtifactError, match="is not a router artifact"):
        read_manifest(tmp_path)
    manifest = tmp_path / "config.json"
    manifest.write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_manifest(tmp_path)
    manifest.write_text('{"format": 2}')
    with pytest.raises(ArtifactError, match="artifact format 2 not supported"):
        read_manifest(tmp_path)
    manifest.write_text('{"format": 1, "router": "mlp"}')
    with pytest.raises(ArtifactError, match=r"config.json: baselines: Field required \(and"):
        read_manifest(tmp_path)
