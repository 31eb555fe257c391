"""score -> rank -> plan for one document: the routing decisions that rank, ask and serve share.

`Router.plan` turns a pipe document into the candidates to try (ranked, taken from the document's
own ranking, or named with --model), `privacy_guard` keeps candidates that did not pass through
rank within the privacy rules, and `no_candidate_error` says what to configure when nothing can
answer. The executor (r42.executor) only runs the candidates it is given.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from r42.availability import BUILTIN_LOCAL, AvailabilityChecker
from r42.catalog import Catalog, Provider, load_catalog
from r42.config import Settings
from r42.errors import NoCandidateError, NoCredentialsError, R42Error
from r42.ranking import Constraints, Ranking, privacy_allows, rank, ranking_document
from r42.scoring import score_document

LEARNED_TTL_S = 30.0
_refresh_lock = threading.Lock()
WELL_KNOWN = ("anthropic", "openai", "gemini", "openrouter")  # named first in "set ..." hints when they could answer


@dataclass
class Router:
    """Holds what is worth loading once per process: settings, catalog, availability memo."""

    settings: Settings
    catalog: Catalog
    availability: AvailabilityChecker
    user: str | None = None  # whose feedback rank learns from (None: the CLI's own); the gateway sets it per request
    _learned: dict[str | None, tuple[float, Any]] = field(default_factory=dict)
    _relearning: set[str | None] = field(default_factory=set)  # users whose adjustments are being recomputed
    health: Any = None  # the process's r42.health.Board (None: the `health` setting is off)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Router":
        catalog = load_catalog(settings.catalog)
        if settings.local_discovery:  # a freshly pulled Ollama / LM Studio model is a candidate at once
            from r42.catalog.discovery import discover

            catalog = discover(catalog, settings.discovery_ttl, settings.local_probe_timeout)
        from r42.health import board_for

        return cls(settings, catalog, AvailabilityChecker(settings.local_probe_timeout), health=board_for(settings))

    def constraints(self, **overrides: Any) -> Constraints:
        s = self.settings
        c = Constraints(
            mode=s.mode,
            max_cost=s.max_cost,
            allow_cloud_sensitive=s.sensitive_policy != "local",
            redact_sensitive=s.sensitive_policy == "redact",
            quality_floor=s.quality_floor,
            quality_slope=s.quality_slope,
            simple_below=s.simple_below,
            complex_from=s.complex_from,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(c, key, value)
        return c

    def score(self, doc: dict[str, Any], scorer: str | None = None) -> dict[str, Any]:
        """The document's `score` (trusted when present, computed otherwise)."""
        if isinstance(doc.get("score"), dict):
            return doc["score"]
        return score_document(doc, self.settings, scorer)

    def rank(self, score: dict[str, Any], constraints: Constraints) -> Ranking:
        """Rank with what was learned from this user's feedback and outcomes in the prompt's domain
        (when the `learning` setting is on and a store exists)."""
        if self.settings.learning and not constraints.learned:
            constraints = replace(constraints, learned=self.learned(self.user, score["domain"]))
        if self.health is not None and constraints.health is None:
            constraints = replace(constraints, health=self.health.view())
        return rank(self.catalog, score, constraints, self.availability.check)

    def learned(self, user: str | None, domain: str) -> dict[str, Any]:
        """Adjustments by model id, recomputed every LEARNED_TTL_S per user (serve is long-lived):
        the first time here, later on a thread of its own while the previous ones are used. The
        queries read the user's routing log of 90 days (~0.3 s for 100,000 rows, seconds on a
        busy machine), which on the gateway's event loop stalled every request of the worker."""
        cached = self._learned.get(user)
        if cached is None:
            cached = self._learned[user] = (time.monotonic(), self._learn(user))
        elif time.monotonic() - cached[0] > LEARNED_TTL_S:
            self._relearn(user, cached[1])
        from r42.learning import for_domain

        return for_domain(cached[1], domain)

    def _learn(self, user: str | None) -> dict[Any, Any]:
        from r42.store.db import store_exists

        if not store_exists():  # checked here, not per prompt: a stat call on every request adds up
            return {}
        from r42.learning import learned_adjustments

        return learned_adjustments(user, self.settings.feedback_half_life_days)

    def _relearn(self, user: str | None, previous: dict[Any, Any]) -> None:
        """Recompute one user's adjustments on a thread (one at a time per user)."""
        with _refresh_lock:
            if user in self._relearning:
                return
            self._relearning.add(user)

        def relearn() -> None:
            from r42.store import close_thread_connection

            try:
                self._learned[user] = (time.monotonic(), self._learn(user))
            except Exception as exc:  # noqa: BLE001 - keep the previous ones; try again after the TTL
                self._learned[user] = (time.monotonic(), previous)
                print(f"r42: warning: could not read what was learned from use: {exc}", file=sys.stderr)
            finally:
                close_thread_connection()
                with _refresh_lock:
                    self._relearning.discard(user)

        threading.Thread(target=relearn, name="r42-learning", daemon=True).start()

    def ranking_document(self, ranking: Ranking, score: dict[str, Any], top: int | None) -> dict[str, Any]:
        return ranking_document(ranking, score, top, self.availability.check, self.catalog)

    # --- planning: from a pipe document to the candidates to try ---------------------------------

    def plan(
        self, doc: dict[str, Any], constraints: Constraints, model: str | None = None, top: int = 10
    ) -> tuple[dict[str, Any], list[str]]:
        """The document with its `score` and `ranking` (computed when missing, trusted when present)
        and the model ids to try, best first. `model` (--model) skips ranking altogether."""
        score = self.score(doc)
        if model:
            return {**doc, "score": score}, self.privacy_guard(score, constraints, [model])
        ranking = doc.get("ranking")
        if isinstance(ranking, dict):
            listed = ranking.get("candidates") or []
            candidates = [c["model"] for c in listed if isinstance(c, dict) and c.get("model")]
            if not candidates:
                raise NoCandidateError(
                    "the document's ranking has no candidates", "remove `ranking` to rank again, or pass --model"
                )
            return {**doc, "score": score}, self.privacy_guard(score, constraints, candidates)
        ranked = self.rank(score, constraints)
        if not ranked.candidates:
            raise self.no_candidate_error(score, constraints)
        ranking = self.ranking_document(ranked, score, top)
        candidates = self.privacy_guard(score, constraints, [c["model"] for c in ranking["candidates"]])
        return {**doc, "score": score, "ranking": ranking}, candidates

    def privacy_guard(self, score: dict[str, Any], constraints: Constraints, candidates: list[str]) -> list[str]:
        """Drop candidates the privacy rules forbid for this prompt (they did not pass through rank)."""
        allowed = []
        for name in candidates:
            target = self.catalog.resolve(name)
            if target is None:
                allowed_here = privacy_allows(False, None, score, constraints)
            else:
                allowed_here = privacy_allows(target.local, target.provider, score, constraints)
            if allowed_here:
                allowed.append(name)
        if not allowed:
            kinds = ", ".join(score.get("sensitive") or []) or "privacy mode"
            raise NoCandidateError(
                f"no allowed model for this prompt ({kinds}): the privacy rules keep it off {', '.join(candidates)}",
                "use a local model, or --redact / --allow-cloud (setting sensitive_policy) to let cloud models answer",
            )
        return allowed

    def no_candidate_error(self, score: dict[str, Any], constraints: Constraints) -> R42Error:
        """What no configured model can do for this prompt, and what to configure (exit 4 when a
        provider would help, else exit 3)."""
        why = self.unmet_needs(score, constraints)
        unmet = f": {'; '.join(why)}" if why else ""
        everything = self.rank(score, replace(constraints, include_unavailable=True))
        if not everything.candidates:
            kinds = ", ".join(score.get("sensitive") or [])
            if kinds and not constraints.allow_cloud_sensitive:
                return NoCandidateError(
                    f"the prompt holds sensitive data ({kinds}) and no local model can answer it",
                    "start a local model (Ollama, LM Studio, r42[local]), or --redact / --allow-cloud",
                )
            return NoCandidateError(
                f"no model satisfies the prompt's needs and the constraints{unmet}",
                "see `r42 rank --include-unavailable`; relax --max-cost, --local/--cloud or the mode",
            )
        able = list(dict.fromkeys(r.model.provider for r in everything.candidates))  # best first
        wanted: list[str] = []
        for provider_id in [p for p in WELL_KNOWN if p in able] + able:  # the keys most people have first
            hint = _setup_hint(self.catalog.providers[provider_id])
            if hint is not None and hint not in wanted:
                wanted.append(hint)
            if len(wanted) == 4:
                break
        return NoCredentialsError(f"no provider that could answer this prompt is configured{unmet}", "; ".join(wanted))

    def unmet_needs(self, score: dict[str, Any], constraints: Constraints) -> list[str]:
        """Why the configured models (credential or server present, allowed by the privacy rules
        and the route) cannot serve this prompt, in words: what it needs that none of them has."""
        kinds = ", ".join(score.get("sensitive") or [])
        reasons = []
        if kinds and not constraints.allow_cloud_sensitive:
            reasons.append(f"the prompt holds sensitive data ({kinds}), so only local models may answer it")
        if constraints.mode == "privacy":
            reasons.append("privacy mode allows only local models and providers that keep no data")
        usable = [
            m for m in self.catalog.models if m.available and self._usable(m.provider, m.local, score, constraints)
        ]
        if not usable:
            return reasons  # nothing is configured: the hint says what to set
        needs = score.get("needs") or {}
        context = int(needs.get("context_tokens") or 0)
        largest = max(usable, key=lambda m: m.context or 0)
        if largest.context is not None and largest.context < context:
            reasons.append(
                f"it needs {context:,} tokens of context; the largest configured model "
                f"({_named(largest)}) takes {largest.context:,}"
            )
        for need, attribute, what in (
            ("tools", "tools", "tool support"),
            ("vision", "vision", "image input"),
            ("json", "json", "JSON mode"),
        ):
            if needs.get(need) and not any(getattr(m, attribute) for m in usable):
                lacking = _named(usable[0]) if len(usable) == 1 else "no configured model"
                reasons.append(f"it needs {what}, which {lacking} {'lacks' if len(usable) == 1 else 'has'}")
        return reasons or ["no configured model meets the quality, cost and mode constraints"]

    def _usable(self, provider_id: str, local: bool, score: dict[str, Any], constraints: Constraints) -> bool:
        if (constraints.force == "local" or constraints.mode == "local") and not local:
            return False
        if constraints.force == "cloud" and local:
            return False
        provider = self.catalog.providers.get(provider_id)
        if not privacy_allows(local, provider, score, constraints) or provider is None:
            return False
        return bool(self.availability.check(provider).ok)


