"""Aggregators by name. A new aggregator is one module, one line here and one test."""

from __future__ import annotations

from agents.plugins import Registry, Strategy
from orchestrator.aggregators._voting import DefenceParams
from orchestrator.aggregators.agreement_vote import AgreementVote
from orchestrator.aggregators.cluster_filter import ClusterFilter
from orchestrator.aggregators.cluster_inform import ClusterInform, ClusterInformParams
from orchestrator.aggregators.dropout_vote import DropoutVote
from orchestrator.aggregators.first import FirstAnswer, FirstParams
from orchestrator.aggregators.guard import Guard, GuardParams
from orchestrator.aggregators.majority import MajorityParams, MajorityVote
from orchestrator.aggregators.moa import MixtureOfAgents, MoAParams
from orchestrator.aggregators.protocol import Aggregator
from orchestrator.aggregators.reputation_vote import ReputationParams, ReputationVote
from orchestrator.aggregators.self_moa_seq import SelfMoASeq, SelfMoASeqParams
from orchestrator.aggregators.smoa import SMoAParams, SparseMoA
from orchestrator.aggregators.synthesize import Synthesize, SynthesizeParams
from orchestrator.aggregators.weighted_vote import WeightedVote, WeightedVoteParams

AGGREGATORS: Registry[Strategy[Aggregator]] = Registry("aggregator")

AGGREGATORS.register("first", Strategy(params=FirstParams, build=FirstAnswer))
AGGREGATORS.register("majority", Strategy(params=MajorityParams, build=MajorityVote))
AGGREGATORS.register("synthesize", Strategy(params=SynthesizeParams, build=Synthesize))
# Mixture-of-Agents family: layered, sliding-window and sparse synthesis.
AGGREGATORS.register("moa", Strategy(params=MoAParams, build=MixtureOfAgents))
AGGREGATORS.register("self-moa-seq", Strategy(params=SelfMoASeqParams, build=SelfMoASeq))
AGGREGATORS.register("smoa", Strategy(params=SMoAParams, build=SparseMoA))
# Votes and deception defences (the defences also serve the guard).
AGGREGATORS.register("weighted-vote", Strategy(params=WeightedVoteParams, build=WeightedVote))
AGGREGATORS.register("agreement-vote", Strategy(params=DefenceParams, build=AgreementVote))
AGGREGATORS.register("reputation-vote", Strategy(params=ReputationParams, build=ReputationVote))
AGGREGATORS.register("dropout-vote", Strategy(params=DefenceParams, build=DropoutVote))
AGGREGATORS.register("cluster-filter", Strategy(params=DefenceParams, build=ClusterFilter))
AGGREGATORS.register("cluster-inform", Strategy(params=ClusterInformParams, build=ClusterInform))
AGGREGATORS.register("guard", Strategy(params=GuardParams, build=Guard))
