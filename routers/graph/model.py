"""The GNN: typed input projections, two heterogeneous message-passing layers, a pair MLP.

Query-LLM edges use GINEConv because its message `relu(x_src + W e)` mixes the edge's
effect and cost with the sender *non-linearly*: an LLM node learns which kinds of query it
answered well, not only its average score (GeneralConv adds `W e` to the message linearly,
so under mean aggregation only the mean edge attribute would survive). Task-query edges
have no attributes and use GeneralConv. Messages are mean-aggregated so that a node's
state does not grow with its degree: a routed query sees the same scale as a masked
training query, and an unseen LLM node with no edges keeps only its own transformed
features.

The pair MLP scores every (query, LLM) pair with two outputs: a reward logit (softmax over
the candidate LLMs = which one has the best `alpha * effect - beta * cost`, the paper's
target) and an effect logit (the edge's score, an auxiliary target that keeps the
representation about quality, not only about the winner).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GeneralConv, GINEConv

from signoria.routers.graph.features import (
    EDGE_DIM,
    EDGE_TYPES,
    LLM,
    LLM_TO_QUERY,
    PRICE_FEATURES,
    QUERY,
    QUERY_TO_LLM,
    TASK,
    EdgeType,
    HeteroGraph,
)


def _key(edge: EdgeType) -> str:
    return "__".join(edge)


class HeteroLayer(nn.Module):
    """One round of messages along every edge type; a node sums what its edge types bring."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        convs: dict[str, nn.Module] = {}
        for edge in EDGE_TYPES:
            if edge in (LLM_TO_QUERY, QUERY_TO_LLM):
                mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
                convs[_key(edge)] = GINEConv(mlp, edge_dim=EDGE_DIM, aggr="mean")
            else:
                convs[_key(edge)] = GeneralConv(hidden, hidden, aggr="mean")
        self.convs = nn.ModuleDict(convs)
        self.self_loop = nn.ModuleDict({t: nn.Linear(hidden, hidden) for t in (TASK, QUERY, LLM)})
        self.norm = nn.ModuleDict({t: nn.LayerNorm(hidden) for t in (TASK, QUERY, LLM)})
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: dict[str, Tensor], graph: HeteroGraph, only: str | None = None
    ) -> dict[str, Tensor]:
        """New states of every node type, or of the type `only` alone (what routing a new
        query needs: the other types' states are frozen, see `frozen`)."""
        out = {t: self.self_loop[t](h) for t, h in x.items() if only in (None, t)}
        for edge in EDGE_TYPES:
            src, _, dst = edge
            if dst not in out:
                continue
            conv = self.convs[_key(edge)]
            pair = (x[src], x[dst])
            index = graph.edge_index[edge]
            if edge in graph.edge_attr:
                # Edge attributes enter the message: this is where outcomes flow.
                msg: Tensor = conv(pair, index, graph.edge_attr[edge])
            else:
                msg = conv(pair, index)
            out[dst] = out[dst] + msg
        return {t: self.dropout(torch.relu(self.norm[t](h))) for t, h in out.items()}


class GraphRouterNet(nn.Module):
    """Embeddings in, a [receivers, LLMs, 2] tensor of (reward logit, effect logit) out."""

    def __init__(self, in_dim: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.project = nn.ModuleDict(
            {
                TASK: nn.Linear(in_dim, hidden),
                QUERY: nn.Linear(in_dim, hidden),
                LLM: nn.Linear(in_dim + PRICE_FEATURES, hidden),
            }
        )
        self.layers = nn.ModuleList([HeteroLayer(hidden, dropout) for _ in range(2)])
        self.pair = nn.Sequential(
            nn.Linear(3 * hidden + 2, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )

    def forward(self, graph: HeteroGraph, llm_cost: Tensor) -> Tensor:
        """`llm_cost` [L] (expected, normalised) enters the pair MLP directly: the reward
        target depends on it linearly and it should not have to survive two layers."""
        x = self.states(graph)[-1]
        return self.readout(x[QUERY][graph.receivers], x[LLM], graph.x[LLM], llm_cost)

    def states(self, graph: HeteroGraph) -> list[dict[str, Tensor]]:
        """Node states after the input projection and after each layer."""
        x = {t: torch.relu(self.project[t](h)) for t, h in graph.x.items()}
        out = [x]
        for layer in self.layers:
            x = layer(x, graph)
            out.append(x)
        return out

    def readout(self, q: Tensor, m: Tensor, llm_x: Tensor, llm_cost: Tensor) -> Tensor:
        """[R, L, 2] from receiver states q [R, H], LLM states m [L, H], the LLM nodes'
        input features (their last columns are the prices) and expected costs."""
        r, n_llm = q.shape[0], m.shape[0]
        qq = q[:, None, :].expand(r, n_llm, -1)
        mm = m[None, :, :].expand(r, n_llm, -1)
        prices = llm_x[:, -PRICE_FEATURES:]
        extra = torch.stack([llm_cost, prices.sum(dim=1)], dim=1)[None].expand(r, n_llm, -1)
        out: Tensor = self.pair(torch.cat([qq, mm, qq * mm, extra], dim=-1))
        return out
