"""r42 rank: filters with counted reasons, modes, determinism, catalog merging."""

from __future__ import annotations

import random
import socket

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from r42.availability import Availability
from r42.catalog import Catalog, _build, load_catalog
from r42.config import DOMAINS, load_settings
from r42.errors import ExitCode
from r42.ranking import Constraints, rank
from r42.scoring import score_document
from tests.helpers import json_lines, run

PROVIDERS = {
    "cloudco": {
        "name": "CloudCo",
        "protocol": "openai",
        "base_url": "https://api.cloudco.test/v1",
        "key_env": ["CLOUDCO_API_KEY"],
        "local": False,
        "privacy": {"trains_on_api_data": True, "retention_days": 30},
    },
    "safeco": {
        "name": "SafeCo",
        "protocol": "openai",
        "base_url": "https://api.safeco.test/v1",
        "key_env": ["SAFECO_API_KEY"],
        "local": False,
        "privacy": {"trains_on_api_data": False, "retention_days": 0},
    },
    "ollama": {
        "name": "Ollama",
        "protocol": "ollama",
        "base_url": "http://127.0.0.1:11434",
        "key_env": [],
        "base_url_env": "OLLAMA_HOST",
        "local": True,
    },
}


def model(mid, q, price=(1.0, 4.0), context=128_000, tools=True, vision=False, json=True, local=False):
    return {
        "id": mid,
        "price": {"input": price[0], "output": price[1]} if price else {"input": None, "output": None},
        "context": context,
        "capabilities": {"tools": tools, "vision": vision, "json": json, "reasoning": False},
        "local": local,
        "quality": {"overall": q, **{d: q for d in DOMAINS}, "estimated": False, "method": "test"},
    }


MODELS = [
    model("cloudco/frontier", 0.9, price=(5.0, 25.0), vision=True),
    model("cloudco/mini", 0.55, price=(0.15, 0.6)),
    model("cloudco/tiny-context", 0.7, price=(0.5, 1.5), context=2_000),
    model("cloudco/unpriced", 0.6, price=None),
    model("safeco/private", 0.75, price=(2.0, 8.0)),
    model("ollama/llama3.2:3b", 0.35, price=(0, 0), tools=False, json=False, local=True),
]


def small_catalog(models=MODELS) -> Catalog:
    return _build({"providers": PROVIDERS, "models": {m["id"]: m for m in models}}, ("test",))


def all_available(provider):
    return Availability(True, "test")


def score_for(text, **doc):
    # Rank's behaviour is tested on the hand-built scorer's fixed scale; the trained scorer's is tested in its own file.
    settings = load_settings({"scorer": "heuristic", "simple_below": 0.35, "complex_from": 0.6})
    return score_document({"messages": [{"role": "user", "content": text}], **doc}, settings)


def ids(ranking):
    return [r.model.id for r in ranking.candidates]


def test_auto_sends_simple_prompts_local_and_hard_ones_to_the_strongest():
    catalog = small_catalog()
    simple = rank(catalog, score_for("hi"), Constraints(), all_available)
    assert ids(simple)[0] == "ollama/llama3.2:3b"
    hard = rank(
        catalog,
        score_for(
            "Design a distributed, lock-free concurrent queue in Rust, thread-safe for all edge cases, "
            "with a formal proof of linearizability and benchmarks. It must never allocate."
        ),
        Constraints(),
        all_available,
    )
    assert ids(hard)[0] == "cloudco/frontier"
    assert "ollama/llama3.2:3b" not in ids(hard)
    assert hard.excluded["quality below required"] >= 1


def test_modes_change_the_winner():
    catalog = small_catalog()
    s = score_for("Explain the difference between TCP and UDP")
    assert ids(rank(catalog, s, Constraints(mode="quality"), all_available))[0] == "cloudco/frontier"
    assert ids(rank(catalog, s, Constraints(mode="cost"), all_available))[0] in ("ollama/llama3.2:3b", "cloudco/mini")
    assert all(r.model.local for r in rank(catalog, s, Constraints(mode="local"), all_available).candidates)
    private = rank(catalog, s, Constraints(mode="privacy"), all_available)
    assert set(ids(private)) <= {"safeco/private", "ollama/llama3.2:3b"}
    assert private.excluded["privacy: provider may train on or keep data"] == 4


