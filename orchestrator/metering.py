"""What a finished call is charged and passed on: never more than it was allowed.

A call asks its backend for at most `max_tokens` of output, and a budget reserves the
price of exactly that before the call. A provider that returns more than it was asked,
or reports more usage than it could have produced, would otherwise turn one call into
a spend several times the budget, recorded as if it were fine. The rule, the same for
every backend:

- A completion *overran* when it reports more output tokens than `max_tokens`, when its
  text has more whitespace-separated words than `max_tokens` (every common tokenizer
  gives each word at least one token, so such a text cannot fit, whatever the usage
  says), or when it reports a cost above the card's price of its prompt plus
  `max_tokens` of output.
- An overrun is flagged `over_reported` and passed on capped: `tokens_out` at most
  `max_tokens`, the cost at most that price, and a text past `max_tokens` cut to the
  longest prefix (at a word boundary where one fits) that the expert's own token counter
  puts within `max_tokens`, with `finish_reason: "length"`. The backend's own numbers are
  kept beside them for audit. The circuit breaker counts the call as a failure: an honest
  provider never does this.

A `replay` expert is not metered: it replays a recorded call, made under that run's own
limit and with its recorded cost, and evaluating routers or aggregators on the record
means taking it whole (the budget still charges it at most its reservation).

What the budget does with the capped cost (charge at most the reservation, stop the
request once its calls claim the whole budget) is `signoria.orchestrator.limits.Budget`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from signoria.agents.pricing import call_cost
from signoria.agents.types import Completion, Expert, Message, Usage

logger = logging.getLogger(__name__)

OVER_REPORTED = "over_reported"
BUDGET_EXCEEDED = "budget_exceeded"
BUDGET_REFUSED = "budget_refused"
# The call could not be made as configured (an unset key): see ExpertMisconfigured.
MISCONFIGURED = "misconfigured"

_WORDS = re.compile(r"\S+\s*")
# Backends whose answers are records of past calls, not calls (see the module docstring).
_RECORDED = frozenset({"replay"})
# Float sums of per-token prices: a cost this close to the ceiling is the ceiling.
_EPSILON = 1e-12


@dataclass(frozen=True)
class Metered:
    """A completion as it is charged and passed on, and what the backend said."""

    completion: Completion
    over_reported: bool
    reported_tokens_out: int | None = None  # set when tokens_out was capped
    reported_cost: float | None = None  # set when the cost was capped


async def meter(completion: Completion, expert: Expert, max_tokens: int) -> Metered:
    """`completion` held to `max_tokens` of output (see the module docstring)."""
    if expert.card.backend in _RECORDED:
        return Metered(completion, over_reported=False)
    usage, text = completion.usage, completion.text
    words = len(text.split())
    long_text = usage.tokens_out > max_tokens or words > max_tokens
    ceiling = call_cost(expert.card, usage.tokens_in, max_tokens)
    cost = completion.cost
    costly = cost is not None and ceiling is not None and cost > ceiling + _EPSILON
    if not (long_text or costly):
        return Metered(completion, over_reported=False)
    update: dict[str, object] = {}
    if long_text:
        try:
            cut = await cut_to_tokens(text, expert, max_tokens)
        except Exception:  # a counter bug must not lose a call that was paid for
            logger.exception("could not count the output of %s; cut by words", expert.card.name)
            cut = " ".join(text.split()[:max_tokens])
        if cut != text:
            update.update(text=cut, finish_reason="length")
    tokens_out = min(usage.tokens_out, max_tokens)
    if tokens_out != usage.tokens_out:
        update["usage"] = Usage(tokens_in=usage.tokens_in, tokens_out=tokens_out)
    if costly:
        update["cost"] = ceiling
    return Metered(
        completion.model_copy(update=update),
        over_reported=True,
        reported_tokens_out=usage.tokens_out if "usage" in update else None,
        reported_cost=cost if costly else None,
    )


async def cut_to_tokens(text: str, expert: Expert, max_tokens: int) -> str:
    """The longest prefix of `text` within `max_tokens` by the expert's own counter.

    The counter counts messages, so the framing of an empty message is taken off; a
    prefix ends at a word boundary, or inside the first word when even that is too long.
    The binary search costs about log2(words) counts, paid only by overrunning calls.
    """
    frame = await expert.count_tokens([Message(role="assistant", content="")])

    async def fits(prefix: str) -> bool:
        counted = await expert.count_tokens([Message(role="assistant", content=prefix)])
        return counted - frame <= max_tokens

    if await fits(text):
        return text
    ends = [m.end() for m in _WORDS.finditer(text)]
    end = await _longest(text, ends, fits)
    if end == 0 and ends:
        end = await _longest(text, range(1, ends[0] + 1), fits)
    return text[:end].rstrip()


async def _longest(text: str, cuts: Sequence[int], fits: Callable[[str], Awaitable[bool]]) -> int:
    """The last of the increasing `cuts` whose prefix fits, or 0 when none does."""
    lo, hi = 0, len(cuts)  # how many of the cuts are known to fit / may fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if await fits(text[: cuts[mid - 1]].rstrip()):
            lo = mid
        else:
            hi = mid - 1
    return cuts[lo - 1] if lo else 0
