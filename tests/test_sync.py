"""`r42 catalog sync` against loopback servers that speak each provider's listing API."""

from __future__ import annotations

import io

import orjson
import pytest
import yaml
from click.testing import CliRunner

from r42.catalog import load_catalog
from r42.catalog.sync import loose_key
from r42.cli import cli
from r42.terminal import Terminal
from tests.fakes import faults
from tests.fakes.listing import (
    ListingFake,
    anthropic_model,
    gemini_model,
    lmstudio_model,
    ollama_show,
    ollama_tag,
    openai_model,
    openrouter_model,
)


def sync(*args: str, stderr_tty: bool = False):
    """Run `r42 catalog sync ARGS`; returns (exit code, summary dict, stderr text)."""
    out, err = io.BytesIO(), io.StringIO()
    term = Terminal(stdin=io.BytesIO(), stdout=out, stderr=err, stdout_isatty=False)
    result = CliRunner().invoke(cli, ["catalog", "sync", *args], obj=term, catch_exceptions=False)
    summary = orjson.loads(out.getvalue()) if out.getvalue() else None
    return result.exit_code, summary, err.getvalue() + result.output


def layer(home) -> dict:
    return yaml.safe_load((home / "catalog.sync.yaml").read_text())


def by_id(cat, model_id):
    return next(m for m in cat.models if m.id == model_id)


@pytest.fixture
def openai_fake(monkeypatch):
    models = [
        openai_model("gpt-4o"),
        openai_model("gpt-4o-mini"),
        openai_model("gpt-9-turbo-preview"),
        openai_model("text-embedding-3-small"),
        openai_model("whisper-1"),
        openai_model("dall-e-3"),
    ]
    with ListingFake("openai", models, api_key="sk-test") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


def test_openai_sync_adds_new_models_marks_unlisted_unavailable_and_keeps_the_rest(openai_fake, isolated_env):
    before = load_catalog()  # warms the cache: the sync layer must invalidate it
    assert by_id(before, "openai/gpt-4-turbo").available
    code, summary, _ = sync("openai")
    assert code == 0, summary
    assert openai_fake.requests[0].headers["authorization"] == "Bearer sk-test"
    assert summary["added"] == ["openai/gpt-9-turbo-preview"]  # embeddings, whisper and dall-e are not chat models
    assert "openai/gpt-4-turbo" in summary["unavailable"]
    assert "openai/gpt-4o" not in summary["unavailable"] and "openai/gpt-4o-mini" not in summary["unavailable"]
    assert summary["providers"]["openai"]["listed"] == 3
    assert summary["failed"] == []

    after = load_catalog()
    assert str(isolated_env / "catalog.sync.yaml") in after.files
    new = by_id(after, "openai/gpt-9-turbo-preview")
    assert new.quality_estimated and new.quality_method.startswith("estimate: median overall of")
    assert new.price_input is None  # OpenAI's listing has no prices: unknown, never 0
    assert not by_id(after, "openai/gpt-4-turbo").available
    assert by_id(after, "openai/gpt-4o").available
    assert not (isolated_env / "catalog.yaml").exists()  # the user's file is never written
    assert [p.name for p in isolated_env.iterdir() if p.name.endswith(".tmp")] == []


def test_a_second_sync_with_the_same_listing_changes_nothing(openai_fake):
    assert sync("openai")[0] == 0
    code, summary, _ = sync("openai")
    assert code == 0
    assert (summary["added"], summary["changed"], summary["unavailable"]) == ([], [], [])


def test_dry_run_reports_the_same_diff_and_writes_nothing(openai_fake, isolated_env):
    code, dry, _ = sync("openai", "--dry-run")
    assert code == 0 and dry["dry_run"] is True
    assert not (isolated_env / "catalog.sync.yaml").exists()
    _, real, _ = sync("openai")
    assert (dry["added"], dry["unavailable"]) == (real["added"], real["unavailable"])


def test_a_model_listed_again_becomes_available(openai_fake):
    sync("openai")
    openai_fake.models.append(openai_model("gpt-4-turbo"))
    _, summary, _ = sync("openai")
    assert {"id": "openai/gpt-4-turbo", "fields": {"available": [False, True]}} in summary["changed"]
    assert by_id(load_catalog(), "openai/gpt-4-turbo").available


