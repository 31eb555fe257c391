"""OpenAI-compatible chat completions over r42.providers.http11 (httpx behind an environment proxy).

One adapter for every server that speaks POST {base_url}/chat/completions: OpenAI, OpenRouter,
Groq, DeepSeek, Mistral, Together, Fireworks, xAI, Cerebras, Perplexity, LM Studio, vLLM, llama.cpp
and any custom base URL. The request goes out as it came in (it already is OpenAI chat); only the
stream asks for usage in its last chunk.
"""

from __future__ import annotations

from typing import Any, Iterator

import orjson

from r42.formats import sse
from r42.providers import Endpoint, ProviderError, error_message, provider_error, retry_after_of
from r42.providers.http11 import Reply, TransportError, client_for, tls_context


class OpenAICompatAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        try:
            self.client = client_for(endpoint.base_url, headers, endpoint.connect_timeout, endpoint.read_timeout)
        except TransportError as exc:
            raise ProviderError(None, exc.message, retryable=True) from None

    def close(self) -> None:
        self.client.close()

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        body = {**request, "stream": False}
        body.pop("stream_options", None)
        try:
            response = self.client.post("chat/completions", orjson.dumps(body))
        except TransportError as exc:
            raise transport_error(exc, self.endpoint) from None
        self._check(response)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ProviderError(response.status, "the server sent malformed JSON", retryable=True) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise provider_error(response.status, error_message(data, "the response has no choices"), secret=self.endpoint.api_key)
        return data

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        body = {**request, "stream": True}
        body.setdefault("stream_options", {"include_usage": True})
        try:
            with self.client.stream("chat/completions", orjson.dumps(body)) as response:
                if response.status >= 400:
                    response.read()
                    self._check(response)
                if "text/event-stream" not in response.headers.get("content-type", "text/event-stream"):
                    response.read()  # some servers answer a stream request with one JSON object
                    yield from _as_chunks(_json_of(response))
                    return
                yield from self._events(response)
        except TransportError as exc:
            raise transport_error(exc, self.endpoint) from None

    def _events(self, response: Reply) -> Iterator[dict[str, Any]]:
        done = False
        for event in sse.decode_bytes(response.iter_bytes()):
            if event.data.strip() == "[DONE]":
                done = True
                break
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise ProviderError(response.status, "the stream sent malformed JSON", retryable=True) from None
            if isinstance(data, dict) and "error" in data:  # an error inside an open stream
                raise provider_error(None, error_message(data, "error in stream"), secret=self.endpoint.api_key)
            yield data
        if not done:
            raise ProviderError(None, "the stream ended before [DONE] (truncated)", retryable=True)

    def _check(self, response: Reply) -> None:
        if response.status < 400:
            return
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = response.content[:200].decode("utf-8", errors="replace")
        message = error_message(body, response.reason or f"HTTP {response.status}")
        raise provider_error(response.status, message, retry_after_of(response.headers), self.endpoint.api_key)


def tls_for(url: str):  # noqa: ANN201 - an SSLContext, or False for plain http
    """No TLS set-up for plain http (a local server); one shared context for https."""
    return tls_context() if url.startswith("https:") else False


def _json_of(response: Reply) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ProviderError(response.status, "the server sent malformed JSON", retryable=True) from None
    return data if isinstance(data, dict) else {}


def _as_chunks(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A whole chat.completion replayed as one chunk (for servers that ignore `stream`)."""
    if "error" in data:
        raise provider_error(None, error_message(data, "error"))
    for choice in data.get("choices") or []:
        message = choice.get("message") or {}
        delta = {k: v for k, v in message.items() if v is not None}
        for index, call in enumerate(delta.get("tool_calls") or []):
            call.setdefault("index", index)
        yield {**data, "object": "chat.completion.chunk", "choices": [{"index": choice.get("index", 0), "delta": delta, "finish_reason": choice.get("finish_reason")}]}


def transport_error(exc: TransportError, endpoint: Endpoint) -> ProviderError:
    return provider_error(None, exc.message, secret=endpoint.api_key)
