"""Local model discovery at rank time (Ollama, LM Studio), and the quality priors it uses."""

from __future__ import annotations

import pytest

from r42.catalog import load_catalog
from r42.catalog.discovery import cache_path, discover
from r42.catalog.estimate import Estimator, norm_key, param_billions, parse_size
from r42.config import load_settings
from r42.routing import Router
from tests.fakes import faults
from tests.fakes.listing import ListingFake, lmstudio_model, ollama_show, ollama_tag
from tests.helpers import json_lines, run


@pytest.fixture
def ollama(monkeypatch):
    tags = [ollama_tag("qwen2.5:7b"), ollama_tag("freshmodel:14b", "14.8B", "qwen2")]
    shows = {
        "qwen2.5:7b": ollama_show(context=32768, capabilities=("completion", "tools")),
        "freshmodel:14b": ollama_show(context=65536, capabilities=("completion", "tools", "thinking")),
    }
    with ListingFake("ollama", tags, shows=shows) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url.removeprefix("http://"))
        yield server


def by_id(cat, model_id):
    return next(m for m in cat.models if m.id == model_id)


def test_router_sees_pulled_models_and_only_those(ollama):
    catalog = Router.from_settings(load_settings()).catalog
    fresh = by_id(catalog, "ollama/freshmodel:14b")
    assert fresh.local and fresh.price_input == 0.0 and fresh.price_output == 0.0
    assert fresh.context == 65536 and fresh.tools and fresh.reasoning
    assert fresh.quality_estimated and "14.8B" in fresh.quality_method
    assert by_id(catalog, "ollama/qwen2.5:7b").available
    assert not by_id(catalog, "ollama/llama3.2:3b").available  # in the catalog, not pulled here
    assert by_id(catalog, "lmstudio/qwen2.5-7b-instruct").available  # LM Studio is not running: untouched


def test_rank_offers_a_freshly_pulled_model(ollama):
    result = run(["rank", "--mode", "local", "--all", "--json"], input="Say hello")
    assert result.exit_code == 0, result.output
    models = [c["model"] for c in json_lines(result.stdout)[0]["ranking"]["candidates"]]
    assert "ollama/freshmodel:14b" in models and "ollama/qwen2.5:7b" in models
    assert not any(m.startswith("ollama/") and m not in ("ollama/freshmodel:14b", "ollama/qwen2.5:7b") for m in models)


def test_the_listing_is_cached_then_refreshed(ollama):
    catalog = load_catalog()
    discover(catalog, ttl=60)
    asked = len(ollama.requests)
    assert asked == 3  # /api/tags and one /api/show per model
    discover(catalog, ttl=60)
    assert len(ollama.requests) == asked  # from R42_HOME/cache
    ollama.models.append(ollama_tag("justpulled:3b", "3.2B", "llama"))
    ollama.shows["justpulled:3b"] = ollama_show("llama", 131072)
    assert not any(m.id == "ollama/justpulled:3b" for m in discover(catalog, ttl=60).models)
    refreshed = discover(catalog, ttl=0)  # ttl 0: ask every time
    assert by_id(refreshed, "ollama/justpulled:3b").context == 131072
    assert len(ollama.requests) > asked


def test_a_cache_for_another_server_address_is_not_used(ollama, monkeypatch):
    catalog = load_catalog()
    discover(catalog, ttl=60)
    assert cache_path("ollama").exists()
    with ListingFake("ollama", [ollama_tag("other:7b")], shows={"other:7b": ollama_show()}) as other:
        monkeypatch.setenv("OLLAMA_HOST", other.url)
        found = discover(catalog, ttl=60)
    assert by_id(found, "ollama/other:7b").available
    assert not by_id(found, "ollama/qwen2.5:7b").available


def test_no_server_leaves_the_catalog_alone_and_writes_no_cache():
    catalog = load_catalog()
    assert discover(catalog) is catalog
    assert not cache_path("ollama").exists() and not cache_path("lmstudio").exists()


def test_a_server_that_errors_changes_nothing(ollama):
    ollama.fail(faults.status(500))
    catalog = load_catalog()
    assert discover(catalog, ttl=60) is catalog
    assert not cache_path("ollama").exists()


def test_discovery_can_be_switched_off(ollama, monkeypatch):
    monkeypatch.setenv("R42_LOCAL_DISCOVERY", "0")
    catalog = Router.from_settings(load_settings()).catalog
    assert not any(m.id == "ollama/freshmodel:14b" for m in catalog.models)
    assert ollama.requests == []


def test_an_ollama_server_with_nothing_pulled_makes_its_catalog_models_unavailable(monkeypatch):
    with ListingFake("ollama", []) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        catalog = discover(load_catalog(), ttl=0)
    assert not any(m.available for m in catalog.models if m.provider == "ollama")


def test_lmstudio_discovery(monkeypatch):
    models = [
        lmstudio_model("qwen2.5-7b-instruct"),
        lmstudio_model("mystery-vision-9b", "vlm", 8192),
        lmstudio_model("nomic-embed", "embeddings"),
    ]
    with ListingFake("lmstudio", models) as server:
        monkeypatch.setenv("R42_LMSTUDIO_BASE_URL", server.base_url)
        catalog = discover(load_catalog(), ttl=0)
    new = by_id(catalog, "lmstudio/mystery-vision-9b")
    assert new.vision and new.local and new.context == 8192 and new.quality_estimated
    assert by_id(catalog, "lmstudio/qwen2.5-7b-instruct").available
    assert not by_id(catalog, "lmstudio/phi-4").available
    assert not any("nomic" in m.id for m in catalog.models if m.provider == "lmstudio")


# --- quality priors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [("qwen2.5:7b", 7), ("llama-3.3-70b-instruct", 70), ("mixtral-8x7b", 56), ("qwen3-30b-a3b", 30), ("phi-4", None)],
)
def test_param_billions(name, size):
    assert param_billions(name) == size


@pytest.mark.parametrize(("text", "size"), [("27.8B", 27.8), ("135M", 0.135), ("9B", 9.0), ("", None), ("big", None)])
def test_parse_size(text, size):
    assert parse_size(text) == pytest.approx(size) if size else parse_size(text) is None


def test_norm_key_joins_tags_quantisations_and_snapshots():
    assert norm_key("ollama/qwen2.5:7b-instruct-q4_K_M") == norm_key("lmstudio/qwen2.5-7b-instruct") == "qwen2.5-7b"
    assert norm_key("llama3.2:latest") == norm_key("llama-3.2")
    assert norm_key("gpt-4o-2024-08-06") == norm_key("gpt-4o") != norm_key("gpt-4o-mini")


def test_estimates_are_marked_and_joined_quality_names_its_source():
    estimator = Estimator(load_catalog().models)
    joined = estimator.quality("ollama/qwen2.5:7b-instruct-q4_K_M", "ollama", local=True)
    assert joined["method"].startswith("joined from ollama/qwen2.5:7b")
    sized = estimator.quality("ollama/unheard-of:70b", "ollama", local=True)
    small = estimator.quality("ollama/unheard-of:1b", "ollama", local=True)
    assert sized["estimated"] is True and small["estimated"] is True
    assert sized["overall"] > small["overall"]
    assert "log10(params in B, 70B)" in sized["method"]
    fallback = estimator.quality("zai/no-size-no-price", "nosuchprovider")
    assert fallback["estimated"] is True and "25th percentile" in fallback["method"]
    assert all(0 <= fallback[d] <= 1 for d in ("overall", "code", "math", "chat"))
