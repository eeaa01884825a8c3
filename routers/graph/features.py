"""The heterogeneous task / query / LLM graph that GraphRouter passes messages over.

Why the graph looks like this:

- Task nodes carry the embedding of "Task: <name>"; every query hangs off its task, so a
  new query inherits what the training queries of the same task taught about the LLMs.
- LLM nodes carry the embedding of the model's *description* plus its two prices. Nothing
  about an LLM node is an id: a model that was never trained on is a node like any other,
  which is what makes routing to it possible without retraining (inductive routing).
- Query-LLM edges carry `[effect, cost, observed]`. An *observed* edge holds the recorded
  score and the cost (normalised by the training cost scale). An *unobserved* edge holds
  effect 0, the model's expected cost and `observed = 0`: that is what a query being
  routed sees, and what the supervised queries see during training (their own outcomes
  are masked), so training and routing present the same picture to the network.
- Queries whose edges are unobserved are pure receivers: they get messages but send none.
  A routed query therefore cannot change the training graph or another routed query, and
  its utilities do not depend on the batch it arrives in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from signoria.routers.trainable import RouterContext

TASK, QUERY, LLM = "task", "query", "llm"
EdgeType = tuple[str, str, str]
TASK_TO_QUERY: EdgeType = (TASK, "has", QUERY)
QUERY_TO_TASK: EdgeType = (QUERY, "in", TASK)
LLM_TO_QUERY: EdgeType = (LLM, "answered", QUERY)
QUERY_TO_LLM: EdgeType = (QUERY, "asked", LLM)
EDGE_TYPES: tuple[EdgeType, ...] = (TASK_TO_QUERY, QUERY_TO_TASK, LLM_TO_QUERY, QUERY_TO_LLM)
EDGE_DIM = 3  # effect, cost, observed
PRICE_FEATURES = 2  # input and output price, divided by the training price scale


def task_text(task: str) -> str:
    """The text embedded for a task node; the task name is all the tables record."""
    return f"Task: {task}"


@dataclass
class TrainingGraph:
    """What the router keeps of its training table: message passing needs all of it.

    Routing a query passes messages through the training queries (that is where an LLM's
    track record lives), so these tensors are part of the trained artifact.
    """

    query_x: Tensor  # [N, D] query embeddings
    query_task: Tensor  # [N] task index per query
    task_x: Tensor  # [T, D]
    task_names: list[str]
    models: list[str]  # the LLMs with recorded outcomes, in column order
    scores: Tensor  # [N, M] recorded effect in [0, 1]
    costs: Tensor  # [N, M] recorded cost / cost_scale
    cost_scale: float  # USD that maps to 1.0; fixed at training so routing sees the same scale
    price_scale: float  # USD per 1M tokens that maps to 1.0

    @property
    def n_queries(self) -> int:
        return int(self.query_x.shape[0])

    def tensors(self) -> dict[str, Tensor]:
        return {
            "query_x": self.query_x,
            "query_task": self.query_task,
            "task_x": self.task_x,
            "scores": self.scores,
            "costs": self.costs,
        }


def training_graph(
    queries: list[str], tasks: list[str], scores: np.ndarray, costs: np.ndarray, ctx: RouterContext
) -> TrainingGraph:
    """Embed the queries and tasks of a table and fix the cost and price scales."""
    names = sorted(set(tasks))
    index = {t: i for i, t in enumerate(names)}
    prices = [
        p
        for m in ctx.models
        for p in (ctx.info[m].input_price, ctx.info[m].output_price)
        if p is not None
    ]
    price_scale = max(prices) if prices and max(prices) > 0 else 1.0
    normalised = np.nan_to_num(costs, nan=0.0) / ctx.cost_scale
    return TrainingGraph(
        query_x=torch.tensor(ctx.features(queries), dtype=torch.float32),
        query_task=torch.tensor([index[t] for t in tasks], dtype=torch.long),
        task_x=torch.tensor(ctx.features([task_text(t) for t in names]), dtype=torch.float32),
        task_names=names,
        models=list(ctx.models),
        scores=torch.tensor(np.clip(scores, 0.0, 1.0), dtype=torch.float32),
        costs=torch.tensor(normalised, dtype=torch.float32),
        cost_scale=float(ctx.cost_scale),
        price_scale=float(price_scale),
    )


@dataclass
class LLMNodes:
    """The LLM nodes of one routing context, rebuilt from descriptions every time."""

    x: Tensor  # [L, D + PRICE_FEATURES]
    known: list[int | None]  # column in TrainingGraph.models, None for an unseen model
    expected_cost: Tensor  # [L] expected cost / training cost scale


def llm_nodes(ctx: RouterContext, graph: TrainingGraph) -> LLMNodes:
    """Description embedding and scaled prices per model of `ctx`, in `ctx.models` order."""
    texts = [ctx.info[m].description or m for m in ctx.models]
    emb = torch.tensor(ctx.features(texts), dtype=torch.float32)
    prices = torch.tensor(
        [
            [
                (ctx.info[m].input_price or 0.0) / graph.price_scale,
                (ctx.info[m].output_price or 0.0) / graph.price_scale,
            ]
            for m in ctx.models
        ],
        dtype=torch.float32,
    ).reshape(len(ctx.models), PRICE_FEATURES)
    column = {m: j for j, m in enumerate(graph.models)}
    expected = np.nan_to_num(np.asarray(ctx.expected_cost, dtype=float), nan=0.0)
    return LLMNodes(
        x=torch.cat([emb, prices], dim=1),
        known=[column.get(m) for m in ctx.models],
        expected_cost=torch.tensor(expected / graph.cost_scale, dtype=torch.float32),
    )


@dataclass
class HeteroGraph:
    """Node features and typed edges; receivers are the query nodes that get a readout."""

    x: dict[str, Tensor]
    edge_index: dict[EdgeType, Tensor]
    edge_attr: dict[EdgeType, Tensor]
    receivers: Tensor  # [R] query node indices whose (query, LLM) pairs are scored


def build_graph(
    graph: TrainingGraph,
    llms: LLMNodes,
    observed: Tensor,
    *,
    hidden_llm: int | None = None,
    extra_x: Tensor | None = None,
    extra_task: Tensor | None = None,
    receivers: Tensor | None = None,
) -> HeteroGraph:
    """The graph for one training epoch or one routing batch.

    `observed[i]` says whether training query i shows its outcomes (and sends messages);
    the others are masked receivers. `hidden_llm` hides one LLM's whole track record, as
    if it were new. `extra_*` are routed queries, appended as receivers. `receivers`
    defaults to every unobserved query.
    """
    n, n_llm = graph.n_queries, llms.x.shape[0]
    extra_x = (
        extra_x if extra_x is not None else graph.query_x.new_zeros((0, graph.query_x.shape[1]))
    )
    extra_task = extra_task if extra_task is not None else graph.query_task.new_zeros(0)
    n_all = n + extra_x.shape[0]
    query_x = torch.cat([graph.query_x, extra_x])
    query_task = torch.cat([graph.query_task, extra_task])
    is_observed = torch.cat([observed, observed.new_zeros(extra_x.shape[0])])

    # Which (query, LLM) edges show an outcome: observed query, known and not hidden LLM.
    known = torch.tensor([k is not None for k in llms.known], dtype=torch.bool)
    if hidden_llm is not None:
        known[hidden_llm] = False
    cols = torch.tensor([k if k is not None else 0 for k in llms.known], dtype=torch.long)
    effect = torch.zeros(n_all, n_llm)
    cost = llms.expected_cost.expand(n_all, n_llm).clone()
    show = is_observed[:, None] & known[None, :]
    if n_llm:
        effect[:n] = graph.scores[:, cols]
        cost[:n] = torch.where(show[:n], graph.costs[:, cols], cost[:n])
    effect = effect * show
    attr = torch.stack([effect, cost, show.float()], dim=-1)  # [n_all, L, 3]

    q_grid = torch.arange(n_all).repeat_interleave(n_llm)
    l_grid = torch.arange(n_llm).repeat(n_all)
    flat_attr = attr.reshape(-1, EDGE_DIM)
    flat_show = show.reshape(-1)
    all_q = torch.arange(n_all)
    sends = all_q[is_observed]

    if receivers is None:
        receivers = all_q[~is_observed]
    return HeteroGraph(
        x={TASK: graph.task_x, QUERY: query_x, LLM: llms.x},
        edge_index={
            TASK_TO_QUERY: torch.stack([query_task, all_q]),
            QUERY_TO_TASK: torch.stack([sends, query_task[sends]]),
            LLM_TO_QUERY: torch.stack([l_grid, q_grid]),
            QUERY_TO_LLM: torch.stack([q_grid[flat_show], l_grid[flat_show]]),
        },
        edge_attr={
            LLM_TO_QUERY: flat_attr,
            QUERY_TO_LLM: flat_attr[flat_show],
        },
        receivers=receivers,
    )


def assign_tasks(graph: TrainingGraph, x: Tensor, k: int) -> Tensor:
    """Task of each routed query by a vote of its k nearest training queries (cosine).

    Routing receives bare query texts, but a query node needs its task node; the task of
    the nearest training queries is the best guess, and it is exact on the tasks' own
    formats (the tables' prompts are distinctive per task).
    """
    if x.shape[0] == 0:
        return graph.query_task.new_zeros(0)
    k = max(1, min(k, graph.n_queries))
    sims = x @ graph.query_x.T
    top = sims.topk(k, dim=1)
    votes = torch.zeros(x.shape[0], len(graph.task_names))
    votes.scatter_add_(1, graph.query_task[top.indices], top.values.clamp_min(0.0) + 1e-6)
    return votes.argmax(dim=1)