def test_user_edits_win_over_a_sync(monkeypatch, isolated_env):
    isolated_env.mkdir(parents=True, exist_ok=True)
    user_file = isolated_env / "catalog.yaml"
    user_file.write_text("models:\n  - id: groq/llama-3.1-8b-instant\n    context: 4096\n")
    original = user_file.read_bytes()
    models = [
        openai_model("llama-3.1-8b-instant", context_window=65536, max_completion_tokens=8192, active=True),
        openai_model("llama-guard-4-12b", active=True),
        openai_model("old-model-x", active=False),
    ]
    with ListingFake("openai", models, api_key="gsk") as server:
        monkeypatch.setenv("GROQ_API_KEY", "gsk")
        monkeypatch.setenv("R42_GROQ_BASE_URL", server.base_url)
        code, summary, _ = sync("groq")
    assert code == 0
    change = next(c for c in summary["changed"] if c["id"] == "groq/llama-3.1-8b-instant")
    assert change["fields"]["context"] == [131072, 65536] and change["fields"]["max_output"] == [131072, 8192]
    assert {"id": "groq/llama-3.1-8b-instant", "fields": ["context"]} in summary["kept_user_edits"]
    assert summary["added"] == []  # the guard model is filtered, the inactive one skipped
    model = by_id(load_catalog(), "groq/llama-3.1-8b-instant")
    assert model.context == 4096  # the user's value
    assert model.max_output == 8192  # the sync's value where the user set nothing
    assert user_file.read_bytes() == original


def test_anthropic_pages_with_after_id_and_sends_its_headers(monkeypatch):
    models = [
        anthropic_model("claude-opus-4-7", context=1000000, max_tokens=128000),
        anthropic_model("claude-sonnet-4-5"),
        anthropic_model("claude-haiku-4-5"),
        anthropic_model("claude-opus-9-20270101", display="Claude Opus 9"),
    ]
    with ListingFake("anthropic", models, api_key="sk-ant", page_size=1) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        code, summary, _ = sync("anthropic")
        requests = list(server.requests)
    assert code == 0, summary
    assert len(requests) == 4
    assert "after_id=claude-opus-4-7" in requests[1].path and "after_id=claude-haiku-4-5" in requests[3].path
    assert all(r.headers["x-api-key"] == "sk-ant" and r.headers["anthropic-version"] for r in requests)
    assert summary["added"] == ["anthropic/claude-opus-9-20270101"]
    assert "anthropic/claude-3-opus-20240229" in summary["unavailable"]
    new = by_id(load_catalog(), "anthropic/claude-opus-9-20270101")
    assert new.name == "Claude Opus 9" and new.tools and new.vision and new.reasoning and new.context == 200000
    assert new.quality_estimated


def test_gemini_follows_page_tokens_and_keeps_only_generate_content_models(monkeypatch):
    models = [
        gemini_model("gemini-2.5-pro"),
        gemini_model("text-embedding-004", methods=("embedContent",)),
        gemini_model("gemini-2.5-flash"),
        gemini_model("gemini-4-ultra", context=2097152),
    ]
    with ListingFake("gemini", models, api_key="AIza-test", page_size=2) as server:
        monkeypatch.setenv("GEMINI_API_KEY", "AIza-test")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        code, summary, _ = sync("gemini")
        requests = list(server.requests)
    assert code == 0, summary
    assert len(requests) == 2 and "pageToken=2" in requests[1].path
    assert all(r.headers["x-goog-api-key"] == "AIza-test" for r in requests)
    assert summary["added"] == ["gemini/gemini-4-ultra"]
    assert by_id(load_catalog(), "gemini/gemini-4-ultra").context == 2097152


def test_openrouter_prices_change_with_source_and_date(monkeypatch, isolated_env):
    models = [
        openrouter_model("deepseek/deepseek-v4-flash", "0.0000002", "0.0000004", params=("tools", "reasoning")),
        openrouter_model("newlab/brand-new-70b", "0.0000009", "0.0000009"),
        openrouter_model("openrouter/auto", "-1", "-1"),
    ]
    with ListingFake("openrouter", models, api_key="sk-or") as server:
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or")
        monkeypatch.setenv("R42_OPENROUTER_BASE_URL", server.base_url)
        code, summary, _ = sync("openrouter")
    assert code == 0, summary
    change = next(c for c in summary["changed"] if c["id"] == "openrouter/deepseek/deepseek-v4-flash")
    assert change["fields"]["price.input"] == [0.126, 0.2] and change["fields"]["price.output"] == [0.252, 0.4]
    assert change["fields"]["capabilities.json"] == [True, False]
    entry = next(m for m in layer(isolated_env)["models"] if m["id"] == "openrouter/deepseek/deepseek-v4-flash")
    assert entry["price"] == {
        "input": 0.2,
        "output": 0.4,
        "source": "openrouter API (/models)",
        "date": summary["date"],
    }
    assert entry["synced"]["fields"] == ["capabilities", "price"]
    new = by_id(load_catalog(), "openrouter/newlab/brand-new-70b")
    assert (new.price_input, new.price_output) == (0.9, 0.9)
    assert new.quality_estimated and "log10(blended USD/1M)" in new.quality_method
    auto = by_id(load_catalog(), "openrouter/openrouter/auto")
    assert auto.price_input is None  # a negative price means "varies": unknown


