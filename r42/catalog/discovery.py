"""Local models at rank time: what a reachable Ollama or LM Studio server has pulled right now.

`discover(catalog)` asks each local server that answers on its port (a TCP probe of a few tens of
milliseconds; nothing else happens when none answers) for its model list, and returns the catalog
with: listed models that the catalog knows marked available, listed models it does not know added
(price 0, local, quality joined or estimated from the size in the name, marked estimated), and the
catalog's other models of that server marked unavailable (not pulled there). The list is cached
in R42_HOME/cache for `discovery_ttl` seconds, so a freshly pulled model shows up within a minute
without `r42 catalog sync`, and a burst of `r42 rank` calls asks the server once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from r42.fileio import write_atomic

from r42.availability import base_url_of, port_open
from r42.catalog import Catalog, Model, Provider, _model
from r42.config import home_dir

LOCAL_LISTERS = ("ollama", "lmstudio")
FETCH_TIMEOUT = 2.0  # seconds per request to a local server that did answer the probe


def discover(catalog: Catalog, ttl: float = 60.0, probe_timeout: float = 0.05) -> Catalog:
    """The catalog as the local servers that answer see it (unchanged when none does)."""
    listings = {}
    for pid in LOCAL_LISTERS:
        provider = catalog.providers.get(pid)
        if provider is not None:
            entries = local_listing(provider, ttl, probe_timeout)
            if entries is not None:
                listings[pid] = entries
    return apply_listings(catalog, listings) if listings else catalog


def cache_path(provider_id: str) -> Path:
    return home_dir() / "cache" / f"discovery-{provider_id}.json"


def local_listing(provider: Provider, ttl: float, probe_timeout: float) -> list[dict[str, Any]] | None:
    """The server's models (catalog-shaped entries), from the cache when fresh; None when unreachable."""
    url = base_url_of(provider)
    if not url:
        return None
    cache = cache_path(provider.id)
    cached = _read_cache(cache, url, ttl)
    if cached is not None:
        return cached
    if not port_open(url, probe_timeout):
        return None
    from r42.catalog.sync import fetch_listing  # imports httpx: only when a server answered

    listing = fetch_listing(provider, url, None, FETCH_TIMEOUT, allow_empty=True)
    if listing.error is not None:
        return None  # a server that answers oddly changes nothing
    _write_cache(cache, {"url": url, "time": time.time(), "models": listing.entries})
    return listing.entries


def _read_cache(path: Path, url: str, ttl: float) -> list[dict[str, Any]] | None:
    if ttl <= 0:
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    fresh = isinstance(data, dict) and data.get("url") == url and 0 <= time.time() - float(data.get("time", 0)) < ttl
    return data.get("models") if fresh and isinstance(data.get("models"), list) else None


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    try:
        write_atomic(path, orjson.dumps(data))
    except OSError:
        pass  # a read-only home only costs a request next time


def apply_listings(catalog: Catalog, listings: dict[str, list[dict[str, Any]]]) -> Catalog:
    """Mark listed models available, add new ones, mark the provider's unlisted ones unavailable."""
    from r42.catalog.estimate import Estimator
    from r42.catalog.sync import Stamp, _Index, new_entry

    models = {m.id: m for m in catalog.models}
    estimator: Estimator | None = None
    for pid, entries in listings.items():
        mine = {m.id: {"aliases": list(m.aliases)} for m in catalog.models if m.provider == pid}
        index = _Index(pid, mine)
        listed = set()
        for entry in entries:
            target = index.match(entry)
            if target is not None:
                models[target] = _refresh(models[target], entry)
            else:
                estimator = estimator or Estimator(catalog.models)
                raw = new_entry(entry, None, estimator, Stamp(f"{pid} server (discovered)", time.strftime("%Y-%m-%d")))
                target = raw["id"]
                models[target] = _model(raw)
            listed.add(target)
        for mid in mine:
            if mid not in listed:
                models[mid] = replace(models[mid], available=False)
    return Catalog(catalog.providers, tuple(models[mid] for mid in sorted(models)), catalog.generated, catalog.files)


def _refresh(model: Model, entry: dict[str, Any]) -> Model:
    """A known model the server has: available, with the server's context and capabilities when stated."""
    caps = {
        k: v
        for k, v in entry.get("capabilities", {}).items()
        if k in ("tools", "vision", "reasoning") and isinstance(v, bool)
    }
    return replace(model, available=True, context=entry.get("context") or model.context, **caps)
