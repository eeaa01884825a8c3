"""Full-batch training of the GraphRouter network with masked supervision edges.

Each epoch splits the training queries at random into *message* queries (their outcomes
are visible on their edges and flow through the graph) and *supervised* queries (their
edges are masked exactly like a routed query's, and the network must predict which LLM
has the best reward for them). Without the mask the label would sit on the query's own
edges and the network would learn to read it instead of predicting it.

With probability `hide_llm` an epoch also hides one LLM's whole track record, so the
network learns to score an LLM from its description and prices alone: the situation of a
model that was never in the training table (inductive routing).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from signoria.routers.graph.features import LLMNodes, TrainingGraph, build_graph
from signoria.routers.graph.model import GraphRouterNet


class GraphConfig(BaseModel):
    """Hyper-parameters; saved with the weights so that a loaded router is the same one."""

    model_config = ConfigDict(frozen=True)

    hidden: int = Field(default=64, ge=4)
    # 300 full-batch epochs at 3e-3: the paper's 3e-4 underfits in this many steps, and
    # the budget (<= 60 s for 5k rows on 2 shared cores) allows ~300 at 64 hidden units.
    epochs: int = Field(default=300, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    supervised_fraction: float = Field(default=0.3, gt=0, lt=1)
    hide_llm: float = Field(default=0.3, ge=0, le=1)
    effect_weight: float = Field(default=0.5, ge=0)
    knn: int = Field(default=10, ge=1)
    # 0: the paper's target (the reward-best LLMs). > 0: softmax(reward / temperature),
    # whose expectation ranks LLMs by expected reward rather than by how often they win.
    target_temperature: float = Field(default=0.0, ge=0)
    # Routing away from the model with the best mean training reward (the best single
    # model under the trade-off) only when another model's predicted utility beats it by
    # more than this: per-query predictions are noisy, the best single model's record is
    # not. None: plain argmax.
    anchor_margin: float | None = Field(default=None, ge=0)


_CPU_MODE = threading.Lock()


@contextmanager
def cpu_mode() -> Iterator[None]:
    """One thread and denormals flushed to zero, restored afterwards.

    Measured on the 2-core box next to a busy job: a training step took 2.6-3.6 s with
    torch's 2 threads and denormals on, 0.05 s with one thread and flushing (the graph is
    small: thread hand-offs cost more than they give, and tiny cost features produce
    denormal products). One fixed thread count also keeps results reproducible.
    Both settings are process-wide, so holders are serialised: two routing threads that
    overlapped would otherwise restore each other's values and leave torch on one thread.
    """
    with _CPU_MODE:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        torch.set_flush_denormal(True)
        try:
            yield
        finally:
            torch.set_flush_denormal(False)
            torch.set_num_threads(threads)


def soft_target(reward: np.ndarray, temperature: float = 0.0) -> torch.Tensor:
    """Uniform over the reward-best LLMs of each query: ties (every model right, or all
    wrong at equal cost) are common with 0/1 scores and must not pick one arbitrarily.
    With a temperature, a softmax of the rewards instead."""
    if temperature > 0:
        z = (reward - reward.max(axis=1, keepdims=True)) / temperature
        return torch.softmax(torch.tensor(z, dtype=torch.float32), dim=1)
    best = reward >= reward.max(axis=1, keepdims=True) - 1e-9
    target = best / best.sum(axis=1, keepdims=True)
    return torch.tensor(target, dtype=torch.float32)


def train(
    graph: TrainingGraph,
    llms: LLMNodes,
    reward: np.ndarray,
    config: GraphConfig,
    seed: int,
) -> GraphRouterNet:
    """Fit a fresh network; the same seed gives the same weights."""
    with cpu_mode():
        return _train(graph, llms, reward, config, seed)


def _train(
    graph: TrainingGraph,
    llms: LLMNodes,
    reward: np.ndarray,
    config: GraphConfig,
    seed: int,
) -> GraphRouterNet:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    in_dim = int(graph.query_x.shape[1])
    net = GraphRouterNet(in_dim, hidden=config.hidden, dropout=config.dropout)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    target = soft_target(reward, config.target_temperature)
    effect = graph.scores
    n, n_llm = graph.n_queries, llms.x.shape[0]
    net.train()
    for _ in range(config.epochs):
        observed = torch.rand(n, generator=generator) >= config.supervised_fraction
        if bool(observed.all()):
            observed[int(torch.randint(n, (1,), generator=generator))] = False
        hidden: int | None = None
        if n_llm > 1 and float(torch.rand(1, generator=generator)) < config.hide_llm:
            hidden = int(torch.randint(n_llm, (1,), generator=generator))
        batch = build_graph(graph, llms, observed, hidden_llm=hidden)
        out = net(batch, llms.expected_cost)
        idx = batch.receivers
        log_p = torch.log_softmax(out[..., 0], dim=1)
        loss = -(target[idx] * log_p).sum(dim=1).mean()
        if config.effect_weight > 0:
            loss = (
                loss
                + config.effect_weight
                * torch.nn.functional.binary_cross_entropy_with_logits(out[..., 1], effect[idx])
            )
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    net.eval()
    return net
