"""Fake model-listing APIs: each provider's real response shape, pagination, auth errors, faults.

    from tests.fakes.listing import ListingFake, example

    with ListingFake("anthropic", models=[...], api_key="sk-ant", page_size=1) as server:
        ...  # ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY=sk-ant

Kinds and what they serve (records are the API's own, as in tests/data/api_examples):

- openai      GET {base}/models -> {"object": "list", "data": [...]} (also Groq, Mistral, DeepSeek, Together,
              Fireworks, Cerebras: the same shape with their extra fields); Bearer auth
- openrouter  GET {base}/models -> {"data": [...]} (prices as strings, USD per token)
- anthropic   GET /v1/models?limit&after_id -> {"data", "has_more", "first_id", "last_id"}; x-api-key and
              anthropic-version required; 401 `{"type": "error", "error": {"type": "authentication_error", ...}}`
- gemini      GET {base}/models?pageSize&pageToken -> {"models", "nextPageToken"}; x-goog-api-key; a bad
              key is Google's 400 INVALID_ARGUMENT body
- xai         GET {base}/language-models -> {"models": [...]} (prices in cents per 100M tokens)
- ollama      GET /api/tags, POST /api/show {"model"}; errors are {"error": "..."}
- lmstudio    GET /api/v0/models (rich) and GET /v1/models (OpenAI-compatible); `v0=False` answers 404
              on /api/v0 like an old LM Studio

Faults from tests.fakes.faults apply per request: `status(code)` with this provider's error body (429
with Retry-After), `slow_first_byte(s)`, `malformed_json()` (a 200 whose JSON is cut short).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes import FakeServer, Recorded, _Handler
from tests.fakes.faults import Fault

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "api_examples"
KINDS = ("openai", "openrouter", "anthropic", "gemini", "xai", "ollama", "lmstudio")


def example(name: str) -> Any:
    """The `response` of tests/data/api_examples/<name>.json (a fresh copy each time)."""
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))["response"]


def error_body(kind: str, status: int) -> Any:
    """Each provider's own error body for a status."""
    if kind == "anthropic":
        types = {
            401: ("authentication_error", "invalid x-api-key"),
            429: ("rate_limit_error", "Number of requests has exceeded your rate limit"),
            529: ("overloaded_error", "Overloaded"),
        }
        kind_, message = types.get(status, ("api_error", "Internal server error"))
        return {"type": "error", "error": {"type": kind_, "message": message}, "request_id": "req_fake"}
    if kind == "gemini":
        statuses = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
        message = {
            400: "API key not valid. Please pass a valid API key.",
            429: "Resource has been exhausted (e.g. check quota).",
        }.get(status, "Internal error encountered.")
        return {"error": {"code": status, "message": message, "status": statuses.get(status, "UNKNOWN")}}
    if kind in ("ollama", "lmstudio"):
        return {
            "error": {401: "unauthorized", 404: "not found", 429: "too many requests"}.get(
                status, "internal server error"
            )
        }
    if kind == "openrouter":
        return {
            "error": {
                "message": {401: "No auth credentials found", 429: "Rate limit exceeded"}.get(
                    status, "Internal Server Error"
                ),
                "code": status,
            }
        }
    message = {
        401: "Incorrect API key provided: sk-bad***. You can find your API key at https://platform.openai.com/account/api-keys.",
        429: "Rate limit reached for requests",
    }.get(status, "The server had an error while processing your request.")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": None,
            "code": code,
        }
    }


class ListingFake(FakeServer):
    """One provider's model-listing API on loopback."""

    def __init__(
        self,
        kind: str,
        models: list[dict[str, Any]] | None = None,
        api_key: str | None = None,
        page_size: int | None = None,
        shows: dict[str, dict[str, Any]] | None = None,
        v0: bool = True,
    ) -> None:
        assert kind in KINDS, kind
        super().__init__(api_key=api_key)
        self.kind = kind
        self.name = f"{kind}-listing"
        self.models = list(models) if models is not None else _default_models(kind)
        self.page_size = page_size
        self.shows = shows or {}  # ollama: model name -> /api/show response
        self.v0 = v0

    @property
    def base_url(self) -> str:
        suffix = {"openai": "/v1", "openrouter": "/api/v1", "gemini": "/v1beta", "xai": "/v1", "lmstudio": "/v1"}.get(
            self.kind, ""
        )
        return self.url + suffix

    def error_body(self, status: int, kind: str | None = None) -> Any:
        return error_body(self.kind, status)

    def paths(self) -> list[str]:
        return [urlsplit(r.path).path for r in self.requests]

    # --- serving ---------------------------------------------------------------------------------

    def handle(self, http: _Handler, request: Recorded, fault: Fault | None) -> None:
        if not self._authorised(request):
            http.send_json(
                400 if self.kind == "gemini" else 401, error_body(self.kind, 400 if self.kind == "gemini" else 401)
            )
            return
        if fault is not None and fault.kind == "malformed":
            http.send_json(200, b'{"object": "list", "data": [{"id": "cut-')
            return
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = self._route(request.method, parts.path, query, request.body)
        if body is None:
            http.send_json(404, error_body(self.kind, 404))
        else:
            http.send_json(200, body)

    def _authorised(self, request: Recorded) -> bool:
        if not self.api_key:
            return True
        headers = request.headers
        if self.kind == "anthropic":
            return headers.get("x-api-key") == self.api_key and bool(headers.get("anthropic-version"))
        if self.kind == "gemini":
            return headers.get("x-goog-api-key") == self.api_key
        return headers.get("authorization") == f"Bearer {self.api_key}"

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        path = path.rstrip("/")
        routes = {
            ("openai", "GET", "/v1/models"): lambda: {"object": "list", "data": self.models},
            ("openrouter", "GET", "/api/v1/models"): lambda: {"data": self.models},
            ("anthropic", "GET", "/v1/models"): lambda: self._anthropic_page(query),
            ("gemini", "GET", "/v1beta/models"): lambda: self._gemini_page(query),
            ("xai", "GET", "/v1/language-models"): lambda: {"models": self.models},
            ("xai", "GET", "/v1/models"): lambda: {
                "object": "list",
                "data": [{"id": m["id"], "object": "model", "owned_by": "xai"} for m in self.models],
            },
            ("ollama", "GET", "/api/tags"): lambda: {"models": self.models},
            ("ollama", "POST", "/api/show"): lambda: self._ollama_show(body),
            ("lmstudio", "GET", "/api/v0/models"): lambda: {"object": "list", "data": self.models} if self.v0 else None,
            ("lmstudio", "GET", "/v1/models"): lambda: {
                "object": "list",
                "data": [{"id": m["id"], "object": "model", "owned_by": "organization_owner"} for m in self.models],
            },
        }
        handler = routes.get((self.kind, method, path))
        return handler() if handler else None

    def _anthropic_page(self, query: dict[str, str]) -> dict[str, Any]:
        ids = [m["id"] for m in self.models]
        start = ids.index(query["after_id"]) + 1 if query.get("after_id") in ids else 0
        size = min(int(query.get("limit", 20)), self.page_size or 1000)
        page = self.models[start : start + size]
        return {
            "data": page,
            "has_more": start + size < len(self.models),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def _gemini_page(self, query: dict[str, str]) -> dict[str, Any]:
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("pageSize", 50)), self.page_size or 1000)
        out: dict[str, Any] = {"models": self.models[start : start + size]}
        if start + size < len(self.models):
            out["nextPageToken"] = str(start + size)
        return out

    def _ollama_show(self, body: Any) -> Any:
        name = body.get("model") if isinstance(body, dict) else None
        return self.shows.get(name)


