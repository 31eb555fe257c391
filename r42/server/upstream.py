"""How the gateway's executors reach upstreams on worker threads.

The executor opens an adapter per attempt. The SDK adapters (Anthropic, Gemini, Ollama) build an
HTTP client with it, which costs ~1 ms and a TCP handshake on every request, so the gateway gives
its executors an `opener` that keeps one adapter per endpoint alive and its connections reused.
(OpenAI-compatible adapters are cheap either way: their connections live in r42.providers.http11.)
"""

from __future__ import annotations

import threading
from typing import Any

from r42.providers import Adapter, Endpoint, open_adapter

_adapters: dict[Endpoint, Adapter] = {}
_lock = threading.Lock()
MAX_POOLED = 64  # endpoints differ in read timeout only when a deadline binds: do not hoard those


class _Kept:
    """An adapter shared between requests: `close()` (called after each attempt) keeps it open."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.endpoint = adapter.endpoint

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.adapter.complete(request)

    def stream(self, request: dict[str, Any]):  # noqa: ANN201
        return self.adapter.stream(request)

    def close(self) -> None:
        pass


def pooled_open(endpoint: Endpoint) -> Adapter:
    with _lock:
        adapter = _adapters.get(endpoint)
        if adapter is None:
            if len(_adapters) >= MAX_POOLED:
                return open_adapter(endpoint)  # closed after its attempt, as without a pool
            adapter = _adapters[endpoint] = open_adapter(endpoint)
    return _Kept(adapter)


def close_all() -> None:
    with _lock:
        adapters = list(_adapters.values())
        _adapters.clear()
    for adapter in adapters:
        adapter.close()
