"""Every test runs with its own R42_HOME and cache, and without any provider credential."""

from __future__ import annotations

import os

import pytest

PROVIDER_ENV_MARKERS = ("_API_KEY", "_BASE_URL", "_TOKEN", "OLLAMA_HOST", "R42_")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    for name in list(os.environ):
        if any(marker in name for marker in PROVIDER_ENV_MARKERS):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "r42home"
    monkeypatch.setenv("R42_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # Local servers on their default ports must not leak into tests: point them at a closed port.
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("R42_LMSTUDIO_BASE_URL", "http://127.0.0.1:9/v1")
    yield home


@pytest.fixture(scope="session")
def catalog_cache(tmp_path_factory):
    """The merged catalog's JSON cache, built once for the session: a test copies it into its own
    R42_HOME/cache instead of parsing the catalog's YAML again."""
    from r42.catalog import load_catalog

    home = tmp_path_factory.mktemp("catalog-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("R42_HOME", str(home))
        load_catalog()
    return home / "cache"
