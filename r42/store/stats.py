"""Totals and breakdowns of the routing log: requests, errors, tokens, cost, savings, latency.

Savings compare each answered request's cost with what the same tokens would have cost on a
reference model: by default the strongest (highest overall quality) priced cloud model the user
has a credential for, i.e. what they would have used without a router.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from r42.errors import UsageError

GROUPS = ("model", "mode", "domain", "user", "day")
NONE_KEY = "(none)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


@dataclass(frozen=True)
class Reference:
    model: str
    price_input: float  # USD per 1M tokens
    price_output: float
    why: str

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_input + output_tokens * self.price_output) / 1e6


def parse_since(text: str, now: float | None = None) -> float:
    """'7d', '24h', '30m', '2w', '90s' ago, or a date / ISO time (UTC when no zone is given)."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since: cannot read {text!r}", "use 7d, 24h, 30m, 2w, or a date like 2026-01-31") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def choose_reference(catalog: Any, name: str | None, has_credential: Callable[[Any], bool]) -> Reference | None:
    """The named model, else the strongest priced cloud model whose provider has a credential.

    catalog: r42.catalog.Catalog. has_credential(provider) -> bool. None when nothing is priced.
    """
    if name:
        model = catalog.find(name)
        if model is None:
            raise UsageError(
                f"unknown reference model {name!r}", "give a model id from the catalog, e.g. openai/gpt-4o"
            )
        if model.price_input is None or model.price_output is None:
            raise UsageError(f"the reference model {model.id} has no known price", "choose a priced model")
        return Reference(model.id, model.price_input, model.price_output, "chosen")
    priced = [
        m
        for m in catalog.models
        if m.available and not m.local and m.price_input is not None and m.price_output is not None
    ]
    usable = [m for m in priced if m.provider in catalog.providers and has_credential(catalog.providers[m.provider])]
    pool, why = (
        (usable, "the strongest model you have a credential for")
        if usable
        else (priced, "the strongest priced model in the catalog (no provider has a credential)")
    )
    if not pool:
        return None
    best = max(pool, key=lambda m: (m.quality.get("overall", 0.0), -(m.price_input + m.price_output), m.id))
    return Reference(best.id, best.price_input, best.price_output, why)


def reference_for(name: str | None, has_credential: Callable[[Any], bool]) -> Reference | None:
    """The reference for savings: `name`, else the `stats_reference_model` setting, else the
    strongest priced cloud model a provider of which `has_credential` (r42.availability's
    find_credential, passed in: the store does not import availability, which imports the store)."""
    from r42.catalog import load_catalog
    from r42.config import load_settings

    settings = load_settings({"stats_reference_model": name})
    catalog = load_catalog(settings.catalog)
    checked: dict[str, bool] = {}

    def remembered(provider: Any) -> bool:
        if provider.id not in checked:
            checked[provider.id] = has_credential(provider)
        return checked[provider.id]

    return choose_reference(catalog, settings.stats_reference_model, remembered)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


class _Bucket:
    """Running sums for one group."""

    def __init__(self) -> None:
        self.requests = self.errors = self.input_tokens = self.output_tokens = 0
        self.cost = self.reference_cost = self.compared_cost = 0.0
        self.latencies: list[float] = []
        self.ttfts: list[float] = []

    def add(self, row: dict[str, Any], reference: Reference | None) -> None:
        self.requests += 1
        if row["status"] != "ok":
            self.errors += 1
        self.input_tokens += row["input_tokens"] or 0
        self.output_tokens += row["output_tokens"] or 0
        self.cost += row["cost_usd"] or 0.0
        if row["status"] == "ok" and row["latency_ms"] is not None:
            self.latencies.append(row["latency_ms"])
        if row["status"] == "ok" and row["ttft_ms"] is not None:
            self.ttfts.append(row["ttft_ms"])
        if reference is not None and _comparable(row):
            self.reference_cost += reference.cost(row["input_tokens"] or 0, row["output_tokens"] or 0)
            self.compared_cost += row["cost_usd"]

    def summary(self, with_ttft: bool = False) -> dict[str, Any]:
        self.latencies.sort()
        savings = self.reference_cost - self.compared_cost
        out = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4) if self.requests else 0.0,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost, 6),
            "reference_cost_usd": round(self.reference_cost, 6),
            "savings_usd": round(savings, 6),
            "savings_pct": round(100 * savings / self.reference_cost, 1) if self.reference_cost > 0 else None,
            "latency_ms": {"p50": percentile(self.latencies, 50), "p95": percentile(self.latencies, 95)},
        }
        if with_ttft:
            self.ttfts.sort()
            out["ttft_ms"] = {"p50": percentile(self.ttfts, 50), "p95": percentile(self.ttfts, 95)}
        return out


def _comparable(row: dict[str, Any]) -> bool:
    """Answered, with known tokens and cost: only then is a saving meaningful."""
    return row["status"] == "ok" and row["cost_usd"] is not None and bool(row["input_tokens"] or row["output_tokens"])


def _group_key(row: dict[str, Any], group: str) -> str:
    if group == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(row["ts"]))
    value = row.get(group)
    return NONE_KEY if value is None else str(value)


def compute_stats(rows: Iterable[dict[str, Any]], reference: Reference | None) -> dict[str, Any]:
    """Totals and per-group summaries of log rows (as read_routes/iter_routes return them)."""
    total = _Bucket()
    groups: dict[str, dict[str, _Bucket]] = {g: {} for g in GROUPS}
    first = last = None
    for row in rows:
        total.add(row, reference)
        for group in GROUPS:
            groups[group].setdefault(_group_key(row, group), _Bucket()).add(row, reference)
        first = row["ts"] if first is None else min(first, row["ts"])
        last = row["ts"] if last is None else max(last, row["ts"])
    out: dict[str, Any] = {
        "reference": None
        if reference is None
        else {
            "model": reference.model,
            "price_input": reference.price_input,
            "price_output": reference.price_output,
            "why": reference.why,
        },
        "first": _iso(first),
        "last": _iso(last),
        "totals": total.summary(with_ttft=True),
    }
    for group in GROUPS:
        ordered = (
            sorted(groups[group].items())
            if group == "day"
            else sorted(groups[group].items(), key=lambda kv: (-kv[1].requests, kv[0]))
        )
        out["by_" + group] = {key: bucket.summary() for key, bucket in ordered}
    return out


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
