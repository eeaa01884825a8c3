"""The in-process GGUF backend with real models: generation, templates, locks, eviction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from signoria.agents.backends.llamacpp import LlamaCppExpert, LlamaCppRuntime, LlamaCppSettings
from signoria.agents.sources import EmbeddedSource
from signoria.agents.types import ExpertError, GenerationParams, Message, ModelCard

QUESTION = [Message(role="user", content="Name a colour of the sky.")]


def expert(name: str, runtime: LlamaCppRuntime, ctx: int = 1024) -> LlamaCppExpert:
    card = ModelCard(
        name=name, backend="llamacpp", context_length=ctx, input_price=0.0, output_price=0.0
    )
    return LlamaCppExpert(card, EmbeddedSource(embedded=name), runtime)


async def test_real_generation_reports_tokens_and_cost(runtime: LlamaCppRuntime) -> None:
    smol = expert("smollm2-135m", runtime)
    result = await smol.generate(QUESTION, params=GenerationParams(max_tokens=16))
    assert result.ok and result.text
    assert result.usage.tokens_in > 5 and 0 < result.usage.tokens_out <= 16
    assert result.cost == 0.0 and result.latency_s > 0


async def test_chat_template_comes_from_the_gguf(runtime: LlamaCppRuntime) -> None:
    smol = expert("smollm2-135m", runtime)
    result = await smol.generate(QUESTION, params=GenerationParams(max_tokens=4))
    plain = await smol.count_tokens(QUESTION)  # content tokens plus a small allowance
    loaded = runtime._loaded[(smol.model_path(), 1024)].llama
    template = loaded.metadata.get("tokenizer.chat_template", "")
    assert "<|im_start|>" in template
    # The real prompt carries the template's role markers, so it is longer than the text.
    text_only = len(loaded.tokenize(QUESTION[0].content.encode(), add_bos=False))
    assert result.usage.tokens_in > text_only + 4
    assert plain >= text_only


async def test_seeds_make_samples_reproducible_and_diverse(runtime: LlamaCppRuntime) -> None:
    smol = expert("smollm2-135m", runtime)
    prompt = [Message(role="user", content="Write a random short sentence about a cat.")]

    async def sample(seed: int) -> str:
        params = GenerationParams(max_tokens=20, temperature=1.0, seed=seed)
        return (await smol.generate(prompt, params=params)).text

    first, again = await sample(1), await sample(1)
    assert first == again
    others = {await sample(seed) for seed in (2, 3, 4)}
    assert len(others | {first}) >= 2


async def test_prompt_over_the_context_is_a_clear_error(runtime: LlamaCppRuntime) -> None:
    smol = expert("smollm2-135m", runtime, ctx=256)
    long = [Message(role="user", content="word " * 600)]
    with pytest.raises(ExpertError, match="smollm2-135m") as info:
        await smol.generate(long, params=GenerationParams(max_tokens=8))
    assert not info.value.retryable


async def test_different_models_overlap_and_one_model_is_serialised(
    runtime: LlamaCppRuntime,
) -> None:
    smol = expert("smollm2-135m", runtime)
    qwen = expert("qwen2.5-coder-0.5b", runtime)
    for e in (smol, qwen):  # load both first, so the spans below are generation only
        await e.generate(QUESTION, params=GenerationParams(max_tokens=1))
    runtime.spans.clear()
    params = GenerationParams(max_tokens=24)
    await asyncio.gather(
        smol.generate(QUESTION, params=params), qwen.generate(QUESTION, params=params)
    )
    (_, a0, a1), (_, b0, b1) = runtime.spans
    assert a0 < b1 and b0 < a1, "two different models must run at the same time"

    runtime.spans.clear()
    sampled = [GenerationParams(max_tokens=24, temperature=0.9, seed=s) for s in (1, 2)]
    x, y = await asyncio.gather(*(smol.generate(QUESTION, params=p) for p in sampled))
    assert x.ok and y.ok
    (_, _x0, x1), (_, y0, _y1) = sorted(runtime.spans, key=lambda span: span[1])
    assert x1 <= y0, "two calls to one model must not run at the same time"


async def test_timeout_cancels_generation_and_frees_the_model(runtime: LlamaCppRuntime) -> None:
    qwen = expert("qwen2.5-coder-0.5b", runtime)
    story = [Message(role="user", content="Write a very long story about the sea.")]
    await qwen.generate(QUESTION, params=GenerationParams(max_tokens=1))  # load
    entry = runtime._loaded[(qwen.model_path(), 1024)]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(qwen.generate(story, params=GenerationParams(max_tokens=400)), 0.5)
    # The worker thread notices the cancel at its next token and lets go of the model.
    await asyncio.to_thread(entry.lock.acquire)
    entry.lock.release()
    prompt_tokens = await qwen.count_tokens(story)
    generated = entry.llama.n_tokens - prompt_tokens
    assert generated < 200, "the cancelled call stopped long before its 400 tokens"
    result = await qwen.generate(QUESTION, params=GenerationParams(max_tokens=4))
    assert result.ok and result.usage.tokens_out == 4


async def test_lru_eviction_under_the_memory_cap(model_cache: Path) -> None:
    # 700 MB holds Qwen-0.5B (~615 MB with overhead) or SmolLM2, not both.
    rt = LlamaCppRuntime(LlamaCppSettings(n_threads=2, memory_cap_mb=700, cache_dir=model_cache))
    try:
        smol, qwen = expert("smollm2-135m", rt), expert("qwen2.5-coder-0.5b", rt)
        one = GenerationParams(max_tokens=1)
        await smol.generate(QUESTION, params=one)
        assert rt.loaded_paths() == [smol.model_path()]
        await qwen.generate(QUESTION, params=one)
        assert rt.loaded_paths() == [qwen.model_path()]  # SmolLM2 was evicted
        await smol.generate(QUESTION, params=one)
        assert rt.loaded_paths() == [smol.model_path()]
        assert rt.loads == 3
        await smol.generate(QUESTION, params=one)
        assert rt.loads == 3  # a loaded model is reused, not reloaded
    finally:
        rt.close()
