"""Server settings: where to listen, who may call, and the caps that bound one request.

Caps exist because the server runs models on the operator's hardware and money: a client
must not be able to ask for a 100 MB prompt, a million tokens or an unbounded budget.
Every cap is applied to every request (as a `RequestLimits` tightening where it maps to
one), and a request that explicitly asks for more than a cap is rejected, not clamped, so
the client learns the limit instead of getting a silently different run.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from signoria.errors import ConfigError

API_KEYS_ENV = "SIGNORIA_API_KEYS"


class ServerConfigError(ConfigError):
    """The server cannot start safely with these settings (e.g. exposed without keys);
    a config error, so the CLI exits with 2 like any other bad configuration."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1, `localhost`."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A hostname other than localhost may resolve to anything: treat it as exposed.
        return False


def parse_api_keys(raw: str | None) -> tuple[SecretStr, ...]:
    """Comma-separated keys; blanks are dropped so `a,,b,` means two keys."""
    if not raw:
        return ()
    return tuple(SecretStr(key.strip()) for key in raw.split(",") if key.strip())


class ServerSettings(BaseModel):
    """Everything `signoria serve` decides before the first request arrives.

    `api_keys` are `SecretStr` so that a repr or a log line never shows them; they come
    from `$SIGNORIA_API_KEYS` (see `from_env`), never from a command-line flag, because
    argv is visible to every user of the machine.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys: tuple[SecretStr, ...] = ()
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="413 above this")
    max_messages: int = Field(default=64, ge=1, description="400 above this")
    max_tokens_cap: int = Field(default=2048, ge=1, description="completion tokens per call")
    max_experts_cap: int = Field(default=8, ge=1, description="expert calls per request")
    budget_cap_usd: float | None = Field(
        default=None,
        ge=0.0,
        description="USD per request; None leaves each pipeline's own budget in charge",
    )
    max_concurrent: int = Field(default=32, ge=1, description="requests in flight; 429 above")
    record: bool = Field(default=True, description="record every chat completion in the store")
    db_url: str | None = Field(default=None, description="store URL; None is the default SQLite")
    config_source: str | None = Field(default=None, description="config path, for the record")
    # Transport bounds (see transport.py): a client that opens connections and never
    # finishes a request must not hold the server.
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds to send a request head; closed after"
    )
    keep_alive_s: int = Field(default=5, ge=1, description="idle keep-alive seconds")
    body_timeout_s: float = Field(default=30.0, gt=0, description="seconds to send a body; 408")
    max_connections: int = Field(
        default=2048, ge=1, description="open connections; the oldest unfinished head yields"
    )
    # Browser guards (see origin.py): which Host names this server answers for, and which
    # foreign origins may call it. Empty means: the loopback names when bound to loopback,
    # any host otherwise (keys are then required). CORS is off unless origins are given.
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # The response cache (cache.py): off unless a TTL is given; per key unless shared.
    cache_ttl_s: float | None = Field(
        default=None, gt=0, description="seconds a deterministic answer is replayed"
    )
    cache_shared: bool = Field(default=False, description="replay across API keys")
    # Load the configured local models at startup (see preload.py) unless lazy.
    lazy: bool = Field(default=False, description="load local models on first use only")
    # The web console at /console (signoria.evals.console), behind the same keys.
    console: bool = Field(default=True, description="serve the web console at /console")

    @classmethod
    def from_env(
        cls, values: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> ServerSettings:
        """Settings from explicit `values`, with API keys from `$SIGNORIA_API_KEYS` (in
        `env`, default the process environment) unless `values` gives them."""
        data = dict(values or {})
        environ = os.environ if env is None else env
        if "api_keys" not in data:
            data["api_keys"] = parse_api_keys(environ.get(API_KEYS_ENV))
        return cls.model_validate(data)

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)

    def exposure_problem(self, db_keys: bool = False) -> str | None:
        """Why these settings must not be served, or None; `db_keys`: the database holds
        keys (`signoria keys create`), which also turn authentication on.

        Without keys anyone who can reach the port can spend the operator's compute and
        API budget, so keyless serving is allowed on loopback addresses only.
        """
        if self.auth_required or db_keys or is_loopback(self.host):
            return None
        return (
            f"refusing to listen on {self.host} without API keys: set {API_KEYS_ENV}, "
            "create one with `signoria keys create`, or bind a loopback address such as 127.0.0.1"
        )

    def summary(self) -> dict[str, object]:
        """What a recorded run keeps about the server: never the keys themselves."""
        return {
            "host": self.host,
            "port": self.port,
            "auth": self.auth_required,
            "config": self.config_source,
            **self.model_dump(
                include={
                    "max_body_bytes",
                    "max_messages",
                    "max_tokens_cap",
                    "max_experts_cap",
                    "budget_cap_usd",
                    "max_concurrent",
                    "header_timeout_s",
                    "keep_alive_s",
                    "body_timeout_s",
                    "max_connections",
                    "allowed_hosts",
                    "cors_origins",
                    "cache_ttl_s",
                    "cache_shared",
                }
            ),
        }
