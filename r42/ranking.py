"""Rank the catalog's models for one scored prompt under a mode.

Hard filters first (each exclusion counted by reason), then a composite score whose weights depend
on the mode and, in auto mode, on the prompt's complexity. Reasons in words are written only for
the candidates that are shown, which keeps ranking 1,000 models around a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import mul
from typing import Any, Callable

from r42.catalog import Catalog, Model, Provider
from r42.config import DOMAINS
from r42.modes import Weights, mode_weights

EXPECTED_OUTPUT_TOKENS = 400  # typical answer length for cost and latency estimates; the
# context filter uses the full requested output (needs.context_tokens) instead
COST_SCALE = 0.002  # USD per call at which the cost score is 0.5
UNKNOWN_SPEED_TPS = 60.0  # assumed when no speed figure is known
LOCAL_SPEED_TPS = 30.0
HEALTH_TIE_BREAK_TOP = 50  # health breaks ties among this many candidates (and their runs of ties)


DEFAULT_SIMPLE_BELOW, DEFAULT_COMPLEX_FROM = 0.35, 0.6


def calibrated_complexity(complexity: float, simple_below: float, complex_from: float) -> float:
    """Map complexity so that the user's cut points land on the default ones (piecewise linear):
    after `r42 score --calibrate`, the share of prompts at or above complex_from is routed the way
    prompts at or above 0.6 are by default. With the default cut points this is the identity."""
    points = ((0.0, 0.0), (simple_below, DEFAULT_SIMPLE_BELOW), (complex_from, DEFAULT_COMPLEX_FROM), (1.0, 1.0))
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if complexity <= x1:
            return y0 if x1 <= x0 else y0 + (complexity - x0) * (y1 - y0) / (x1 - x0)
    return 1.0


@dataclass
class Constraints:
    mode: str = "auto"
    include_unavailable: bool = False
    max_cost: float | None = None
    min_quality: float | None = None  # set by the user: strict
    providers: tuple[str, ...] = ()
    allow_cloud_sensitive: bool = False
    redact_sensitive: bool = False  # cloud candidates get the prompt with sensitive values replaced
    force: str | None = None  # "local" | "cloud"
    quality_floor: float = 0.25
    quality_slope: float = 0.45
    learned: dict[str, Any] = field(default_factory=dict)  # model id -> learning.Adjustment for this prompt's domain
    simple_below: float = DEFAULT_SIMPLE_BELOW  # the level cut points (calibrated with `r42 score --calibrate`)
    complex_from: float = DEFAULT_COMPLEX_FROM
    health: Any = None  # an r42.health.View: providers and models whose circuit is open are skipped


@dataclass(slots=True)
class Ranked:
    model: Model
    score: float
    quality: float
    cost_usd: float | None
    latency_s: float
    below_quality: bool = False
    learned: Any = None  # the learning.Adjustment applied to the score, if any


@dataclass
class Ranking:
    mode: str
    candidates: list[Ranked]
    excluded: dict[str, int] = field(default_factory=dict)
    required_quality: float = 0.0
    relaxed: bool = False  # no model met the quality requirement: the best below it are shown


AvailabilityFn = Callable[[Provider], Any]  # returns an object with .ok and .source


def required_quality(complexity: float, c: Constraints) -> float:
    if c.min_quality is not None:
        return c.min_quality
    return round(c.quality_floor + c.quality_slope * complexity, 3)


def domain_weights(domains: dict[str, float], mode: str) -> tuple[tuple[float, ...], float]:
    """Per-domain weights (DOMAINS order) and the weight of `overall`: a model's quality on a prompt
    is the prompt's domain mix over its domain scores, with a quarter on its overall score (coding
    mode: the code score mostly)."""
    if mode == "coding":
        return tuple(0.7 if d == "code" else 0.0 for d in DOMAINS), 0.3
    return tuple(0.75 * domains.get(d, 0.0) for d in DOMAINS), 0.25


def estimated_latency(model: Model, output_tokens: int) -> float:
    tps = model.tokens_per_s or (LOCAL_SPEED_TPS if model.local else UNKNOWN_SPEED_TPS)
    ttft = model.ttft_s if model.ttft_s is not None else (0.3 if model.local else 0.6)
    return ttft + output_tokens / tps


def _provider_gate(
    provider: Provider | None, c: Constraints, sensitive: bool, available: Callable[[str], Any]
) -> tuple[str | None, str | None, str | None]:
    """The provider-level filters, once per provider: (reason for every model, reason for its cloud
    models, reason for its local models); None where the filter passes."""
    if provider is None:
        return "unknown provider", None, None
    if c.providers and provider.id not in c.providers:
        return "provider not selected", None, None
    cloud_reason = local_reason = None
    if c.mode == "local" or c.force == "local":
        cloud_reason = "not local"
    elif c.force == "cloud":
        local_reason = "not cloud"
    if c.mode == "privacy" and not provider.private:
        return (
            None,
            cloud_reason or "privacy: provider may train on or keep data",
            local_reason or "privacy: provider may train on or keep data",
        )
    if sensitive and not c.allow_cloud_sensitive:
        cloud_reason = cloud_reason or "sensitive data: local models only"
    if not c.include_unavailable:
        status = available(provider.id)
        if not status.ok:
            return None, cloud_reason or status.source, local_reason or status.source
    return None, cloud_reason, local_reason


@dataclass(frozen=True, slots=True)
class _Prompt:
    """What rank needs of one scored prompt, worked out once before the loop over the models."""

    per_domain: tuple[float, ...]
    overall_weight: float
    input_tokens: int
    output_tokens: int
    context_needed: int
    needs_tools: bool
    needs_vision: bool
    needs_json: bool
    weights: Weights
    need: float  # the quality required
    sensitive: bool


def _prompt(score: dict[str, Any], c: Constraints) -> _Prompt:
    complexity = calibrated_complexity(float(score["complexity"]), c.simple_below, c.complex_from)
    per_domain, overall_weight = domain_weights({d: float(score["domains"].get(d, 0.0)) for d in DOMAINS}, c.mode)
    input_tokens = int(score["tokens"])
    needs = score["needs"]
    context_needed = needs["context_tokens"]
    output_tokens = max(1, min(EXPECTED_OUTPUT_TOKENS, int(context_needed) - input_tokens))
    return _Prompt(
        per_domain,
        overall_weight,
        input_tokens,
        output_tokens,
        context_needed,
        needs["tools"],
        needs["vision"],
        needs["json"],
        mode_weights(c.mode, complexity),
        required_quality(complexity, c),
        bool(score.get("sensitive")),
    )


def rank(catalog: Catalog, score: dict[str, Any], c: Constraints, availability: AvailabilityFn) -> Ranking:
    """Filter, score and sort the catalog for one prompt. Provider-level filters run once per
    provider (a group that is out is counted, not looped over); ranking 1,000+ models per prompt
    is on the hot path of ask and serve."""
    prompt = _prompt(score, c)
    gates = _gates(catalog, c, prompt.sensitive, availability)
    excluded: dict[str, int] = {}
    passing: list[Ranked] = []
    below: list[Ranked] = []
    for provider_id, local, models, gone in catalog.rank_groups:
        every, cloud_only, local_only = gates[provider_id]
        gate = every or (local_only if local else cloud_only)
        if gate:  # the whole group is out: count it (withdrawn models keep their own reason)
            _count(excluded, "no longer offered", gone)
            _count(excluded, gate, len(models) - gone)
            continue
        _rank_group(models, prompt, c, excluded, passing, below)
    relaxed = not passing and bool(below) and c.min_quality is None
    candidates = passing or (below if relaxed else [])
    candidates.sort(key=lambda r: (-r.score, r.model.id))
    if c.health is not None and c.health.penalty:
        _prefer_healthy(candidates, c.health.penalty)
    by_count = dict(sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0])))
    return Ranking(c.mode, candidates, by_count, prompt.need, relaxed)


def _prefer_healthy(candidates: list[Ranked], penalty: dict[str, tuple[float, float]]) -> None:
    """Among equal scores (as shown, 4 decimals), the healthier, then the faster model first. Only
    the runs of ties around a model with health figures near the top (the candidates that are
    shown and tried) are sorted again: a few, not the list."""
    unseen = (0.0, math.inf)
    done = -1
    for index, ranked in enumerate(candidates[:HEALTH_TIE_BREAK_TOP]):
        if index <= done or ranked.model.id not in penalty:
            continue
        shown = round(ranked.score, 4)
        start = index
        while start > 0 and round(candidates[start - 1].score, 4) == shown:
            start -= 1
        done = index
        while done + 1 < len(candidates) and round(candidates[done + 1].score, 4) == shown:
            done += 1
        if done > start:
            candidates[start : done + 1] = sorted(
                candidates[start : done + 1], key=lambda r: (penalty.get(r.model.id, unseen), r.model.id)
            )


def _gates(
    catalog: Catalog, c: Constraints, sensitive: bool, availability: AvailabilityFn
) -> dict[str, tuple[str | None, str | None, str | None]]:
    """_provider_gate for each provider that has models, asking `availability` once per provider."""
    memo: dict[str, Any] = {}

    def available(provider_id: str) -> Any:
        if provider_id not in memo:
            memo[provider_id] = availability(catalog.providers[provider_id])
        return memo[provider_id]

    ids = {group[0] for group in catalog.rank_groups}
    gates = {pid: _provider_gate(catalog.providers.get(pid), c, sensitive, available) for pid in ids}
    if c.health is not None and c.health.providers:  # an open circuit: after every other filter
        for pid in ids & c.health.providers.keys():
            every, cloud, local = gates[pid]
            reason = None if every or (cloud and local) else c.health.reason("provider", pid)
            if reason:
                gates[pid] = (None, cloud or reason, local or reason)
    return gates


def _count(excluded: dict[str, int], reason: str, n: int) -> None:
    if n > 0:
        excluded[reason] = excluded.get(reason, 0) + n


def _rank_group(
    models: tuple[Model, ...],
    p: _Prompt,
    c: Constraints,
    excluded: dict[str, int],
    passing: list[Ranked],
    below: list[Ranked],
) -> None:
    """Filter and score one provider's models: each lands in `passing`, `below` (the quality
    required) or `excluded` (counted by reason). The arithmetic stays inline, on locals: this
    loop runs for every model of every prompt."""
    per_domain, overall_weight, w, need = p.per_domain, p.overall_weight, p.weights, p.need
    input_tokens, output_tokens, learned, max_cost = p.input_tokens, p.output_tokens, c.learned, c.max_cost
    context_needed, needs_tools = p.context_needed, p.needs_tools
    needs_vision, needs_json = p.needs_vision, p.needs_json
    health = c.health
    unhealthy = health.models if health is not None else None
    for model in models:
        reason = (
            "no longer offered"
            if not model.available
            else ("context too small" if model.context is not None and model.context < context_needed else None)
            or ("no tool support" if needs_tools and not model.tools else None)
            or ("no vision support" if needs_vision and not model.vision else None)
            or ("no JSON mode" if needs_json and not model.json else None)
            or (health.reason("model", model.id) if unhealthy and model.id in unhealthy else None)
        )
        if reason is None:
            quality = overall_weight * model.quality["overall"] + sum(map(mul, per_domain, model.quality_vector))
            if model.price_input is None or model.price_output is None:
                cost, cost_score = None, 0.3  # unknown prices score as moderately expensive: neither win nor vanish
            else:
                cost = (input_tokens * model.price_input + output_tokens * model.price_output) / 1e6
                cost_score = 1.0 / (1.0 + math.sqrt(cost / COST_SCALE))  # 1 when free, 0.5 at COST_SCALE
            latency = estimated_latency(model, output_tokens)
            speed = w.speed / (1.0 + latency / 5.0)
            total = w.quality * quality + w.cost * cost_score + speed + (w.local if model.local else 0.0)
            ranked = Ranked(model, total, quality, cost, latency)  # rounded only for display
            if learned and model.id in learned:
                ranked.learned = learned[model.id]
                ranked.score += ranked.learned.value
            reason = _place(ranked, need, max_cost, passing, below)
        if reason is not None:
            excluded[reason] = excluded.get(reason, 0) + 1


def _place(
    ranked: Ranked, need: float, max_cost: float | None, passing: list[Ranked], below: list[Ranked]
) -> str | None:
    """Add a scored model to the passing or the below-quality list; else the reason it is out."""
    if max_cost is not None and (ranked.cost_usd is None or ranked.cost_usd > max_cost):
        return "over max cost" if ranked.cost_usd is not None else "price unknown (max cost set)"
    if ranked.quality < need:
        ranked.below_quality = True
        below.append(ranked)
        return "quality below required"
    passing.append(ranked)
    return None


def reasons(
    r: Ranked, need: float, domain: str, availability_source: str | None, p_ok: float | None = None
) -> list[str]:
    """Why this candidate is where it is, in words (only for candidates that are shown)."""
    m = r.model
    out = []
    if m.local:
        out.append("local, free" if r.cost_usd == 0 else "local")
    elif r.cost_usd is None:
        out.append("price unknown")
    elif r.cost_usd == 0:
        out.append("free")
    else:
        out.append(f"about ${r.cost_usd:.4f} per call")
    comparison = "<" if r.below_quality else ">="
    estimated = " (estimated)" if m.quality_estimated else ""
    out.append(f"quality {r.quality:.2f}{estimated} {comparison} {need:.2f} needed for {domain}")
    if p_ok is not None:
        out.append(f"p_ok {p_ok:.2f}")
    if r.below_quality:
        out.append("best available: no model meets the quality needed")
    if r.learned is not None:
        out.append(r.learned.reason(domain))
    if m.tokens_per_s:
        out.append(f"{m.tokens_per_s:.0f} tokens/s")
    if availability_source:
        out.append(availability_source)
    return out


def ranking_document(
    ranking: Ranking, score: dict[str, Any], top: int | None, availability: AvailabilityFn, catalog: Catalog
) -> dict[str, Any]:
    shown = ranking.candidates if top is None else ranking.candidates[:top]
    p_ok = p_ok_function(score)
    candidates = []
    for r in shown:
        status = availability(catalog.providers[r.model.provider])
        ok = p_ok(r.quality) if p_ok is not None else None
        entry = {
            "model": r.model.id,
            "score": round(r.score, 4),
            "quality": round(r.quality, 4),
            "cost_usd": None if r.cost_usd is None else round(r.cost_usd, 6),
            "latency_s": round(r.latency_s, 2),
            "local": r.model.local,
            "reasons": reasons(r, ranking.required_quality, score["domain"], status.source if status.ok else None, ok),
        }
        if ok is not None:
            entry["p_ok"] = round(ok, 3)
        candidates.append(entry)
    doc: dict[str, Any] = {
        "mode": ranking.mode,
        "required_quality": ranking.required_quality,
        "candidates": candidates,
        "excluded": ranking.excluded,
    }
    if ranking.relaxed:
        doc["relaxed"] = True
    if top is not None and len(ranking.candidates) > top:
        doc["more"] = len(ranking.candidates) - top
    return doc


def p_ok_function(score: dict[str, Any]) -> Callable[[float], float] | None:
    """quality -> P(a model of that quality handles this prompt), on the one logit scale of
    r42/scoring/ability.py; None when the complexity is not the trained scorer's probability (another
    scorer, or a score with no numeric complexity) or the scale is not shipped."""
    from r42.scoring.ability import load_scale

    scorer, complexity = str(score.get("scorer", "trained")), score.get("complexity")
    scale = load_scale()
    if not scorer.startswith("trained") or not isinstance(complexity, (int, float)) or scale is None:
        return None
    difficulty = scale.difficulty(float(complexity))
    return lambda quality: scale.p_ok(quality, difficulty)


def privacy_explanation(score: dict[str, Any], c: Constraints, excluded: dict[str, int]) -> list[str]:
    """Why a prompt was kept on local (or private) models, in words, for --explain."""
    lines = []
    kinds = ", ".join(score.get("sensitive") or [])
    if kinds and not c.allow_cloud_sensitive:
        count = excluded.get("sensitive data: local models only", 0)
        lines.append(
            f"kept local: the prompt holds sensitive data ({kinds}); {count} cloud models left out "
            "(sensitive_policy=local; --redact or --allow-cloud let cloud models answer)"
        )
    elif kinds and c.redact_sensitive:
        lines.append(
            f"the prompt holds sensitive data ({kinds}): "
            "cloud models get each value replaced by a placeholder, put back in the answer"
        )
    elif kinds:
        lines.append(
            f"the prompt holds sensitive data ({kinds}) and may go to cloud models as it is (sensitive_policy=allow)"
        )
    if c.mode == "privacy":
        count = excluded.get("privacy: provider may train on or keep data", 0)
        lines.append(
            "privacy mode: only local models and providers that neither train on nor keep API data; "
            f"{count} models left out"
        )
    if not lines:
        lines.append("no privacy rule applied: no sensitive data found and the mode is not privacy")
    return lines


def privacy_allows(local: bool, provider: Provider | None, score: dict[str, Any], c: Constraints) -> bool:
    """The privacy filters alone, for candidates that did not come from rank (--model, a ranking
    edited in the pipe): a sensitive prompt never reaches a cloud model the policy keeps it from."""
    if provider is None:
        return False
    if c.mode == "privacy" and not provider.private:
        return False
    return not (score.get("sensitive") and not local and not c.allow_cloud_sensitive)


BETTER_MODEL_HINT = (
    "for a better one, give r42 a provider key (export ANTHROPIC_API_KEY=..., or r42 keys set "
    "anthropic) or start Ollama or LM Studio"
)


def weak_answer_note(doc: dict[str, Any]) -> str | None:
    """Why an answer may be weak, when the model that gave it is below the quality the prompt
    needs (a relaxed ranking): what to do for a better one. None when the answer is up to it, or
    when there is no ranking to judge by (--model)."""
    route, ranking = doc.get("route"), doc.get("ranking")
    if not isinstance(route, dict) or not isinstance(ranking, dict):
        return None
    need = ranking.get("required_quality")
    candidates = [c for c in ranking.get("candidates") or [] if isinstance(c, dict)]
    entry = next((c for c in candidates if c.get("model") == route.get("model")), None)
    if entry is None or not isinstance(need, (int, float)) or not isinstance(entry.get("quality"), (int, float)):
        return None
    if entry["quality"] >= need:
        return None
    domain = (doc.get("score") or {}).get("domain") or "this prompt"
    return (
        f"{route['model']} answered, but its quality {entry['quality']:.2f} is below the {need:.2f} this prompt "
        f"needs ({domain}): the answer may be wrong; {BETTER_MODEL_HINT}"
    )
