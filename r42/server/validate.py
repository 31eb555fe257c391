"""Request bodies checked at the edge, before anything reads them: each endpoint's JSON becomes a
typed request or a 400 that names the field (`messages[0].content`), so no wrong type reaches the
scorer, the translators or an upstream.

Only the fields r42 reads or forwards are checked (OpenAI's and Anthropic's own types); unknown
fields pass through as the APIs allow. `null` counts as absent, as the translators treat it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from r42.document import ROLES
from r42.errors import InputError
from r42.server.errors import GatewayError

Check = Callable[[Any, str], None]  # raises GatewayError for a value at a path


@dataclass(frozen=True)
class ChatRequest:
    """An OpenAI chat body whose fields have their documented types."""

    body: dict[str, Any]
    model: str | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class MessagesRequest:
    """An Anthropic Messages body (or a count_tokens body) whose fields have their documented types."""

    body: dict[str, Any]
    model: str | None
    stream: bool


def invalid(path: str, expected: str, value: Any) -> GatewayError:
    got = "null" if value is None else type(value).__name__.replace("dict", "object").replace("list", "array")
    return GatewayError(400, f"{path}: expected {expected}, got {got}", "invalid_request", param=path)


# --- the checks ------------------------------------------------------------------------------------


def string(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise invalid(path, "a string", value)


def boolean(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise invalid(path, "true or false", value)


def whole(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(path, "a whole number >= 0", value)


def number(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(path, "a number", value)


def obj(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise invalid(path, "an object", value)


def one_of(*names: str) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str) or value not in names:
            raise GatewayError(
                400,
                f"{path}: expected one of {', '.join(names)}, got {str(value)[:40]!r}",
                "invalid_request",
                param=path,
            )

    return check


def array_of(item: Check, non_empty: bool = False) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise invalid(path, "an array", value)
        if non_empty and not value:
            raise GatewayError(400, f"{path}: expected a non-empty array", "invalid_request", param=path)
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]")

    return check


def either(first: Check, second: Check, expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        try:
            first(value, path)
        except GatewayError:
            try:
                second(value, path)
            except GatewayError as exc:
                # the deeper path says more (messages[0].content[1].text); else name both forms
                if exc.param != path:
                    raise
                raise invalid(path, expected, value) from None

    return check


def fields(spec: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    """An object whose listed fields, when present and not null, pass their checks."""

    def check(value: Any, path: str) -> None:
        obj(value, path)
        for name in required:
            if value.get(name) is None:
                where = f"{path}.{name}" if path else name
                raise GatewayError(400, f"{where}: required", "invalid_request", param=where)
        for name, field_check in spec.items():
            if value.get(name) is not None:
                field_check(value[name], f"{path}.{name}" if path else name)

    return check


# --- OpenAI chat -------------------------------------------------------------------------------------

OPENAI_PART = fields({"type": string, "text": string, "image_url": either(obj, string, "an object or a string")})
OPENAI_CALL = fields({"id": string, "type": string, "function": fields({"name": string, "arguments": string})})
OPENAI_MESSAGE = fields(
    {
        "role": one_of(*sorted(ROLES)),
        "content": either(string, array_of(OPENAI_PART), "a string or an array of parts"),
        "name": string,
        "tool_calls": array_of(OPENAI_CALL),
        "tool_call_id": string,
    },
    required=("role",),
)
OPENAI_TOOL = fields(
    {"type": string, "function": fields({"name": string, "description": string, "parameters": obj}, required=("name",))}
)
OPENAI_CHAT = fields(
    {
        "model": string,
        "messages": array_of(OPENAI_MESSAGE, non_empty=True),
        "stream": boolean,
        "stream_options": fields({"include_usage": boolean}),
        "max_tokens": whole,
        "max_completion_tokens": whole,
        "n": whole,
        "temperature": number,
        "top_p": number,
        "presence_penalty": number,
        "frequency_penalty": number,
        "seed": number,
        "logprobs": boolean,
        "top_logprobs": whole,
        "parallel_tool_calls": boolean,
        "stop": either(string, array_of(string), "a string or an array of strings"),
        "user": string,
        "reasoning_effort": string,
        "response_format": fields({"type": string}, required=("type",)),
        "tools": array_of(OPENAI_TOOL),
        "tool_choice": either(string, obj, "a string or an object"),
        "logit_bias": obj,
        "metadata": obj,
        "prompt": string,
    }
)


def chat_request(body: dict[str, Any]) -> ChatRequest:
    """POST /v1/chat/completions: 400 naming the first field of the wrong type."""
    if "messages" not in body:
        raise GatewayError(400, "messages: required", "invalid_request", param="messages")
    OPENAI_CHAT(body, "")
    options = body.get("stream_options") or {}
    return ChatRequest(body, body.get("model"), bool(body.get("stream")), bool(options.get("include_usage")))


def document(body: dict[str, Any]) -> dict[str, Any]:
    """/v1/classify and /api/recommend: a chat body or {"prompt": "..."}, typed like a chat request;
    a `score` or `ranking` sent along is not trusted (it is computed here)."""
    if "messages" not in body and not isinstance(body.get("prompt"), str):
        raise GatewayError(400, 'send an OpenAI chat body or {"prompt": "..."}', "invalid_request", param="messages")
    OPENAI_CHAT(body, "")
    return {k: v for k, v in body.items() if k not in ("score", "ranking")}


# --- Anthropic Messages --------------------------------------------------------------------------------

ANTHROPIC_BLOCKS: Check  # defined below: tool_result content nests blocks


def _blocks(value: Any, path: str) -> None:
    ANTHROPIC_BLOCKS(value, path)


ANTHROPIC_BLOCK = fields(
    {
        "type": string,
        "text": string,
        "id": string,
        "name": string,
        "input": obj,
        "tool_use_id": string,
        "source": fields({"type": string, "media_type": string, "data": string, "url": string}),
        "content": either(string, _blocks, "a string or an array of content blocks"),
    },
    required=("type",),
)
ANTHROPIC_BLOCKS = array_of(ANTHROPIC_BLOCK)
ANTHROPIC_MESSAGE = fields(
    {
        "role": one_of("user", "assistant"),
        "content": either(string, ANTHROPIC_BLOCKS, "a string or an array of content blocks"),
    },
    required=("role", "content"),
)
ANTHROPIC_TOOL = fields({"name": string, "description": string, "input_schema": obj}, required=("name",))
ANTHROPIC_FIELDS = {
    "model": string,
    "max_tokens": whole,
    "stream": boolean,
    "temperature": number,
    "top_p": number,
    "top_k": whole,
    "stop_sequences": array_of(string),
    "metadata": obj,
    "thinking": obj,
    "system": either(string, ANTHROPIC_BLOCKS, "a string or an array of text blocks"),
    "tools": array_of(ANTHROPIC_TOOL),
    "tool_choice": fields({"type": string, "name": string}, required=("type",)),
}
ANTHROPIC_MESSAGES = fields(
    {**ANTHROPIC_FIELDS, "messages": array_of(ANTHROPIC_MESSAGE, non_empty=True)}, required=("messages",)
)
ANTHROPIC_COUNT = fields({**ANTHROPIC_FIELDS, "messages": array_of(ANTHROPIC_MESSAGE)}, required=("messages",))


def messages_request(body: dict[str, Any], counting: bool = False) -> MessagesRequest:
    """POST /v1/messages (and /v1/messages/count_tokens with `counting`, where messages may be empty)."""
    (ANTHROPIC_COUNT if counting else ANTHROPIC_MESSAGES)(body, "")
    return MessagesRequest(body, body.get("model"), bool(body.get("stream")))


def known_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """A 400 naming the first field of `body` that is not `allowed` (the admin and self-service
    APIs take only the fields they read)."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise GatewayError(
            400, f"unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}", "invalid_request", param=unknown[0]
        )


# --- the self-service API ------------------------------------------------------------------------------

PRIVACY_PROMPT = fields({"template": string}, required=("template",))


def privacy_prompt_request(body: dict[str, Any]) -> str:
    """PUT /v1/me/privacy-prompt {"template": "..."}: the template, checked as the store checks it
    ({prompt} exactly once, a size limit), or a 400 naming `template`."""
    from r42.privacy_judge import check_template

    known_fields(body, ("template",))
    PRIVACY_PROMPT(body, "")
    try:
        return check_template(body["template"])
    except InputError as exc:
        raise GatewayError(400, f"template: {exc.one_line()}", "invalid_template", param="template") from None
