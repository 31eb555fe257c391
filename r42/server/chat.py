"""The answering endpoints: POST /v1/chat/completions (OpenAI) and POST /v1/messages (Anthropic).

Routing per request: `model` set to auto, r42 or route42 routes with the configured mode, r42/<mode>
routes with that mode, anything else names a model directly (a catalog id or alias, or
provider/model). Headers: X-R42-Mode overrides the mode of a routed request, X-R42-Force-Route (or
X-Force-Route) `local` or `cloud` keeps routing on one side. The answer's `model` and the
X-R42-Model header name the model that answered.

/v1/messages sends a request whose candidate is an Anthropic model straight to Anthropic
(r42.server.passthrough: the body, anthropic-version and anthropic-beta untouched, so thinking
blocks and their signatures survive); other candidates go through the executor in OpenAI chat and
come back translated into Anthropic's format and event grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator

import orjson

from r42.availability import BUILTIN_LOCAL
from r42.config import MODES
from r42.document import messages_of
from r42.errors import R42Error
from r42.executor import Limits, StreamBrokenError
from r42.formats import anthropic as fa
from r42.formats.openai import request_body
from r42.formats.sse import DONE
from r42.routing import outside_text_sensitive
from r42.scoring import estimate_tokens
from r42.server import passthrough
from r42.server.call import SSE_HEADERS, Call, json_response, read_json
from r42.server.errors import GatewayError, sse_error_anthropic, sse_error_openai
from r42.server.http import ClientGone, Response, header_safe
from r42.server.validate import chat_request, messages_request

if TYPE_CHECKING:  # the gateway imports this module for its route table
    from r42.server.app import Gateway

Chunks = Generator[dict[str, Any], None, None]
ROUTING_ALIASES = ("auto", "r42", "route42")
PIPE_KEYS = ("score", "ranking", "response", "route")  # pipe-document keys a chat client never sends


@dataclass
class Plan:
    doc: dict[str, Any]  # the request with `score` (and `ranking` when routed)
    request: dict[str, Any]  # the OpenAI chat request for the upstream
    candidates: list[str]  # best first
    mode: str | None  # None for a direct request
    score: dict[str, Any]
    limits: Limits | None = None  # what is left of the fallback policy's limits after the pass-through


class JudgeNeeded(Exception):
    """Planning on the event loop stopped: the privacy judge must ask a local model (blocking I/O)."""


def plan_request(
    gw: Gateway,
    call: Call,
    body: dict[str, Any],
    model_fallback: str | None = None,
    raw: dict[str, Any] | None = None,
    may_block: bool = True,
) -> Plan:
    """Score (and rank, when routed) one chat request; raises GatewayError for bad routing input.
    `raw`: the body as the client sent it, when `body` is its translation (/v1/messages).
    may_block=False (on the event loop): raises JudgeNeeded instead of asking the privacy judge."""
    with call.request.heavy:  # a big body waits its turn (r42.server.http.LOOP_BODY_MAX)
        return _plan_request(gw, call, body, model_fallback, raw, may_block)


def _plan_request(
    gw: Gateway,
    call: Call,
    body: dict[str, Any],
    model_fallback: str | None,
    raw: dict[str, Any] | None,
    may_block: bool,
) -> Plan:
    headers = call.request.headers
    mode_header = headers.get("x-r42-mode")
    if mode_header is not None and mode_header not in MODES:
        raise GatewayError(
            400, f"X-R42-Mode must be one of {', '.join(MODES)}, got {mode_header[:40]!r}", "invalid_mode"
        )
    force = headers.get("x-r42-force-route") or headers.get("x-force-route")
    if force is not None:
        force = force.strip().lower()
        if force not in ("local", "cloud"):
            raise GatewayError(
                400, f"X-R42-Force-Route must be local or cloud, got {force[:40]!r}", "invalid_force_route"
            )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise GatewayError(400, "'model' must be a string", "invalid_model", param="model")
    if model and not header_safe(model):  # it is echoed in X-R42-Model and sent upstream
        raise GatewayError(400, "'model' must be ASCII without control characters", "invalid_model", param="model")
    mode, direct = routing_of(gw, model, mode_header, model_fallback)
    if direct and direct.split("/", 1)[0] == BUILTIN_LOCAL and not gw.settings.serve_builtin_local:
        raise GatewayError(
            403,
            "the built-in local model is off on this gateway; the operator can allow it with "
            "R42_SERVE_BUILTIN_LOCAL=1 (or serve_builtin_local in config.toml)",
            "builtin_local_disabled",
            param="model",
        )
    doc = {k: v for k, v in body.items() if k not in PIPE_KEYS}
    messages = messages_of(doc)
    router = gw.router_for(call.caller.user)
    constraints = router.constraints(mode=mode or gw.settings.mode, force=force)
    _count_hidden_sensitive(router, doc, constraints, raw if raw is not None else body)
    if gw.settings.privacy_judge:
        doc = _judged(gw, call, router, doc, may_block)
    # One path for routed and named models alike: Router.plan applies the privacy guard to every
    # candidate, so a prompt the policy keeps local never reaches a cloud upstream. (No more
    # candidates than attempts the executor may make: each costs at least one.)
    doc, candidates = router.plan(doc, constraints, model=direct, top=gw.executor_limits.max_attempts)
    score = doc["score"]
    request = request_body(doc, messages)
    request.pop("stream_options", None)  # the adapters ask upstreams for usage themselves
    call.planned(score, mode, candidates, request)
    return Plan(doc, request, candidates, mode, score)


def _count_hidden_sensitive(router: Any, doc: dict[str, Any], constraints: Any, body: dict[str, Any]) -> None:
    """Sensitive data outside the message text (tool arguments, Anthropic tool inputs and
    documents) joins the score's; the redaction cannot replace it, so local models only."""
    hidden = outside_text_sensitive(body)
    if hidden:
        score = router.score(doc)
        doc["score"] = {**score, "sensitive": sorted(set(score.get("sensitive") or []) | set(hidden))}
        constraints.allow_cloud_sensitive = constraints.redact_sensitive = False


