"""`r42 catalog sync`: ask each provider's own model-listing API what it offers now.

Fetchers (one per API shape) turn a listing into catalog-shaped entries. `plan_sync` compares them
with the shipped catalog plus the previous sync layer and builds the new layer,
R42_HOME/catalog.sync.yaml, which `load_catalog` merges between the shipped catalog and the user's
own files (so a user's edit always wins). The layer holds:

- partial entries for known models: only the fields the API states that differ from the shipped
  catalog (prices, context, max output, capabilities), with `synced: {source, date, fields}` and the
  price's own `source` and `date`;
- full entries for models the catalog does not have, quality joined or estimated (r42.catalog.estimate);
- `available: false` for models the provider no longer lists (never deleted).

Each sync rebuilds the entries of the providers it fetched and keeps the others'. Providers are
fetched concurrently, each with its own timeout; one failing provider is reported, not fatal.
httpx is imported only here, so `r42 rank` never pays for it.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from r42.availability import base_url_of, find_credential, port_open
from r42.fileio import write_atomic
from r42.catalog import (
    SYNC_FILE,
    Catalog,
    Provider,
    _build,
    _cached_merge,
    _deep_merge,
    catalog_layers,
    read_yaml,
    shipped_catalog_path,
)
from r42.catalog.estimate import Estimator
from r42.config import ensure_home, home_dir
from r42.errors import NoCredentialsError, UsageError

# Same chat-only filter as scripts/build_catalog.py: listing APIs also return embedding, audio, image models.
EXCLUDE_RE = re.compile(
    r"embed|whisper|tts|transcri|audio|realtime|image|dall-e|moderation|rerank|guard|(^|/)ocr|-ocr|computer-use|"
    r"search-preview|search-api|^ft:|/ft:|fine-tun|orpheus|playai|lyria|veo-|imagen|native-audio|-live-|"
    r"deep-research|robotics|codex-mini-latest|-fim-|^container$|flux-|ocr|content-safety|-draft|/routers/|"
    r"relace-apply|morph-v3|^together-ai-|^fireworks-ai-|gpt-3\.5-turbo-instruct|babbage|davinci|aqa|sora",
    re.I,
)
NO_LISTING = {"local": "the built-in model has nothing to list", "perplexity": "Perplexity has no model-listing API"}
# What a provider's models can do when its listing does not say (only used for models new to the catalog).
PROVIDER_DEFAULTS: dict[str, dict[str, bool]] = {
    "anthropic": {"tools": True, "vision": True, "json": False, "reasoning": False},
    "gemini": {"tools": True, "vision": True, "json": True, "reasoning": False},
    "ollama": {"json": True},
    "lmstudio": {"json": True},
}
CAPABILITIES = ("tools", "vision", "json", "reasoning")
RETRY_AFTER_MAX = 5.0  # a 429 asking to wait up to this long is waited out once
MAX_PAGES = 50


class FetchError(Exception):
    """One provider's listing failed; the message says why (status, the provider's own words)."""


@dataclass
class Listing:
    provider: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""  # the endpoint, e.g. "openai API (/v1/models)"
    error: str | None = None


# --- HTTP --------------------------------------------------------------------------------------


class _Fetch:
    """One provider's fetch: a client, its base URL, its key and the timeout."""

    def __init__(self, client: Any, provider: Provider, base_url: str, secret: str | None, timeout: float) -> None:
        self.client, self.provider, self.base, self.secret, self.timeout = (
            client,
            provider,
            base_url.rstrip("/"),
            secret,
            timeout,
        )
        self.paths: list[str] = []

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}

    def json(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
        base: str | None = None,
    ) -> Any:
        import httpx

        url = (base or self.base) + path
        if path not in self.paths:
            self.paths.append(path)
        for attempt in range(2):
            try:
                response = self.client.request(
                    "POST" if body is not None else "GET", url, headers=headers, params=params, json=body
                )
            except httpx.TimeoutException:
                raise FetchError(f"timed out after {self.timeout:g}s ({url})") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"cannot reach {url}: {exc}") from None
            wait = _retry_after(response)
            if response.status_code == 429 and attempt == 0 and wait is not None and wait <= RETRY_AFTER_MAX:
                time.sleep(wait)
                continue
            if response.status_code >= 400:
                raise FetchError(_http_error(self.provider, response))
            try:
                return response.json()
            except ValueError:
                raise FetchError(f"malformed response from {url}: not JSON") from None
        raise AssertionError("unreachable")


