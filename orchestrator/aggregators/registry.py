"""Aggregators by name. A new aggregator is one module, one line here and one test."""

from __future__ import annotations

from agents.plugins import Registry, Strategy
from orchestrator.aggregators.first import FirstAnswer, FirstParams
from orchestrator.aggregators.majority import MajorityParams, MajorityVote
from orchestrator.aggregators.protocol import Aggregator
from orchestrator.aggregators.synthesize import Synthesize, SynthesizeParams

AGGREGATORS: Registry[Strategy[Aggregator]] = Registry("aggregator")

AGGREGATORS.register("first", Strategy(params=FirstParams, build=FirstAnswer))
AGGREGATORS.register("majority", Strategy(params=MajorityParams, build=MajorityVote))
AGGREGATORS.register("synthesize", Strategy(params=SynthesizeParams, build=Synthesize))
