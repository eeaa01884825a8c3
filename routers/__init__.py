"""Routers: which experts answer a query. May import `agents`, nothing above it."""

from routers.protocol import Assignment, Router, RoutingDecision
from routers.registry import ROUTERS

__all__ = ["ROUTERS", "Assignment", "Router", "RoutingDecision"]