def _retry_after(response: Any) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _http_error(provider: Provider, response: Any) -> str:
    """`HTTP 401: <the provider's message>` plus what to do about it."""
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200]
    message = body
    if isinstance(body, dict):
        error = body.get("error", body.get("message", body))
        message = error.get("message", error) if isinstance(error, dict) else error
    text = f"HTTP {response.status_code}: {' '.join(str(message).split())[:300]}"
    if response.status_code in (401, 403):
        where = f"{provider.key_env[0]} or " if provider.key_env else ""
        text += f" (check the key: {where}`r42 keys set {provider.id}`)"
    elif response.status_code == 429:
        text += " (rate limited: try again later)"
    return text


def _items(payload: Any, key: str) -> list[dict[str, Any]]:
    items = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise FetchError(f"malformed response: expected a list under {key!r}")
    return [item for item in items if isinstance(item, dict)]


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _entry(provider: str, model: str, **fields: Any) -> dict[str, Any]:
    """A listed model in catalog shape; None means the API did not say."""
    caps = {k: v for k, v in (fields.pop("capabilities", None) or {}).items() if isinstance(v, bool)}
    return {
        "id": f"{provider}/{model}",
        "name": fields.get("name"),
        "aliases": list(fields.get("aliases") or []),
        "price": fields.get("price"),
        "context": _int(fields.get("context")),
        "max_output": _int(fields.get("max_output")),
        "capabilities": caps,
        "local": bool(fields.get("local", False)),
        "size_b": fields.get("size_b"),
    }


# --- fetchers, one per API shape -----------------------------------------------------------------


def _openai_like(f: _Fetch) -> list[dict[str, Any]]:
    """GET {base}/models: OpenAI, Mistral, Groq, DeepSeek, Together, Fireworks, Cerebras and friends.

    Reads the extra fields some of them add: Groq `context_window`, `max_completion_tokens`,
    `active`; Mistral `max_context_length`, `aliases`, `capabilities`; Together `type`,
    `context_length`, `pricing` (USD per 1M); Fireworks `supports_chat`, `supports_tools`, ...
    """
    payload = f.json("/models", f.bearer())
    items = [i for i in payload if isinstance(i, dict)] if isinstance(payload, list) else _items(payload, "data")
    out = []
    for item in items:
        mid = item.get("id")
        if not isinstance(mid, str) or EXCLUDE_RE.search(mid) or item.get("active") is False:
            continue
        if item.get("type") not in (None, "chat", "language", "code", "base", "fine-tuned", "model", "llm", "vlm"):
            continue  # Together: image, embedding, moderation, rerank, audio ...
        caps = item.get("capabilities") if isinstance(item.get("capabilities"), dict) else {}
        if caps.get("completion_chat") is False or item.get("supports_chat") is False:
            continue
        stated = {
            "tools": caps.get("function_calling", item.get("supports_tools")),
            "vision": caps.get("vision", item.get("supports_image_input")),
            "reasoning": caps.get("reasoning"),
        }
        pricing = item.get("pricing") if isinstance(item.get("pricing"), dict) else {}
        price = _price(pricing.get("input"), pricing.get("output"), 1.0) if pricing else None
        out.append(
            _entry(
                f.provider.id,
                mid,
                name=item.get("display_name"),
                aliases=[a for a in item.get("aliases") or [] if isinstance(a, str)],
                context=item.get("context_window") or item.get("max_context_length") or item.get("context_length"),
                max_output=item.get("max_completion_tokens"),
                capabilities=stated,
                price=price,
            )
        )
    return out


