"""/v1/messages straight to an Anthropic upstream: the client's body (only `model` replaced by the
provider's name), anthropic-version and anthropic-beta go through untouched, and so does every
answer event, thinking blocks and their signatures included. Only message_start is rewritten (its
`model` becomes the r42 id) and message_start / message_delta are read for usage.

Anthropic candidates at the head of the ranking are tried here in order under the executor's
fallback policy (r42.executor.Fallback: attempts, deadline, Retry-After); a retryable failure
before the first byte moves on, and when they all fail the remaining candidates go through the
executor (r42.server.chat) with the attempts and time that are left. Runs on a worker thread,
over r42.providers.http11 (connections kept alive per origin; httpx when an environment proxy
applies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from r42.catalog import Target
from r42.executor import Fallback, cost_of
from r42.formats import sse
from r42.providers import Endpoint, ProviderError, error_message, provider_error, retry_after_of
from r42.providers.http11 import Reply, TransportError, client_for
from r42.server.call import SSE_HEADERS, Call, json_response
from r42.server.errors import GatewayError, sse_error_anthropic
from r42.server.http import ClientGone, Response

if TYPE_CHECKING:  # the gateway imports chat, which imports this module
    from r42.server.app import Gateway

NEXT = object()  # relay() result: every native candidate failed, go on with the others
DEFAULT_VERSION = "2023-06-01"


def split_candidates(gw: Gateway, candidates: list[str]) -> tuple[list[str], list[str]]:
    """(the leading candidates whose provider speaks Anthropic's protocol, the rest)."""
    catalog = gw.router.catalog
    for index, name in enumerate(candidates):
        target = catalog.resolve(name)
        if target is None or target.provider.protocol != "anthropic":
            return candidates[:index], candidates[index:]
    return list(candidates), []


def relay(
    gw: Gateway, call: Call, plan_: Any, body: dict[str, Any], native: list[str], have_more: bool
) -> Response | None | object:
    """Try the native candidates under the executor's fallback policy; NEXT when they all failed
    and `have_more` (the rest then gets the attempts and time that are left: `plan_.limits`)."""
    executor = gw.executor_for(call.caller.user)
    run = Fallback(executor, native)
    last: ProviderError | None = None
    for target, (endpoint, client) in run.tries(_client):
        try:
            with client.stream(
                "v1/messages", orjson.dumps({**body, "model": target.upstream}), _headers(call, endpoint)
            ) as response:
                if response.status >= 400:
                    raw = response.read()
                    last = _classify(response, raw, endpoint.api_key)
                    run.failed(target, last)
                    if last.retryable:
                        continue
                    call.ended("error", {"attempts": _attempts(run)}, f"upstream {last.status}")
                    headers = [("Content-Type", "application/json"), ("X-R42-Request-Id", call.id)]
                    return Response(response.status, _with_request_id(raw, call.id), headers)
                headers = call.route_headers(target.id)
                if body.get("stream"):
                    _stream(call, target, response, run, headers)
                    return None
                return _whole(call, target, response, run, headers)
        except TransportError as exc:  # no answer at all from this candidate: the next one
            last = provider_error(None, exc.message, secret=endpoint.api_key)
            run.failed(target, last)
        except ProviderError as exc:
            last = exc
            run.failed(target, exc)
    if have_more and run.stopped is None:
        plan_.limits = run.leftover()
        return NEXT
    failed = run.all_failed()  # the gateway answers it as the executor's: each attempt, Retry-After, upstream auth
    call.ended("error", {"attempts": _attempts(run)}, type(failed).__name__)
    raise failed


def _client(endpoint: Endpoint) -> tuple[Endpoint, Any]:
    """The candidate's endpoint and a kept-alive connection to it (its read timeout already bounded
    by the request's deadline)."""
    headers = {"content-type": "application/json"}
    return endpoint, client_for(endpoint.base_url, headers, endpoint.connect_timeout, endpoint.read_timeout)


def _attempts(run: Fallback) -> list[dict[str, Any]]:
    return [a.as_dict() for a in run.attempts]


def _headers(call: Call, endpoint: Any) -> dict[str, str]:
    """anthropic-version and anthropic-beta as the client sent them, and the provider's key."""
    headers = {
        "anthropic-version": call.request.headers.get("anthropic-version") or DEFAULT_VERSION,
        "x-api-key": endpoint.api_key or "",
    }
    beta = call.request.headers.get("anthropic-beta")
    if beta:
        headers["anthropic-beta"] = beta
    return headers


def _classify(response: Reply, raw: bytes, secret: str | None) -> ProviderError:
    try:
        parsed: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = raw[:200].decode("utf-8", "replace")
    return provider_error(
        response.status, error_message(parsed, f"HTTP {response.status}"), retry_after_of(response.headers), secret
    )


def _with_request_id(raw: bytes, request_id: str) -> bytes:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return orjson.dumps(
            {
                "type": "error",
                "error": {"type": "api_error", "message": raw[:300].decode("utf-8", "replace")},
                "request_id": request_id,
            }
        )
    if isinstance(data, dict):
        data["request_id"] = request_id
    return orjson.dumps(data)


def _route(target: Target, run: Fallback, usage: dict[str, Any], ttft_ms: int | None) -> dict[str, Any]:
    """The route of an answer in Anthropic's usage terms (cache reads and writes are input)."""
    input_tokens = None
    if usage:
        cached = (usage.get("cache_read_input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0)
        input_tokens = (usage.get("input_tokens") or 0) + cached
    output_tokens = usage.get("output_tokens") if usage else None
    return {
        **run.route(target, None, ttft_ms),
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "cost_usd": cost_of(target, input_tokens, output_tokens),
    }


def _whole(call: Call, target: Target, response: Reply, run: Fallback, headers: list[tuple[str, str]]) -> Response:
    try:
        raw = response.read()
        message = orjson.loads(raw)
    except (TransportError, orjson.JSONDecodeError) as exc:
        run.failed(target, ProviderError(None, f"malformed or broken response: {exc}", retryable=True), notify=False)
        call.ended("error", {"attempts": _attempts(run)}, "upstream broken")
        raise GatewayError(502, f"{target.id} sent a broken response", "upstream_broken") from None
    run.succeeded(target)
    message["model"] = target.id
    call.ended("ok", _route(target, run, message.get("usage") or {}, None))
    return json_response(message, headers=headers)


def _stream(call: Call, target: Target, response: Reply, run: Fallback, headers: list[tuple[str, str]]) -> None:
    channel = call.channel
    channel.start(200, SSE_HEADERS + headers)
    usage: dict[str, Any] = {}
    done = False
    try:
        for event in sse.decode_bytes(response.iter_bytes()):
            name = event.event or "message"
            data = event.data.encode()
            if name == "message_start":
                start = orjson.loads(data)
                start.setdefault("message", {})["model"] = target.id
                usage.update(start["message"].get("usage") or {})
                data = orjson.dumps(start)
            elif name == "message_delta":
                usage.update({k: v for k, v in (orjson.loads(data).get("usage") or {}).items() if v is not None})
            elif name == "content_block_delta" and run.ttft_ms is None:
                run.first_token()
            channel.write(b"event: " + name.encode() + b"\ndata: " + data + b"\n\n")
            if name == "message_stop":
                done = True
            elif name == "error":
                break
        if not done:
            raise ProviderError(None, "the stream ended before message_stop", retryable=True)
    except (TransportError, ProviderError, orjson.JSONDecodeError) as exc:
        run.failed(target, ProviderError(None, f"stream broken: {exc}", retryable=True), notify=False)
        error = GatewayError(502, f"{target.id} failed after the answer had started: {exc}", "upstream_stream_broken")
        try:
            channel.write(sse_error_anthropic(error, call.id))
        except ClientGone:
            pass
        call.ended("error", _route(target, run, usage, run.ttft_ms), "stream broken")
        return None
    except ClientGone:
        call.ended("client_closed", _route(target, run, usage, run.ttft_ms), "client closed the connection")
        raise
    run.succeeded(target)
    call.ended("ok", _route(target, run, usage, run.ttft_ms))
    return None