def outside_text_sensitive(body: dict[str, Any]) -> list[str]:
    """Kinds of sensitive data in a request body outside its message text, which the score does not
    read: tool-call arguments, tool definitions, Anthropic tool inputs and documents, metadata."""
    from r42.scoring.sensitive import find_sensitive

    texts: list[str] = []
    for key, value in body.items():
        if key == "messages" and isinstance(value, list):
            for message in value:
                _strings(
                    {k: v for k, v in message.items() if k != "content"} if isinstance(message, dict) else message,
                    texts,
                )
                content = message.get("content") if isinstance(message, dict) else None
                for part in content if isinstance(content, list) else []:
                    _strings(_unscored(part), texts)
        elif key not in ("model", "system"):
            _strings(value, texts)
    return find_sensitive("\n".join(texts)) if texts else []


def _unscored(part: Any) -> Any:
    """A content part without what the score reads (its text) and without image bytes (base64 can
    look like a key); documents and tool inputs stay."""
    if not isinstance(part, dict):
        return part
    skip = ("text", "image_url", "source") if part.get("type") in ("image", "image_url") else ("text",)
    return {k: v for k, v in part.items() if k not in skip}


def _strings(value: Any, into: list[str]) -> None:
    """Every string in a JSON value (keys too), depth first, without recursion limits."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            into.append(item)
        elif isinstance(item, dict):
            into.extend(k for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _named(model: Any) -> str:
    return f"the built-in model {model.id}" if model.provider == BUILTIN_LOCAL else model.id


def _setup_hint(provider: Provider) -> str | None:
    """What would make this provider usable, in words; None when nothing the user sets would."""
    if provider.id == BUILTIN_LOCAL:
        try:
            from r42.localmodel import INSTALL_HINT
        except ImportError:
            INSTALL_HINT = "pip install 'r42[local]'"
        return f"install the built-in local model: {INSTALL_HINT}"
    if provider.key_env:
        return "set " + " or ".join(provider.key_env)
    if provider.base_url_env:
        return f"start {provider.name} or set {provider.base_url_env}"
    return None
