"""Line-numbered JSONL (and whole-file JSON) reading, shared by every data file the
project loads.

Datasets, routing tables and replay tables are all one JSON object a line; a bad line
must name its file and line number, whichever loader met it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from signoria.errors import SignoriaError


def read_jsonl(
    path: Path, *, what: str = "data file", error: type[SignoriaError] = SignoriaError
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; `error` names file:line when one is bad."""
    try:
        with path.expanduser().open() as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise error(f"{path}:{line_no}: each line must be a JSON object")
                yield line_no, row
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None


def read_json(
    path: Path, *, what: str = "data file", error: type[SignoriaError] = SignoriaError
) -> Any:
    """A whole JSON file; a missing or malformed one is one `error` naming the file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc.msg})") from None
