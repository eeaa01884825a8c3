"""`signoria feedback REQUEST_ID --score S | --reference TEXT`: feedback from the shell.

The operator's way to label recorded traffic (the REST endpoint is the client's): the
same validation as `POST /v1/feedback` and the same store, but no key check, since
whoever can open the database can read every request anyway. Latest feedback wins.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from signoria.errors import UsageError
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.feedback import FeedbackInput


def parse_feedback(
    score: float | None, reference: str | None, comment: str | None, task: str | None
) -> FeedbackInput:
    """The flags as validated feedback; a bad one is a usage error naming the flag."""
    try:
        return FeedbackInput(score=score, reference=reference, comment=comment, task=task)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not where:  # the one-verdict rule: say it in flags
            raise UsageError("give exactly one of --score and --reference") from None
        raise UsageError(f"--{where}: {message}") from None


def feedback_command(
    *,
    request_id: str,
    score: float | None,
    reference: str | None,
    comment: str | None,
    task: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    verdict = parse_feedback(score, reference, comment, task)
    store = Store.open(db)
    try:
        record = store.give_feedback(request_id, verdict)
    finally:
        store.close()
    replaced = record.updated_at > record.created_at
    if as_json:
        payload = {"request_id": request_id, "replaced": replaced, **record.model_dump()}
        print(json.dumps(payload, default=str))
        return
    what = f"score {record.score:g}" if record.score is not None else "a reference answer"
    print(f"{'replaced feedback' if replaced else 'feedback'} on {request_id}: {what}")