def _price(prompt: Any, completion: Any, scale: float) -> dict[str, float | None] | None:
    """Prices to USD per 1M tokens; a negative or missing value is unknown (None)."""

    def one(value: Any) -> float | None:
        try:
            number = float(value) * scale
        except (TypeError, ValueError):
            return None
        return round(number, 6) if number >= 0 else None

    price = {"input": one(prompt), "output": one(completion)}
    return price if any(v is not None for v in price.values()) else None


def _openrouter(f: _Fetch) -> list[dict[str, Any]]:
    """GET /api/v1/models: prices (USD per token, as strings), context, supported parameters."""
    out = []
    for item in _items(f.json("/models", f.bearer()), "data"):
        mid, arch = item.get("id"), item.get("architecture") or {}
        if (
            not isinstance(mid, str)
            or EXCLUDE_RE.search(mid)
            or "text" not in (arch.get("output_modalities") or ["text"])
        ):
            continue
        params = set(item.get("supported_parameters") or [])
        pricing, top = item.get("pricing") or {}, item.get("top_provider") or {}
        caps = {
            "tools": "tools" in params,
            "json": bool(params & {"response_format", "structured_outputs"}),
            "reasoning": bool(params & {"reasoning", "include_reasoning"}),
            "vision": "image" in (arch.get("input_modalities") or []),
        }
        out.append(
            _entry(
                "openrouter",
                mid,
                name=item.get("name"),
                price=_price(pricing.get("prompt"), pricing.get("completion"), 1e6),
                context=item.get("context_length") or top.get("context_length"),
                max_output=top.get("max_completion_tokens"),
                capabilities=caps,
            )
        )
    return out


def _anthropic(f: _Fetch) -> list[dict[str, Any]]:
    """GET /v1/models, paginated with after_id / has_more; x-api-key and anthropic-version headers."""
    headers = {"x-api-key": f.secret or "", "anthropic-version": "2023-06-01"}
    out, after = [], None
    for _ in range(MAX_PAGES):
        page = f.json("/v1/models", headers, {"limit": 1000, **({"after_id": after} if after else {})})
        for item in _items(page, "data"):
            if not isinstance(item.get("id"), str):
                continue
            caps = item.get("capabilities") or {}

            def supported(name: str, caps: dict = caps) -> bool | None:  # this item's capabilities
                value = caps.get(name)
                return value.get("supported") if isinstance(value, dict) else None

            out.append(
                _entry(
                    "anthropic",
                    item["id"],
                    name=item.get("display_name"),
                    context=item.get("max_input_tokens"),
                    max_output=item.get("max_tokens"),
                    capabilities={
                        "vision": supported("image_input"),
                        "json": supported("structured_outputs"),
                        "reasoning": supported("thinking"),
                    },
                )
            )
        if not page.get("has_more"):
            return out
        after = page.get("last_id")
        if not after:
            raise FetchError("malformed response: has_more without last_id")
    raise FetchError(f"more than {MAX_PAGES} pages")


def _gemini(f: _Fetch) -> list[dict[str, Any]]:
    """models.list: GET {base}/models?pageSize=1000&pageToken=..., key in x-goog-api-key."""
    out, token, seen = [], None, set()
    for _ in range(MAX_PAGES):
        page = f.json(
            "/models", {"x-goog-api-key": f.secret or ""}, {"pageSize": 1000, **({"pageToken": token} if token else {})}
        )
        for item in _items(page, "models"):
            name = str(item.get("name") or "").removeprefix("models/")
            if (
                not name
                or EXCLUDE_RE.search(name)
                or "generateContent" not in (item.get("supportedGenerationMethods") or [])
            ):
                continue
            caps = {"reasoning": item["thinking"]} if isinstance(item.get("thinking"), bool) else {}
            out.append(
                _entry(
                    "gemini",
                    name,
                    name=item.get("displayName"),
                    context=item.get("inputTokenLimit"),
                    max_output=item.get("outputTokenLimit"),
                    capabilities=caps,
                )
            )
        token = page.get("nextPageToken")
        if not token:
            return out
        if token in seen:
            raise FetchError("malformed response: the same nextPageToken twice")
        seen.add(token)
    raise FetchError(f"more than {MAX_PAGES} pages")


