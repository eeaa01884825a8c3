"""Per-query skill keywords, the first step of Symbolic-MoE recruiting.

Two ways to get them, one representation out: a relevance matrix `[n queries, V
vocabulary]`, zero where a keyword does not apply. Profiles and recruiting only ever see
that matrix, so the keyword source can change without touching them.

- Embedding (fast, for tables of thousands of rows): the query's keywords are the `top_k`
  entries of a fixed skill vocabulary nearest to the query embedding; relevance = cosine
  similarity (clipped at 0: an unrelated skill must not count against a model).
- LLM (the paper's way, for live use or small sets): an expert lists the skills a query
  needs, several times at temperature 0.7; keywords that repeat are kept, then each is
  mapped to its nearest vocabulary entry, relevance = that similarity. Mapping onto the
  vocabulary is what lets free-text keywords meet profiles built on the vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from signoria.agents.types import Expert, GenerationParams, Message
from signoria.routers.trainable import RouterContext

# Short skill phrases covering the tasks of the shared tables (RouterBench: ARC,
# Winogrande, MBPP; LLMRouter: GSM8K, MATH, MMLU, GPQA, QA, code, commonsense, logic grids,
# multilingual math, generation). Short phrases embed closer to queries than sentences.
VOCABULARY: tuple[str, ...] = (
    "arithmetic",
    "algebra",
    "geometry",
    "probability",
    "statistics",
    "calculus",
    "number theory",
    "math word problems",
    "multi-step math",
    "unit conversion",
    "physics",
    "chemistry",
    "biology",
    "astronomy",
    "earth science",
    "ecology",
    "genetics",
    "anatomy",
    "medicine",
    "nutrition",
    "psychology",
    "economics",
    "finance",
    "accounting",
    "business",
    "law",
    "ethics",
    "philosophy",
    "politics",
    "history",
    "geography",
    "religion",
    "literature",
    "linguistics",
    "grammar",
    "vocabulary",
    "translation",
    "multilingual",
    "coding",
    "programming",
    "writing functions",
    "python",
    "algorithms",
    "data structures",
    "string manipulation",
    "list processing",
    "recursion",
    "sorting",
    "regular expressions",
    "debugging",
    "computer science",
    "commonsense",
    "everyday physics",
    "social reasoning",
    "pronoun resolution",
    "fill in the blank",
    "text comprehension",
    "logic grid puzzles",
    "deduction",
    "constraint solving",
    "trivia",
    "factual recall",
    "science",
    "experiments",
    "energy",
    "weather",
    "sentence generation",
    "summarisation",
)

MAX_KEYWORD_CHARS = 20
SKILLS_PROMPT = (
    "List the skills or knowledge areas needed to answer the question below, as short "
    "keywords (at most 3 words each), separated by commas. Output only the keywords.\n\n"
    "Question: {query}"
)


def nearest(
    embeddings: np.ndarray, vocabulary: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `embeddings` (unit vectors), the `top_k` nearest vocabulary rows:
    (indices [n, top_k], cosine similarities [n, top_k]), most similar first."""
    sims = embeddings @ vocabulary.T
    top_k = min(top_k, vocabulary.shape[0])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top_k]
    return order, np.take_along_axis(sims, order, axis=1)


def relevance_matrix(indices: np.ndarray, sims: np.ndarray, size: int) -> np.ndarray:
    """Scatter (indices, similarities) into a dense [n, size] relevance matrix, >= 0.
    A keyword picked twice (two LLM keywords mapped to one entry) keeps its best match."""
    out = np.zeros((indices.shape[0], size))
    for i in range(indices.shape[0]):
        for j, s in zip(indices[i], sims[i], strict=True):
            out[i, j] = max(out[i, j], float(s))
    return np.clip(out, 0.0, None)


def embedding_keywords(
    queries: Sequence[str], vocabulary: Sequence[str], ctx: RouterContext, top_k: int = 3
) -> np.ndarray:
    """[n, V] relevance of each vocabulary keyword to each query (fast option)."""
    idx, sims = nearest(ctx.features(queries), ctx.features(vocabulary), top_k)
    return relevance_matrix(idx, sims, len(vocabulary))


def map_keywords(
    keywords: Sequence[str], vocabulary: Sequence[str], ctx: RouterContext
) -> np.ndarray:
    """[V] relevance of free-text keywords (e.g. from `llm_keywords`) mapped onto the
    vocabulary: each keyword lands on its nearest entry with its similarity."""
    if not keywords:
        return np.zeros(len(vocabulary))
    idx, sims = nearest(ctx.features(keywords), ctx.features(vocabulary), 1)
    row: np.ndarray = relevance_matrix(idx.reshape(1, -1), sims.reshape(1, -1), len(vocabulary))[0]
    return row


def parse_keywords(text: str) -> list[str]:
    """Keywords from one answer: split on commas, newlines, semicolons; bullets, numbering
    and quotes stripped; lower-cased; only short ones (the paper keeps <= ~20 chars)."""
    out: list[str] = []
    for part in re.split(r"[,\n;]", text):
        word = re.sub(r"^[\s\-*•\d.)]+", "", part).strip(" \t\"'`.").lower()
        if word and len(word) <= MAX_KEYWORD_CHARS and word not in out:
            out.append(word)
    return out


async def llm_keywords(
    expert: Expert,
    query: str,
    *,
    runs: int = 5,
    temperature: float = 0.7,
    min_count: int = 2,
    seed: int = 0,
) -> list[str]:
    """Ask `expert` `runs` times for the skills `query` needs; keep keywords named in at
    least `min_count` answers (repetition filters the sampling noise), most frequent
    first. Runs are sequential: a keyword model is usually one small local model."""
    counts: Counter[str] = Counter()
    messages = [Message(role="user", content=SKILLS_PROMPT.format(query=query))]
    for run in range(runs):
        params = GenerationParams(temperature=temperature, seed=seed + run, max_tokens=64)
        completion = await expert.generate(messages, params=params)
        counts.update(parse_keywords(completion.text))
    needed = min(min_count, runs)
    return [word for word, c in counts.most_common() if c >= needed]
