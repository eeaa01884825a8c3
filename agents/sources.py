"""Where a local model's GGUF comes from: an embedded package, a path, or a hub repo/file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.embedded import EMBEDDED, is_installed, locate, verify_once
from signoria.agents.errors import ModelFileError
from signoria.agents.types import Availability
from signoria.errors import UnknownNameError

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class EmbeddedSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    embedded: str

    def availability(self) -> Availability:
        model = EMBEDDED.get(self.embedded)
        if model is None:
            return Availability(available=False, detail=f"unknown embedded model {self.embedded!r}")
        if not is_installed(model):
            return Availability(
                available=False,
                size_bytes=model.size,
                detail=f"missing package {model.distributions[0]}",
            )
        return Availability(available=True, size_bytes=model.size, detail="embedded")


class PathSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    sha256: Sha256 | None = None

    def availability(self) -> Availability:
        path = self.path.expanduser()
        if not path.is_file():
            return Availability(available=False, detail=f"not found: {path}")
        return Availability(available=True, size_bytes=path.stat().st_size, detail=str(path))


class HubSource(BaseModel):
    """A GGUF in a Hugging Face repo, downloaded (or found in the local HF cache) on use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    file: str
    revision: str | None = None
    sha256: Sha256 | None = None

    def availability(self) -> Availability:
        # Only a download (or the HF cache) can tell; `signoria models pull` fetches it.
        return Availability(available=False, detail=f"hub {self.repo}/{self.file}")


ModelSource = EmbeddedSource | PathSource | HubSource


def resolve(source: ModelSource, cache_dir: Path) -> Path:
    """Local path of a verified GGUF for `source`; raises `ModelFileError` with the fix."""
    if isinstance(source, EmbeddedSource):
        model = EMBEDDED.get(source.embedded)
        if model is None:
            known = ", ".join(sorted(EMBEDDED))
            raise UnknownNameError(f"unknown embedded model {source.embedded!r} (known: {known})")
        return locate(model, cache_dir)
    path = _hub_download(source) if isinstance(source, HubSource) else source.path.expanduser()
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    if source.sha256 is not None:
        verify_once(path, source.sha256, cache_dir)
    return path


def _hub_download(source: HubSource) -> Path:
    # Imported here: only users who name a hub model pay for importing huggingface_hub.
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(repo_id=source.repo, filename=source.file, revision=source.revision)
        )
    except LocalEntryNotFoundError as exc:
        raise ModelFileError(
            f"{source.repo}/{source.file} is not in the local Hugging Face cache and cannot be "
            "downloaded (offline or no network); download it once or give a `path:` instead"
        ) from exc
