"""Aggregators: many completions in, one answer out."""

from orchestrator.aggregators.protocol import AggregationContext, Aggregator
from orchestrator.aggregators.registry import AGGREGATORS

__all__ = ["AGGREGATORS", "AggregationContext", "Aggregator"]
