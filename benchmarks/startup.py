"""Start-up time: Signoria's CLI and server next to LiteLLM's, on the same machine, in one run.

Wall time, median and spread over `--repeats` runs, the targets interleaved run by run so
that a busy moment of the machine hits every target alike:

- `signoria --help`, `signoria ask --help` and a usage error (`redteam --replace middle`);
- `signoria ask --json` answered by an API expert (the `openai` backend calling the stub
  provider on loopback with no delay): the whole command, config to answer;
- `signoria serve` until `/health` answers, with a key required and recording on (the
  product's settings), on an empty SQLite file;
- `litellm --help` and the LiteLLM proxy (one worker) until `/health/liveliness`
  answers, from the benchmark venv (`.bench-venv`, see benchmarks/requirements-proxy.txt).

    python3 -m venv .bench-venv && .bench-venv/bin/pip install -r benchmarks/requirements-proxy.txt
    .venv/bin/python -m benchmarks.startup --repeats 5

Prints one JSON object and a summary line per target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.overhead import (
    KEY,
    PROXY,
    ROOT,
    free_port,
    process,
    proxy_config,
    signoria_argv,
    signoria_config,
    stub_argv,
)

SIGNORIA = str(Path(sys.executable).parent / "signoria")


def timed_command(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, timeout=300, check=False)
    return time.perf_counter() - t0


def timed_server(argv: list[str], ready_url: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    with process(argv, ready_url, env=env):
        return time.perf_counter() - t0


def targets(stub_port: int, work: Path, env: dict[str, str]) -> dict[str, Callable[[], float]]:
    config = signoria_config(stub_port, work, "openai")
    proxy = proxy_config(stub_port, work)

    def serve() -> float:
        port = free_port()
        db = work / f"serve-{port}.db"
        argv = signoria_argv(config, port, "--db", f"sqlite:///{db}")
        return timed_server(argv, f"http://127.0.0.1:{port}/health", env)

    def litellm_proxy() -> float:
        port = free_port()
        argv = [str(PROXY), "--config", str(proxy), "--port", str(port), "--num_workers", "1"]
        return timed_server(argv, f"http://127.0.0.1:{port}/health/liveliness", env)

    found: dict[str, Callable[[], float]] = {
        "signoria --help": lambda: timed_command([SIGNORIA, "--help"], env),
        "signoria ask --help": lambda: timed_command([SIGNORIA, "ask", "--help"], env),
        "signoria usage error": lambda: timed_command(
            [SIGNORIA, "redteam", "--replace", "middle", "--data", "x.jsonl"], env
        ),
        "signoria ask (API expert)": lambda: timed_command(
            [SIGNORIA, "ask", "-c", str(config), "What is 6 * 7?", "--json"], env
        ),
        "signoria serve until /health": serve,
    }
    if PROXY.exists():
        found["litellm --help"] = lambda: timed_command([str(PROXY), "--help"], env)
        found["litellm proxy until /health/liveliness"] = litellm_proxy
    return found


def main(repeats: int) -> dict[str, Any]:
    stub_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "STUB_API_KEY": "stub-key",
            # Both servers require a key, as in production.
            "SIGNORIA_API_KEYS": KEY,
            "LITELLM_MASTER_KEY": KEY,
            "SIGNORIA_HOME": str(work / "home"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        with process(stub_argv(stub_port, 0.0), f"http://127.0.0.1:{stub_port}/v1/models"):
            runs = targets(stub_port, work, env)
            for measure in runs.values():  # warm-up: page cache and bytecode, not timed
                measure()
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(repeats):
                for name, measure in runs.items():
                    times[name].append(measure())
    return {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(),
        },
        "repeats": repeats,
        "seconds": {
            name: {
                "median": round(statistics.median(values), 3),
                "min": round(min(values), 3),
                "max": round(max(values), 3),
            }
            for name, values in times.items()
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per target")
    args = parser.parse_args()
    report = main(args.repeats)
    print(json.dumps(report, indent=2))
    for name, s in report["seconds"].items():
        spread = f"min {s['min']:.3f}, max {s['max']:.3f}"
        print(f"{name}: {s['median']:.3f} s ({spread})", file=sys.stderr)