def _xai(f: _Fetch) -> list[dict[str, Any]]:
    """GET /v1/language-models (prices in USD cents per 100M tokens), else the plain /v1/models."""
    try:
        payload = f.json("/language-models", f.bearer())
    except FetchError as exc:
        if str(exc).startswith("HTTP 404"):
            return _openai_like(f)
        raise
    out = []
    for item in _items(payload, "models"):
        mid = item.get("id")
        if (
            not isinstance(mid, str)
            or EXCLUDE_RE.search(mid)
            or "text" not in (item.get("output_modalities") or ["text"])
        ):
            continue
        out.append(
            _entry(
                "xai",
                mid,
                aliases=item.get("aliases"),
                price=_price(item.get("prompt_text_token_price"), item.get("completion_text_token_price"), 1e-4),
                capabilities={"vision": "image" in (item.get("input_modalities") or [])},
            )
        )
    return out


def _ollama(f: _Fetch) -> list[dict[str, Any]]:
    """GET /api/tags, then POST /api/show per model for context length and capabilities."""
    from r42.catalog.estimate import parse_size

    out = []
    for item in _items(f.json("/api/tags"), "models"):
        name = item.get("model") or item.get("name")
        if not isinstance(name, str):
            continue
        details = item.get("details") or {}
        try:
            show = f.json("/api/show", body={"model": name})
        except FetchError:
            show = {}  # a model the server cannot describe is still listed
        caps_list = show.get("capabilities") if isinstance(show, dict) else None
        if isinstance(caps_list, list) and caps_list and "completion" not in caps_list:
            continue  # embedding-only
        if EXCLUDE_RE.search(name) and not caps_list:
            continue
        info = show.get("model_info") or {} if isinstance(show, dict) else {}
        arch = info.get("general.architecture")
        caps = (
            {"tools": "tools" in caps_list, "vision": "vision" in caps_list, "reasoning": "thinking" in caps_list}
            if isinstance(caps_list, list)
            else {}
        )
        out.append(
            _entry(
                "ollama",
                name,
                context=info.get(f"{arch}.context_length") if arch else None,
                capabilities=caps,
                price={"input": 0.0, "output": 0.0},
                local=True,
                size_b=parse_size(details.get("parameter_size")),
            )
        )
    return out


def _lmstudio(f: _Fetch) -> list[dict[str, Any]]:
    """GET /api/v0/models (type, context), else the OpenAI-compatible /v1/models (ids only)."""
    from r42.catalog.estimate import parse_size

    root = re.sub(r"/v1$", "", f.base)
    try:
        items = _items(f.json("/api/v0/models", f.bearer(), base=root), "data")
    except FetchError as exc:
        if not str(exc).startswith("HTTP 404"):
            raise
        items = [{**i, "type": "llm"} for i in _items(f.json("/models", f.bearer()), "data")]
    out = []
    for item in items:
        mid = item.get("id")
        if not isinstance(mid, str) or item.get("type") not in ("llm", "vlm") or EXCLUDE_RE.search(mid):
            continue
        caps = {"vision": True} if item.get("type") == "vlm" else {}
        out.append(
            _entry(
                "lmstudio",
                mid,
                context=item.get("max_context_length"),
                capabilities=caps,
                price={"input": 0.0, "output": 0.0},
                local=True,
                size_b=parse_size(item.get("params_string")),
            )
        )
    return out


FETCHERS: dict[str, Callable[[_Fetch], list[dict[str, Any]]]] = {
    "openrouter": _openrouter,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "xai": _xai,
    "ollama": _ollama,
    "lmstudio": _lmstudio,
}


