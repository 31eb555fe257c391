"""score -> rank for one document: the part of the pipeline that rank, ask and serve share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from r42.availability import AvailabilityChecker
from r42.catalog import Catalog, load_catalog
from r42.config import Settings
from r42.ranking import Constraints, Ranking, rank, ranking_document
from r42.scoring import score_document

LEARNED_TTL_S = 30.0


@dataclass
class Router:
    """Holds what is worth loading once per process: settings, catalog, availability memo."""

    settings: Settings
    catalog: Catalog
    availability: AvailabilityChecker
    user: str | None = None  # whose feedback rank learns from (None: the CLI's own); the gateway sets it per request
    _learned: dict[str | None, tuple[float, Any]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Router":
        catalog = load_catalog(settings.catalog)
        if settings.local_discovery:  # a freshly pulled Ollama / LM Studio model is a candidate at once
            from r42.catalog.discovery import discover

            catalog = discover(catalog, settings.discovery_ttl, settings.local_probe_timeout)
        return cls(settings, catalog, AvailabilityChecker(settings.local_probe_timeout))

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
        return rank(self.catalog, score, constraints, self.availability.check)

    def learned(self, user: str | None, domain: str) -> dict[str, Any]:
        """Adjustments by model id, recomputed at most every LEARNED_TTL_S per user (serve is long-lived)."""
        cached = self._learned.get(user)
        if cached is None or time.monotonic() - cached[0] > LEARNED_TTL_S:
            from r42.store.db import store_exists

            adjustments: dict[Any, Any] = {}
            if store_exists():  # checked here, not per prompt: a stat call on every request adds up
                from r42.learning import learned_adjustments

                adjustments = learned_adjustments(user, self.settings.feedback_half_life_days)
            cached = (time.monotonic(), adjustments)
            self._learned[user] = cached
        from r42.learning import for_domain

        return for_domain(cached[1], domain)

    def ranking_document(self, ranking: Ranking, score: dict[str, Any], top: int | None) -> dict[str, Any]:
        return ranking_document(ranking, score, top, self.availability.check, self.catalog)
