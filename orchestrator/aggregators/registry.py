"""Aggregators by name. A new aggregator is one module, one line here and one test.

Entries are references, imported when a config names them: a process that only votes
never imports the modules of the LLM aggregators, and none of them imports anything heavy.
"""

from __future__ import annotations

from signoria.orchestrator.aggregators.protocol import Aggregator
from signoria.registry import Strategies, Strategy

AGGREGATORS: Strategies[Aggregator] = Strategies("aggregator")


def _register(name: str, params: str, build: str) -> None:
    here = "signoria.orchestrator.aggregators"
    AGGREGATORS.register(name, Strategy(params=f"{here}.{params}", build=f"{here}.{build}"))


_register("first", "first:FirstParams", "first:FirstAnswer")
_register("majority", "majority:MajorityParams", "majority:MajorityVote")
_register("synthesize", "synthesize:SynthesizeParams", "synthesize:Synthesize")
# Mixture-of-Agents family: layered, sliding-window and sparse synthesis.
_register("moa", "moa:MoAParams", "moa:MixtureOfAgents")
_register("self-moa-seq", "self_moa_seq:SelfMoASeqParams", "self_moa_seq:SelfMoASeq")
_register("smoa", "smoa:SMoAParams", "smoa:SparseMoA")
# Votes and deception defences (the defences also serve the guard).
_register("weighted-vote", "weighted_vote:WeightedVoteParams", "weighted_vote:WeightedVote")
_register("agreement-vote", "_voting:DefenceParams", "agreement_vote:AgreementVote")
_register("reputation-vote", "reputation_vote:ReputationParams", "reputation_vote:ReputationVote")
_register("learned-vote", "learned_vote:LearnedVoteParams", "learned_vote:LearnedVote")
_register("dropout-vote", "_voting:DefenceParams", "dropout_vote:DropoutVote")
_register("cluster-filter", "_voting:DefenceParams", "cluster_filter:ClusterFilter")
_register("cluster-inform", "cluster_inform:ClusterInformParams", "cluster_inform:ClusterInform")
_register("guard", "guard:GuardParams", "guard:Guard")
# Self-consistency that samples until the answers agree (adaptive consistency).
_register("adaptive-vote", "adaptive_vote:AdaptiveVoteParams", "adaptive_vote:AdaptiveVote")
# Universal self-consistency: an LLM picks the most consistent answer, word for word.
_register("usc", "usc:USCParams", "usc:UniversalSelfConsistency")
# An answer-aware cascade: asks the next stage of its chain until its scorer accepts.
_register("cascade", "cascade:CascadeParams", "cascade:AnswerAwareCascade")
# Router-R1: a policy model thinks, asks experts sub-questions turn by turn, answers.
_register("router-r1", "router_r1:RouterR1Params", "router_r1:RouterR1")
