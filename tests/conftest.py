"""Every test runs with its own R42_HOME and cache, and without any provider credential.

R42_HOME starts with the shipped catalog's cache in it (see isolated_env); a test marked
`cold_home` gets an R42_HOME that does not exist yet."""

from __future__ import annotations

import os

import pytest

from tests.fakes.listing import seed_catalog_cache

PROVIDER_ENV_MARKERS = ("_API_KEY", "_BASE_URL", "_TOKEN", "OLLAMA_HOST", "R42_")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, request):
    for name in list(os.environ):
        if any(marker in name for marker in PROVIDER_ENV_MARKERS):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "r42home"
    monkeypatch.setenv("R42_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # Local servers on their default ports must not leak into tests: point them at a closed port.
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("R42_LMSTUDIO_BASE_URL", "http://127.0.0.1:9/v1")
    if request.node.get_closest_marker("cold_home") is None:
        # The shipped catalog's merge, parsed once per session: a cold load parses 2-3 MB of YAML
        # (~3 s here) and most tests load the catalog. `cold_home` tests start from nothing.
        home.mkdir(mode=0o700)
        seed_catalog_cache(home)
    from r42 import store

    store.close_thread_connection()  # a connection opened by an earlier test is to its own store
    yield home
    store.close_thread_connection()


@pytest.fixture(scope="session")
def postgres_server_url():
    """One PostgreSQL server per pytest-xdist worker (a session fixture runs once per worker)."""
    from tests.services import postgres_server

    yield from postgres_server()


@pytest.fixture
def pg_url(postgres_server_url, request, monkeypatch):
    """A new, empty database for this test; R42_DATABASE_URL points the store at it."""
    import hashlib

    from tests.services import drop_database, fresh_database

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"t_{worker}_{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]}"
    url = fresh_database(postgres_server_url, name)
    monkeypatch.setenv("R42_DATABASE_URL", url)
    yield url
    from r42.store.postgres import close_stores

    close_stores()
    drop_database(postgres_server_url, name)


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request):
    """Run a test on both stores: SQLite in R42_HOME, and PostgreSQL (a fresh database). A test
    marked `sqlite_file` (about the file itself) runs on SQLite only (see pytest_collection_modifyitems)."""
    if request.param == "postgres":
        request.getfixturevalue("pg_url")
    yield request.param


@pytest.fixture(autouse=True)
def whole_suite_on_postgres(request):
    """R42TEST_STORE=postgres runs every test on PostgreSQL (a fresh database each), not just the
    store tests that run on both."""
    if os.environ.get("R42TEST_STORE") == "postgres" and "store_backend" not in request.fixturenames:
        request.getfixturevalue("pg_url")


def pytest_collection_modifyitems(config, items):
    """A test about the SQLite file itself (marked `sqlite_file`) has no PostgreSQL variant: it is not
    collected for that store rather than collected and skipped."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("store_backend") == "postgres"
        (dropped if on_postgres and item.get_closest_marker("sqlite_file") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
