"""GraphRouter (Feng et al., ICLR 2025) as a TrainableRouter: routing as edge prediction.

A routed query becomes a new query node, joined to the task node its nearest training
queries belong to and to every LLM of the *routing* context by an unobserved edge; one
graph pass scores every (query, LLM) pair of the whole batch. LLM nodes are rebuilt from
`ctx.info` each time, so a model that was absent from training is routed from its
description and prices alone, without retraining.

The network is trained on both of the paper's targets (see `trainer`), and has two
readouts. `readout="reward"` (the paper's) returns the reward logits: they fold in the
trade-off the router was trained at, and rank LLMs by how often each is the reward-best.
`readout="quality"` (default) returns `ctx.utility(predicted effect)`: expected reward
under the routing context's trade-off. On both shared tables the quality readout gave
the higher test reward (docs/benchmarks.md, GraphRouter section), hence the default.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from signoria.routers.data import RoutingTable
from signoria.routers.graph.features import (
    TrainingGraph,
    assign_tasks,
    llm_nodes,
    training_graph,
)
from signoria.routers.graph.frozen import FrozenStates, freeze, score
from signoria.routers.graph.model import GraphRouterNet
from signoria.routers.graph.trainer import GraphConfig, cpu_mode, train
from signoria.routers.trainable import RouterContext

WEIGHTS = "graph_router.pt"
CONFIG = "graph_router.json"
FROZEN_CONTEXTS = 4


class GraphRouter:
    name: ClassVar[str] = "graph"
    # With the quality readout; the reward readout has none (`route eval --sweep` says so).
    sweep_param: ClassVar[str] = "alpha"

    def __init__(
        self, config: GraphConfig | None = None, readout: Literal["reward", "quality"] = "quality"
    ) -> None:
        self.config = config or GraphConfig()
        self.readout = readout
        self.graph: TrainingGraph | None = None
        self.net: GraphRouterNet | None = None
        self.anchor: str | None = None  # the best single model of the training table
        self._frozen: dict[str, FrozenStates] = {}

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        graph = training_graph(table.queries, table.tasks, table.scores, table.costs, ctx)
        llms = llm_nodes(ctx, graph)
        self.net = train(graph, llms, ctx.reward(table), self.config, ctx.seed)
        self._frozen = {}
        self.graph = graph
        self.anchor = table.models[ctx.best_single(table)]

    def _trained(self) -> tuple[TrainingGraph, GraphRouterNet]:
        if self.graph is None or self.net is None:
            raise RuntimeError("GraphRouter is not trained: call fit or load first")
        return self.graph, self.net

    def predict(self, queries: Sequence[str], ctx: RouterContext) -> torch.Tensor:
        """[n, len(ctx.models), 2]: (reward logit, effect logit) per query and model."""
        graph, net = self._trained()
        x = torch.tensor(ctx.features(queries), dtype=torch.float32)
        tasks = assign_tasks(graph, x, self.config.knn)
        frozen = self._frozen_for(ctx)
        with cpu_mode():  # small ops: a second thread costs more than it gives
            return score(net, frozen, x, tasks)

    def _frozen_for(self, ctx: RouterContext) -> FrozenStates:
        """The training graph's node states for this context's LLM nodes: one full pass
        the first time a set of LLM nodes is seen, none after (a few contexts are kept)."""
        graph, net = self._trained()
        llms = llm_nodes(ctx, graph)
        key = hashlib.sha1(
            llms.x.numpy().tobytes() + llms.expected_cost.numpy().tobytes()
        ).hexdigest() + repr(llms.known)
        frozen = self._frozen.get(key)
        if frozen is None:
            with cpu_mode():
                frozen = freeze(net, graph, llms)
            while len(self._frozen) >= FROZEN_CONTEXTS:
                self._frozen.pop(next(iter(self._frozen)))
            self._frozen[key] = frozen
        return frozen

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        if not queries:
            return np.zeros((0, len(ctx.models)))
        out = self.predict(queries, ctx)
        if self.readout == "quality":
            utility = ctx.utility(torch.sigmoid(out[..., 1]).numpy().astype(float))
        else:
            utility = out[..., 0].numpy().astype(float)
        margin = self.config.anchor_margin
        if margin is not None and self.anchor in ctx.models:
            utility[:, ctx.models.index(self.anchor)] += margin
        return utility

    def save(self, directory: Path) -> None:
        graph, net = self._trained()
        torch.save({"state": net.state_dict(), "graph": graph.tensors()}, directory / WEIGHTS)
        meta = {
            "config": self.config.model_dump(),
            "readout": self.readout,
            "task_names": graph.task_names,
            "models": graph.models,
            "cost_scale": graph.cost_scale,
            "price_scale": graph.price_scale,
            "anchor": self.anchor,
        }
        (directory / CONFIG).write_text(json.dumps(meta, indent=2))

    def load(self, directory: Path, ctx: RouterContext) -> None:
        meta = json.loads((directory / CONFIG).read_text())
        saved = torch.load(directory / WEIGHTS, weights_only=True)
        tensors = saved["graph"]
        self.config = GraphConfig.model_validate(meta["config"])
        self.readout = meta["readout"]
        self.anchor = meta.get("anchor")
        self.graph = TrainingGraph(
            query_x=tensors["query_x"],
            query_task=tensors["query_task"],
            task_x=tensors["task_x"],
            task_names=list(meta["task_names"]),
            models=list(meta["models"]),
            scores=tensors["scores"],
            costs=tensors["costs"],
            cost_scale=float(meta["cost_scale"]),
            price_scale=float(meta["price_scale"]),
        )
        net = GraphRouterNet(
            int(self.graph.query_x.shape[1]), hidden=self.config.hidden, dropout=self.config.dropout
        )
        net.load_state_dict(saved["state"])
        net.eval()
        self.net = net
        self._frozen = {}
