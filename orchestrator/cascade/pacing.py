"""Holding a cascade's spend at a budget on traffic it was not trained on.

A knob chosen offline (`value_usd`) sets a price on right answers, not a spend: on new
rows its spend moves with the task mix and with every block of queries whose answers
agree alike (held out on RouterBench, a knob chosen for 25% of GPT-4's cost spent 12-29%
of it, seed to seed: docs/benchmarks.md). A pacer moves the knob as queries come instead
(the dual-ascent rule of budget pacing): after each query the knob is multiplied by
exp(-rate * (spent - budget) / budget), so it falls after queries that cost more than the
budget and rises after cheaper ones, and the mean spend settles at the budget whenever
some knob reaches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The knob stays in a range where escalation is still decided by the scorers' numbers.
LOWEST, HIGHEST = 1e-6, 1e6
# One request moves the knob down by at most e^5: a single outlier bill must not pin it
# at LOWEST for the thousands of requests it would take to climb back.
LARGEST_STEP_DOWN = 5.0


@dataclass
class Pacer:
    budget_usd: float  # mean spend per query to hold
    value_usd: float  # the knob now; starts at the trained one
    rate: float = 0.05

    def __post_init__(self) -> None:
        if self.budget_usd <= 0 or self.rate <= 0:
            raise ValueError("a pacer needs a positive budget and rate")
        self.value_usd = min(max(self.value_usd, LOWEST), HIGHEST)

    def spent(self, usd: float) -> None:
        """Account for one query's spend and move the knob."""
        step = -self.rate * (usd - self.budget_usd) / self.budget_usd
        step = max(step, -LARGEST_STEP_DOWN)
        self.value_usd = min(max(self.value_usd * math.exp(step), LOWEST), HIGHEST)
