"""Request and response bodies of the OpenAI-compatible API, as pydantic models.

The request side is deliberately tolerant of fields OpenAI clients send by habit (they
are ignored) but strict about the ones that would change where or how a call is made:
credentials and backend addresses are rejected outright (the operator's config alone
decides those), and features this server cannot honour (logprobs, audio, the legacy
`functions`, ...) are rejected rather than silently dropped. Tools and response formats
are taken in OpenAI's shapes and checked here; where they can go is `requests.tool_use`.

Request models validate in strict mode, as OpenAI does: `max_tokens: true` or
`stream: "yes"` is a 422, not a silent 1 or true (an integer is still a valid float).
Every rule the server enforces on a body is also in the generated JSON schema (a user
message needs content, at most 4 stop strings, the seed range), so /openapi.json never
allows a body the server rejects for its shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MIN_DEADLINE_S = 0.1

# Fields that would let a client point the server at another backend or key.
FORBIDDEN_FIELDS = (
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "custom_llm_provider",
    "backend",
)
# Fields whose meaning the server cannot honour; rejected when set to anything truthy.
UNSUPPORTED_FIELDS = (
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
)


# What the store's seed column (PostgreSQL INTEGER) and llama.cpp's sampler (uint32) hold.
SEED_MAX = 2**31 - 1
# Strict types, no coercion; NaN and infinities are not numbers a limit can take.
_REQUEST = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)
# "At least one user message with text": the schema's form of `to_messages`'s check.
_NON_BLANK = {"type": "string", "pattern": "\\S"}
_HAS_USER_TEXT: dict[str, Any] = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"const": "user"},
        "content": {
            "anyOf": [
                _NON_BLANK,
                {
                    "type": "array",
                    "contains": {
                        "type": "object",
                        "required": ["text"],
                        "properties": {"text": _NON_BLANK},
                    },
                },
            ]
        },
    },
}


def _integral(value: object) -> object:
    # JSON has one number type: 16.0 is the integer 16 (JSON Schema agrees), so it is
    # taken; 16.5, "16" and true stay what they are and fail strict validation.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Bounds sit inside the Annotated so that the JSON schema states them too.
PositiveInt = Annotated[int, Field(ge=1), BeforeValidator(_integral)]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX), BeforeValidator(_integral)]


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts are understood."""

    model_config = _REQUEST

    type: Literal["text"]
    text: str


_FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class FunctionCall(BaseModel):
    model_config = _REQUEST

    name: str = Field(pattern=_FUNCTION_NAME)
    arguments: str


class ToolCallIn(BaseModel):
    """A call an assistant turn made, sent back as part of the conversation."""

    model_config = _REQUEST

    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"]
    function: FunctionCall


def _needs(role: str, *required: str) -> dict[str, Any]:
    """`role` messages require these fields, not null: the schema's form of `_roles`."""
    not_null = {name: {"not": {"type": "null"}} for name in required}
    return {
        "if": {"properties": {"role": {"const": role}}},
        "then": {"required": list(required), "properties": not_null},
    }


class ChatMessage(BaseModel):
    """One message; `content` may be null only on an assistant or system turn. A `tool`
    turn answers the assistant's call `tool_call_id`."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={
            "allOf": [_needs("user", "content"), _needs("tool", "content", "tool_call_id")]
        },
    )

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=256)
    tool_calls: list[ToolCallIn] | None = Field(default=None, max_length=64)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _roles(self) -> ChatMessage:
        if self.role == "user" and self.content is None:
            raise ValueError("a user message needs content")
        if self.role == "tool" and (self.content is None or self.tool_call_id is None):
            raise ValueError("a tool message needs content and the tool_call_id it answers")
        return self

    def text(self) -> str:
        """The content as one string: parts are joined with newlines, None is empty."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class SignoriaOptions(BaseModel):
    """The `signoria` extension object: per-request limits that may only tighten the
    pipeline's own (see `signoria.orchestrator.limits.RequestLimits`)."""

    model_config = ConfigDict(**{**_REQUEST, "extra": "forbid"})

    budget_usd: float | None = Field(default=None, ge=0.0, description="USD cap")
    max_experts: PositiveInt | None = Field(default=None, description="expert calls")
    # At least 0.1 s: a shorter deadline expires before any expert is called, which is the
    # client's own impossible limit (a 400), not a gateway timeout (504, which clients retry).
    deadline_s: float | None = Field(
        default=None, ge=MIN_DEADLINE_S, description="wall-clock seconds (at least 0.1)"
    )


