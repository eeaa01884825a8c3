"""Shared fixtures. Real-model tests use the embedded GGUFs the install step provides."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoria.agents.backends.llamacpp import LlamaCppRuntime, LlamaCppSettings
from signoria.agents.backends.scripted import ScriptedBehaviour, ScriptedExpert
from signoria.agents.types import ModelCard

ROOT = Path(__file__).resolve().parent.parent
TEST_CONFIG = ROOT / "tests" / "configs" / "local.yaml"
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"

# Nothing in the suite may reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Fixtures shared by several test modules, from their own files.
pytest_plugins = ["tests.postgres_cluster"]


# A private Signoria home for the whole session, shared by subprocesses (CLI, servers):
# the suite never touches the user's own data dir, and parts are joined once per session.
_HOME = Path(tempfile.mkdtemp(prefix="signoria-test-home-"))
os.environ["SIGNORIA_HOME"] = str(_HOME)
os.environ.pop("SIGNORIA_CONFIG", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return _HOME / "models"


@pytest.fixture
def runtime(model_cache: Path) -> Iterator[LlamaCppRuntime]:
    rt = LlamaCppRuntime(LlamaCppSettings(n_threads=2, memory_cap_mb=4096, cache_dir=model_cache))
    yield rt
    rt.close()


def scripted(name: str, price: float | None = 0.0, **behaviour: object) -> ScriptedExpert:
    card = ModelCard(name=name, backend="scripted", input_price=price, output_price=price)
    return ScriptedExpert(card, ScriptedBehaviour.model_validate(behaviour))