def _judged(gw: Gateway, call: Call, router: Any, doc: dict[str, Any], may_block: bool) -> dict[str, Any]:
    """The document with its score after the privacy judge (a local model only) looked at it,
    asked with the requesting user's own template (r42.store.prompts), else the default. The
    template is read only for a prompt with privacy cues and nothing sensitive for sure; only
    such a prompt raises JudgeNeeded when planning may not block."""
    from r42.privacy_judge import judged, needs_judge

    doc = {**doc, "score": router.score(doc)}  # scored once: the plan trusts it
    if not needs_judge(doc["score"]):
        return doc
    if not may_block:
        raise JudgeNeeded
    template = gw.settings.privacy_judge_prompt
    if call.caller.user:
        from r42.store.prompts import template_for

        template = template_for(call.caller.user, template).template
    return judged(router, gw.executor_for(call.caller.user), doc, template)[0]


def routing_of(
    gw: Gateway, model: str | None, mode_header: str | None, fallback: str | None
) -> tuple[str | None, str | None]:
    """(mode, None) for a routed request, (None, model id) for a direct one."""
    if not model or model in ROUTING_ALIASES:
        return mode_header or gw.settings.mode, None
    prefix, _, rest = model.partition("/")
    if prefix in ROUTING_ALIASES:
        if rest not in MODES:
            raise GatewayError(
                400,
                f"unknown routing mode {rest[:40]!r} in model {model[:60]!r}; "
                f"use r42/<mode> with one of {', '.join(MODES)}",
                "invalid_mode",
                param="model",
            )
        return mode_header or rest, None
    catalog = gw.router.catalog
    target = catalog.resolve(model)
    if target is not None and (target.model is not None or target.upstream):
        return None, target.id
    if fallback and fallback.split("/", 1)[0] in catalog.providers:
        return None, fallback
    raise GatewayError(
        404,
        f"unknown model {model[:80]!r}: use a catalog id (provider/model), or auto, r42/<mode>",
        "model_not_found",
        param="model",
    )


