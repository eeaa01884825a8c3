"""What one served request's record costs to write: `Store.record_items` alone, SQLite
file vs a throwaway local PostgreSQL cluster, batch of 1 (one request in flight) and of 16
(group commit under load); on each also the ORM's unit of work (`sqlite-orm`,
`postgres-orm`: what the store did before its direct writes) as the baseline.

    .venv/bin/python -m benchmarks.record_write [--n 200]

The record is a real one: the result of a `single` pipeline over one `scripted` expert
(one call, its routing and aggregation rows), as `signoria serve` writes it. Reported per
database and batch size: p50 and p90 milliseconds per `record_items` call and per record,
after 20 warm-up writes; and a batch of 1 after 50 ms idle before each write (one request
in flight waiting for its expert). Prints one JSON object and a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from signoria.orchestrator.result import AskResult
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.rows import ItemFields, new_item

Writer = Callable[[Store, str, list[ItemFields]], None]

CONFIG = """default_pipeline: single
models:
  a: {backend: scripted, answer: "The answer is 7.", input_price: 1.0, output_price: 2.0}
pipelines:
  single:
    router: {name: fixed, experts: [a]}
    aggregator: first
"""


def served_result(directory: Path) -> AskResult:
    path = directory / "record.yaml"
    path.write_text(CONFIG)
    with Orchestrator.from_config(path) as orch:
        return orch.ask("What is 3 + 4?")


@contextmanager
def databases(directory: Path) -> Iterator[dict[str, str]]:
    from tests.postgres_cluster import NoPostgres, throwaway_cluster

    urls = {"sqlite": f"sqlite:///{directory / 'records.db'}"}
    try:
        with throwaway_cluster() as url:
            yield {**urls, "postgres": url}
    except NoPostgres:
        yield urls


def orm_write(store: Store, run: str, rows: list[ItemFields]) -> None:
    """The ORM's unit of work, which the store used before `one_statement.py` and
    `sqlite_write.py`: the baseline, on the same database in the same run."""
    with store.session() as s:
        s.add_all(new_item(run, **row) for row in rows)


def store_write(store: Store, run: str, rows: list[ItemFields]) -> None:
    store.record_items(run, rows)


def time_writes(
    url: str, result: AskResult, batch: int, n: int, write: Writer = store_write, gap_ms: int = 0
) -> dict[str, Any]:
    """Per write, p50/p90 ms; `gap_ms` idle before each timed write, as a server with one
    request in flight waits for its expert (caches and the database's process go cold)."""
    store = Store.open(url)
    try:
        run = store.create_run(
            kind="serve", pipeline=None, run_id=None, benchmark=None, data_path=None, config={}
        )

        def entries() -> list[ItemFields]:
            return [
                {"item_key": uuid.uuid4().hex, "query": "What is 3 + 4?", "result": result,
                 "error": None, "client": "fingerprint"}
                for _ in range(batch)
            ]  # fmt: skip

        for _ in range(20):
            write(store, run, entries())
        times = []
        for _ in range(n):
            rows = entries()
            time.sleep(gap_ms / 1000)
            t0 = time.perf_counter()
            write(store, run, rows)
            times.append((time.perf_counter() - t0) * 1000)
        assert store.count_items(run) == (20 + n) * batch
    finally:
        store.close()
    p50 = statistics.median(times)
    return {
        "batch": batch,
        "gap_ms": gap_ms,
        "n": n,
        "p50_ms": round(p50, 3),
        "p90_ms": round(statistics.quantiles(times, n=10)[-1], 3),
        "p50_ms_per_record": round(p50 / batch, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp, databases(Path(tmp)) as urls:
        result = served_result(Path(tmp))
        report["calls_per_record"] = len(result.calls)
        for name, url in urls.items():
            for label, write in ((name, store_write), (f"{name}-orm", orm_write)):
                report["results"][label] = [
                    time_writes(url, result, batch, args.n, write, gap)
                    for batch, gap in ((1, 0), (16, 0), (1, 50))
                ]
    print(json.dumps(report))
    print(
        "record_write: "
        + "; ".join(
            f"{name} "
            + ", ".join(
                f"batch {r['batch']}{' after 50 ms idle' if r['gap_ms'] else ''} {r['p50_ms']} ms"
                for r in rows
            )
            for name, rows in report["results"].items()
        )
    )


if __name__ == "__main__":
    main()
