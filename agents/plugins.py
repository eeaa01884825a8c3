"""A typed name -> strategy registry, shared by backends, routers and aggregators.

Each strategy kind keeps one `Registry`; configs name entries, and an unknown name is an
error that lists the known ones instead of a silent default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from agents.errors import UnknownNameError

V = TypeVar("V")
T = TypeVar("T")


class Registry(Generic[V]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, V] = {}

    def register(self, name: str, item: V) -> V:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> V:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


@dataclass(frozen=True)
class Strategy(Generic[T]):
    """A configurable strategy: the pydantic model of its params and how to build it."""

    params: type[BaseModel]
    build: Callable[[Any], T]


def model_refs(params: BaseModel) -> dict[str, str]:
    """Model names a strategy's params refer to, by key path, so configs can check them.

    A params model lists them by defining `model_refs()`; others refer to no model.
    """
    refs = getattr(params, "model_refs", None)
    return dict(refs()) if callable(refs) else {}
