"""Anthropic Messages through the `anthropic` SDK (imported when this adapter is opened)."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Iterator

from r42.formats.anthropic import StreamToOpenAI, message_to_openai, request_to_anthropic
from r42.providers import (
    Endpoint,
    ProviderError,
    error_message,
    provider_error,
    retry_after_of,
    transport_error_types,
    transport_message,
)

# Error types an Anthropic stream can report in an `error` event (HTTP status already 200).
STREAM_ERROR_STATUS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429, "timeout_error": 504}


class AnthropicAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        import anthropic

        self.endpoint = endpoint
        self.sdk = anthropic
        self.failures = (anthropic.AnthropicError, ValueError, *transport_error_types())
        timeout = anthropic.Timeout(
            connect=endpoint.connect_timeout,
            read=endpoint.read_timeout,
            write=endpoint.read_timeout,
            pool=endpoint.connect_timeout,
        )
        self.client = anthropic.Anthropic(
            api_key=endpoint.api_key or "none",
            base_url=endpoint.base_url,
            max_retries=0,  # r42's fallback decides
            timeout=timeout,
        )

    def close(self) -> None:
        self.client.close()

    def _params(self, request: dict[str, Any]) -> dict[str, Any]:
        """The SDK's keyword arguments; fields its signature lacks (recent versions dropped
        temperature and top_p) still reach the API, through extra_body."""
        params = request_to_anthropic(request)
        known = _create_parameters(self.client)
        extra = {k: params.pop(k) for k in list(params) if k not in known}
        if extra:
            params["extra_body"] = extra
        return params

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        params = self._params(request)
        try:
            message = self.client.messages.create(**params)
        except self.failures as exc:
            raise self._error(exc) from None
        return message_to_openai(message.model_dump(mode="json"))

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        params = self._params(request)
        translator = StreamToOpenAI()
        try:
            with self.client.messages.create(**params, stream=True) as events:
                for event in events:
                    yield from translator.feed(event.model_dump(mode="json"))
        except self.failures as exc:
            raise self._error(exc) from None
        if not translator.done:
            raise ProviderError(None, "the stream ended before message_stop (truncated)", retryable=True)

    def _error(self, exc: Exception) -> ProviderError:
        sdk = self.sdk
        secret = self.endpoint.api_key
        if isinstance(exc, sdk.APITimeoutError):
            return provider_error(
                None,
                f"timeout (connect {self.endpoint.connect_timeout:g}s, read {self.endpoint.read_timeout:g}s)",
                secret=secret,
            )
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            return provider_error(None, f"connection failed: {cause or exc}", secret=secret)
        if isinstance(exc, sdk.APIStatusError):
            body = exc.body
            status = exc.status_code
            message = error_message(body, exc.message)
            if status < 400:  # an `error` event inside a stream that had started with 200
                kind = ((body or {}).get("error") or {}).get("type") if isinstance(body, dict) else None
                status = STREAM_ERROR_STATUS.get(kind or "", None)
            return provider_error(status, message, retry_after_of(exc.response.headers), secret)
        if isinstance(exc, ValueError):  # malformed JSON in the body or a stream event
            return ProviderError(None, f"malformed response: {exc}", retryable=True)
        if isinstance(exc, transport_error_types()):
            return provider_error(None, transport_message(exc), secret=secret)
        return provider_error(None, f"{type(exc).__name__}: {exc}", secret=secret)


@functools.cache
def _known_parameters(create: Any) -> frozenset[str]:
    return frozenset(inspect.signature(create).parameters)


def _create_parameters(client: Any) -> frozenset[str]:
    return _known_parameters(type(client.messages).create)
