"""OpenAI-compatible chat completions over httpx.

One adapter for every server that speaks POST {base_url}/chat/completions: OpenAI, OpenRouter,
Groq, DeepSeek, Mistral, Together, Fireworks, xAI, Cerebras, Perplexity, LM Studio, vLLM, llama.cpp
and any custom base URL. The request goes out as it came in (it already is OpenAI chat); only the
stream asks for usage in its last chunk.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any, Iterator

import httpx
import orjson

from r42.formats import sse
from r42.providers import Endpoint, ProviderError, error_message, provider_error, retry_after_of


class OpenAICompatAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        timeout = httpx.Timeout(connect=endpoint.connect_timeout, read=endpoint.read_timeout, write=endpoint.read_timeout, pool=endpoint.connect_timeout)
        self.client = httpx.Client(base_url=endpoint.base_url.rstrip("/") + "/", headers=headers, timeout=timeout, verify=tls_for(endpoint.base_url))

    def close(self) -> None:
        self.client.close()

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        body = {**request, "stream": False}
        body.pop("stream_options", None)
        with self._errors():
            response = self.client.post("chat/completions", content=orjson.dumps(body))
        self._check(response)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ProviderError(response.status_code, "the server sent malformed JSON", retryable=True) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise provider_error(response.status_code, error_message(data, "the response has no choices"), secret=self.endpoint.api_key)
        return data

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        body = {**request, "stream": True}
        body.setdefault("stream_options", {"include_usage": True})
        with self._errors():
            with self.client.stream("POST", "chat/completions", content=orjson.dumps(body)) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                if "text/event-stream" not in response.headers.get("content-type", "text/event-stream"):
                    response.read()  # some servers answer a stream request with one JSON object
                    yield from _as_chunks(orjson.loads(response.content))
                    return
                yield from self._events(response)

    def _events(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        done = False
        for event in sse.decode_lines(response.iter_lines()):
            if event.data.strip() == "[DONE]":
                done = True
                break
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise ProviderError(response.status_code, "the stream sent malformed JSON", retryable=True) from None
            if isinstance(data, dict) and "error" in data:  # an error inside an open stream
                raise provider_error(None, error_message(data, "error in stream"), secret=self.endpoint.api_key)
            yield data
        if not done:
            raise ProviderError(None, "the stream ended before [DONE] (truncated)", retryable=True)

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = response.text[:200]
        message = error_message(body, response.reason_phrase or f"HTTP {response.status_code}")
        raise provider_error(response.status_code, message, retry_after_of(response.headers), self.endpoint.api_key)

    def _errors(self):  # noqa: ANN202
        return _TransportErrors(self.endpoint)


def tls_for(url: str) -> ssl.SSLContext | bool:
    """No TLS set-up for plain http (a local server); one shared context for https.

    Loading the CA bundle costs tens of milliseconds: paid once per process, not per attempt.
    """
    return _shared_tls_context() if url.startswith("https:") else False


@functools.cache
def _shared_tls_context() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


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


class _TransportErrors:
    """Turns httpx's transport errors (connect, timeouts, resets) into retryable ProviderErrors."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # noqa: ANN001
        if exc is None or not isinstance(exc, httpx.HTTPError):
            return False
        raise transport_error(exc, self.endpoint) from None


def transport_error(exc: Exception, endpoint: Endpoint) -> ProviderError:
    if isinstance(exc, httpx.ConnectTimeout):
        what = f"connect timeout after {endpoint.connect_timeout:g}s"
    elif isinstance(exc, httpx.ReadTimeout):
        what = f"no data for {endpoint.read_timeout:g}s (read timeout)"
    elif isinstance(exc, httpx.TimeoutException):
        what = "timeout"
    elif isinstance(exc, httpx.ConnectError):
        what = f"cannot connect to {endpoint.base_url}"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = f"connection broken: {exc}"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return provider_error(None, what, secret=endpoint.api_key)
