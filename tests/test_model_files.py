"""Model files: located, assembled from parts, verified; refused when not the pinned file."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from signoria.agents.embedded import EMBEDDED, locate, sha256_of
from signoria.agents.errors import ModelFileError
from signoria.agents.sources import EmbeddedSource, HubSource, PathSource, resolve
from signoria.errors import UnknownNameError

SMOL = EMBEDDED["smollm2-135m"]


def test_single_file_package_is_used_in_place_and_verified(model_cache: Path) -> None:
    path = resolve(EmbeddedSource(embedded="smollm2-135m"), model_cache)
    assert path.name == SMOL.filename and "site-packages" in str(path)
    assert path.read_bytes()[:4] == b"GGUF"


def test_parts_are_joined_in_order_and_match_the_pinned_sha(tmp_path: Path) -> None:
    qwen = EMBEDDED["qwen2.5-coder-0.5b"]
    path = locate(qwen, tmp_path)
    assert path.parent == tmp_path and path.stat().st_size == qwen.size
    assert sha256_of(path) == qwen.sha256
    assert not list(tmp_path.glob("*.partial"))


def test_a_tampered_assembled_file_is_refused(tmp_path: Path) -> None:
    qwen = EMBEDDED["qwen2.5-coder-0.5b"]
    path = locate(qwen, tmp_path)
    with path.open("r+b") as handle:  # same size, one byte changed
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(1, 1))  # a new mtime, as any rewrite has
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        locate(qwen, tmp_path)


def test_wrong_pin_refuses_assembly_and_leaves_no_file(tmp_path: Path) -> None:
    wrong = dataclasses.replace(EMBEDDED["qwen2.5-coder-0.5b"], sha256="0" * 64)
    with pytest.raises(ModelFileError, match="sha256 mismatch for assembled"):
        locate(wrong, tmp_path)
    assert not any(tmp_path.glob("*.gguf")) and not any(tmp_path.glob("*.partial"))


def test_path_source_with_wrong_sha_is_refused(tmp_path: Path, model_cache: Path) -> None:
    smol = resolve(EmbeddedSource(embedded="smollm2-135m"), model_cache)
    copy = tmp_path / "copy.gguf"
    shutil.copy(smol, copy)
    assert resolve(PathSource(path=copy, sha256=SMOL.sha256), tmp_path) == copy
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        resolve(PathSource(path=copy, sha256="f" * 64), tmp_path)
    with pytest.raises(ModelFileError, match="model file not found"):
        resolve(PathSource(path=tmp_path / "nope.gguf"), tmp_path)


def test_missing_package_names_the_package(tmp_path: Path) -> None:
    ghost = dataclasses.replace(
        SMOL, packages=("signoria_no_such_pkg",), distributions=("signoria-no-such-pkg",)
    )
    with pytest.raises(ModelFileError, match="needs the package 'signoria-no-such-pkg'"):
        locate(ghost, tmp_path)
    with pytest.raises(UnknownNameError, match="unknown embedded model 'gpt-9'"):
        resolve(EmbeddedSource(embedded="gpt-9"), tmp_path)


def test_hub_source_reads_the_local_hf_cache_offline(
    tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real huggingface_hub lookup, against a cache laid out as the hub client lays it."""
    smol = resolve(EmbeddedSource(embedded="smollm2-135m"), model_cache)
    repo = tmp_path / "hub" / "models--someone--tiny-gguf"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "tiny.gguf").symlink_to(smol)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    found = resolve(
        HubSource(repo="someone/tiny-gguf", file="tiny.gguf", sha256=SMOL.sha256), tmp_path
    )
    assert found.resolve() == smol.resolve()
    with pytest.raises(ModelFileError, match="not in the local Hugging Face cache"):
        resolve(HubSource(repo="someone/absent", file="x.gguf"), tmp_path)


def test_threads_needing_one_model_at_once_join_it_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    qwen = EMBEDDED["qwen2.5-coder-0.5b"]
    with ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: locate(qwen, tmp_path), range(3)))
    assert len(set(paths)) == 1 and paths[0].stat().st_size == qwen.size
