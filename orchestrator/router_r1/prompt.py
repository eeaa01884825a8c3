"""What the policy reads: the experts' descriptors, the format, and the environment's turns.

The policy chooses experts from simple descriptors only (description, price, measured
performance and latency), as in Router-R1: an expert new to the pool joins by its
descriptor, with no retraining. Training and serving render the same text from the same
code, so a trained policy sees in service exactly the prompt it learned on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import ModelCard


class ExpertDescriptor(BaseModel):
    """One expert as the policy sees it. Unknown figures are left out, never guessed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    input_price: float | None = Field(default=None, ge=0.0, description="USD per 1M tokens")
    output_price: float | None = Field(default=None, ge=0.0, description="USD per 1M tokens")
    accuracy: float | None = Field(default=None, ge=0.0, le=1.0, description="share right")
    examples: int | None = Field(default=None, ge=1, description="queries behind `accuracy`")
    cost_per_call: float | None = Field(default=None, ge=0.0, description="mean USD per call")
    latency_s: float | None = Field(default=None, ge=0.0, description="median seconds per call")

    @classmethod
    def of(cls, card: ModelCard) -> ExpertDescriptor:
        return cls(
            name=card.name,
            description=card.description.strip(),
            input_price=card.input_price,
            output_price=card.output_price,
        )

    def line(self) -> str:
        facts = [self.description.rstrip(".") + "." if self.description else ""]
        if self.input_price is None or self.output_price is None:
            facts.append("Price unknown.")
        else:
            facts.append(
                f"Price ${self.input_price:g} in / ${self.output_price:g} out per 1M tokens."
            )
        if self.cost_per_call is not None:
            facts.append(f"About ${self.cost_per_call:.6f} per question.")
        if self.accuracy is not None:
            of = f" of {self.examples}" if self.examples else " of"
            facts.append(f"Right on {self.accuracy:.0%}{of} example questions.")
        if self.latency_s is not None:
            facts.append(f"Answers in about {self.latency_s:.1f} s.")
        return f"- {self.name}: " + " ".join(f for f in facts if f)


def descriptors_for(
    experts: Iterable[str],
    cards: Mapping[str, ModelCard],
    measured: Mapping[str, ExpertDescriptor] | None = None,
) -> tuple[ExpertDescriptor, ...]:
    """Each expert's descriptor: a measured one (a training artifact's, a descriptors
    file's) when there is one, else what its card says."""
    measured = measured or {}
    return tuple(measured.get(name) or ExpertDescriptor.of(cards[name]) for name in experts)


_SYSTEM = """Answer the user's question with the help of the experts listed below.
Each of your replies is one step. Start it with your reasoning inside <think> ... </think>, \
then end it with exactly one action:
- <search> EXPERT: QUESTION </search> asks one expert a question. Its reply comes back \
inside <information> ... </information>.
- <answer> ANSWER </answer> gives your final answer: the answer alone, no explanation.
Write nothing after the action. You may ask experts at most {rounds} times. Asking costs \
money, so ask only when it helps.

Experts:
{experts}"""

_AGENT = (
    "Another model asks you this question while it works on a larger one. Answer it as "
    "well as you can, briefly; if you cannot, say so."
)


def system_prompt(descriptors: Iterable[ExpertDescriptor], max_rounds: int) -> str:
    return _SYSTEM.format(rounds=max_rounds, experts="\n".join(d.line() for d in descriptors))


def expert_instruction() -> str:
    """The system message of a routed call: the expert answers a sub-question of the
    policy's, not the user's conversation."""
    return _AGENT


def information(text: str, limit: int) -> str:
    body = text.strip()
    if len(body) > limit:
        body = body[:limit].rstrip() + " [...]"
    return f"<information> {body} </information>"


def no_answer(expert: str, error: str) -> str:
    return f"<information> {expert} could not answer: {error} </information>"


def last_round(turn: str) -> str:
    """The environment's turn once the policy has asked all it may."""
    return f"{turn}\nYou cannot ask experts any more: give your <answer> now."


def reminder(reason: str) -> str:
    return (
        f"Your last reply broke the format ({reason}). Reply again: <think> ... </think>, "
        "then one <search> EXPERT: QUESTION </search> or <answer> ANSWER </answer>."
    )
