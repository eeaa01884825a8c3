"""The policy's turn format (Router-R1's tags), read strictly.

Each turn of the policy is one step: its reasoning in `<think> ... </think>`, then exactly
one action, either `<search> EXPERT: QUESTION </search>` (ask an expert of the pool) or
`<answer> ANSWER </answer>` (the final answer). The expert's reply comes back to the policy
inside `<information> ... </information>`, which only the environment writes.

A turn that breaks a rule is malformed, with the rule it broke as the reason: the paper's
format reward is -1 for any such turn, and the live loop shows the reason to the policy
when it asks again. The rules follow the paper's format check (balanced tags, no nesting,
a non-empty think first, one action, a known expert name, a real question, nothing after
the action), adapted to chat turns: one action per turn instead of one per stream.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

TAGS = ("think", "search", "answer", "information")
# What a chat call stops at: the end of either action. Providers drop the stop string
# from the text; `close_action` puts it back.
STOP = ("</search>", "</answer>")

_BLOCK = re.compile(r"<(think|search|answer|information)>(.*?)</\1>", re.DOTALL)
_ANY_TAG = re.compile(r"</?(?:think|search|answer|information)>")
_PLACEHOLDERS = ("llm-name", "your-query")


@dataclass(frozen=True)
class Route:
    """Ask `expert` the question `query`."""

    think: str
    expert: str
    query: str


@dataclass(frozen=True)
class Answer:
    think: str
    text: str


@dataclass(frozen=True)
class Malformed:
    """A turn that breaks the format; `reason` names the rule, for the policy to read."""

    reason: str
    think: str | None = None


Action = Route | Answer | Malformed


def close_action(text: str) -> str:
    """The turn as the policy wrote it, with the closing tag a stop sequence removed."""
    body = text.rstrip()
    for tag in ("search", "answer"):
        if body.count(f"<{tag}>") == body.count(f"</{tag}>") + 1 and body.rfind(
            f"<{tag}>"
        ) > body.rfind(f"</{tag}>"):
            return f"{body} </{tag}>"
    return body


def resolve_expert(name: str, experts: Sequence[str]) -> str | None:
    """The pool expert a written name means: the exact name, case aside, or the part after
    the last '/' when that is unique ("Yi-34B-Chat" for "zero-one-ai/Yi-34B-Chat")."""
    wanted = name.strip().lower()
    if not wanted:
        return None
    for expert in experts:
        if expert.lower() == wanted:
            return expert
    short = [e for e in experts if e.rsplit("/", 1)[-1].lower() == wanted]
    return short[0] if len(short) == 1 else None


def parse_turn(text: str, experts: Sequence[str]) -> Action:
    """Read one policy turn (its action's closing tag included, see `close_action`)."""
    body = text.strip()
    for tag in TAGS:
        if body.count(f"<{tag}>") != body.count(f"</{tag}>"):
            return Malformed(f"unbalanced <{tag}> tags")
    blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in _BLOCK.finditer(body)]
    if not blocks or blocks[0][0] != "think" or blocks[0][2] != 0:
        return Malformed("the turn must start with <think> ... </think>")
    think = blocks[0][1].strip()
    if not think or think == "...":
        return Malformed("the <think> block is empty", think)
    if any(_ANY_TAG.search(content) for _, content, _, _ in blocks):
        return Malformed("tags nested inside a block", think)
    if any(tag == "information" for tag, *_ in blocks):
        return Malformed("<information> is written by the experts, not by you", think)
    actions = blocks[1:]
    if not actions:
        return Malformed("no action: end the turn with <search> or <answer>", think)
    if len(actions) > 1:
        return Malformed("one action per turn: a single <search> or <answer>", think)
    tag, content, _, end = actions[0]
    if body[end:].strip():
        return Malformed(f"text after </{tag}>", think)
    if body[blocks[0][3] : actions[0][2]].strip():
        return Malformed("text between </think> and the action", think)
    content = content.strip()
    if tag == "answer":
        return Answer(think, content) if content else Malformed("the answer is empty", think)
    return _route(think, content, experts)


def _route(think: str, content: str, experts: Sequence[str]) -> Action:
    name, sep, query = content.partition(":")
    query = query.strip()
    if not sep or not query:
        return Malformed("write <search> EXPERT: QUESTION </search>", think)
    if any(p in content.lower() for p in _PLACEHOLDERS):
        return Malformed("replace the placeholders with an expert's name and a question", think)
    expert = resolve_expert(name, experts)
    if expert is None:
        return Malformed(f"unknown expert {name.strip()!r} (experts: {', '.join(experts)})", think)
    if query.lower() == name.strip().lower():
        return Malformed("the question repeats the expert's name", think)
    return Route(think, expert, query)