def test_xai_prices_in_cents_per_100m_tokens(monkeypatch):
    with ListingFake("xai", api_key="xai-key") as server:  # the example record: grok-3 at 30000 / 150000
        monkeypatch.setenv("XAI_API_KEY", "xai-key")
        monkeypatch.setenv("R42_XAI_BASE_URL", server.base_url)
        code, summary, _ = sync("xai", "--dry-run")
    assert code == 0
    assert summary["providers"]["xai"]["listed"] == 1
    assert not any(
        c["id"] == "xai/grok-3" and "price.input" in c["fields"] for c in summary["changed"]
    )  # $3 / $15, as shipped


def test_ollama_tags_and_show(monkeypatch):
    tags = [
        ollama_tag("qwen2.5:7b"),
        ollama_tag("wizard-unknown:13b", "13B", "llama"),
        ollama_tag("nomic-embed-text:latest", "137M", "nomic-bert"),
    ]
    shows = {
        "qwen2.5:7b": ollama_show(context=32768),
        "wizard-unknown:13b": ollama_show("llama", 8192, ("completion", "vision")),
        "nomic-embed-text:latest": ollama_show("nomic-bert", 2048, ("embedding",)),
    }
    with ListingFake("ollama", tags, shows=shows) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url.removeprefix("http://"))
        code, summary, _ = sync("ollama")
        assert server.paths().count("/api/show") == 3
    assert code == 0, summary
    assert summary["added"] == ["ollama/wizard-unknown:13b"]
    assert "ollama/llama3.2:3b" in summary["unavailable"]  # not pulled on this server
    new = by_id(load_catalog(), "ollama/wizard-unknown:13b")
    assert new.local and new.price_input == 0.0 and new.context == 8192 and new.vision and not new.tools
    assert new.quality_estimated and "13B" in new.quality_method


def test_lmstudio_rich_listing_then_openai_compatible_fallback(monkeypatch):
    models = [
        lmstudio_model("qwen2.5-7b-instruct"),
        lmstudio_model("qwen2-vl-7b-instruct", "vlm"),
        lmstudio_model("text-embedding-nomic", "embeddings"),
    ]
    with ListingFake("lmstudio", models) as server:
        monkeypatch.setenv("R42_LMSTUDIO_BASE_URL", server.base_url)
        code, summary, _ = sync("lmstudio", "--dry-run")
    assert code == 0
    assert summary["added"] == ["lmstudio/qwen2-vl-7b-instruct"]
    with ListingFake("lmstudio", models[:2], v0=False) as server:
        monkeypatch.setenv("R42_LMSTUDIO_BASE_URL", server.base_url)
        code, summary, _ = sync("lmstudio")
        assert server.paths() == ["/api/v0/models", "/v1/models"]
    assert code == 0 and summary["added"] == ["lmstudio/qwen2-vl-7b-instruct"]
    joined = by_id(load_catalog(), "lmstudio/qwen2-vl-7b-instruct")
    assert joined.quality_method.startswith("joined from") or joined.quality_estimated


def test_one_failing_provider_is_reported_and_the_others_still_apply(openai_fake, monkeypatch, isolated_env):
    with ListingFake("anthropic", [anthropic_model("claude-sonnet-4-5")], api_key="right-key") as bad:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", bad.url)
        code, summary, _ = sync("openai", "anthropic")
    assert code == 1
    assert summary["failed"] == [
        {
            "provider": "anthropic",
            "error": "HTTP 401: invalid x-api-key (check the key: ANTHROPIC_API_KEY or `r42 keys set anthropic`)",
        }
    ]
    assert "openai/gpt-9-turbo-preview" in summary["added"]
    assert not any(m.startswith("anthropic/") for m in summary["unavailable"])
    assert {m["id"].split("/")[0] for m in layer(isolated_env)["models"]} == {"openai"}


def test_without_names_every_configured_provider_is_synced(openai_fake):
    code, summary, _ = sync()
    assert code == 0
    assert list(summary["providers"]) == ["openai"]  # no other key set, local servers closed


