"""What one API key may do: its budgets, rates and allowed models.

Kept apart from the store (storage/keys.py) so that a config declaring keys loads without
the database layer: `signoria ask` never pays for SQLAlchemy.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KeyLimits(BaseModel):
    """What one key may do; every limit is optional (None: no limit of that kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    budget_day_usd: float | None = Field(default=None, ge=0.0, description="USD per UTC day")
    budget_month_usd: float | None = Field(default=None, ge=0.0, description="USD per month")
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1, description="prompt + completion")
    pipelines: tuple[str, ...] | None = Field(default=None, description="allowed pipelines")
    experts: tuple[str, ...] | None = Field(default=None, description="allowed raw experts")

    def allows(self, kind: str, name: str) -> bool:
        """Whether this key may call the pipeline (`kind` "pipeline") or expert `name`:
        anything when neither list is given, else only what the lists name (a key given
        pipelines only may call no raw expert, which would bypass them)."""
        return name in self.allowed(kind) if self.restricted else True

    @property
    def restricted(self) -> bool:
        return self.pipelines is not None or self.experts is not None

    def allowed(self, kind: str) -> tuple[str, ...]:
        return (self.pipelines if kind == "pipeline" else self.experts) or ()

    @property
    def reads_usage(self) -> bool:
        """Whether admitting a request needs the key's recorded use (a database read):
        only budgets and tokens per minute do; requests per minute count admissions."""
        return any(
            v is not None
            for v in (self.budget_day_usd, self.budget_month_usd, self.tokens_per_minute)
        )


class KeyDeclaration(KeyLimits):
    """A key declared in the config (`keys:`): its limits, and the environment variable
    that holds the key itself (a config file is no place for a secret)."""

    env: str = Field(min_length=1, description="variable holding the key")

    @property
    def limits(self) -> KeyLimits:
        return KeyLimits.model_validate(self.model_dump(exclude={"env"}))
