"""OpenAI-compatible chat completions over r42.providers.http11 (httpx behind an environment proxy).

One adapter for every server that speaks POST {base_url}/chat/completions: OpenAI, OpenRouter,
Groq, DeepSeek, Mistral, Together, Fireworks, xAI, Cerebras, Perplexity, LM Studio, vLLM, llama.cpp
and any custom base URL. The request goes out as it came in (it already is OpenAI chat); only the
stream asks for usage in its last chunk.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator

import orjson

from r42.formats import sse
from r42.providers import Endpoint, ProviderError, error_message, provider_error, retry_after_of
from r42.providers.http11 import AsyncClient, TransportError, client_for


def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    return headers


def _complete_body(request: dict[str, Any]) -> bytes:
    body = {**request, "stream": False}
    body.pop("stream_options", None)
    return orjson.dumps(body)


def _stream_body(request: dict[str, Any]) -> bytes:
    body = {**request, "stream": True}
    body.setdefault("stream_options", {"include_usage": True})
    return orjson.dumps(body)


class OpenAICompatAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        try:
            self.client = client_for(
                endpoint.base_url, _headers(endpoint), endpoint.connect_timeout, endpoint.read_timeout
            )
        except TransportError as exc:
            raise ProviderError(None, exc.message, retryable=True) from None

    def close(self) -> None:
        self.client.close()

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.post("chat/completions", _complete_body(request))
        except TransportError as exc:
            raise transport_error(exc, self.endpoint) from None
        return completion_of(response, self.endpoint)

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            with self.client.stream("chat/completions", _stream_body(request)) as response:
                if response.status >= 400 or not is_event_stream(response):
                    response.read()
                    yield from whole_as_chunks(response, self.endpoint)
                    return
                chunks = ChunkReader(response.status, self.endpoint)
                for piece in response.iter_bytes():  # to the body's end, past [DONE]: keeps the connection
                    yield from chunks.feed(piece)
                chunks.end()
        except TransportError as exc:
            raise transport_error(exc, self.endpoint) from None


class AsyncOpenAICompatAdapter:
    """The same adapter on the running event loop (r42 serve), for endpoints no proxy applies to."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        try:
            self.client = AsyncClient(
                endpoint.base_url, _headers(endpoint), endpoint.connect_timeout, endpoint.read_timeout
            )
        except TransportError as exc:
            raise ProviderError(None, exc.message, retryable=True) from None

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.post("chat/completions", _complete_body(request))
        except TransportError as exc:
            raise transport_error(exc, self.endpoint) from None
        return completion_of(response, self.endpoint)

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        response = None
        try:
            response = await self.client.send("chat/completions", _stream_body(request))
            if response.status >= 400 or not is_event_stream(response):
                await response.read()
                for chunk in whole_as_chunks(response, self.endpoint):
                    yield chunk
                return
            chunks = ChunkReader(response.status, self.endpoint)
            async for piece in response.iter_bytes():  # to the body's end, past [DONE]: keeps the connection
                for chunk in chunks.feed(piece):
                    yield chunk
            chunks.end()
        except TransportError as exc:
            raise transport_error(exc, self.endpoint) from None
        finally:
            if response is not None:
                response.release(False)  # a no-op once the body was read to its end


def completion_of(response: Any, endpoint: Endpoint) -> dict[str, Any]:
    """The chat.completion of a whole response (Reply or AsyncReply), or its ProviderError."""
    check(response, endpoint)
    data = _json_of(response)
    if not isinstance(data.get("choices"), list):
        raise provider_error(
            response.status, error_message(data, "the response has no choices"), secret=endpoint.api_key
        )
    return data


def is_event_stream(response: Any) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "text/event-stream")


def whole_as_chunks(response: Any, endpoint: Endpoint) -> Iterator[dict[str, Any]]:
    """A stream request answered with an error, or with one JSON object (some servers ignore
    `stream`): the error raised, the object replayed as one chunk."""
    check(response, endpoint)
    yield from _as_chunks(_json_of(response))


class ChunkReader:
    """chat.completion.chunk dicts from the bytes of an SSE stream, up to `data: [DONE]`."""

    def __init__(self, status: int, endpoint: Endpoint) -> None:
        self.status = status
        self.endpoint = endpoint
        self.events = sse.Decoder()
        self.done = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        if self.done:
            return []  # whatever follows [DONE] is not the answer
        chunks = []
        for event in self.events.feed(data):
            if self.done:
                break
            chunk = self._chunk(event)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def end(self) -> None:
        """The stream ended: an error unless [DONE] came (truncated otherwise)."""
        for event in self.events.end():
            if not self.done:
                self._chunk(event)
        if not self.done:
            raise ProviderError(None, "the stream ended before [DONE] (truncated)", retryable=True)

    def _chunk(self, event: sse.Event) -> dict[str, Any] | None:
        if event.data.strip() == "[DONE]":
            self.done = True
            return None
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise ProviderError(self.status, "the stream sent malformed JSON", retryable=True) from None
        if isinstance(data, dict) and "error" in data:  # an error inside an open stream
            raise provider_error(None, error_message(data, "error in stream"), secret=self.endpoint.api_key)
        return data


def check(response: Any, endpoint: Endpoint) -> None:
    """Raise the classified ProviderError of an error response (status 400 and up)."""
    if response.status < 400:
        return
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = response.content[:200].decode("utf-8", errors="replace")
    message = error_message(body, response.reason or f"HTTP {response.status}")
    raise provider_error(response.status, message, retry_after_of(response.headers), endpoint.api_key)


def _json_of(response: Any) -> dict[str, Any]:
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
        yield {
            **data,
            "object": "chat.completion.chunk",
            "choices": [
                {"index": choice.get("index", 0), "delta": delta, "finish_reason": choice.get("finish_reason")}
            ],
        }


def transport_error(exc: TransportError, endpoint: Endpoint) -> ProviderError:
    return provider_error(None, exc.message, secret=endpoint.api_key)
