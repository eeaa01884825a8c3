"""GraphRouter: LLM selection as edge prediction on a task / query / LLM graph.

`features` builds the heterogeneous graph, `model` is the GNN, `trainer` the masked
training loop and `router` the TrainableRouter registered as "graph".
"""

from signoria.routers.graph.router import GraphRouter
from signoria.routers.graph.trainer import GraphConfig

__all__ = ["GraphConfig", "GraphRouter"]
