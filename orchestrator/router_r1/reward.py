"""Router-R1's rule-based reward: format, then outcome, traded against cost.

As in the paper's reward (Zhang et al. 2025, and its reference code's `compute_score_em`):

- a malformed episode scores -1, whatever its answer (the format term overrides the rest);
- a well-formed episode with a wrong answer scores 0;
- a well-formed episode with a right answer scores (1 - w) * 1 + w * c, where w is the cost
  weight (the paper's cost coefficient, λ) and c in [0, 1] is the episode's cost made a
  reward: 1 for the cheapest episodes, 0 for the dearest.

So for a right answer the reward is 1 - w * (1 - c): "outcome minus λ times cost". The
cost is made a reward as the reference code does: the square root of the episode's USD
cost, placed between the 5th and 95th percentiles of the last 1000 episodes' (a scale that
follows the pool's prices without being told them). One change for short runs: the window
starts filled with what one call of each expert cost on the training questions, so the
first steps already know cheap from dear (the reference code starts empty, and a run of a
few hundred episodes would spend most of itself filling it). Evaluation scores every
policy on one frozen scale, that of the training questions' calls, so that no policy's
own spending moves the scale it is scored on.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from signoria.orchestrator.answers import extract_answer, reference_kind, same_answer

MALFORMED = -1.0


def reward(*, format_ok: bool, correct: bool, cost_reward: float, cost_weight: float) -> float:
    if not format_ok:
        return MALFORMED
    if not correct:
        return 0.0
    return (1.0 - cost_weight) + cost_weight * cost_reward


def exact_match(answer: str | None, reference: str, query: str = "") -> bool:
    """The paper's exact match, with the project's answer extraction (the same letter, the
    same number, or the same text once normalised), so that a trained policy and the
    benchmark runner agree on what "right" means."""
    if answer is None:
        return False
    kind = reference_kind(reference)
    extracted = extract_answer(answer, kind, query)
    return extracted is not None and same_answer(extracted, reference, kind)


@dataclass
class CostScale:
    """Turns an episode's USD cost into a reward in [0, 1] (1 = cheapest)."""

    window: int = 1000
    low_quantile: float = 0.05
    high_quantile: float = 0.95
    frozen: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self._seen: deque[float] = deque(maxlen=self.window)

    def __call__(self, cost_usd: float | None) -> float:
        if cost_usd is None or math.isnan(cost_usd):
            # An unknown price gives no cost signal: the midpoint, neither cheap nor dear.
            return 0.5
        value = math.sqrt(max(cost_usd, 0.0))
        if self.frozen is None:
            self._seen.append(value)
        low, high = self.bounds()
        if high - low < 1e-12:
            return 0.5
        return 1.0 - float(np.clip((value - low) / (high - low), 0.0, 1.0))

    def bounds(self) -> tuple[float, float]:
        if self.frozen is not None:
            return self.frozen
        seen = np.fromiter(self._seen, dtype=float)
        if len(seen) < 2:
            return (float(seen.min()), float(seen.max())) if len(seen) else (0.0, 0.0)
        return (
            float(np.quantile(seen, self.low_quantile)),
            float(np.quantile(seen, self.high_quantile)),
        )

    def freeze(self) -> CostScale:
        return CostScale(self.window, self.low_quantile, self.high_quantile, self.bounds())

    @classmethod
    def seeded(cls, costs: Sequence[float | None]) -> CostScale:
        """A scale whose window starts with these costs' distribution.

        More costs than the window holds are thinned to the window's size by quantiles
        of all of them, never by a stride: costs arrive question by question, expert by
        expert, and a stride that is a multiple of the number of experts would keep one
        expert's costs only (a scale on which every dearer expert is simply "dearest").
        The thinned values are shuffled with a fixed seed, so that the window's oldest
        entries, the first to leave as episodes arrive, are not all the cheapest."""
        scale = cls()
        known = np.sqrt(np.clip([c for c in costs if c is not None and not math.isnan(c)], 0, None))
        if len(known) > scale.window:
            known = np.quantile(known, np.linspace(0.0, 1.0, scale.window))
        np.random.default_rng(0).shuffle(known)
        scale._seen.extend(float(value) for value in known)
        return scale
