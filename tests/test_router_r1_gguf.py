"""A policy exported to GGUF is what llama.cpp runs: the same logits as in torch, trained weights.

The embedded GGUF is loaded dequantised into transformers, exported, and served by
llama-cpp-python on the same token ids; the two must agree (same argmax, small logit
error, same greedy tokens). A perturbed copy proves the file carries the model's
current weights, not the source file's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest
import torch
import transformers

from signoria.agents.embedded import EMBEDDED, locate
from signoria.orchestrator.router_r1.gguf_export import ExportDType, GGUFExportError, export_gguf

MESSAGES = [
    {"role": "system", "content": "You route questions to expert models."},
    {"role": "user", "content": "Which model should answer: what is 17 * 23?"},
]
GREEDY_TOKENS = 20


@dataclass
class Policy:
    """One source model loaded in torch, its reference outputs and its exports, made once."""

    source: Path
    model: Any
    ids: list[int]
    logits: np.ndarray
    greedy: list[int]
    folder: Path
    exports: dict[ExportDType, Path] = field(default_factory=dict)

    def export(self, dtype: ExportDType) -> Path:
        if dtype not in self.exports:
            out = self.folder / f"policy-{dtype}.gguf"
            self.exports[dtype] = export_gguf(self.model, self.source, out, dtype=dtype)
        return self.exports[dtype]


@pytest.fixture(scope="module", params=["smollm2-135m"])
def policy(
    request: pytest.FixtureRequest, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Policy:
    source = locate(EMBEDDED[request.param], model_cache)
    where, extra = str(source.parent), {"gguf_file": source.name}
    tokenizer = transformers.AutoTokenizer.from_pretrained(where, **extra)
    model = transformers.AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **extra)
    model.eval()
    rendered = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=True)
    ids = list(rendered["input_ids"])
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            top_k=None,
            top_p=None,
        )
    greedy = [int(t) for t in out[0, len(ids) :]]
    folder = tmp_path_factory.mktemp(request.param)
    return Policy(source, model, ids, _torch_logits(model, ids), greedy, folder)


def _torch_logits(model: Any, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def _llama(path: Path) -> Any:
    # An f32 KV cache: llama.cpp's default f16 cache alone moves logits by ~0.03, which
    # would hide an export error of that size.
    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=512,
        n_threads=1,
        logits_all=True,
        verbose=False,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
    )


def _llama_logits(llm: Any, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cosines = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(cosines.min())


def _greedy_llama(llm: Any, ids: list[int]) -> list[int]:
    tokens: list[int] = []
    for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
        tokens.append(int(token))
        if token == llm.token_eos() or len(tokens) == GREEDY_TOKENS:
            break
    return tokens


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dtype", "max_abs", "min_cos"), [("f32", 1e-3, 0.999999), ("f16", 0.2, 0.9999)]
)
def test_llama_cpp_runs_the_exported_policy_as_torch_does(
    policy: Policy, dtype: ExportDType, max_abs: float, min_cos: float
) -> None:
    llm = _llama(policy.export(dtype))
    # The copied tokenizer metadata tokenises the rendered chat as transformers does.
    text = llm.detokenize(policy.ids, special=True)
    assert llm.tokenize(text, add_bos=False, special=True) == policy.ids

    got = _llama_logits(llm, policy.ids)
    error, cosine = np.abs(policy.logits - got).max(), _min_cosine(policy.logits, got)
    print(f"{dtype}: {len(policy.ids)} positions, max|diff| {error:.3g}, min cosine {cosine:.7f}")
    assert (policy.logits.argmax(-1) == got.argmax(-1)).all()
    assert error < max_abs
    assert cosine > min_cos
    assert _greedy_llama(llm, policy.ids) == policy.greedy


@pytest.mark.slow
def test_the_file_holds_the_trained_weights_not_the_sources(policy: Policy) -> None:
    original = _llama_logits(_llama(policy.export("f32")), policy.ids)
    trained = copy.deepcopy(policy.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        trained.model.norm.weight.mul_(1.5)
        for proj in ("q_proj", "k_proj"):  # q/k: the rows the llama export must re-permute
            weight = getattr(trained.model.layers[3].self_attn, proj).weight
            weight.add_(0.05 * torch.randn(weight.shape, generator=generator))
    # A state dict exports as the module does.
    out = export_gguf(
        trained.state_dict(), policy.source, policy.folder / "trained.gguf", dtype="f32"
    )
    changed = _llama_logits(_llama(out), policy.ids)
    expected = _torch_logits(trained, policy.ids)
    moved, error = np.abs(changed - original).max(), np.abs(changed - expected).max()
    print(f"perturbed: llama.cpp logits moved {moved:.3g}, off torch's by {error:.3g}")
    assert moved > 1.0
    assert error < 1e-3
    assert (changed.argmax(-1) == expected.argmax(-1)).all()


@pytest.mark.slow
def test_metadata_is_the_sources_and_the_file_type_is_what_was_written(policy: Policy) -> None:
    out = policy.export("q8_0")
    source, written = gguf.GGUFReader(policy.source), gguf.GGUFReader(out)
    quant_keys = {gguf.Keys.General.FILE_TYPE, gguf.Keys.General.QUANTIZATION_VERSION}
    for name, kv in source.fields.items():
        if not name.startswith("GGUF.") and name not in quant_keys:
            assert written.fields[name].contents() == kv.contents(), name
    assert written.fields[gguf.Keys.General.FILE_TYPE].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    # The source has no output.weight (tied to the embeddings); neither has the export.
    assert [t.name for t in written.tensors] == [t.name for t in source.tensors]
    kinds = {t.name: t.tensor_type for t in written.tensors}
    assert kinds["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert kinds["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32

    got = _llama_logits(_llama(out), policy.ids)
    agreement = (policy.logits.argmax(-1) == got.argmax(-1)).mean()
    print(
        f"q8_0: argmax agreement {agreement:.3f}, min cosine {_min_cosine(policy.logits, got):.5f}"
    )
    assert agreement > 0.9


def test_an_unsupported_architecture_is_refused_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(source), arch="gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFExportError, match="'gpt2'") as caught:
        export_gguf({}, source, tmp_path / "out.gguf")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.gguf").exists()
