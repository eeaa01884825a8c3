"""Strategies by name, imported when first used.

Backends, routers, trainable routers and aggregators each keep one `Registry`. An entry
names its implementation as `"module:attribute"` and is imported only when a config or a
caller needs it, so a process that uses voting over API experts never imports torch,
scikit-learn or llama.cpp, and `signoria --help` imports none of them. An entry whose
packages come in an optional extra names that extra, and a missing package is one line
telling which extra to install instead of a traceback from deep inside an import.

Configs name entries; an unknown name is an error that lists the known ones instead of
a silent default.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, SerializeAsAny, ValidationError

from signoria.errors import MissingExtraError, SignoriaError, UnknownNameError

V = TypeVar("V")
T = TypeVar("T")
S = TypeVar("S")


def install_hint(extra: str | None) -> str:
    return f"pip install 'signoria[{extra}]'" if extra else "pip install signoria"


def check_installed(modules: tuple[str, ...], *, what: str, extra: str | None) -> None:
    """Raise a one-line `MissingExtraError` for the first of `modules` not installed."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or half-removed install
            found = False
        if not found:
            raise MissingExtraError(
                f"{what} needs {module!r}, which is not installed: {install_hint(extra)}"
            )


def load_ref(ref: str, *, what: str, extra: str | None = None) -> Any:
    """Import `"module:attribute"`; a missing third-party module becomes the extra's hint."""
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "signoria":
            raise
        raise MissingExtraError(
            f"{what} needs {exc.name!r}, which is not installed: {install_hint(extra)}"
        ) from None
    return getattr(module, attribute)


@dataclass(frozen=True)
class Lazy(Generic[T]):
    """One implementation, named by reference and imported on `load`."""

    ref: str
    extra: str | None = None
    # Import names checked before loading: packages the module itself imports lazily.
    requires: tuple[str, ...] = ()

    def installed(self) -> bool:
        """Whether the packages it needs are there (no import is made)."""
        try:
            check_installed(self.requires, what="", extra=self.extra)
        except MissingExtraError:
            return False
        return True

    def load(self, what: str) -> T:
        check_installed(self.requires, what=what, extra=self.extra)
        value: T = load_ref(self.ref, what=what, extra=self.extra)
        return value


@dataclass(frozen=True)
class Strategy(Generic[T]):
    """A configurable strategy: the pydantic model of its params and how to build it.

    The params model must live in a module that imports nothing heavy: configs are
    validated at load time, long before anything is built.
    """

    params: str
    build: str
    extra: str | None = None
    requires: tuple[str, ...] = ()

    def params_model(self, what: str) -> type[BaseModel]:
        model: type[BaseModel] = load_ref(self.params, what=what, extra=self.extra)
        return model

    def builder(self, what: str) -> Callable[[Any], T]:
        return Lazy[Callable[[Any], T]](self.build, self.extra, self.requires).load(what)


class Registry(Generic[V]):
    """name -> entry. Entries are plain data; nothing is imported until asked for."""

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

    def what(self, name: str) -> str:
        """How errors name an entry: `router 'graph'`."""
        return f"{self.kind} {name!r}"


class Strategies(Registry[Strategy[T]]):
    """A registry of configurable strategies (routers, aggregators)."""

    def params_model(self, name: str) -> type[BaseModel]:
        return self[name].params_model(self.what(name))

    def build(self, name: str, params: BaseModel) -> T:
        """The strategy `name` built from its validated params, imported on first use."""
        return self[name].builder(self.what(name))(params)


class Implementations(Registry[Lazy[T]]):
    """A registry of implementations by name (trainable routers), imported on `load`."""

    def load(self, name: str) -> T:
        return self[name].load(self.what(name))


class BuiltOnUse(Mapping[str, V], Generic[S, V]):
    """name -> an object built from its spec the first time it is asked for.

    The expert pool and an orchestrator's pipelines are both this: configured by name,
    built only when used (so what is never used never imports its packages), and open to
    objects added ready-built (SDK users, tests).
    """

    def __init__(self, specs: Mapping[str, S]) -> None:
        self._specs = dict(specs)
        self._built: dict[str, V] = {}

    def build(self, name: str, spec: S) -> V:
        raise NotImplementedError

    def missing(self, name: str) -> Exception:
        return KeyError(name)

    def __getitem__(self, name: str) -> V:
        if name not in self._built:
            if name not in self._specs:
                raise self.missing(name)
            self._built[name] = self.build(name, self._specs[name])
        return self._built[name]

    def __setitem__(self, name: str, value: V) -> None:
        """Serve `value` as `name` from now on, built or configured before or not."""
        self._built[name] = value

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._specs, *self._built]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._specs, *self._built]))

    def __contains__(self, name: object) -> bool:
        # Mapping's default relies on KeyError, which `missing` may turn into another error.
        return name in self._specs or name in self._built

    def built(self) -> list[V]:
        """What has been built (or added) so far, e.g. to close it."""
        return list(self._built.values())


class StrategySpec(BaseModel):
    """A strategy as configured: its registry name and its validated params."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    # As its own model dumps it (a dump of the base class would be empty): what a
    # recorded config and the response cache's version digest see.
    params: SerializeAsAny[BaseModel]


class StrategyConfigError(SignoriaError):
    """A strategy section that does not validate; `where` is its key path inside it."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


def parse_strategy(raw: Any, registry: Strategies[Any]) -> StrategySpec:
    """`name` or `{name: N, ...params}` -> a spec whose params N's own model validated.

    Shared by configs and by strategies that hold strategies (a guard's inner aggregator),
    so both give the same one-line errors.
    """
    if isinstance(raw, StrategySpec):
        return raw
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise StrategyConfigError("name", f"required (one of: {', '.join(registry)})")
    name = str(raw["name"])
    if name not in registry:
        raise StrategyConfigError(
            "name", f"unknown {registry.kind} {name!r} (known: {', '.join(registry)})"
        )
    model = registry.params_model(name)
    try:
        params = model.model_validate({k: v for k, v in raw.items() if k != "name"})
    except ValidationError as exc:
        raise StrategyConfigError(*validation_problem(exc)) from None
    return StrategySpec(name=name, params=params)


def validation_problem(exc: ValidationError) -> tuple[str, str]:
    """(dotted key, message) of a validation error's first problem, '(and N more)' added."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return where, f"{err['msg']}{more}"


def model_refs(params: BaseModel) -> dict[str, str]:
    """Model names a strategy's params refer to, by key path, so configs can check them.

    A params model lists them by defining `model_refs()`; others refer to no model.
    """
    refs = getattr(params, "model_refs", None)
    return dict(refs()) if callable(refs) else {}
