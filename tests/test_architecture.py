"""Import direction and code quality are checked by the suite, not by goodwill."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_import_direction_agents_routers_orchestrator_evals() -> None:
    done = tool("lint-imports")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_ruff_is_clean() -> None:
    done = tool("ruff", "check", ".")
    assert done.returncode == 0, done.stdout


def test_mypy_strict_on_the_packages() -> None:
    done = tool("mypy")
    assert done.returncode == 0, done.stdout
