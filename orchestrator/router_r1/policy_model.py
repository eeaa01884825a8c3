"""The policy as a trainable transformers model: from an embedded GGUF, a GGUF file, a
Router-R1 artifact (to train on from where it stopped), or a transformers checkpoint (a
directory, or a hub id where weights can be fetched).

The embedded GGUF models load dequantised (`from_pretrained(..., gguf_file=...)`), so a
policy starts from SmolLM2-135M or Qwen2.5-Coder-0.5B with nothing downloaded; a GPU
machine names a bigger checkpoint instead (the paper's Qwen2.5-3B-Instruct).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoria.agents.embedded import EMBEDDED, locate
from signoria.errors import UsageError


@dataclass(frozen=True)
class Policy:
    model: Any  # a transformers PreTrainedModel
    tokenizer: Any  # its tokenizer, with a chat template
    source: str
    # The GGUF it was read from: its metadata (tokenizer, chat template) is what an export
    # back to GGUF copies.
    gguf: Path | None


def gguf_of(source: str, cache_dir: Path) -> Path | None:
    """The GGUF file a source names: an embedded model's, a .gguf path, an artifact's
    exported GGUF (its metadata is what a new export copies), or none."""
    if source in EMBEDDED:
        return locate(EMBEDDED[source], cache_dir)
    if is_artifact(source):
        exported = Path(source) / "policy.gguf"
        return exported if exported.is_file() else None
    if source.endswith(".gguf"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise UsageError(f"policy GGUF not found: {path}")
        return path
    return None


def load_policy(source: str, cache_dir: Path, *, dtype: str = "float32") -> Policy:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_of(source, cache_dir)
    if is_artifact(source):  # its trained weights, in full precision
        where, extra = str(Path(source) / "policy"), {}
    elif gguf is not None:
        where, extra = str(gguf.parent), {"gguf_file": gguf.name}
    else:
        where, extra = source, {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **extra)
        precision = getattr(torch, dtype)
        model: Any = AutoModelForCausalLM.from_pretrained(where, dtype=precision, **extra)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load policy {source!r}: {str(exc).splitlines()[0]}") from None
    if extra:
        # The GGUF loader dequantises every tensor into ordinary float weights but keeps
        # its quantizer's marks, which make the Trainer refuse them as "quantized".
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if tokenizer.chat_template is None:
        raise UsageError(f"policy {source!r} has no chat template: it needs a chat model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Policy(model=model, tokenizer=tokenizer, source=source, gguf=gguf)


def has_gpu() -> bool:
    """Whether training runs on a GPU (the paper's scale) or the CPU (this machine's)."""
    import torch

    return bool(torch.cuda.is_available())


def is_artifact(source: str) -> bool:
    """Whether a source is a Router-R1 artifact directory (a policy trained before)."""
    return (Path(source) / "manifest.json").is_file() and (Path(source) / "policy").is_dir()