def fetch_listing(
    provider: Provider, base_url: str, secret: str | None, timeout: float, allow_empty: bool = False
) -> Listing:
    """One provider's chat models; errors are caught and put in `Listing.error`.

    An empty listing is an error unless allow_empty (a local server with nothing pulled): a sync
    must not mark a whole provider unavailable because of one odd response.
    """
    import httpx

    fetcher = FETCHERS.get(provider.id) or (_openai_like if provider.protocol == "openai" else None)
    if fetcher is None:
        return Listing(provider.id, error=f"no model-listing support for protocol {provider.protocol}")
    with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), follow_redirects=True) as client:
        fetch = _Fetch(client, provider, base_url, secret, timeout)
        try:
            entries = fetcher(fetch)
        except FetchError as exc:
            return Listing(provider.id, error=str(exc))
        except (AttributeError, TypeError, KeyError) as exc:  # a payload of the wrong shape deep inside
            return Listing(provider.id, error=f"malformed response: {type(exc).__name__}: {exc}")
    source = f"{provider.id} API ({', '.join(fetch.paths)})"
    if not entries and not allow_empty:
        return Listing(provider.id, source=source, error="the listing holds no chat model (nothing changed)")
    return Listing(provider.id, entries, source)


# --- which providers to fetch --------------------------------------------------------------------


@dataclass
class Job:
    provider: Provider
    base_url: str
    secret: str | None


def select_jobs(
    catalog: Catalog, names: tuple[str, ...], probe_timeout: float = 0.3
) -> tuple[list[Job], dict[str, str]]:
    """Providers to fetch, and the named ones that cannot be (with the reason).

    Without names: every provider with a credential, and every local server that answers.
    """
    unknown = [n for n in names if n not in catalog.providers]
    if unknown:
        raise UsageError(f"unknown provider {unknown[0]!r}", "providers: " + ", ".join(sorted(catalog.providers)))
    jobs, failed = [], {}
    for pid in names or sorted(catalog.providers):
        provider = catalog.providers[pid]
        reason, job = _job(provider, explicit=bool(names), probe_timeout=probe_timeout)
        if job is not None:
            jobs.append(job)
        elif names:
            failed[pid] = reason
    return jobs, failed


def _job(provider: Provider, explicit: bool, probe_timeout: float) -> tuple[str, Job | None]:
    if provider.id in NO_LISTING:
        return NO_LISTING[provider.id], None
    url = base_url_of(provider)
    if not url:
        return "no base URL", None
    if provider.local:
        if port_open(url, probe_timeout):
            return "", Job(provider, url, None)
        return f"server not reachable at {url}", None
    credential = find_credential(provider)
    if credential is None and not (explicit and provider.id == "openrouter"):  # OpenRouter lists without a key
        hint = f"set {provider.key_env[0]} or " if provider.key_env else ""
        return f"no credential ({hint}run `r42 keys set {provider.id}`)", None
    return "", Job(provider, url, credential.secret if credential else None)


def fetch_all(jobs: list[Job], timeout: float, progress: Callable[[Listing], None] | None = None) -> dict[str, Listing]:
    """Fetch every job concurrently; a failure (or a crash) in one never stops the others."""
    listings: dict[str, Listing] = {}
    if not jobs:
        return listings
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        futures = {pool.submit(fetch_listing, job.provider, job.base_url, job.secret, timeout): job for job in jobs}
        for future in as_completed(futures):
            pid = futures[future].provider.id
            try:
                listing = future.result()
            except Exception as exc:  # noqa: BLE001 - one provider's bug must not lose the others' results
                listing = Listing(pid, error=f"{type(exc).__name__}: {exc}")
            listings[pid] = listing
            if progress:
                progress(listing)
    return listings


# --- planning the new layer ------------------------------------------------------------------------


def loose_key(name: str, provider: str) -> str:
    """A name without the provider prefix, `models/`, `:latest`, a date or `-latest` (for matching)."""
    s = name.lower().removeprefix(provider + "/").removeprefix("models/")
    s = re.sub(r":latest$", "", s)
    s = re.sub(r"-(20\d\d-\d\d-\d\d|20\d{6})$", "", s)
    return re.sub(r"-latest$", "", s)