# --- POST /v1/chat/completions ------------------------------------------------------------------


def chat_completions(gw: Gateway, call: Call) -> Response | None:
    """OpenAI chat completions: `model` names a catalog model, or auto, r42 or r42/<mode> to route
    (X-R42-Mode, X-R42-Force-Route); the answer names the model in X-R42-Model.
    OpenAPI: ChatRequest -> ChatCompletion"""
    body = chat_request(read_json(call)).body
    return _answer_chat(gw, call, plan_request(gw, call, body), gw.executor_for(call.caller.user), body)


async def chat_completions_on_loop(gw: Gateway, call: Call) -> Response | None:
    """chat_completions on the event loop: scoring and ranking inline, the upstream awaited.
    Candidates the async adapter cannot serve (SDK protocols, the built-in model, a proxy) are
    answered on a worker thread as before."""
    body = chat_request(read_json(call)).body
    plan_ = None
    if gw.router_warm(call.caller.user):
        try:
            plan_ = plan_request(gw, call, body, may_block=False)
        except JudgeNeeded:
            pass
    if plan_ is None:  # a cold router probes providers, the privacy judge asks a local model: not on the loop
        plan_ = await call.channel.in_worker(plan_request, gw, call, body)
    executor = gw.executor_for(call.caller.user)
    if not executor.runs_async(plan_.candidates):
        return await call.channel.in_worker(_answer_chat, gw, call, plan_, executor, body)
    if body.get("stream"):
        await _stream_openai_on_loop(gw, call, plan_, executor, body)
        return None
    result = await executor.complete_async(plan_.request, plan_.candidates)
    return _completion_response(gw, call, plan_, result)


def _answer_chat(gw: Gateway, call: Call, plan_: Plan, executor: Any, body: dict[str, Any]) -> Response | None:
    if body.get("stream"):
        _stream_openai(gw, call, plan_, executor, body)
        return None
    result = executor.complete(plan_.request, plan_.candidates)
    return _completion_response(gw, call, plan_, result)


def _completion_response(gw: Gateway, call: Call, plan_: Plan, result: Any) -> Response:
    response = result.response
    response["model"] = result.route["model"]
    call.ended("ok", result.route)
    return json_response(response, headers=call.route_headers(result.route["model"]))


