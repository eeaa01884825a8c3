"""One Router-R1 episode as a conversation: the policy's turns and the environment's.

The same state machine runs in service (the `router-r1` aggregator drives it with calls
through the request's call runner) and in training (the GRPO rollout drives it with the
policy's own generations and recorded answers), so the policy is trained on exactly the
turns it will see. It holds no I/O: whoever drives it asks the policy for a turn, gives
it to `observe`, and answers a route with `inform`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signoria.agents.types import Message
from signoria.orchestrator.router_r1 import prompt
from signoria.orchestrator.router_r1.tags import (
    Action,
    Answer,
    Malformed,
    Route,
    close_action,
    parse_turn,
)


@dataclass(frozen=True)
class Turn:
    text: str
    action: Action


@dataclass
class Episode:
    question: str
    system: str
    experts: tuple[str, ...]
    max_rounds: int
    information_limit: int = 2000
    messages: list[Message] = field(init=False)
    turns: list[Turn] = field(default_factory=list, init=False)
    routes: list[Route] = field(default_factory=list, init=False)
    answer: Answer | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.messages = [
            Message(role="system", content=self.system),
            Message(role="user", content=self.question),
        ]

    @property
    def format_ok(self) -> bool:
        """The paper's format condition: every turn well formed, ending in an answer."""
        return self.answer is not None and not any(
            isinstance(t.action, Malformed) for t in self.turns
        )

    @property
    def rounds_left(self) -> int:
        return self.max_rounds - len(self.routes)

    def observe(self, text: str) -> Action:
        """Take the policy's turn: what it asks for, or why it is malformed."""
        written = close_action(text)
        action = parse_turn(written, self.experts)
        if isinstance(action, Route) and self.rounds_left <= 0:
            action = Malformed("no more experts may be asked: give your <answer>", action.think)
        self.turns.append(Turn(written, action))
        self.messages.append(Message(role="assistant", content=written))
        if isinstance(action, Route):
            self.routes.append(action)
        elif isinstance(action, Answer):
            self.answer = action
        return action

    def inform(self, reply: str | None, *, error: str | None = None) -> str:
        """The environment's turn after a route: the expert's reply, or why there is none.
        Returns the text the policy reads."""
        route = self.routes[-1]
        if reply is None or error is not None:
            turn = prompt.no_answer(route.expert, error or "no reply")
        else:
            turn = prompt.information(reply, self.information_limit)
        if self.rounds_left <= 0:
            turn = prompt.last_round(turn)
        self.messages.append(Message(role="user", content=turn))
        return turn

    def remind(self, reason: str) -> str:
        """Ask again after a malformed turn (service only; training scores it -1)."""
        turn = prompt.reminder(reason)
        self.messages.append(Message(role="user", content=turn))
        return turn
