"""The web console in a real browser: Debian's headless Chromium driven by Playwright
against a real `signoria serve` (scripted experts, a real SQLite record, keys on) after
known traffic and two eval runs. Each page is checked for what a person would look for,
and a screenshot of it is saved ($SIGNORIA_SCREENSHOTS, else the test's temp dir)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.server_process import SIGNORIA, RunningServer, running_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
KEY = "sk-console-test"
CONFIG = ROOT / "tests" / "configs" / "console.yaml"
GSM8K = ROOT / "tests" / "fixtures" / "gsm8k.jsonl"
# As the machine's notes say: without these, Chromium tries the network at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (make test installs it as root)",
    ),
]


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'console.db'}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("SIGNORIA_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def signoria(*args: str, db_url: str) -> str:
    done = subprocess.run(
        [SIGNORIA, *args, "--db", db_url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    # A named key in the database beside the environment's key: spend shows per key.
    created = signoria("keys", "create", "team-a", "--json", db_url=db_url)
    os.environ["SIGNORIA_CONSOLE_TEAM_KEY"] = re.search(r'"key": "([^"]+)"', created).group(1)  # type: ignore[union-attr]
    with running_server("--config", str(CONFIG), "--db", db_url, log=log, api_keys=KEY) as running:
        yield running


@pytest.fixture(scope="module")
def traffic(server: RunningServer, db_url: str) -> dict[str, str]:
    """Known requests (their ids by what they show) and two eval runs to compare."""
    ids: dict[str, str] = {}
    team = os.environ["SIGNORIA_CONSOLE_TEAM_KEY"]
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        for name, model, key in [
            ("vote", "signoria/vote", KEY),
            ("single", "signoria/single", team),
            ("unpriced", "signoria/unpriced", team),
            ("broken", "signoria/broken", KEY),
            ("unknown model", "no-such-model", KEY),
        ]:
            body = {"model": model, "messages": [{"role": "user", "content": f"{name}: 3 + 4?"}]}
            response = http.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            ids[name] = response.json().get("id", "")
    for pipeline in ("five", "ten"):
        signoria(
            "eval", "run", "--benchmark", "gsm8k", "--data", str(GSM8K), "--limit", "6",
            "-c", str(CONFIG), "-p", pipeline, "--run-id", f"run-{pipeline}", db_url=db_url,
        )  # fmt: skip
    return ids


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: RunningServer, traffic: dict[str, str]) -> Iterator[Any]:
    """A logged-in page: the login form sets the console's cookie."""
    context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.goto("/console/requests")
    assert "/console/login" in tab.url  # no key yet: sent to the login form
    tab.fill("#key", KEY)
    tab.click("#login")
    tab.wait_for_url("**/console/requests")
    yield tab
    context.close()


def test_a_wrong_key_is_refused_at_the_login(browser: Any, server: RunningServer) -> None:
    context = browser.new_context(base_url=server.base_url)
    tab = context.new_page()
    tab.goto("/console/login")
    tab.fill("#key", "sk-wrong")
    tab.click("#login")
    assert tab.locator("#login-error").inner_text() == "That key is not valid here."
    tab.goto("/console/runs")
    assert "/console/login" in tab.url
    context.close()


def test_requests_list_the_traffic_and_filter_by_key_and_status(
    page: Any, traffic: dict[str, str], shots: Path
) -> None:
    rows = page.locator("#requests tbody tr")
    assert rows.count() == 4  # the unknown model was refused before any pipeline ran
    text = page.locator("#requests").inner_text()
    assert "vote" in text and "team-a" in text and "unknown" in text  # an unpriced cost
    page.screenshot(path=str(shots / "requests.png"), full_page=True)
    page.select_option("#f-key", "team-a")
    page.click("#filter")
    assert page.locator("#requests tbody tr").count() == 2
    page.select_option("#f-key", "")
    page.select_option("#f-status", "error")
    page.click("#filter")
    failed = page.locator("#requests tbody tr")
    assert failed.count() == 1 and "400 refused" in failed.inner_text()
    page.select_option("#f-status", "")
    page.select_option("#f-pipeline", "vote")
    page.click("#filter")
    assert page.locator("#requests tbody tr").count() == 1


