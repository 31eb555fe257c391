"""`r42 catalog list | show | path | validate`."""

from __future__ import annotations

import io

import orjson
import pytest
from click.testing import CliRunner

from r42.cli import cli
from r42.terminal import Terminal
from tests.helpers import json_lines, run


def models(*args: str) -> list[dict]:
    result = run(["catalog", "list", *args])
    assert result.exit_code == 0, result.output
    return json_lines(result.stdout)


def on_terminal(*args: str):
    out, err = io.BytesIO(), io.StringIO()
    result = CliRunner().invoke(
        cli, list(args), obj=Terminal(stdout=out, stderr=err, stdout_isatty=True), catch_exceptions=False
    )
    return result.exit_code, out.getvalue().decode(), err.getvalue()


def test_list_in_a_pipe_is_one_json_object_per_model():
    records = models()
    assert len(records) > 1000
    first = records[0]
    assert set(first) >= {"id", "provider", "price", "context", "capabilities", "local", "available", "quality"}
    assert first["price"]["unit"] == "USD per 1M tokens"
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)


def test_list_filters_combine():
    records = models("--provider", "anthropic", "--capability", "vision", "--capability", "tools", "--max-price", "5")
    assert records and all(r["provider"] == "anthropic" for r in records)
    assert all(r["capabilities"]["vision"] and r["capabilities"]["tools"] for r in records)
    assert all(r["price"]["input"] <= 5 and r["price"]["output"] <= 5 for r in records)


def test_list_local_and_cloud():
    local = models("--local")
    assert local and all(r["local"] for r in local)
    assert {r["provider"] for r in local} >= {"ollama", "lmstudio"}
    assert not any(r["local"] for r in models("--cloud", "--provider", "openai"))


@pytest.mark.parametrize("arg", ["code=0.6", "0.6"])
def test_list_min_quality(arg):
    domain = arg.split("=")[0] if "=" in arg else "overall"
    records = models("--min-quality", arg)
    assert records and all(r["quality"][domain] >= 0.6 for r in records)
    assert len(records) < len(models())


def test_list_min_quality_rejects_bad_values():
    for bad in ("poetry=0.5", "code=2", "code=high"):
        result = run(["catalog", "list", "--min-quality", bad])
        assert result.exit_code == 2, bad


def test_list_sorts_by_quality_and_price():
    quality = [r["quality"]["overall"] for r in models("--provider", "openai", "--sort", "quality")]
    assert quality == sorted(quality, reverse=True)
    prices = [
        r["price"]["output"]
        for r in models("--provider", "mistral", "--sort", "price")
        if r["price"]["output"] is not None
    ]
    assert prices == sorted(prices)


def test_list_on_a_terminal_is_a_table():
    code, out, _ = on_terminal("catalog", "list", "--provider", "deepseek")
    assert code == 0
    header = out.splitlines()[0]
    assert header.split()[:3] == ["model", "in", "$/1M"] and "tvjr" in header
    assert "deepseek/" in out and "models; tvjr = tools, vision, json, reasoning" in out
    code, out, _ = on_terminal("catalog", "list", "--provider", "deepseek", "--json")
    assert all(line.startswith("{") for line in out.splitlines())


def test_unavailable_models_are_hidden_unless_all(isolated_env):
    (isolated_env / "catalog.yaml").write_text("models:\n  - id: openai/gpt-4o\n    available: false\n")
    assert "openai/gpt-4o" not in {r["id"] for r in models("--provider", "openai")}
    assert next(r for r in models("--provider", "openai", "--all") if r["id"] == "openai/gpt-4o")["available"] is False