def test_needs_filter_with_counted_reasons():
    catalog = small_catalog()
    s = score_for("Describe this picture", tools=[{"type": "function", "function": {"name": "f"}}])
    s["needs"]["vision"] = True
    ranking = rank(catalog, s, Constraints(mode="quality"), all_available)
    assert ids(ranking) == ["cloudco/frontier"]
    assert ranking.excluded["no vision support"] >= 3
    long = score_for("x " * 5000)
    assert rank(catalog, long, Constraints(), all_available).excluded["context too small"] == 1


def test_sensitive_prompt_stays_local_unless_allowed():
    catalog = small_catalog()
    s = score_for("my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123, what is it for?")
    assert s["sensitive"] == ["api_key"]
    kept = rank(catalog, s, Constraints(), all_available)
    assert ids(kept) == ["ollama/llama3.2:3b"]
    assert kept.excluded["sensitive data: local models only"] == 5
    allowed = rank(catalog, s, Constraints(allow_cloud_sensitive=True), all_available)
    assert len(allowed.candidates) > 1


def test_unavailable_providers_are_excluded_by_reason(monkeypatch):
    from r42.availability import AvailabilityChecker

    catalog = small_catalog()
    s = score_for("What is the capital of France?")
    checker = AvailabilityChecker(probe_timeout=0.2)
    ranking = rank(catalog, s, Constraints(), checker.check)
    assert ranking.candidates == []
    assert ranking.excluded["no credential"] == 5
    assert ranking.excluded["local server not reachable"] == 1
    monkeypatch.setenv("CLOUDCO_API_KEY", "test-key")
    with socket.socket() as server:  # a real listening port stands in for a local Ollama
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.getsockname()[1]}")
        ranking = rank(catalog, s, Constraints(), AvailabilityChecker(probe_timeout=0.5).check)
    assert {m.split("/")[0] for m in ids(ranking)} == {"cloudco", "ollama"}
    assert ranking.excluded["no credential"] == 1  # safeco has no key


def test_max_cost_and_min_quality():
    catalog = small_catalog()
    s = score_for("Explain the difference between TCP and UDP")
    capped = rank(catalog, s, Constraints(mode="quality", max_cost=0.001), all_available)
    assert "cloudco/frontier" not in ids(capped) and capped.excluded["over max cost"] >= 1
    assert capped.excluded["price unknown (max cost set)"] == 1
    strict = rank(catalog, s, Constraints(min_quality=0.95), all_available)
    assert strict.candidates == [] and not strict.relaxed


def test_relaxed_when_no_model_is_good_enough():
    catalog = small_catalog([model("ollama/llama3.2:3b", 0.1, price=(0, 0), local=True)])
    ranking = rank(
        catalog,
        score_for("Prove the Riemann hypothesis rigorously, with a formal proof."),
        Constraints(),
        all_available,
    )
    assert ranking.relaxed and ids(ranking) == ["ollama/llama3.2:3b"]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    mode=st.sampled_from(["auto", "balanced", "quality", "speed", "cost", "coding"]),
    text=st.text(min_size=1, max_size=300),
)
def test_rank_is_stable_when_the_catalog_is_shuffled(seed, mode, text):
    shuffled = list(MODELS)
    random.Random(seed).shuffle(shuffled)
    s = score_for(text)
    first = rank(small_catalog(MODELS), s, Constraints(mode=mode), all_available)
    second = rank(
        _build({"providers": PROVIDERS, "models": {m["id"]: m for m in shuffled}}, ("t",)),
        s,
        Constraints(mode=mode),
        all_available,
    )
    assert ids(first) == ids(second)
    assert [r.score for r in first.candidates] == sorted((r.score for r in first.candidates), reverse=True)


# --- the command, on the shipped catalog ------------------------------------------------------


