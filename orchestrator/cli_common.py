"""What every `signoria` command module shares: typer groups, option types, choices, and
the one way a command fails. Imports typer and nothing of the product (see cli.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from signoria.errors import SignoriaError

if TYPE_CHECKING:
    from rich.console import Console


def group(help: str, **settings: Any) -> typer.Typer:
    # Plain click help: typer's rich help imports rich's markdown stack, which alone
    # would double the start-up time of every `--help`.
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **settings)


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config YAML (default: $SIGNORIA_CONFIG or embedded)."),
]
PipelineOption = Annotated[
    str | None,
    typer.Option("--pipeline", "-p", help="Pipeline (or expert) name; default: the config's."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $SIGNORIA_DB or SQLite in SIGNORIA_HOME)."),
]
LimitOption = Annotated[int | None, typer.Option(min=1, help="First N items only.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or notes on stderr (errors only).")
]
# Choices are enums so that click rejects a wrong value before anything is imported.
Benchmark = StrEnum("Benchmark", ["gsm8k", "mmlu", "outcomes"])
Executor = StrEnum("Executor", ["asyncio", "ray", "by-expert"])
RedteamBackend = StrEnum("RedteamBackend", ["replay", "live"])
Adversary = StrEnum("Adversary", ["persuasive", "subtle", "llm"])
Seats = StrEnum("Seats", ["weakest", "strongest"])
AnswerOption = StrEnum("AnswerOption", ["auto", "number", "letter", "text"])


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1, **detail: Any) -> NoReturn:
    """End a command with one line on stderr (and a JSON error under --json, `detail`
    beside it: e.g. the trace of a failed request)."""
    raise CommandFailed(message, code, detail)


class CommandFailed(SignoriaError):
    def __init__(self, message: str, code: int, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail
