"""API keys kept in the database, each with its own budgets, rates and allowed models.

A key is stored as its fingerprint only (a salted SHA-256; the key itself is shown once,
when it is created). Every served request records the fingerprint of the key it came
with, so what a key has spent and how many tokens it used are read back from the
recorded requests: the same numbers as their traces, whichever server instance served
them. Requests per minute are counted from admissions written before a request runs (a
request in flight has no record yet); on PostgreSQL the key's row is locked while one
admission is decided, so several instances on one database enforce one limit exactly.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from signoria.orchestrator.keylimits import KeyLimits
from signoria.orchestrator.storage.schema import ApiKey, Item, KeyAdmission, ModelCall, utcnow
from signoria.orchestrator.storage.store import StorageError

if TYPE_CHECKING:
    from signoria.orchestrator.storage.store import Store

KEY_PREFIX = "sk-signoria-"
WINDOW = timedelta(minutes=1)


def key_fingerprint(key: str) -> str:
    """What the store keeps of a key: a short digest that tells keys apart and cannot be
    used as one."""
    return hashlib.sha256(b"signoria-client\0" + key.encode("utf-8")).hexdigest()[:32]


def shown_prefix(secret: str) -> str:
    """What `keys list` shows of a key: enough to tell keys apart, too little to use."""
    head = len(KEY_PREFIX) if secret.startswith(KEY_PREFIX) else 0
    return secret[: head + 4]


class KeyNotFound(StorageError):
    """No key of that name."""


@dataclass(frozen=True)
class KeyRecord:
    name: str
    fingerprint: str
    prefix: str
    limits: KeyLimits
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, row: ApiKey) -> KeyRecord:
        return cls(
            name=row.name,
            fingerprint=row.fingerprint,
            prefix=row.prefix,
            limits=KeyLimits.model_validate(row.limits),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


@dataclass(frozen=True)
class KeyUsage:
    """A key's recorded use. Requests whose cost is unknown (a model without a price) add
    nothing to spend: they are counted in `unpriced` instead, never as 0 USD."""

    spend_day_usd: float
    spend_month_usd: float
    unpriced: int
    tokens_last_minute: int
    # When the oldest request counted in `tokens_last_minute` was recorded.
    oldest_token_record: datetime | None


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


class KeyStore:
    """Keys and their use, in the store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str, limits: KeyLimits) -> tuple[str, KeyRecord]:
        """A new key: the key itself (shown once, never stored) and its record."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(
            name=name,
            fingerprint=key_fingerprint(secret),
            prefix=shown_prefix(secret),
            limits=limits.model_dump(mode="json"),
        )
        try:
            with self.store.session() as session:
                session.add(row)
                session.flush()
                record = KeyRecord.of(row)
        except IntegrityError:
            raise StorageError(f"a key named {name!r} exists; pick another name") from None
        return secret, record

    def sync_declared(self, declared: Mapping[str, tuple[str, KeyLimits]]) -> None:
        """Make the config's keys (name -> (key, limits)) the database's "config" keys:
        new ones added, changed ones updated, ones no longer declared revoked. A declared
        name taken by a key from `signoria keys create` is an error, never a takeover."""
        with self.store.session() as session:
            rows = {r.name: r for r in session.scalars(select(ApiKey)).all()}
            for name, (secret, limits) in declared.items():
                row = rows.get(name)
                if row is not None and row.source != "config":
                    raise StorageError(
                        f"keys.{name}: a key of that name was made with `signoria keys "
                        "create`; rename one of them"
                    )
                if row is None:
                    row = ApiKey(name=name, source="config")
                    session.add(row)
                row.fingerprint = key_fingerprint(secret)
                row.prefix = shown_prefix(secret)
                row.limits = limits.model_dump(mode="json")
                row.revoked_at = None
            for name, row in rows.items():
                if row.source == "config" and name not in declared and row.revoked_at is None:
                    row.revoked_at = utcnow()

    def records(self) -> list[KeyRecord]:
        with self.store.session() as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
            return [KeyRecord.of(r) for r in rows]

    def revoke(self, name: str) -> KeyRecord:
        with self.store.session() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
            if row is None:
                raise KeyNotFound(f"no key named {name!r}; `signoria keys list` shows them")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return KeyRecord.of(row)

    def find(self, fingerprint: str) -> KeyRecord | None:
        with self.store.session() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.fingerprint == fingerprint)).first()
            return None if row is None else KeyRecord.of(row)

    def any_keys(self) -> bool:
        """Whether any key was ever created: from then on the server requires keys."""
        with self.store.session() as session:
            return session.scalar(select(func.count()).select_from(ApiKey)) != 0

    def usage(self, fingerprint: str, now: datetime | None = None) -> KeyUsage:
        now = now or utcnow()
        day, month = period_starts(now)
        mine = Item.client == fingerprint
        with self.store.session() as session:
            # The month's requests in one pass: its spend, the day's, the unpriced ones.
            month_spend, day_spend, unpriced = session.execute(
                select(
                    func.sum(Item.cost),
                    func.sum(case((Item.created_at >= day, Item.cost))),
                    func.count(case((Item.cost.is_(None), 1))),
                ).where(mine, Item.created_at >= month)
            ).one()
            recent = Item.created_at >= now - WINDOW
            tokens, oldest = session.execute(
                select(
                    func.sum(ModelCall.tokens_in + ModelCall.tokens_out),
                    func.min(Item.created_at),
                )
                .join(ModelCall, ModelCall.item_id == Item.id)
                .where(mine, recent)
            ).one()
            return KeyUsage(
                spend_day_usd=float(day_spend or 0.0),
                spend_month_usd=float(month_spend or 0.0),
                unpriced=int(unpriced or 0),
                tokens_last_minute=int(tokens or 0),
                oldest_token_record=oldest,
            )

    def admit(self, fingerprint: str, per_minute: int, now: datetime | None = None) -> float:
        """Count one request against `per_minute`: 0.0 when admitted, else the seconds
        until the oldest admission of the last minute expires (the Retry-After)."""
        return self.admit_many(fingerprint, per_minute, 1, now)[0]

    def admit_many(
        self, fingerprint: str, per_minute: int, count: int, now: datetime | None = None
    ) -> list[float]:
        """Decide `count` requests of one key against `per_minute` in one transaction, in
        order: 0.0 for each admitted, else its Retry-After in seconds. The first ones
        take what is left of the minute, so a batch decides exactly as the same requests
        one at a time would."""
        now = now or utcnow()
        # Core, not the ORM: this runs for every request of a key with a rate.
        since = now - WINDOW
        mine = KeyAdmission.fingerprint == fingerprint
        with self.store.writing() as connection:
            if connection.dialect.name != "sqlite":
                # Serialises admissions of one key across instances (on SQLite the
                # transaction holds the database's one write lock from its start).
                connection.execute(
                    select(ApiKey.id).where(ApiKey.fingerprint == fingerprint).with_for_update()
                )
            in_window = KeyAdmission.at >= since
            counted, oldest, expired = connection.execute(
                select(
                    func.count(case((in_window, 1))),
                    func.min(case((in_window, KeyAdmission.at))),
                    func.min(KeyAdmission.at),
                ).where(mine)
            ).one()
            # Admissions that left the minute are deleted a minute's worth at a time, not
            # on every request.
            if expired is not None and expired < since - WINDOW:
                connection.execute(delete(KeyAdmission).where(mine, KeyAdmission.at < since))
            admitted = max(0, min(count, per_minute - counted))
            if admitted:
                rows = [{"fingerprint": fingerprint, "at": now}] * admitted
                connection.execute(insert(KeyAdmission), rows)
            # Refused ones wait for the oldest admission of the minute: an earlier one, or
            # (a burst into an empty minute) the first of this batch.
            first = now if oldest is None else oldest
            retry = max(0.001, (first + WINDOW - now).total_seconds())
            return [0.0] * admitted + [retry] * (count - admitted)