def test_429_with_a_short_retry_after_is_retried_once(openai_fake):
    openai_fake.fail(faults.rate_limited(retry_after=0.01))
    code, summary, _ = sync("openai", "--dry-run")
    assert code == 0 and summary["providers"]["openai"]["listed"] == 3
    assert len(openai_fake.requests) == 2


def test_429_that_persists_is_a_failure(openai_fake):
    openai_fake.fail(faults.rate_limited(retry_after=0.01), faults.rate_limited(retry_after=0.01))
    code, summary, _ = sync("openai")
    assert code == 1
    assert summary["failed"][0]["error"].startswith("HTTP 429: Rate limit reached for requests (rate limited")


def test_429_with_a_long_retry_after_is_not_waited_out(openai_fake):
    openai_fake.fail(faults.rate_limited(retry_after=3600))
    code, summary, _ = sync("openai")
    assert code == 1 and len(openai_fake.requests) == 1


def test_a_slow_provider_times_out(openai_fake):
    openai_fake.fail(faults.slow_first_byte(30))
    code, summary, _ = sync("openai", "--timeout", "0.2")
    assert code == 1
    assert summary["failed"][0]["error"].startswith("timed out after 0.2s")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (faults.malformed_json(), "malformed response from"),
        (
            faults.status(200, body={"object": "list", "data": "not a list"}),
            "malformed response: expected a list under 'data'",
        ),
        (faults.status(200, body={"object": "list", "data": []}), "the listing holds no chat model"),
    ],
)
def test_malformed_or_empty_listings_fail_without_marking_anything(openai_fake, isolated_env, fault, message):
    openai_fake.fail(fault)
    code, summary, _ = sync("openai")
    assert code == 1
    assert message in summary["failed"][0]["error"]
    assert summary["unavailable"] == [] and not (isolated_env / "catalog.sync.yaml").exists()


def test_gemini_bad_key_reports_googles_message(monkeypatch):
    with ListingFake("gemini", api_key="good") as server:
        monkeypatch.setenv("GEMINI_API_KEY", "bad")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        code, summary, _ = sync("gemini")
    assert code == 1 and summary["failed"][0]["error"] == "HTTP 400: API key not valid. Please pass a valid API key."


def test_named_providers_that_cannot_be_synced_are_reported(monkeypatch):
    code, summary, _ = sync("mistral", "perplexity", "ollama")
    assert code == 1
    reasons = {f["provider"]: f["error"] for f in summary["failed"]}
    assert reasons["mistral"] == "no credential (set MISTRAL_API_KEY or run `r42 keys set mistral`)"
    assert reasons["perplexity"] == "Perplexity has no model-listing API"
    assert reasons["ollama"].startswith("server not reachable at http://127.0.0.1:9")


def test_nothing_to_sync_exits_4_and_an_unknown_provider_exits_2():
    assert sync()[0] == 4
    code, summary, output = sync("nosuch")
    assert code == 2 and summary is None and "unknown provider 'nosuch'" in output


def test_progress_goes_to_stderr_only(openai_fake):
    code, summary, err = sync("openai", "--progress", "--dry-run")
    assert code == 0 and summary["dry_run"]
    assert "r42: openai: 3 models" in err and "1 added" in err


def test_the_written_layer_validates(openai_fake, isolated_env):
    sync("openai")
    result = CliRunner().invoke(
        cli, ["catalog", "validate", str(isolated_env / "catalog.sync.yaml"), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0 and orjson.loads(result.output)["ok"] is True


def test_loose_key_matches_snapshots_and_latest():
    assert loose_key("anthropic/claude-3-5-haiku-20241022", "anthropic") == loose_key(
        "claude-3-5-haiku-latest", "anthropic"
    )
    assert loose_key("models/gemini-2.5-pro", "gemini") == "gemini-2.5-pro"
    assert loose_key("llama3.2:latest", "ollama") == "llama3.2"
    assert loose_key("gpt-4o", "openai") != loose_key("gpt-4o-mini", "openai")


@pytest.mark.cold_home
def test_a_cold_load_writes_the_cache_that_the_next_load_reads(isolated_env):
    """Every other test starts with the shipped catalog's cache seeded: this one starts cold."""
    assert not isolated_env.exists()
    first = load_catalog()
    [cached] = (isolated_env / "cache").glob("catalog-*.json")
    assert load_catalog().models == first.models and len(first.models) > 100
    assert [p.name for p in (isolated_env / "cache").glob("catalog-*.json")] == [cached.name]