class _Index:
    """A provider's catalog models by exact name (id and aliases) and by loose key."""

    def __init__(self, provider: str, models: dict[str, dict[str, Any]]) -> None:
        self.provider = provider
        self.exact: dict[str, str] = {}
        self.loose: dict[str, str] = {}
        for mid, m in sorted(models.items()):
            for name in (mid, *(m.get("aliases") or [])):
                bare = name.lower().removeprefix(provider + "/")
                self.exact.setdefault(bare, mid)
                self.loose.setdefault(loose_key(bare, provider), mid)

    def match(self, entry: dict[str, Any]) -> str | None:
        names = [entry["id"], *entry["aliases"]]
        for name in names:
            if (hit := self.exact.get(name.lower().removeprefix(self.provider + "/"))) is not None:
                return hit
        for name in names:
            if (hit := self.loose.get(loose_key(name, self.provider))) is not None:
                return hit
        return None


@dataclass
class Stamp:
    source: str
    date: str


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) < 1e-9
    return a == b


def override_for(known: dict[str, Any], entry: dict[str, Any], stamp: Stamp) -> dict[str, Any]:
    """The fields of a known model the API states differently (a partial entry, maybe empty)."""
    changes: dict[str, Any] = {}
    price, old_price = entry.get("price") or {}, known.get("price") or {}
    if any(price.get(k) is not None and not _same(price[k], old_price.get(k)) for k in ("input", "output")):
        changes["price"] = {
            **{k: v for k, v in price.items() if v is not None},
            "source": stamp.source,
            "date": stamp.date,
        }
    for key in ("context", "max_output"):
        if entry.get(key) is not None and entry[key] != known.get(key):
            changes[key] = entry[key]
    old_caps = known.get("capabilities") or {}
    caps = {k: v for k, v in entry["capabilities"].items() if v is not None and old_caps.get(k) != v}
    if caps:
        changes["capabilities"] = caps
    if known.get("available") is False:
        changes["available"] = True
    if not changes:
        return {}
    return {
        "id": known["id"],
        **changes,
        "synced": {"source": stamp.source, "date": stamp.date, "fields": sorted(changes)},
    }


def new_entry(
    entry: dict[str, Any], previous: dict[str, Any] | None, estimator: Estimator, stamp: Stamp
) -> dict[str, Any]:
    """A complete catalog entry for a model the shipped catalog does not have."""
    provider = entry["id"].split("/", 1)[0]
    sibling = estimator.sibling(entry["id"], provider)
    defaults = PROVIDER_DEFAULTS.get(provider, {})
    caps = {}
    for key in CAPABILITIES:
        stated = entry["capabilities"].get(key)
        caps[key] = stated if stated is not None else (getattr(sibling, key) if sibling else defaults.get(key, False))
    price = entry.get("price") or {}
    same_provider = sibling if sibling is not None and sibling.provider == provider else None
    if not price and same_provider is not None:  # a snapshot of a model we know: same price
        price = {"input": same_provider.price_input, "output": same_provider.price_output}
    quality = (previous or {}).get("quality") or estimator.quality(
        entry["id"], provider, price.get("input"), price.get("output"), entry.get("size_b"), entry["local"]
    )
    return {
        "id": entry["id"],
        "name": entry.get("name") or entry["id"].split("/", 1)[1],
        "aliases": entry["aliases"],
        "price": {
            "input": price.get("input"),
            "output": price.get("output"),
            "source": stamp.source,
            "date": stamp.date,
        },
        "context": entry.get("context") or (sibling.context if sibling else None),
        "max_output": entry.get("max_output") or (sibling.max_output if sibling else None),
        "capabilities": caps,
        "local": entry["local"],
        "quality": quality,
        "synced": {"source": stamp.source, "date": stamp.date, "fields": ["new"]},
    }