def test_a_requests_trace_shows_its_experts_votes_and_the_flagged_liar(
    page: Any, traffic: dict[str, str], shots: Path
) -> None:
    page.click(f"a[href='/console/requests/{traffic['vote']}']")
    page.wait_for_url(f"**/console/requests/{traffic['vote']}")
    experts = page.locator("#calls td.expert").all_inner_texts()
    assert experts == ["alpha", "beta", "liar"]
    assert page.locator("tr.outcome-flagged td.expert").inner_text() == "liar"
    assert page.locator("tr.outcome-chosen").count() == 2
    votes = dict(row.split("\t") for row in page.locator("#votes tbody tr").all_inner_texts())
    assert votes == {"7": "2.00", "9": "0.00"}
    assert "liar" in page.locator("#flagged").inner_text()
    assert page.locator("#answer").inner_text() == "The answer is 7."
    assert "agreement-vote" in page.locator("#aggregation").inner_text()
    assert "fixed" in page.locator("#routing").inner_text()
    page.screenshot(path=str(shots / "request-trace.png"), full_page=True)


def test_runs_show_accuracy_with_intervals_the_plot_and_an_item_by_item_comparison(
    page: Any, shots: Path
) -> None:
    page.goto("/console/runs")
    runs = page.locator("#runs tbody").inner_text()
    assert "run-five" in runs and "run-ten" in runs
    assert re.search(r"16\.7% \[\d+\.\d%, \d+\.\d%\]", runs)  # 1 of 6 right, with its CI
    assert page.locator("#cost-quality svg").count() == 1
    page.screenshot(path=str(shots / "runs.png"), full_page=True)
    page.select_option("#cmp-a", "run-five")
    page.select_option("#cmp-b", "run-ten")
    page.click("#compare")
    paired = page.locator("#paired").inner_text()
    assert "On 6 common items" in paired and "only run-five right: 1" in paired
    assert page.locator("#pairs tr.differs").count() == 2  # item 2 (10) and item 3 (5)
    page.screenshot(path=str(shots / "compare.png"), full_page=True)


def test_routers_show_call_share_over_time_and_spend_per_key(page: Any, shots: Path) -> None:
    page.goto("/console/routers")
    vote = page.locator("#share-vote")
    assert vote.locator("svg").count() == 1
    assert "alpha 1, beta 1, liar 1" in vote.locator(".totals").inner_text()
    spend = {
        row.split("\t")[0]: row.split("\t")
        for row in page.locator("#spend tbody tr").all_inner_texts()
    }
    team = spend["team-a"]
    # One of its requests has no price: the spend is unknown, the priced part shown apart.
    assert team[1] == "2" and team[3].startswith("unknown (≥ $0.0000") and team[4] == "1"
    env = spend[next(k for k in spend if k.startswith("env:"))]
    assert (env[1], env[2]) == ("2", "1")  # the vote, and the broken expert's failure
    page.screenshot(path=str(shots / "routers.png"), full_page=True)


def test_the_playground_streams_an_answer_with_its_trace(page: Any, shots: Path) -> None:
    page.goto("/console/playground")
    page.select_option("#model", "signoria/stream")
    page.fill("#prompt", "What is 17 * 3?")
    page.click("#send")
    page.wait_for_function("document.getElementById('status').textContent === 'streaming…'")
    partial = page.locator("#answer").inner_text()
    page.wait_for_function("document.getElementById('status').textContent === 'done'")
    final = page.locator("#answer").inner_text()
    assert final == "Seventeen times three is fifty-one."
    assert len(partial) < len(final)  # it was written as it came, not all at once
    assert page.locator("#trace tbody tr.call td").first.inner_text() == "writer"
    assert '"pipeline": "stream"' in page.locator("#decision").inner_text()
    page.screenshot(path=str(shots / "playground.png"), full_page=True)


def test_the_console_is_off_with_a_flag_and_says_when_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    with running_server("--config", str(CONFIG), "--no-record", "--no-console", log=log) as off:
        response = httpx.get(f"{off.base_url}/console/requests")
        assert response.status_code == 404 and response.json()["error"]["message"]
    with running_server("--config", str(CONFIG), "--no-record", log=log) as keyless:
        page = httpx.get(f"{keyless.base_url}/console/requests")  # loopback, no keys: open
        assert page.status_code == 200 and 'id="no-recording"' in page.text
        missing = httpx.get(f"{keyless.base_url}/console/requests/chatcmpl-nope")
        assert missing.status_code == 404
