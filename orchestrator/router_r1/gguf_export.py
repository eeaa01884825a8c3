"""Save a trained Router-R1 policy as a GGUF file that the `llamacpp` backend can serve.

The policy is trained in torch from one of the embedded GGUF models, dequantised. The
source file already holds everything but the weights (hyper-parameters, tokenizer, chat
template), so the export copies its metadata and writes the model's current weights under
the GGUF tensor names of gguf's own name map, undoing what transformers' GGUF loader did
on the way in: it un-permuted llama's q/k rows (llama.cpp's rotary layout), so they are
permuted back. The source's quantisation metadata describes the source's tensors, not
these, so the file type is written for what is written here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import gguf
import numpy as np
import numpy.typing as npt
import torch

from signoria.errors import SignoriaError

__all__ = ["ExportDType", "GGUFExportError", "export_gguf"]

ExportDType = Literal["f32", "f16", "q8_0"]


class GGUFExportError(SignoriaError):
    """A policy that cannot be written as a GGUF file llama.cpp would run as trained."""


# Architectures whose round trip is tested, and whether transformers un-permuted q/k.
_PERMUTES_QK: dict[str, bool] = {"llama": True, "qwen2": False}

_FILE_TYPES: dict[ExportDType, gguf.LlamaFileType] = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}

# Written by GGUFWriter itself, virtual (reader-only), or describing the source's tensors.
_NOT_COPIED = {
    gguf.Keys.General.ARCHITECTURE,
    gguf.Keys.General.FILE_TYPE,
    gguf.Keys.General.QUANTIZATION_VERSION,
    gguf.Keys.General.ALIGNMENT,
}
_NOT_COPIED_PREFIXES = ("GGUF.", "quantize.", "split.")

_OUTPUT = "output.weight"
_EMBEDDINGS = "token_embd.weight"


def export_gguf(
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    source_gguf: Path,
    out: Path,
    *,
    dtype: ExportDType = "f16",
) -> Path:
    """Write `model`'s weights with `source_gguf`'s metadata to `out`; return `out`.

    `model` is the policy (or its state dict) loaded from `source_gguf` by transformers
    and trained since: same architecture, same shapes, adapters merged. Matrices are
    stored at `dtype`; norms and biases stay f32 as llama.cpp's converter keeps them.
    The file appears only once complete, so a crashed export never leaves a file that a
    backend would try to load.
    """
    if dtype not in _FILE_TYPES:
        raise GGUFExportError(f"unknown GGUF dtype {dtype!r}: use one of {', '.join(_FILE_TYPES)}")
    reader = gguf.GGUFReader(source_gguf)
    arch = str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    if arch not in _PERMUTES_QK:
        raise GGUFExportError(
            f"cannot export a {arch!r} model to GGUF: supported architectures are "
            f"{', '.join(sorted(_PERMUTES_QK))}"
        )
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    weights = _by_gguf_name(state, arch, _int_field(reader, gguf.Keys.LLM.BLOCK_COUNT, arch))
    names = [t.name for t in reader.tensors]
    if _OUTPUT in weights and _OUTPUT not in names and not _tied(weights):
        names.append(_OUTPUT)  # trained untied: llama.cpp uses output.weight when present
    _check_shapes(reader, weights, names)

    writer = gguf.GGUFWriter(path=None, arch=arch)
    _copy_metadata(reader, writer)
    writer.add_file_type(_FILE_TYPES[dtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    n_head = _int_field(reader, gguf.Keys.Attention.HEAD_COUNT, arch)
    heads = {
        "attn_q": n_head,
        "attn_k": _int_field(reader, gguf.Keys.Attention.HEAD_COUNT_KV, arch, default=n_head),
    }
    for name in names:
        array = weights[name].detach().to("cpu", torch.float32).numpy()
        kind = name.split(".")[-2]
        if _PERMUTES_QK[arch] and kind in heads:
            array = _permute(array, heads[kind])
        _add_tensor(writer, name, array, dtype)

    partial = out.with_name(out.name + ".partial")
    try:
        writer.write_header_to_file(partial)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, out)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
    return out


def _by_gguf_name(
    state: Mapping[str, torch.Tensor], arch: str, blocks: int
) -> dict[str, torch.Tensor]:
    arch_id = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch)
    name_map = gguf.get_tensor_name_map(arch_id, blocks)
    found: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        name = name_map.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise GGUFExportError(
                f"weight {key!r} has no {arch} GGUF name; merge adapters "
                "(merge_and_unload) and export the plain causal LM"
            )
        found[name] = tensor
    if _EMBEDDINGS in found:  # a saved state dict drops the head tied to the embeddings
        found.setdefault(_OUTPUT, found[_EMBEDDINGS])
    return found


def _tied(weights: Mapping[str, torch.Tensor]) -> bool:
    output, embeddings = weights[_OUTPUT], weights[_EMBEDDINGS]
    return output.data_ptr() == embeddings.data_ptr() or torch.equal(output, embeddings)


def _check_shapes(
    reader: gguf.GGUFReader, weights: Mapping[str, torch.Tensor], names: list[str]
) -> None:
    """Refuse a model that is not the source's architecture: llama.cpp would misread it."""
    expected = {t.name: tuple(int(d) for d in reversed(t.shape)) for t in reader.tensors}
    missing = [name for name in names if name not in weights]
    if missing:
        raise GGUFExportError(f"the model has no weight for {', '.join(missing[:3])}")
    for name in names:
        shape = tuple(weights[name].shape)
        if name in expected and shape != expected[name]:
            raise GGUFExportError(
                f"{name}: shape {shape} differs from the source's {expected[name]}"
            )
    extra = sorted(set(weights) - set(names) - {_OUTPUT})
    if extra:
        raise GGUFExportError(f"weights the source GGUF has no tensor for: {', '.join(extra[:3])}")


def _copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    for field in reader.fields.values():
        if field.name in _NOT_COPIED or field.name.startswith(_NOT_COPIED_PREFIXES):
            continue
        kind = field.types[0]
        sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub_type)


def _int_field(reader: gguf.GGUFReader, key: str, arch: str, default: int | None = None) -> int:
    field = reader.get_field(key.format(arch=arch))
    if field is not None:
        return int(field.contents())
    if default is None:
        raise GGUFExportError(f"source GGUF lacks {key.format(arch=arch)}")
    return default  # llama.cpp's own default for an absent key (e.g. kv heads = heads)


def _permute(weights: npt.NDArray[np.float32], n_head: int) -> npt.NDArray[np.float32]:
    """llama.cpp's q/k row order (convert_hf_to_gguf's `permute`): halves interleaved."""
    shape = weights.shape
    split = weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
    return split.swapaxes(1, 2).reshape(shape)


def _add_tensor(
    writer: gguf.GGUFWriter, name: str, array: npt.NDArray[np.float32], dtype: ExportDType
) -> None:
    # Vectors (norms, biases) stay f32: they are tiny and llama.cpp's converter keeps them so.
    if dtype == "f32" or array.ndim == 1:
        writer.add_tensor(name, array)
        return
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
    if dtype == "f16" or array.shape[-1] % block:
        writer.add_tensor(name, array.astype(np.float16))
        return
    quantised = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor(name, quantised, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