class FunctionDefinition(BaseModel):
    model_config = _REQUEST

    name: str = Field(pattern=_FUNCTION_NAME)
    description: str | None = Field(default=None, max_length=4096)
    # A JSON schema of the arguments; local models are held to it by a grammar.
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(BaseModel):
    model_config = _REQUEST

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = _REQUEST

    name: str = Field(pattern=_FUNCTION_NAME)


class NamedToolChoice(BaseModel):
    """`tool_choice` naming the one function the answer must call."""

    model_config = _REQUEST

    type: Literal["function"]
    function: NamedFunction


class TextFormat(BaseModel):
    model_config = _REQUEST

    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = _REQUEST

    type: Literal["json_object"]


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(**_REQUEST, populate_by_name=True)

    name: str = Field(pattern=_FUNCTION_NAME)
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(BaseModel):
    model_config = _REQUEST

    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


class StreamOptions(BaseModel):
    model_config = _REQUEST

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions. `temperature` and `seed` steer raw expert ids; a named
    pipeline keeps its configured sampling. `stop` is applied to the final answer."""

    model_config = _REQUEST

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(
        min_length=1, json_schema_extra={"contains": _HAS_USER_TEXT}
    )
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: PositiveInt = 1
    user: str | None = Field(default=None, max_length=256)
    seed: Seed | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    tools: list[ToolDefinition] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    signoria: SignoriaOptions | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        items = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in items if s)


class FunctionCallOut(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class AssistantMessage(BaseModel):
    """The answer; `content` is null when it is only calls of the client's tools."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = None


FinishReasonOut = Literal["stop", "length", "tool_calls"]


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReasonOut = "stop"
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SignoriaTrace(BaseModel):
    """How the answer was made: every expert call (tokens, latency, cost, error), the
    routing decision and the aggregation. `cost` is null when any price is unknown."""

    pipeline: str
    cost: float | None
    latency_s: float
    calls: list[dict[str, Any]]
    routing: dict[str, Any] | None
    aggregation: dict[str, Any] | None
    # The answer's own finish reason ("length": cut at max_tokens) and the token limit
    # each call had: what the client asked (`max_tokens_requested`, null if nothing) and
    # what was applied (the pipeline's default, or its `max_tokens_cap`).
    finish_reason: FinishReasonOut = "stop"
    truncated: bool = False
    max_tokens_applied: int | None = None
    max_tokens_requested: int | None = None
    # The request whose answer this replays from the response cache (no calls, cost 0).
    cached_from: str | None = None
    # False when the record of a live stream could not be written: its headers were sent
    # before the record was (elsewhere the X-Signoria-Recorded header says it).
    recorded: bool | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    signoria: SignoriaTrace


class ChunkChoice(BaseModel):
    index: int = 0
    delta: dict[str, Any]
    finish_reason: FinishReasonOut | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed completion; the last carries usage and trace."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    signoria: SignoriaTrace | None = None


class ModelInfo(BaseModel):
    """What a model id does to a request, so a client can tell before it asks: whether
    its messages reach the experts as sent, and the completion-token limits."""

    kind: Literal["pipeline", "expert"]
    description: str = ""
    # A system prompt the pipeline adds when the client sends none (None: messages go to
    # the experts as sent); `rewrites_messages` says the same as a flag.
    system_prompt: str | None = None
    rewrites_messages: bool = False
    # Completion tokens per call when the client asks none, and the most it may ask for
    # (None: only the server's own cap).
    max_tokens: int | None = None
    max_tokens_cap: int | None = None
    # Whether `tools` and `response_format` are taken (the answer is one expert's call).
    tools: bool = False


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "signoria"
    signoria: ModelInfo


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class RecordingHealth(BaseModel):
    """Whether recording keeps up: `unrecorded` counts answered requests whose record
    write failed (each was logged and answered with `X-Signoria-Recorded: false`)."""

    run_id: str
    recorded: int
    unrecorded: int


class PreloadHealth(BaseModel):
    """Where the startup load of local models stands (`signoria serve --lazy`: none)."""

    lazy: bool
    loading: list[str]
    loaded: list[str]
    # Left lazy because loading them would push a loaded model out of the memory cap.
    no_room: list[str]
    failed: dict[str, str]
    seconds: float | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    # False while local models are still loading at startup: served, but a request may
    # wait for a load. `/ready` says the same as a status code.
    ready: bool = True
    models: PreloadHealth | None = None
    recording: RecordingHealth | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
