"""What the console's pages are made of, from records built by hand or stored and read
back: a router's collapse onto one model shows in the share over time, spend per key keeps
unknown prices unknown, and a request's page shows a routing policy's turns and a
cascade's steps, with every text from an expert escaped."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from signoria.evals.console.pages import console_templates
from signoria.evals.console.views import (
    RequestView,
    request_view,
    share_over_time,
    spend_per_key,
)
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.browse import served_request
from signoria.orchestrator.storage.records import CallRecord, ItemRecord
from tests.test_router_r1_loop import QUESTION, answer, ask, config, route
from tests.test_storage import cascaded_result

START = datetime(2026, 12, 1, 9, 0)


def served(minute: int, experts: list[str], cost: float | None, client: str | None) -> ItemRecord:
    calls = tuple(
        CallRecord(
            expert=e,
            role="expert",
            attempt=1,
            seed=0,
            tokens_in=1,
            tokens_out=1,
            latency_s=0.1,
            cost=cost,
            error=None,
            text="x",
        )
        for e in experts
    )
    return ItemRecord(
        item_key=f"r{minute}",
        position=None,
        query="q",
        reference=None,
        answer="x",
        error=None,
        cost=cost,
        latency_s=0.1,
        calls=calls,
        routing=(),
        aggregations=(),
        scores=(),
        pipeline="routed",
        created_at=START + timedelta(minutes=minute),
        client=client,
    )


def test_a_router_collapsing_onto_one_model_shows_in_the_share_over_time() -> None:
    # Three hours of traffic: a balanced first hour, then everything to "big".
    items = [served(m, ["small" if m % 2 else "big"], 0.01, "k") for m in range(0, 60, 5)]
    items += [served(m, ["big"], 0.01, "k") for m in range(60, 180, 5)]
    [view] = share_over_time(items)
    assert view.pipeline == "routed" and len(view.buckets) == 3  # hours, by the span
    assert view.shares["big"] == [0.5, 1.0, 1.0] and view.shares["small"] == [0.5, 0.0, 0.0]
    assert view.totals == {"big": 30, "small": 6}


def test_spend_per_key_is_unknown_when_any_request_is_unpriced() -> None:
    items = [
        served(0, ["a"], 0.5, "fp-a"),
        served(1, ["a"], None, "fp-a"),
        served(2, ["a"], 0.25, None),
    ]
    rows = {r.key: r for r in spend_per_key(items, {"fp-a": "team-a"})}
    assert rows["team-a"].spend is None and rows["team-a"].priced_spend == 0.5
    assert rows["team-a"].unpriced == 1 and rows["team-a"].requests == 2
    assert rows["-"].spend == 0.25


def stored_view(result: AskResult, tmp_path: Path) -> RequestView:
    """The request page's view of `result`, recorded as a served request and read back."""
    store = Store.open(f"sqlite:///{tmp_path / 'console.db'}")
    run = store.create_run(kind="serve")
    store.record_item(run, item_key="req-1", query=QUESTION, result=result, client="fp-a")
    item = served_request(store, "req-1")
    store.close()
    assert item is not None
    return request_view(item, {"fp-a": "team-a"})


def render(view: RequestView) -> str:
    page = console_templates().get_template("request.html")
    return page.render(view=view, request_id=view.item.item_key, recording=True, auth=False)


HOSTILE = '<script>alert("pwned")</script>'


async def test_a_routing_policys_turns_show_with_the_calls_they_made(tmp_path: Path) -> None:
    turns = [route("cheap", think="<b>ask</b> cheap"), "garbage", answer("B")]
    view = stored_view(await ask(config(turns, cheap={"answer": HOSTILE})), tmp_path)
    assert [(v.turn.turn, v.turn.action, v.call) for v in view.turns] == [
        (1, "route", 1),  # the call after the policy's first turn
        (2, "malformed", None),
        (3, "answer", None),
    ]
    assert [c.call.expert for c in view.calls] == ["policy", "cheap", "policy", "policy"]
    assert view.calls[1].outcome == "chosen" and view.steps == []
    html = render(view)
    assert '<table id="turns">' in html and '<table id="steps">' not in html
    assert "(call #1)" in html and "the turn must start with &lt;think&gt;" in html
    # What an expert wrote (and the policy read back) is text on the page, never markup.
    assert HOSTILE not in html and "<b>ask" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "&lt;b&gt;ask&lt;/b&gt; cheap" in html


def test_a_cascades_steps_show_its_decision_per_stage(tmp_path: Path) -> None:
    view = stored_view(cascaded_result(), tmp_path)
    assert [(s.stage, s.accept, s.next_stage) for s in view.steps] == [
        (0, False, 1),
        (1, True, None),
    ]
    assert view.turns == []
    html = render(view)
    assert '<table id="steps">' in html and '<table id="turns">' not in html
    assert "go on to stage 1" in html and "accept" in html
    assert "0.40" in html and "+0.35" in html and "$0.002000" in html
    # The knob each decision was made at (a pacer moves it), stored and shown.
    assert view.steps[0].value_usd == 0.0375 and "$0.037500" in html