def plan_provider(
    listing: Listing,
    shipped: dict[str, Any],
    old_layer: dict[str, Any],
    before: dict[str, Any],
    estimator: Estimator,
    date: str,
) -> dict[str, dict[str, Any]]:
    """The new sync-layer entries of one provider, from its listing."""
    pid, stamp = listing.provider, Stamp(listing.source, date)
    mine = {mid: m for mid, m in before.items() if mid.split("/", 1)[0] == pid}
    index = _Index(pid, mine)
    layer: dict[str, dict[str, Any]] = {}
    listed: set[str] = set()
    for entry in listing.entries:
        target = index.match(entry) or entry["id"]
        if target in listed:
            continue  # two listed names for one catalog model
        listed.add(target)
        if target in shipped:
            partial = override_for(shipped[target], entry, stamp)
            if partial:
                layer[target] = partial
        else:
            layer[target] = new_entry({**entry, "id": target}, old_layer.get(target), estimator, stamp)
    listed_loose = {loose_key(n, pid) for e in listing.entries for n in (e["id"], *e["aliases"])}
    for mid, m in mine.items():
        if mid in listed or any(loose_key(n, pid) in listed_loose for n in (mid, *(m.get("aliases") or []))):
            continue
        base = {"id": mid} if mid in shipped else dict(old_layer.get(mid) or m)
        layer[mid] = {
            **base,
            "available": False,
            "synced": {"source": stamp.source, "date": date, "fields": ["available"]},
        }
    return layer


# --- the summary -----------------------------------------------------------------------------------

FIELDS = (
    "price.input",
    "price.output",
    "context",
    "max_output",
    *(f"capabilities.{c}" for c in CAPABILITIES),
    "available",
)


def _flat(m: dict[str, Any]) -> dict[str, Any]:
    price, caps = m.get("price") or {}, m.get("capabilities") or {}
    return {
        "price.input": price.get("input"),
        "price.output": price.get("output"),
        "context": m.get("context"),
        "max_output": m.get("max_output"),
        **{f"capabilities.{c}": bool(caps.get(c)) for c in CAPABILITIES},
        "available": m.get("available", True) is not False,
    }


def diff_models(before: dict[str, Any], after: dict[str, Any], providers: set[str]) -> dict[str, Any]:
    """added, changed (field: [old, new]) and unavailable, for the models of these providers."""
    added, changed, unavailable = [], [], []
    for mid in sorted(after):
        if mid.split("/", 1)[0] not in providers:
            continue
        if mid not in before:
            added.append(mid)
            continue
        old, new = _flat(before[mid]), _flat(after[mid])
        fields = {k: [old[k], new[k]] for k in FIELDS if not _same(old[k], new[k])}
        flip = fields.pop("available", None)
        if flip is not None and not new["available"]:
            unavailable.append(mid)
        elif flip is not None:
            fields["available"] = flip  # listed again
        if fields:
            changed.append({"id": mid, "fields": fields})
    return {"added": added, "changed": changed, "unavailable": unavailable}


def user_edits(extra: str | None) -> dict[str, set[str]]:
    """Flattened fields the user's own catalog files set, by model id (these win over a sync)."""
    edits: dict[str, set[str]] = {}
    for role, path in catalog_layers(extra):
        if role in ("user", "setting") and path.exists():
            for m in (read_yaml(path) or {}).get("models") or []:
                if isinstance(m, dict) and isinstance(m.get("id"), str):
                    keys = {f"{k}.{s}" for k, v in m.items() if isinstance(v, dict) for s in v} | set(m)
                    edits.setdefault(m["id"], set()).update(keys & set(FIELDS))
    return edits


# --- the whole sync ------------------------------------------------------------------------------------


def sync_layer_path() -> Path:
    return home_dir() / SYNC_FILE


