"""What every backend that calls a remote server shares: the key and its rules, and which
HTTP statuses are worth a retry."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from signoria.agents.types import Availability
from signoria.errors import SignoriaError

# Statuses that say "try again later" rather than "this request is wrong".
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class RemoteOptions(BaseModel):
    """The key is read from an environment variable the config names, never from the
    config itself, so a config file can be shared and committed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key_env: str | None = Field(
        default=None, description="name of the environment variable that holds the key"
    )
    request_timeout_s: float = Field(default=600.0, gt=0)

    def target(self) -> str:
        """What `signoria models list` shows as the place this expert is called."""
        raise NotImplementedError

    def availability(self) -> Availability:
        missing = self.api_key_env is not None and not os.environ.get(self.api_key_env)
        detail = self.target() + (f" (${self.api_key_env} not set)" if missing else "")
        return Availability(available=not missing, detail=detail)

    def api_key(self, model_name: str) -> str | None:
        name = self.api_key_env
        if name is None:
            return None
        key = os.environ.get(name)
        if not key:
            raise SignoriaError(
                f"model {model_name!r} reads its API key from ${name}, which is not set"
            )
        return key

    @model_validator(mode="before")
    @classmethod
    def _no_inline_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "api_key must not be written in a config file; put it in an environment "
                "variable and name that variable with api_key_env"
            )
        return data