def test_list_configured_keeps_providers_r42_can_call(monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test")
    providers = {r["provider"] for r in models("--configured")}
    assert "deepseek" in providers and "openai" not in providers and "ollama" not in providers


def test_list_unknown_provider_is_a_usage_error():
    result = run(["catalog", "list", "--provider", "nosuch"])
    assert result.exit_code == 2 and "unknown provider 'nosuch'" in result.output


def test_no_match_is_an_empty_output_and_a_note():
    result = run(["catalog", "list", "--provider", "anthropic", "--local"])
    assert result.exit_code == 0 and result.stdout == "" and "no model matches" in result.stderr


def test_show_by_id_and_by_alias():
    by_id = json_lines(run(["catalog", "show", "anthropic/claude-3-5-haiku-20241022"]).stdout)[0]
    by_alias = json_lines(run(["catalog", "show", "claude-3-5-haiku-20241022"]).stdout)[0]
    assert by_id == by_alias and by_id["price"]["input"] == 0.8
    assert by_id["quality"]["method"].startswith("measured:")


def test_show_on_a_terminal_and_an_unknown_model():
    code, out, _ = on_terminal("catalog", "show", "openai/gpt-4o")
    assert code == 0 and out.startswith("openai/gpt-4o  (") and "quality " in out and "per 1M tokens" in out
    result = run(["catalog", "show", "openai/gpt-4oo"])
    assert result.exit_code == 2 and "did you mean openai/gpt-4o" in result.output


def test_path_lists_the_files_in_load_order(isolated_env, tmp_path, monkeypatch):
    extra = tmp_path / "team.yaml"
    extra.write_text("models: []\n")
    monkeypatch.setenv("R42_CATALOG", str(extra))
    records = json_lines(run(["catalog", "path"]).stdout)
    assert [r["layer"] for r in records] == ["shipped", "sync", "endpoints", "user", "setting"]
    assert records[1]["path"] == str(isolated_env / "catalog.sync.yaml") and records[1]["exists"] is False
    assert records[4] == {"layer": "setting", "path": str(extra), "exists": True}
    code, out, _ = on_terminal("catalog", "path")
    assert "(not there)" in out and out.splitlines()[0].startswith("shipped")


def test_later_layers_win(isolated_env, tmp_path, monkeypatch):
    (isolated_env / "catalog.sync.yaml").write_text(
        "models:\n  - id: openai/gpt-4o\n    context: 1000\n    max_output: 500\n"
    )
    (isolated_env / "catalog.yaml").write_text("models:\n  - id: openai/gpt-4o\n    context: 2000\n")
    record = json_lines(run(["catalog", "show", "openai/gpt-4o"]).stdout)[0]
    assert (record["context"], record["max_output"]) == (2000, 500)
    extra = tmp_path / "team.yaml"
    extra.write_text("models:\n  - id: openai/gpt-4o\n    context: 3000\n")
    monkeypatch.setenv("R42_CATALOG", str(extra))
    assert json_lines(run(["catalog", "show", "openai/gpt-4o"]).stdout)[0]["context"] == 3000


def test_validate_a_good_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - id: openai/gpt-4o\n    price: {input: 2.0}\n")
    result = run(["catalog", "validate", str(good)])
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == {"file": str(good), "ok": True, "models": 1, "providers": 0}


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "models:\n  - id: openai/gpt-4o\n    price:\n      input: -1\n",
            4,
            "models[0].price.input: must be a number >= 0",
        ),
        ("models:\n  - id: openai/brand-new\n    context: 8000\n", 2, "models[0].price: is required"),
        ("models:\n  - id: nosuch/model\n", 2, "models[0].id: unknown provider 'nosuch'"),
        ("models: [\n", None, "invalid YAML"),
    ],
)
def test_validate_names_file_line_and_field(tmp_path, text, line, problem):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = run(["catalog", "validate", str(bad)])
    assert result.exit_code == 6
    assert result.stdout == ""
    where = f"{bad}:{line}: " if line else f"{bad}:"
    assert result.stderr.startswith(f"r42: error: {where}") and problem in result.stderr


def test_validate_a_missing_file_exits_6(tmp_path):
    result = run(["catalog", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 6 and "no such file" in result.stderr


def test_catalog_help_lists_the_subcommands():
    result = run(["catalog", "--help"])
    assert result.exit_code == 0
    for name in ("list", "show", "path", "validate", "sync"):
        assert f"  {name}" in result.stdout