class OpenAIEvents:
    """The client's SSE bytes for each chunk: the answering model's name, and usage only when
    the client asked for it (stream_options.include_usage)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def encode(self, chunk: dict[str, Any], model: str | None) -> bytes | None:
        if chunk.get("usage") and not self.include_usage:
            if not chunk.get("choices"):
                return None  # the usage-only chunk the client did not ask for
            chunk.pop("usage")
        chunk["model"] = model or chunk.get("model", "")
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _stream_openai(gw: Gateway, call: Call, plan_: Plan, executor: Any, body: dict[str, Any]) -> None:
    events = OpenAIEvents(body)

    def write_body(run: Any, chunks: Iterator[dict[str, Any]], channel: Any) -> None:
        for chunk in chunks:
            data = events.encode(chunk, run.model)
            if data is not None:
                channel.write(data)
        channel.write(DONE)

    _relay_stream(gw, call, plan_, executor, write_body, sse_error_openai)


async def _stream_openai_on_loop(gw: Gateway, call: Call, plan_: Plan, executor: Any, body: dict[str, Any]) -> None:
    """_stream_openai and _relay_stream on the event loop: the head goes out with the first
    chunk (fallback is possible until then), and every ending is recorded."""
    events = OpenAIEvents(body)
    run = executor.stream_async(plan_.request, plan_.candidates)
    chunks = run.__aiter__()
    channel = call.channel
    try:
        first = await anext(chunks, None)  # a failure before it is an ordinary error response
        channel.start(200, SSE_HEADERS + call.route_headers(run.model))
        try:
            chunk = first
            while chunk is not None:
                data = events.encode(chunk, run.model)
                if data is not None:
                    channel.send(data)
                    await channel.drain()
                chunk = await anext(chunks, None)
            channel.send(DONE)
        except StreamBrokenError as exc:
            _stream_broken(gw, call, plan_, exc, sse_error_openai)
            return
        except ClientGone:
            _record_gone(gw, call, plan_, run)
            raise
    finally:
        await chunks.aclose()  # releases the upstream connection when the client went away
    _record_streamed(gw, call, plan_, run)


def _record_gone(gw: Gateway, call: Call, plan_: Plan, run: Any) -> None:
    call.ended("client_closed", {"model": run.model}, "client closed the connection")


def _record_streamed(gw: Gateway, call: Call, plan_: Plan, run: Any) -> None:
    route = run.result.route if run.result else {"model": run.model}
    call.ended("ok", route)


def _stream_broken(
    gw: Gateway, call: Call, plan_: Plan, exc: StreamBrokenError, sse_error: Callable[..., bytes]
) -> None:
    """The upstream failed after the answer had started: an SSE error event ends the stream."""
    error = GatewayError(502, exc.one_line(), "upstream_stream_broken")
    _write_quietly(call.channel, sse_error(error, call.id))
    call.ended("error", exc.route, "StreamBrokenError")


def _relay_stream(
    gw: Gateway,
    call: Call,
    plan_: Plan,
    executor: Any,
    write_body: Callable[..., None],
    sse_error: Callable[..., bytes],
) -> None:
    """Stream an answer in one wire format (`write_body`) and record how it ended: whole, broken
    upstream after it had started (an SSE error event), or abandoned by the client."""
    run, first, chunks = _start_stream(gw, call, plan_, executor)
    try:
        write_body(run, chain(first, chunks), call.channel)
    except StreamBrokenError as exc:
        _stream_broken(gw, call, plan_, exc, sse_error)
        return
    except ClientGone:
        _record_gone(gw, call, plan_, run)
        raise
    finally:
        chunks.close()  # releases the upstream connection when the client went away
    _record_streamed(gw, call, plan_, run)


def _start_stream(gw: Gateway, call: Call, plan_: Plan, executor: Any) -> tuple[Any, list[dict[str, Any]], Chunks]:
    """Run the stream until its first chunk (fallback is still possible until then: a failure is an
    ordinary error response), then send the status line and headers; (the run, the first chunk,
    the rest: a generator, closed by the caller to release the upstream connection)."""
    run = executor.stream(plan_.request, plan_.candidates)
    chunks = iter(run)
    first = _first(chunks)
    call.channel.start(200, SSE_HEADERS + call.route_headers(run.model))
    return run, first, chunks


def _first(chunks: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first chunk (the executor has chosen the model by then); failures before it raise."""
    try:
        return [next(chunks)]
    except StopIteration:
        return []


def _write_quietly(channel: Any, data: bytes) -> None:
    try:
        channel.send(data)  # never waits for the client: safe on the loop and on a worker
    except ClientGone:
        pass


# --- POST /v1/messages ---------------------------------------------------------------------------