def test_shipped_catalog_loads_with_required_coverage():
    catalog = load_catalog()
    cloud = [m for m in catalog.models if not m.local]
    assert len(cloud) >= 300
    assert len({m.provider for m in cloud}) >= 12
    assert any(m.id.startswith("ollama/") for m in catalog.models) and any(
        m.id.startswith("lmstudio/") for m in catalog.models
    )


def test_rank_command_readme_pipe():
    scored = run(["score"], input="Prove that the square root of 2 is irrational")
    result = run(["rank", "--mode", "cost", "--include-unavailable"], input=scored.stdout)
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["score"] == orjson.loads(scored.stdout)["score"]  # trusted, not recomputed
    ranking = doc["ranking"]
    assert ranking["mode"] == "cost" and len(ranking["candidates"]) == 10
    first = ranking["candidates"][0]
    assert {"model", "score", "quality", "cost_usd", "latency_s", "local", "reasons"} <= set(first)
    assert first["reasons"] and ranking["more"] > 0


def test_rank_without_credentials_exits_3_but_writes_the_document():
    # --cloud: the built-in local model may be installed here; no cloud provider has a key.
    result = run(["rank", "--cloud"], input="What is the capital of France?")
    assert result.exit_code == ExitCode.NO_CANDIDATE
    doc = orjson.loads(result.stdout)
    assert doc["ranking"]["candidates"] == [] and doc["ranking"]["excluded"]["no credential"] > 300
    assert "no model satisfies" in result.stderr


def test_rank_with_a_key_uses_that_provider(monkeypatch):
    result = run(["rank", "--all"], input="Write a limerick about a cat", env={"ANTHROPIC_API_KEY": "sk-ant-test"})
    providers = {c["model"].split("/")[0] for c in orjson.loads(result.stdout)["ranking"]["candidates"]}
    assert providers == {"anthropic"}


def test_batch_rank_keeps_order():
    result = run(
        ["rank", "--include-unavailable", "--top", "2"],
        input='{"id": "a", "prompt": "hi"}\n{"id": "b", "prompt": "Solve 2x+3=7"}\n',
    )
    out = json_lines(result.stdout)
    assert [d["id"] for d in out] == ["a", "b"] and all(len(d["ranking"]["candidates"]) == 2 for d in out)


def test_user_catalog_is_merged_over_the_shipped_one(isolated_env):
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "catalog.yaml").write_text(
        "models:\n  - id: ollama/llama3.2:3b\n    quality: {overall: 0.99, code: 0.99, math: 0.99, reasoning: 0.99, "
        "creative: 0.99, extraction: 0.99, knowledge: 0.99, chat: 0.99}\n"
    )
    result = run(
        ["rank", "--mode", "local", "--include-unavailable", "--top", "1"], input="Prove Fermat's little theorem"
    )
    assert orjson.loads(result.stdout)["ranking"]["candidates"][0]["model"] == "ollama/llama3.2:3b"


def test_broken_user_catalog_names_file_line_and_field(isolated_env):
    isolated_env.mkdir(parents=True, exist_ok=True)
    path = isolated_env / "catalog.yaml"
    path.write_text("models:\n  - id: ollama/llama3.2:3b\n    price:\n      input: -3\n")
    result = run(["rank"], input="hi")
    assert result.exit_code == ExitCode.CONFIG
    assert f"{path}:4: models[0].price.input" in result.stderr
    path.write_text("models: [\n")
    result = run(["rank"], input="hi")
    assert (
        result.exit_code == ExitCode.CONFIG and "invalid YAML" in result.stderr and len(result.stderr.splitlines()) == 1
    )
    path.write_text("models:\n  - id: newco/model\n")
    result = run(["rank"], input="hi")
    assert result.exit_code == ExitCode.CONFIG and "unknown provider 'newco'" in result.stderr