def merge_models(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for mid, entry in layer.items():
        out[mid] = _deep_merge(out.get(mid, {}), entry)
    return out


def run_sync(
    catalog: Catalog,
    names: tuple[str, ...] = (),
    dry_run: bool = False,
    timeout: float = 20.0,
    extra: str | None = None,
    progress: Callable[[Listing], None] | None = None,
    today: str | None = None,
) -> dict[str, Any]:
    """Fetch, plan, write (unless dry_run); returns the summary of changes."""
    jobs, failed = select_jobs(catalog, names)
    if not jobs and not failed:
        raise NoCredentialsError(
            "no provider to sync: no credential is set and no local server answers",
            "set a key such as OPENAI_API_KEY (or run `r42 keys set PROVIDER`), or start Ollama or LM Studio",
        )
    listings = fetch_all(jobs, timeout, progress)
    date = today or datetime.now(timezone.utc).date().isoformat()
    path = sync_layer_path()
    shipped = _cached_merge([shipped_catalog_path()])
    old = read_yaml(path) if path.exists() else None
    old = old if isinstance(old, dict) else {}
    old_models = {m["id"]: m for m in old.get("models") or [] if isinstance(m, dict) and isinstance(m.get("id"), str)}
    before = merge_models(shipped["models"], old_models)
    estimator = Estimator(_build({"providers": shipped["providers"], "models": before}, ()).models)
    ok = {pid: listing for pid, listing in listings.items() if listing.error is None}
    new_models = {mid: m for mid, m in old_models.items() if mid.split("/", 1)[0] not in ok}
    for listing in ok.values():
        new_models.update(plan_provider(listing, shipped["models"], old_models, before, estimator, date))
    summary = diff_models(before, merge_models(shipped["models"], new_models), set(ok))
    edits = user_edits(extra)
    touched = [(c["id"], set(c["fields"])) for c in summary["changed"]] + [
        (mid, {"available"}) for mid in summary["unavailable"]
    ]
    kept = [
        {"id": mid, "fields": sorted(fields & edits[mid])} for mid, fields in touched if fields & edits.get(mid, set())
    ]
    failed.update({pid: listing.error for pid, listing in listings.items() if listing.error is not None})
    if not dry_run and ok:
        write_layer(
            path,
            old,
            new_models,
            catalog,
            shipped["providers"],
            {
                pid: {"date": date, "source": listing.source, "models": len(listing.entries)}
                for pid, listing in ok.items()
            },
        )
    return {
        "dry_run": dry_run,
        "file": str(path),
        "date": date,
        "providers": {
            pid: {"ok": True, "listed": len(listing.entries), "source": listing.source}
            for pid, listing in sorted(ok.items())
        },
        **summary,
        "kept_user_edits": kept,
        "failed": [{"provider": pid, "error": reason} for pid, reason in sorted(failed.items())],
    }


def write_layer(
    path: Path,
    old: dict[str, Any],
    models: dict[str, Any],
    catalog: Catalog,
    shipped_providers: dict[str, Any],
    synced: dict[str, Any],
) -> None:
    """Write the layer atomically (a temp file, then os.replace): a reader never sees half of it."""
    import yaml

    ensure_home()
    custom = {m.split("/", 1)[0] for m in models} - set(shipped_providers)  # providers only a user file defines
    providers = {
        **(old.get("providers") or {}),
        **{pid: _provider_block(catalog.providers[pid]) for pid in custom if pid in catalog.providers},
    }
    doc: dict[str, Any] = {
        "schema": 1,
        "generator": "r42 catalog sync",
        "synced": {**(old.get("synced") or {}), **synced},
    }
    if providers:
        doc["providers"] = providers
    doc["models"] = [models[mid] for mid in sorted(models)]
    header = (
        "# Written by `r42 catalog sync`: rewritten on every sync. Put your own changes in catalog.yaml, which wins.\n"
    )
    text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
    write_atomic(path, text.encode("utf-8"))


def _provider_block(p: Provider) -> dict[str, Any]:
    return {
        "name": p.name,
        "protocol": p.protocol,
        "base_url": p.base_url,
        "key_env": list(p.key_env),
        "base_url_env": p.base_url_env,
        "local": p.local,
    }