def messages(gw: Gateway, call: Call) -> Response | None:
    """Anthropic Messages: Claude models pass through unchanged, other models are translated.
    OpenAPI: MessagesRequest -> Message"""
    request = messages_request(read_json(call))
    body, model = request.body, request.model
    fallback = f"anthropic/{model}" if isinstance(model, str) and model.startswith("claude") else None
    openai_request = {k: v for k, v in fa.request_to_openai(body).items() if v is not None}
    openai_request["model"] = model
    for key in ("response_format",):
        if key in body:
            openai_request[key] = body[key]
    plan_ = plan_request(gw, call, openai_request, model_fallback=fallback, raw=body)
    native, rest = passthrough.split_candidates(gw, plan_.candidates)
    if native and plan_.score.get("sensitive") and gw.settings.sensitive_policy == "redact":
        native, rest = [], plan_.candidates  # the executor replaces the values; the untouched relay cannot
    if native:
        outcome = passthrough.relay(gw, call, plan_, body, native, have_more=bool(rest))
        if outcome is not passthrough.NEXT:
            return outcome  # type: ignore[return-value]
        plan_.candidates = rest
    executor = gw.executor_for(call.caller.user, plan_.limits)
    if body.get("stream"):
        _stream_anthropic(gw, call, plan_, executor)
        return None
    result = executor.complete(plan_.request, plan_.candidates)
    message = completion_to_message(result.response)
    message["model"] = result.route["model"]
    call.ended("ok", result.route)
    return json_response(message, headers=call.route_headers(result.route["model"]))


def completion_to_message(response: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Message for a chat.completion, with reasoning as a thinking block."""
    message = fa.completion_to_anthropic(response)
    reasoning = ((response.get("choices") or [{}])[0].get("message") or {}).get("reasoning_content")
    if reasoning:
        message["content"].insert(0, {"type": "thinking", "thinking": reasoning, "signature": ""})
    if not message["id"].startswith("msg_"):
        message["id"] = "msg_" + message["id"].rsplit("-", 1)[-1]
    return message


class ChunksToEvents(fa.ChunksToAnthropic):
    """formats' translator plus what Claude Code expects of a stream: a ping after message_start,
    thinking blocks for reasoning deltas, and input tokens in the closing usage."""

    def feed(self, chunk: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        starting = not self.started
        for choice in chunk.get("choices") or []:
            reasoning = (choice.get("delta") or {}).get("reasoning_content")
            if reasoning:
                if starting:
                    yield from super().feed({**chunk, "choices": []})
                    yield "ping", {"type": "ping"}
                    starting = False
                yield from self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.block,
                        "delta": {"type": "thinking_delta", "thinking": reasoning},
                    },
                )
        for event in super().feed(chunk):
            yield event
            if event[0] == "message_start":
                yield "ping", {"type": "ping"}

    def end(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, data in super().end():
            if name == "message_delta":
                data["usage"] = {
                    "input_tokens": self.usage.get("prompt_tokens", 0),
                    "output_tokens": self.usage.get("completion_tokens", 0),
                }
            yield name, data


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _stream_anthropic(gw: Gateway, call: Call, plan_: Plan, executor: Any) -> None:
    def write_body(run: Any, chunks: Iterator[dict[str, Any]], channel: Any) -> None:
        events = ChunksToEvents(model=run.model or "")
        for chunk in chunks:
            data = b"".join(sse_event(name, event) for name, event in events.feed(chunk))
            if data:
                channel.write(data)
        if not events.started:
            for name, event in events.feed({"choices": []}):
                channel.write(sse_event(name, event))
        channel.write(b"".join(sse_event(name, event) for name, event in events.end()))

    _relay_stream(gw, call, plan_, executor, write_body, sse_error_anthropic)


# --- POST /v1/messages/count_tokens ----------------------------------------------------------------


def count_tokens(gw: Gateway, call: Call) -> Response:
    """An estimate (r42's token estimator: characters / 4, non-ASCII weighted) of the input tokens;
    the request is not sent upstream.
    OpenAPI: MessagesRequest -> TokenCount"""
    body = messages_request(read_json(call), counting=True).body
    request = fa.request_to_openai(body)
    try:
        tokens = estimate_tokens(request["messages"]) if request["messages"] else 0
    except (R42Error, AttributeError, TypeError):
        raise GatewayError(400, "messages: malformed content", "invalid_request", param="messages") from None
    if body.get("tools"):
        tokens += len(orjson.dumps(body["tools"])) // 4
    return json_response({"input_tokens": tokens})