def test_calibration_sets_cut_points_that_rank_uses(isolated_env, tmp_path):
    from r42.ranking import calibrated_complexity

    prompts = tmp_path / "mine.txt"
    lines = [
        "hi",
        "thanks!",
        "What is the capital of Peru?",
        "Translate 'good morning' to French",
        "Prove that there are infinitely many primes.",
        "Write a Python function that merges two sorted lists.",
        (
            "Design a rate limiter for a distributed API gateway "
            "and prove it never admits more than N requests per window."
        ),
        "Summarize this paragraph in one sentence: the meeting moved to Tuesday.",
        "hello there",
        "Explain quicksort",
    ]
    prompts.write_text("\n".join(lines) + "\n")
    result = run(["score", "--calibrate", str(prompts), "--strong-share", "0.3"])
    assert result.exit_code == 0, result.stderr
    cal = orjson.loads(result.stdout)
    assert cal["prompts"] == 10 and 0 < cal["complex_share"] <= 0.3
    config = (isolated_env / "config.toml").read_text()
    assert f"complex_from = {cal['complex_from']!r}" in config
    settings = load_settings()
    assert settings.complex_from == cal["complex_from"] and settings.origin["complex_from"] == "file"
    # The calibrated cut point maps onto the default one, and the identity holds by default.
    assert abs(calibrated_complexity(cal["complex_from"], cal["simple_below"], cal["complex_from"]) - 0.6) < 1e-9
    assert calibrated_complexity(0.42, 0.35, 0.6) == pytest.approx(0.42)
    scored = [orjson.loads(run(["score"], input=line).stdout)["score"]["level"] for line in lines]
    assert scored.count("complex") == round(cal["complex_share"] * 10)


# --- p_ok: one logit scale for prompts and models (r42/scoring/ability.py) ----------------------


def test_every_shown_candidate_has_p_ok_in_json_and_in_reasons():
    result = run(["rank", "--include-unavailable", "--top", "5"], input="Prove that the square root of 2 is irrational")
    assert result.exit_code == 0, result.stderr
    for candidate in orjson.loads(result.stdout)["ranking"]["candidates"]:
        assert 0.0 <= candidate["p_ok"] <= 1.0
        assert f"p_ok {candidate['p_ok']:.2f}" in candidate["reasons"]


def test_p_ok_falls_with_complexity_and_rises_with_quality():
    from r42.ranking import p_ok_function

    easy = p_ok_function({"complexity": 0.02, "scorer": "trained@x"})
    hard = p_ok_function({"complexity": 0.35, "scorer": "trained@x"})
    assert easy is not None and hard is not None
    for quality in (0.2, 0.3, 0.4):
        assert hard(quality) < easy(quality)
    assert hard(0.2) < hard(0.3) < hard(0.4)
    assert easy(0.2) > 0.9  # a greeting: even a weak model handles it


def test_p_ok_only_for_the_trained_scorers_probability():
    from r42.ranking import p_ok_function

    assert p_ok_function({"complexity": 0.3, "scorer": "heuristic@2"}) is None
    assert p_ok_function({"complexity": "high", "scorer": "trained@x"}) is None
    result = run(["rank", "--scorer", "heuristic", "--include-unavailable", "--top", "2"], input="hello")
    assert result.exit_code == 0, result.stderr
    for candidate in orjson.loads(result.stdout)["ranking"]["candidates"]:
        assert "p_ok" not in candidate and not any(r.startswith("p_ok") for r in candidate["reasons"])


def test_ability_scale_difficulty_inverts_the_reference_pair_probability():
    from r42.scoring.ability import AbilityScale, load_scale

    scale = load_scale()
    assert scale is not None and scale.weak < scale.strong and scale.slope > 0
    peak = scale.pair_probability(scale.peak())
    for p in (0.01, 0.05, 0.2, 0.3):
        assert p < peak
        assert scale.pair_probability(scale.difficulty(p)) == pytest.approx(p, abs=1e-4)
    assert scale.difficulty(0.05) < scale.difficulty(0.2) < scale.difficulty(0.3)
    assert scale.difficulty(0.99) == pytest.approx(scale.peak())  # above the curve: the peak
    toy = AbilityScale(weak=-1.0, strong=1.0, intercept=0.0, slope=10.0)
    assert toy.p_ok(0.0, 0.0) == pytest.approx(0.5)