def _default_models(kind: str) -> list[dict[str, Any]]:
    files = {
        "openai": "openai_get_v1_models",
        "openrouter": "openrouter_get_api_v1_models",
        "anthropic": "anthropic_get_v1_models",
        "gemini": "gemini_get_v1beta_models",
        "xai": "xai_get_v1_language_models",
        "ollama": "ollama_get_api_tags",
        "lmstudio": "lmstudio_get_api_v0_models",
    }
    response = example(files[kind])
    return response.get("data") or response.get("models")


# --- record builders in each API's shape ---------------------------------------------------------------


def openai_model(mid: str, **extra: Any) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": 1700000000, "owned_by": "system", **extra}


def anthropic_model(
    mid: str,
    display: str | None = None,
    context: int = 200000,
    max_tokens: int = 64000,
    vision: bool = True,
    thinking: bool = True,
) -> dict[str, Any]:
    record = example("anthropic_get_v1_models")["data"][0]
    record.update(id=mid, display_name=display or mid, max_input_tokens=context, max_tokens=max_tokens)
    record["capabilities"]["image_input"]["supported"] = vision
    record["capabilities"]["thinking"]["supported"] = thinking
    return record


def gemini_model(
    name: str,
    methods: tuple[str, ...] = ("generateContent", "countTokens"),
    context: int = 1048576,
    thinking: bool = True,
) -> dict[str, Any]:
    record = example("gemini_get_v1beta_models")["models"][0]
    record.update(
        name=f"models/{name}",
        baseModelId=name,
        displayName=name,
        inputTokenLimit=context,
        supportedGenerationMethods=list(methods),
        thinking=thinking,
    )
    return record


def openrouter_model(
    mid: str,
    prompt: str,
    completion: str,
    params: tuple[str, ...] = ("tools", "response_format"),
    inputs: tuple[str, ...] = ("text",),
) -> dict[str, Any]:
    record = example("openrouter_get_api_v1_models")["data"][0]
    record.update(id=mid, name=mid, canonical_slug=mid)
    record["pricing"] = {"prompt": prompt, "completion": completion}
    record["supported_parameters"] = list(params)
    record["architecture"]["input_modalities"] = list(inputs)
    return record


def ollama_tag(name: str, parameter_size: str = "7.6B", family: str = "qwen2") -> dict[str, Any]:
    record = example("ollama_get_api_tags")["models"][0]
    record.update(name=name, model=name)
    record["details"].update(family=family, families=[family], parameter_size=parameter_size)
    return record


def ollama_show(
    arch: str = "qwen2", context: int = 32768, capabilities: tuple[str, ...] = ("completion", "tools")
) -> dict[str, Any]:
    record = example("ollama_post_api_show")
    record["model_info"] = {"general.architecture": arch, f"{arch}.context_length": context}
    record["capabilities"] = list(capabilities)
    return record


def lmstudio_model(mid: str, type_: str = "llm", context: int = 32768) -> dict[str, Any]:
    record = example("lmstudio_get_api_v0_models")["data"][0]
    record.update(id=mid, type=type_, max_context_length=context)
    return record


# --- a warm catalog cache -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _shipped_merge() -> tuple[str, bytes]:
    import orjson

    from r42.catalog import _cache_path, merge_files, shipped_catalog_path

    shipped = [shipped_catalog_path()]
    return _cache_path(shipped).name, orjson.dumps(merge_files(shipped))


def seed_catalog_cache(home: Path) -> None:
    """Put the shipped catalog's merge in this test's R42_HOME/cache, parsed once per session.

    Each test gets an empty R42_HOME; without this, every test would parse the 2-3 MB YAML again.
    The cache file is keyed by the shipped file's path, size and time, as r42 itself keys it.
    """
    name, data = _shipped_merge()
    (home / "cache").mkdir(parents=True, exist_ok=True)
    (home / "cache" / name).write_bytes(data)
