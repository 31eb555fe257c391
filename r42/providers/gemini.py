"""Google Gemini through the `google-genai` SDK (imported when this adapter is opened)."""

from __future__ import annotations

import re
from typing import Any, Iterator

from r42.formats.gemini import StreamToOpenAI, request_to_gemini, response_to_openai
from r42.providers import Endpoint, ProviderError, provider_error, transport_error_types, transport_message

VERSION_SUFFIX = re.compile(r"/(v\d+(?:alpha|beta)?\d*)/?$")


def split_base_url(url: str) -> tuple[str, str | None]:
    """(root, api version): the catalog's URL ends in /v1beta; GOOGLE_GEMINI_BASE_URL usually does not."""
    match = VERSION_SUFFIX.search(url)
    if match:
        return url[: match.start()] + "/", match.group(1)
    return url.rstrip("/") + "/", None


class GeminiAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        from google import genai
        from google.genai import errors, types

        self.endpoint = endpoint
        self.errors = errors
        self.types = types
        root, version = split_base_url(endpoint.base_url)
        options: dict[str, Any] = {
            "base_url": root,
            "timeout": int(max(endpoint.connect_timeout, endpoint.read_timeout) * 1000),
        }
        options["api_version"] = version or "v1beta"  # the Gemini API's current version, as in the catalog
        # No retry_options: the SDK then makes exactly one attempt; r42's fallback decides.
        self.client = genai.Client(api_key=endpoint.api_key or "none", http_options=types.HttpOptions(**options))
        self.failures = (errors.APIError, ValueError, *transport_error_types())

    def close(self) -> None:
        self.client.close()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        body = request_to_gemini(request)
        config = {key: body[key] for key in ("systemInstruction", "tools", "toolConfig") if key in body}
        config.update(body.get("generationConfig") or {})
        config["automaticFunctionCalling"] = {"disable": True}
        return {
            "model": request["model"],
            "contents": body["contents"],
            "config": self.types.GenerateContentConfig.model_validate(config),
        }

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.models.generate_content(**self._call(request))
        except self.failures as exc:
            raise self._error(exc) from None
        return response_to_openai(_wire(response), request["model"])

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        translator = StreamToOpenAI(request["model"])
        try:
            for response in self.client.models.generate_content_stream(**self._call(request)):
                yield from translator.feed(_wire(response))
        except self.failures as exc:
            raise self._error(exc) from None
        if not translator.done:
            raise ProviderError(None, "the stream ended without a finishReason (truncated)", retryable=True)
        yield from translator.end()

    def _error(self, exc: Exception) -> ProviderError:
        secret = self.endpoint.api_key
        if isinstance(exc, self.errors.APIError):
            status = exc.code if isinstance(exc.code, int) and exc.code >= 400 else None
            message = f"{exc.status}: {exc.message}" if exc.status and exc.message else str(exc.message or exc)
            retry_after = _retry_delay(exc.details)
            return provider_error(status, message, retry_after, secret)
        if isinstance(exc, ValueError):
            return ProviderError(
                None,
                f"malformed response: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                retryable=True,
            )
        return provider_error(None, transport_message(exc), secret=secret)


def _wire(response: Any) -> dict[str, Any]:
    return response.model_dump(mode="json", by_alias=True, exclude_none=True)


def _retry_delay(details: Any) -> float | None:
    """Gemini's RetryInfo detail ("retryDelay": "12s"), the only Retry-After it gives."""
    error = details.get("error") if isinstance(details, dict) else None
    for item in (error or {}).get("details") or []:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None
