"""`signoria keys create|list|revoke`: API keys with their own limits, in the database.

The key itself is printed once, by `create`; the database keeps only its fingerprint. A
server on the same database (`signoria serve --db ...`, any number of instances) accepts
the key within seconds and enforces its limits; `revoke` stops it the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from signoria.orchestrator.cli_common import DbOption, JsonOption, console, group

if TYPE_CHECKING:
    from signoria.orchestrator.storage.keys import KeyRecord, KeyUsage

keys_app = group("API keys with their own budgets, rates and allowed models.")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for the key (unique), e.g. a team.")],
    budget_day: Annotated[
        float | None, typer.Option(min=0.0, help="USD per UTC day, from recorded costs.")
    ] = None,
    budget_month: Annotated[float | None, typer.Option(min=0.0, help="USD per month.")] = None,
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[
        int | None, typer.Option(min=1, help="Tokens (prompt + completion) per minute.")
    ] = None,
    pipeline: Annotated[
        list[str] | None, typer.Option("--pipeline", help="An allowed pipeline; repeatable.")
    ] = None,
    expert: Annotated[
        list[str] | None, typer.Option("--expert", help="An allowed raw expert; repeatable.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it (once: only its fingerprint is stored)."""
    from signoria.orchestrator.keylimits import KeyLimits
    from signoria.orchestrator.storage import Store
    from signoria.orchestrator.storage.keys import KeyStore

    limits = KeyLimits(
        budget_day_usd=budget_day,
        budget_month_usd=budget_month,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        pipelines=None if pipeline is None else tuple(pipeline),
        experts=None if expert is None else tuple(expert),
    )
    store = Store.open(db)
    try:
        secret, record = KeyStore(store).create(name, limits)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"key": secret, **_shown(record)}, default=str))
        return
    print(secret)
    console(stderr=True).print(f"key {name!r} created; it is shown only this once")


@keys_app.command("list")
def list_keys(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every key with its limits and what it spent today and this month."""
    from signoria.orchestrator.storage import Store
    from signoria.orchestrator.storage.keys import KeyStore

    store = Store.open(db)
    try:
        keys = KeyStore(store)
        rows = [(record, keys.usage(record.fingerprint)) for record in keys.records()]
    finally:
        store.close()
    if as_json:
        print(json.dumps({"keys": [_shown(r, u) for r, u in rows]}, default=str))
        return
    from rich.table import Table

    table = Table(box=None)
    for column in ("name", "key", "limits", "today USD", "month USD", "status"):
        table.add_column(column)
    for record, usage in rows:
        limits = record.limits.model_dump(exclude_none=True)
        table.add_row(
            record.name,
            record.prefix + "...",
            ", ".join(f"{k}={v}" for k, v in limits.items()) or "-",
            f"{usage.spend_day_usd:.6f}",
            f"{usage.spend_month_usd:.6f}",
            "revoked" if record.revoked_at else "active",
        )
    console().print(table)


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: servers on this database refuse it within seconds."""
    from signoria.orchestrator.storage import Store
    from signoria.orchestrator.storage.keys import KeyStore

    store = Store.open(db)
    try:
        record = KeyStore(store).revoke(name)
    finally:
        store.close()
    if as_json:
        print(json.dumps(_shown(record), default=str))
        return
    print(f"key {name!r} revoked")


def _shown(record: KeyRecord, usage: KeyUsage | None = None) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "name": record.name,
        "prefix": record.prefix,
        "limits": record.limits.model_dump(mode="json"),
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }
    if usage is not None:
        shown["spend_day_usd"] = usage.spend_day_usd
        shown["spend_month_usd"] = usage.spend_month_usd
        shown["unpriced_requests"] = usage.unpriced
    return shown
