"""/v1/messages straight to an Anthropic upstream: the client's body (only `model` replaced by the
provider's name), anthropic-version and anthropic-beta go through untouched, and so does every
answer event, thinking blocks and their signatures included. Only message_start is rewritten (its
`model` becomes the r42 id) and message_start / message_delta are read for usage.

Anthropic candidates at the head of the ranking are tried here in order; a retryable failure
before the first byte moves on, and when they all fail the remaining candidates go through the
executor (r42.server.chat). Runs on a worker thread, over r42.providers.http11 (connections kept
alive per origin; httpx when an environment proxy applies).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from r42.executor import Attempt, cost_of
from r42.formats import sse
from r42.providers import ProviderError, error_message, provider_error, retry_after_of
from r42.providers.http11 import Reply, TransportError, client_for
from r42.server.app import Call, Gateway, json_response
from r42.server.errors import GatewayError, sse_error_anthropic
from r42.server.http import ClientGone, Response

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


def relay(gw: Gateway, call: Call, plan_: Any, body: dict[str, Any], native: list[str], have_more: bool) -> Response | None | object:
    executor = gw.executor_for(call.caller.user)
    attempts: list[Attempt] = []
    started = time.perf_counter()
    last: ProviderError | None = None
    for name in native:
        t0 = time.perf_counter()
        try:
            target = executor.target(name)
            endpoint = executor.endpoint(target)
            client = client_for(endpoint.base_url, {"content-type": "application/json"}, endpoint.connect_timeout, endpoint.read_timeout)
            with client.stream("v1/messages", orjson.dumps({**body, "model": target.upstream}), _headers(call, endpoint)) as response:
                if response.status >= 400:
                    raw = response.read()
                    exc = _classify(response, raw, endpoint.api_key)
                    attempts.append(Attempt(name, False, exc.status, exc.message, _ms(t0)))
                    if exc.retryable:
                        last = exc
                        continue
                    gw.record(call, status="error", route={"attempts": [a.as_dict() for a in attempts]}, score=plan_.score, mode=plan_.mode, error=f"upstream {exc.status}")
                    return Response(response.status, _with_request_id(raw, call.id), [("Content-Type", "application/json"), ("X-R42-Request-Id", call.id)])
                from r42.server.chat import route_headers

                headers = route_headers(gw, call, plan_, target.id)
                if body.get("stream"):
                    return _stream(gw, call, plan_, target, response, attempts, t0, started, headers)
                return _whole(gw, call, plan_, target, response, attempts, t0, started, headers)
        except TransportError as exc:  # no answer at all from this candidate: the next one
            error = provider_error(None, exc.message, secret=endpoint.api_key)
            attempts.append(Attempt(name, False, None, error.message, _ms(t0)))
            last = error
        except ProviderError as exc:
            attempts.append(Attempt(name, False, exc.status, exc.message, _ms(t0)))
            last = exc
    if have_more:
        return NEXT
    gw.record(call, status="error", route={"attempts": [a.as_dict() for a in attempts]}, score=plan_.score, mode=plan_.mode, error="AllFailedError")
    status = 502 if last is None or last.status is None or last.status < 400 or last.status == 409 else last.status
    raise GatewayError(status if status in (429, 529, 502, 503, 504) else 502, f"every candidate failed ({len(attempts)} attempts); last: {last}", "all_candidates_failed")


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
    return provider_error(response.status, error_message(parsed, f"HTTP {response.status}"), retry_after_of(response.headers), secret)


def _with_request_id(raw: bytes, request_id: str) -> bytes:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return orjson.dumps({"type": "error", "error": {"type": "api_error", "message": raw[:300].decode("utf-8", "replace")}, "request_id": request_id})
    if isinstance(data, dict):
        data["request_id"] = request_id
    return orjson.dumps(data)


def _ms(t0: float) -> int:
    return int(round((time.perf_counter() - t0) * 1000))


def _route(target: Any, attempts: list[Attempt], usage: dict[str, Any], started: float, ttft_ms: int | None) -> dict[str, Any]:
    input_tokens = (usage.get("input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0) if usage else None
    output_tokens = usage.get("output_tokens") if usage else None
    return {
        "model": target.id, "attempts": [a.as_dict() for a in attempts],
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "cost_usd": cost_of(target, input_tokens, output_tokens), "latency_ms": _ms(started), "ttft_ms": ttft_ms,
    }


def _whole(gw: Gateway, call: Call, plan_: Any, target: Any, response: Reply, attempts: list[Attempt], t0: float, started: float, headers: list) -> Response:
    try:
        raw = response.read()
        message = orjson.loads(raw)
    except (TransportError, orjson.JSONDecodeError) as exc:
        attempts.append(Attempt(target.id, False, None, f"malformed or broken response: {exc}", _ms(t0)))
        gw.record(call, status="error", route={"attempts": [a.as_dict() for a in attempts]}, score=plan_.score, mode=plan_.mode, error="upstream broken")
        raise GatewayError(502, f"{target.id} sent a broken response", "upstream_broken") from None
    attempts.append(Attempt(target.id, True, 200, None, _ms(t0)))
    message["model"] = target.id
    route = _route(target, attempts, message.get("usage") or {}, started, None)
    gw.record(call, status="ok", route=route, score=plan_.score, mode=plan_.mode)
    return json_response(message, headers=headers)


def _stream(gw: Gateway, call: Call, plan_: Any, target: Any, response: Reply, attempts: list[Attempt], t0: float, started: float, headers: list) -> None:
    from r42.server.chat import SSE_HEADERS

    channel = call.channel
    channel.start(200, SSE_HEADERS + headers)
    usage: dict[str, Any] = {}
    ttft_ms = None
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
            elif name == "content_block_delta" and ttft_ms is None:
                ttft_ms = _ms(started)
            channel.write(b"event: " + name.encode() + b"\ndata: " + data + b"\n\n")
            if name == "message_stop":
                done = True
            elif name == "error":
                break
        if not done:
            raise ProviderError(None, "the stream ended before message_stop", retryable=True)
    except (TransportError, ProviderError, orjson.JSONDecodeError) as exc:
        attempts.append(Attempt(target.id, False, None, f"stream broken: {exc}", _ms(t0)))
        error = GatewayError(502, f"{target.id} failed after the answer had started: {exc}", "upstream_stream_broken")
        try:
            channel.write(sse_error_anthropic(error, call.id))
        except ClientGone:
            pass
        gw.record(call, status="error", route=_route(target, attempts, usage, started, ttft_ms), score=plan_.score, mode=plan_.mode, error="stream broken")
        return None
    except ClientGone:
        gw.record(call, status="client_closed", route=_route(target, attempts, usage, started, ttft_ms), score=plan_.score, mode=plan_.mode, error="client closed the connection")
        raise
    attempts.append(Attempt(target.id, True, 200, None, _ms(t0)))
    gw.record(call, status="ok", route=_route(target, attempts, usage, started, ttft_ms), score=plan_.score, mode=plan_.mode)
    return None
