"""Ollama's /api/chat through the `ollama` SDK (imported when this adapter is opened)."""

from __future__ import annotations

from typing import Any, Iterator

from r42.formats.ollama import StreamToOpenAI, request_to_ollama, response_to_openai
from r42.providers import Endpoint, ProviderError, provider_error, transport_error_types, transport_message


class OllamaAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        import httpx
        import ollama

        self.endpoint = endpoint
        self.sdk = ollama
        timeout = httpx.Timeout(
            connect=endpoint.connect_timeout,
            read=endpoint.read_timeout,
            write=endpoint.read_timeout,
            pool=endpoint.connect_timeout,
        )
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else None
        self.client = ollama.Client(host=endpoint.base_url, timeout=timeout, headers=headers)  # the SDK never retries
        self.failures = (ollama.ResponseError, ConnectionError, ValueError, *transport_error_types())

    def close(self) -> None:
        self.client.close()

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.chat(**request_to_ollama(request), stream=False)
        except self.failures as exc:
            raise self._error(exc) from None
        return response_to_openai(response.model_dump(mode="json", exclude_none=True))

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        translator = StreamToOpenAI()
        try:
            for part in self.client.chat(**request_to_ollama(request), stream=True):
                yield from translator.feed(part.model_dump(mode="json", exclude_none=True))
        except self.failures as exc:
            raise self._error(exc) from None
        if not translator.done:
            raise ProviderError(None, "the stream ended before done: true (truncated)", retryable=True)

    def _error(self, exc: Exception) -> ProviderError:
        if isinstance(exc, self.sdk.ResponseError):
            status = (
                exc.status_code if exc.status_code and exc.status_code > 0 else None
            )  # -1: an error line mid-stream
            return provider_error(status, str(exc.error), secret=self.endpoint.api_key)
        if isinstance(exc, ConnectionError):
            return provider_error(
                None, f"cannot connect to Ollama at {self.endpoint.base_url}", secret=self.endpoint.api_key
            )
        if isinstance(exc, ValueError):
            return ProviderError(
                None,
                f"malformed response: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                retryable=True,
            )
        return provider_error(None, transport_message(exc), secret=self.endpoint.api_key)
