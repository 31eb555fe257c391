"""The one query layer over the routing log: `r42 stats`, `r42 stats --html` and the gateway's
/dashboard all read these functions.

A period's whole UTC days are read from the daily rollup (r42.store.rollup: a few cells per day,
user and value, written with the log) and only the partial days at its ends from the rows: sums
from one grouped SQL query (fold), percentiles from one fetch of the answered requests' latencies
(latencies); the error review reads the failed rows themselves. The dashboard also reuses the part
of its period before the current bucket (past_part). Semantics are those of
r42.store.stats.compute_stats (which the tests check this module against): errors are rows whose
status is not "ok", latency and time-to-first-token percentiles are nearest-rank over answered
requests (within rollup.BOUND where the rollup binned them), savings compare answered requests with
known tokens and cost against a reference model.

A Scope limits every query to a period and, for a non-admin viewer, to one user's rows.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from r42.store.db import reading, readable_errors, where_clause
from r42.store.keys import iso, list_keys, usage
from r42.store.rollup import CX_FIELDS, DAY_S, Dist, decode, encode
from r42.store.stats import GROUPS, NONE_KEY, Reference

# Group expressions: SQL over the routes table. NULL becomes NONE_KEY in Python.
PROVIDER_SQL = "CASE WHEN instr(model, '/') > 0 THEN substr(model, 1, instr(model, '/') - 1) ELSE model END"
GROUP_SQL = {
    "model": "model",
    "provider": PROVIDER_SQL,
    "mode": "mode",
    "domain": "domain",
    "user": "user",
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",
}
COMPARABLE = (
    "(status = 'ok' AND cost_usd IS NOT NULL AND (coalesce(input_tokens, 0) > 0 OR coalesce(output_tokens, 0) > 0))"
)
SUMS = (
    "count(*), coalesce(sum(status != 'ok'), 0), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
    f" coalesce(sum(cost_usd), 0.0), coalesce(sum(CASE WHEN {COMPARABLE} THEN coalesce(input_tokens, 0) END), 0),"
    f" coalesce(sum(CASE WHEN {COMPARABLE} THEN coalesce(output_tokens, 0) END), 0),"
    f" coalesce(sum(CASE WHEN {COMPARABLE} THEN cost_usd END), 0.0), min(ts), max(ts)"
)
PERIODS = {"1h": (3600, 300), "24h": (86_400, 3600), "30d": (30 * 86_400, 86_400)}  # span, bucket (seconds)
COMPLEXITY_BINS = 10
FAILURES_SHOWN = 50


@dataclass(frozen=True)
class Scope:
    """Which rows a query sees: [since, until) and one user's (None: everyone's)."""

    since: float | None = None
    until: float | None = None
    user: str | None = None

    def where(self, *extra: str) -> tuple[str, list[Any]]:
        return where_clause({"ts >= ?": self.since, "ts < ?": self.until, "user = ?": self.user}, *extra)


def _rows(sql: str, params: list[Any]) -> list[tuple]:
    conn = reading()
    if conn is None:
        return []
    with readable_errors():
        return conn.execute(sql, params).fetchall()


# ---- sums and percentiles ----------------------------------------------------------------------
#
# SQLite groups by sorting, so each GROUP BY costs a sort of the whole period. Instead of one per
# breakdown, fold() runs ONE grouped query over every dimension a report needs (a few thousand
# groups at most) and adds the groups up in Python; latencies() fetches the answered requests'
# latencies once and every percentile is taken from those sorted lists.

N_SUMS = 8  # requests, errors, tokens in, tokens out, cost, compared tokens in / out, compared cost


@dataclass
class Folded:
    """Sums (lists of N_SUMS numbers) for the whole scope and per dimension value."""

    total: list[float]
    by: dict[str, dict[str, list[float]]]
    first: float | None
    last: float | None
    complexity: dict[tuple[int, str], int]  # (bin, model) -> requests


def _add(into: list[float], sums: tuple) -> None:
    for index in range(N_SUMS):
        into[index] += sums[index]


def fold(scope: Scope, dims: tuple[str, ...], with_complexity: bool = False) -> Folded:
    """Sums per value of each of dims (and the complexity bins per model) over the scope: whole
    days from the rollup, the rest (the partial days at either end) from the rows."""
    rolled = rolled_days(scope)
    if rolled is None:
        return fold_rows(scope, dims, with_complexity)
    found = fold_rollup(scope, rolled, dims, with_complexity)
    for edge in edges(scope, rolled):
        found = merge_folded(found, fold_rows(edge, dims, with_complexity))
    return found


def fold_rows(scope: Scope, dims: tuple[str, ...], with_complexity: bool = False) -> Folded:
    """One grouped scan of the rows: sums per combination of dims (model, provider is derived from
    model), added up into the scope's total and each dimension's groups."""
    sql_dims = [d for d in dims if d != "provider"]
    if "provider" in dims and "model" not in sql_dims:
        sql_dims.append("model")
    exprs = [GROUP_SQL[d] for d in sql_dims]
    if with_complexity:
        exprs.append(
            f"CASE WHEN complexity IS NULL THEN -1 ELSE min({COMPLEXITY_BINS - 1},"
            f" max(0, CAST(complexity * {COMPLEXITY_BINS} AS INTEGER))) END"
        )
    where, params = scope.where()
    select = ", ".join(exprs) if exprs else "NULL"
    group_by = f"GROUP BY {', '.join(str(i + 1) for i in range(len(exprs)))}" if exprs else ""
    rows = _rows(f"SELECT {select}, {SUMS} FROM routes {where} {group_by}", params)
    width = max(1, len(exprs))
    total = [0] * N_SUMS
    by: dict[str, dict[str, list[float]]] = {d: {} for d in dims}
    firsts, lasts = [], []
    cx: dict[tuple[int, str], int] = {}
    for row in rows:
        keys, sums = row[:width], row[width:]
        if not sums[0]:
            continue
        _add(total, sums)
        firsts.append(sums[8])
        lasts.append(sums[9])
        values = dict(zip(sql_dims, keys))
        for dim in dims:
            value = _provider(values.get("model")) if dim == "provider" else values.get(dim)
            key = NONE_KEY if value is None else str(value)
            _add(by[dim].setdefault(key, [0] * N_SUMS), sums)
        if with_complexity and keys[-1] >= 0:
            model = NONE_KEY if values.get("model") is None else values["model"]
            cx[(keys[-1], model)] = cx.get((keys[-1], model), 0) + sums[0]
    return Folded(total, by, min(firsts) if firsts else None, max(lasts) if lasts else None, cx)


def merge_folded(old: Folded, new: Folded) -> Folded:
    """The sums of two disjoint sets of rows (neither is changed)."""
    by = {dim: {k: list(v) for k, v in groups_.items()} for dim, groups_ in old.by.items()}
    for dim, groups_ in new.by.items():
        for key, sums in groups_.items():
            _add(by.setdefault(dim, {}).setdefault(key, [0] * N_SUMS), sums)
    total = list(old.total)
    _add(total, new.total)
    firsts = [t for t in (old.first, new.first) if t is not None]
    lasts = [t for t in (old.last, new.last) if t is not None]
    cx = dict(old.complexity)
    for key, n in new.complexity.items():
        cx[key] = cx.get(key, 0) + n
    return Folded(total, by, min(firsts) if firsts else None, max(lasts) if lasts else None, cx)


def _summary(sums: list[float] | tuple, reference: Reference | None) -> dict[str, Any]:
    """The compute_stats summary of one group (without percentiles)."""
    requests, errors, tokens_in, tokens_out, cost, cmp_in, cmp_out, cmp_cost = sums[:N_SUMS]
    reference_cost = reference.cost(cmp_in, cmp_out) if reference is not None else 0.0
    compared = cmp_cost if reference is not None else 0.0
    savings = reference_cost - compared
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": round(cost, 6),
        "reference_cost_usd": round(reference_cost, 6),
        "savings_usd": round(savings, 6),
        "savings_pct": round(100 * savings / reference_cost, 1) if reference_cost > 0 else None,
    }


def pick(values: Dist, ps: tuple[int, ...] = (50, 95)) -> dict[str, float | None]:
    """Nearest-rank percentiles (exact over rows, within rollup.BOUND where the rollup binned them)."""
    return values.percentiles(ps)


@dataclass
class Latencies:
    """Latencies and times to first token of answered requests, overall and per group."""

    latency: Dist
    ttft: Dist
    by: dict[str, dict[str, Dist]]  # dimension -> value -> latencies


def latencies(scope: Scope, dims: tuple[str, ...] = ()) -> Latencies:
    """The answered requests' latency and TTFT (and latency per value of each of dims): whole days
    from the rollup's cells, the partial days at either end from the rows."""
    rolled = rolled_days(scope)
    if rolled is None:
        return latencies_rows(scope, dims)
    found = latencies_rollup(scope, rolled, dims)
    for edge in edges(scope, rolled):
        found = merge_latencies(found, latencies_rows(edge, dims))
    return found


def latencies_rows(scope: Scope, dims: tuple[str, ...] = ()) -> Latencies:
    """One fetch of the answered requests' latency and TTFT (and the dims to split latency by)."""
    exprs = [GROUP_SQL[d] for d in dims]
    where, params = scope.where("status = 'ok'", "(latency_ms IS NOT NULL OR ttft_ms IS NOT NULL)")
    rows = _rows(f"SELECT latency_ms, ttft_ms{''.join(', ' + e for e in exprs)} FROM routes {where}", params)
    latency = Dist(sorted(r[0] for r in rows if r[0] is not None))
    ttft = Dist(sorted(r[1] for r in rows if r[1] is not None))
    by: dict[str, dict[str, Dist]] = {}
    for index, dim in enumerate(dims, 2):
        groups_: dict[str, Dist] = {}
        for row in rows:
            if row[0] is not None:
                key = row[index]
                groups_.setdefault(NONE_KEY if key is None else str(key), Dist()).exact.append(row[0])
        by[dim] = groups_
    return Latencies(latency, ttft, by)


def merge_latencies(old: Latencies, new: Latencies) -> Latencies:
    """The latencies of two disjoint sets of rows (neither is changed)."""
    by: dict[str, dict[str, Dist]] = {}
    for dim in set(old.by) | set(new.by):
        groups_ = {key: d.copy() for key, d in old.by.get(dim, {}).items()}
        for key, dist in new.by.get(dim, {}).items():
            groups_.setdefault(key, Dist()).add(dist)
        by[dim] = groups_
    latency, ttft = old.latency.copy(), old.ttft.copy()
    latency.add(new.latency)
    ttft.add(new.ttft)
    return Latencies(latency, ttft, by)


def _ordered(found: dict[str, dict[str, Any]], group: str) -> dict[str, dict[str, Any]]:
    if group == "day":
        return dict(sorted(found.items()))
    return dict(sorted(found.items(), key=lambda kv: (-kv[1]["requests"], kv[0])))


def _groups(
    folded: Folded, lat: Latencies | None, group: str, reference: Reference | None
) -> dict[str, dict[str, Any]]:
    found = {key: _summary(sums, reference) for key, sums in folded.by[group].items()}
    if lat is not None and group in lat.by:
        for key, summary in found.items():
            summary["latency_ms"] = pick(lat.by[group].get(key, Dist()))
    return _ordered(found, group)


def _totals(folded: Folded, lat: Latencies, reference: Reference | None) -> dict[str, Any]:
    out = _summary(folded.total, reference)
    out["latency_ms"] = pick(lat.latency)
    out["ttft_ms"] = pick(lat.ttft)
    return out


def totals(scope: Scope, reference: Reference | None) -> dict[str, Any]:
    """Requests, errors, tokens, cost, savings, latency and TTFT p50/p95, first and last time."""
    folded = fold(scope, ())
    out = _totals(folded, latencies(scope), reference)
    out["first"], out["last"] = iso(folded.first), iso(folded.last)
    return out


def groups(
    scope: Scope, group: str, reference: Reference | None, with_latency: bool = True
) -> dict[str, dict[str, Any]]:
    """compute_stats' per-group summaries: most requests first (day: in date order)."""
    lat = latencies(scope, (group,)) if with_latency else None
    return _groups(fold(scope, (group,)), lat, group, reference)


def reference_dict(reference: Reference | None) -> dict[str, Any] | None:
    if reference is None:
        return None
    return {
        "model": reference.model,
        "price_input": reference.price_input,
        "price_output": reference.price_output,
        "why": reference.why,
    }


def stats_report(scope: Scope, reference: Reference | None) -> dict[str, Any]:
    """What `r42 stats` prints: the same document as compute_stats over the scope's rows."""
    folded = fold(scope, GROUPS)
    lat = latencies(scope, GROUPS)
    out: dict[str, Any] = {
        "reference": reference_dict(reference),
        "first": iso(folded.first),
        "last": iso(folded.last),
        "totals": _totals(folded, lat, reference),
    }
    for group in GROUPS:
        out["by_" + group] = _groups(folded, lat, group, reference)
    return out


# ---- the dashboard's panels ------------------------------------------------------------------


def timeseries(scope: Scope, bucket_s: int, start: float) -> list[dict[str, Any]]:
    """Requests, errors, tokens and cost per bucket of bucket_s seconds from `start` up to
    scope.until (exclusive; or now): a bucket of whole days the rollup holds is summed from its
    days, any other is one range query on the time index (no sort)."""
    end = scope.until if scope.until is not None else time.time() + 1
    count = max(1, math.ceil((end - start) / bucket_s))
    rolled = rolled_days(scope) if bucket_s % DAY_S == 0 else None
    days = day_sums(scope, rolled) if rolled is not None else {}
    conn = reading()
    series = []
    for b in range(count):
        low = max(start + b * bucket_s, scope.since if scope.since is not None else float("-inf"))
        high = min(start + (b + 1) * bucket_s, end)
        row: tuple = (0, 0, 0, 0.0)
        if rolled is not None and rolled[0] <= low and high <= rolled[1] and low % DAY_S == 0 == high % DAY_S:
            row = _sum_days(days, int(low), int(high))
        elif conn is not None and high > low:
            where, params = Scope(low, high, scope.user).where()
            with readable_errors():
                row = conn.execute(
                    "SELECT count(*), coalesce(sum(status != 'ok'), 0),"
                    " coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0),"
                    f" coalesce(sum(cost_usd), 0.0) FROM routes {where}",
                    params,
                ).fetchone()
        series.append(
            {
                "start": start + b * bucket_s,
                "requests": row[0],
                "errors": row[1],
                "tokens": row[2],
                "cost_usd": round(row[3], 6),
            }
        )
    return series


def _sum_days(days: dict[int, tuple], low: int, high: int) -> tuple:
    out = [0, 0, 0, 0.0]
    for day in range(low, high, DAY_S):
        for index, value in enumerate(days.get(day, ())):
            out[index] += value
    return tuple(out)


# ---- the rollup: whole days from r42.store.rollup's cells ---------------------------------------
#
# A scope's whole UTC days are read from the rollup (a few cells per day, user and value instead of
# every row), the partial days at its ends from the rows. ROLLUP = False reads every row instead:
# the baseline of benchmarks/bench_dashboard.py and what the tests check the rollup against.

ROLLUP = True


def rolled_days(scope: Scope) -> tuple[float, float] | None:
    """The whole UTC days [first, end) of the scope that the rollup answers for (None: none)."""
    if not ROLLUP:
        return None
    low = -math.inf if scope.since is None else math.ceil(scope.since / DAY_S) * DAY_S
    high = math.inf if scope.until is None else math.floor(scope.until / DAY_S) * DAY_S
    return (low, high) if low < high else None


def edges(scope: Scope, rolled: tuple[float, float]) -> list[Scope]:
    """The parts of the scope outside its whole days: read from the rows."""
    out = []
    if scope.since is not None and scope.since < rolled[0]:
        out.append(Scope(scope.since, rolled[0], scope.user))
    if scope.until is not None and rolled[1] < scope.until:
        out.append(Scope(rolled[1], scope.until, scope.user))
    return out


def _rollup_where(scope: Scope, rolled: tuple[float, float], dims: tuple[str, ...]) -> tuple[str, list[Any]]:
    clauses, params = [f"dim IN ({', '.join('?' * len(dims))})"], list(dims)
    if rolled[0] > -math.inf:
        clauses.append("day >= ?")
        params.append(int(rolled[0]))
    if rolled[1] < math.inf:
        clauses.append("day < ?")
        params.append(int(rolled[1]))
    if scope.user is not None:
        clauses.append("user_key = ?")
        params.append(encode(scope.user))
    return "WHERE " + " AND ".join(clauses), params


def _key(value: str | None) -> str:
    return NONE_KEY if value is None else value


def _day_name(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day))


def _model_cell_key(dim: str, model: str | None, user_key: str, day: int) -> str | None:
    """The group a model cell adds to: its model, provider, user or day."""
    if dim == "model":
        return model
    if dim == "provider":
        return _provider(model)
    if dim == "user":
        return decode(user_key)
    return _day_name(day)


MODEL_CELL_DIMS = ("model", "provider", "user", "day")  # groups that model cells answer for


def _cell_groups(dims: tuple[str, ...], day: int, user_key: str, dim: str, value: str) -> list[tuple[str, str]]:
    """The (dimension, group) pairs of dims that one rollup cell adds to: a mode or domain cell
    to its own value; a model cell to its model, provider, user and day."""
    if dim != "model":
        return [(dim, _key(decode(value)))]
    model = decode(value)
    return [(g, _key(_model_cell_key(g, model, user_key, day))) for g in dims if g in MODEL_CELL_DIMS]


def fold_rollup(scope: Scope, rolled: tuple[float, float], dims: tuple[str, ...], with_complexity: bool) -> Folded:
    """fold() of the rollup's cells in the scope's whole days."""
    cell_dims = ("model", *(d for d in dims if d in ("mode", "domain")))
    where, params = _rollup_where(scope, rolled, cell_dims)
    rows = _rows(
        "SELECT day, user_key, dim, value, requests, errors, input_tokens, output_tokens, cost_usd, cmp_input,"
        f" cmp_output, cmp_cost, first_ts, last_ts, {', '.join(CX_FIELDS)} FROM route_rollup {where}",
        params,
    )
    total = [0] * N_SUMS
    by: dict[str, dict[str, list[float]]] = {d: {} for d in dims}
    firsts, lasts = [], []
    cx: dict[tuple[int, str], int] = {}
    for day, user_key, dim, value, *rest in rows:
        sums = rest[:N_SUMS]
        for group, key in _cell_groups(dims, day, user_key, dim, value):
            _add(by[group].setdefault(key, [0] * N_SUMS), sums)
        if dim != "model":
            continue
        _add(total, sums)
        firsts.append(rest[N_SUMS])
        lasts.append(rest[N_SUMS + 1])
        model = decode(value)
        if with_complexity:
            for index, n in enumerate(rest[N_SUMS + 2 :]):
                if n:
                    cx[(index, _key(model))] = cx.get((index, _key(model)), 0) + n
    return Folded(total, by, min(firsts) if firsts else None, max(lasts) if lasts else None, cx)


def latencies_rollup(scope: Scope, rolled: tuple[float, float], dims: tuple[str, ...]) -> Latencies:
    """latencies() of the rollup's cells in the scope's whole days."""
    cell_dims = ("model", *(d for d in dims if d in ("mode", "domain")))
    where, params = _rollup_where(scope, rolled, cell_dims)
    rows = _rows(
        f"SELECT day, user_key, dim, value, latency, latency_bins, ttft, ttft_bins FROM route_rollup {where}"
        " AND (latency IS NOT NULL OR latency_bins IS NOT NULL OR ttft IS NOT NULL OR ttft_bins IS NOT NULL)",
        params,
    )
    latency, ttft = Dist(), Dist()
    by: dict[str, dict[str, Dist]] = {d: {} for d in dims}
    for day, user_key, dim, value, latency_text, latency_bins, ttft_text, ttft_bins in rows:
        cell = Dist.loads(latency_text, latency_bins)
        for group, key in _cell_groups(dims, day, user_key, dim, value):
            by[group].setdefault(key, Dist()).add(cell)
        if dim == "model":
            latency.add(cell)
            ttft.add(Dist.loads(ttft_text, ttft_bins))
    return Latencies(latency, ttft, by)


def day_sums(scope: Scope, rolled: tuple[float, float]) -> dict[int, tuple]:
    """Requests, errors, tokens and cost per whole day of the scope, from the rollup."""
    where, params = _rollup_where(scope, rolled, ("model",))
    rows = _rows(
        "SELECT day, sum(requests), sum(errors), sum(input_tokens) + sum(output_tokens), sum(cost_usd)"
        f" FROM route_rollup {where} GROUP BY day",
        params,
    )
    return {int(day): tuple(sums) for day, *sums in rows}


def _complexity_bins(cx: dict[tuple[int, str], int]) -> list[dict[str, Any]]:
    bins = [
        {"low": i / COMPLEXITY_BINS, "high": (i + 1) / COMPLEXITY_BINS, "requests": 0, "models": {}}
        for i in range(COMPLEXITY_BINS)
    ]
    for (b, model), n in cx.items():
        bins[b]["requests"] += n
        bins[b]["models"][model] = bins[b]["models"].get(model, 0) + n
    for item in bins:
        item["models"] = dict(sorted(item["models"].items(), key=lambda kv: (-kv[1], kv[0])))
    return bins


def complexity(scope: Scope) -> list[dict[str, Any]]:
    """The complexity histogram (10 bins of 0.1) and, per bin, how many requests each model answered
    ("(none)": failed or unrouted)."""
    return _complexity_bins(fold(scope, ("model",), with_complexity=True).complexity)


def attempt_kind(attempt: dict[str, Any]) -> str:
    """A short kind for a failed attempt: "http 429", "timeout" or "connection"."""
    status = attempt.get("status")
    if status:
        return f"http {status}"
    text = str(attempt.get("error") or "").lower()
    return "timeout" if "timed out" in text or "timeout" in text else "connection"


def _provider(model: str | None) -> str | None:
    if not model:
        return None
    return model.split("/", 1)[0] if "/" in model else model


def _chain(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each attempt with its kind and the fallback taken after it (the next attempt's model)."""
    chain = []
    for index, attempt in enumerate(attempts):
        following = attempts[index + 1].get("model") if index + 1 < len(attempts) else None
        chain.append(
            {
                "model": attempt.get("model"),
                "ok": bool(attempt.get("ok")),
                "status": attempt.get("status"),
                "ms": attempt.get("ms"),
                "error": attempt.get("error"),
                "kind": None if attempt.get("ok") else attempt_kind(attempt),
                "fallback": following,
            }
        )
    return chain


@dataclass
class Failed:
    """One failed request as read: its row, and the providers and error kinds it involves. The
    attempt chain is built only for the rows a page shows (see shown())."""

    id: int
    ts: float
    request_id: str | None
    user: str | None
    endpoint: str
    model: str | None
    status: str
    error: str | None
    latency_ms: float | None
    attempts: list[dict[str, Any]]
    providers: set[str]
    kinds: set[str]

    def shown(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": iso(self.ts),
            "request_id": self.request_id,
            "user": self.user,
            "endpoint": self.endpoint,
            "model": self.model,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "attempts": _chain(self.attempts),
        }


def failed_rows(scope: Scope) -> list[Failed]:
    """Every failed request in the scope, most recent first (on the index of failed requests), with
    the providers and error kinds it involves (an attempt's kind, or the request's own error)."""
    where, params = scope.where("status != 'ok'")
    rows = _rows(
        "SELECT id, ts, request_id, user, endpoint, model, status, error, attempts, latency_ms"
        f" FROM routes {where} ORDER BY ts DESC, id DESC",
        params,
    )
    out = []
    for row_id, ts, request_id, user, endpoint, model, status, error, attempts_json, latency in rows:
        attempts = orjson.loads(attempts_json) if attempts_json else []
        providers: set[str] = set()
        kinds: set[str] = {error} if error else set()
        for attempt in attempts:  # one loop: a month holds thousands of failed requests
            provider = _provider(attempt.get("model"))
            if provider:
                providers.add(provider)
            if not attempt.get("ok"):
                kinds.add(attempt_kind(attempt))
        out.append(
            Failed(row_id, ts, request_id, user, endpoint, model, status, error, latency, attempts, providers, kinds)
        )
    return out


def filter_failures(
    rows: list[Failed], provider: str | None = None, kind: str | None = None, limit: int = FAILURES_SHOWN
) -> dict[str, Any]:
    """The failed requests that involve `provider` and `kind` (None: any): the first `limit` of
    them, how many matched in all, and every provider and kind seen (the filter's choices)."""
    providers: set[str] = set()
    kinds: set[str] = set()
    shown: list[dict[str, Any]] = []
    matched = 0
    for row in rows:
        providers.update(row.providers)
        kinds.update(row.kinds)
        if (provider and provider not in row.providers) or (kind and kind not in row.kinds):
            continue
        matched += 1
        if len(shown) < limit:
            shown.append(row.shown())
    return {"rows": shown, "matched": matched, "providers": sorted(providers), "kinds": sorted(kinds)}


def failures(
    scope: Scope, provider: str | None = None, kind: str | None = None, limit: int = FAILURES_SHOWN
) -> dict[str, Any]:
    """Failed requests (most recent first) with their attempt chains, filterable by provider and kind."""
    return filter_failures(failed_rows(scope), provider, kind, limit)


def key_use(user: str | None, now: float | None = None) -> list[dict[str, Any]]:
    """Each active key's limits and use: requests this minute and day, spend this month (one user's
    keys, or everyone's for user=None). Never the key itself: its prefix names it."""
    now = time.time() if now is None else now
    out = []
    for record in list_keys():
        if user is not None and record.user != user:
            continue
        used = usage(record.id, now)
        out.append(
            {
                "id": record.id,
                "user": record.user,
                "prefix": record.prefix,
                "admin": record.admin,
                "last_used": iso(record.last_used),
                "rpm": record.rpm,
                "rpd": record.rpd,
                "budget_usd": record.budget_usd,
                "requests_minute": used.requests_minute,
                "requests_day": used.requests_day,
                "cost_month_usd": round(used.cost_month_usd, 6),
            }
        )
    return out


def feedback_summary(scope: Scope) -> list[dict[str, Any]]:
    """Good and bad verdicts per model in the scope (feedback rows carry their own time and user)."""
    where, params = scope.where()
    rows = _rows(
        f"SELECT model, coalesce(sum(verdict > 0), 0), coalesce(sum(verdict < 0), 0), max(ts) FROM feedback {where}"
        " GROUP BY model ORDER BY count(*) DESC, model",
        params,
    )
    return [{"model": m, "good": g, "bad": b, "last": iso(t)} for m, g, b, t in rows]


LEARNING_TTL_S = 60.0  # learned adjustments move slowly: reused this long per user
LEARNING_SHOWN = 12
_learning: dict[tuple, tuple[float, list[dict[str, Any]]]] = {}


def _learned(user: str | None, half_life_days: float) -> list[dict[str, Any]]:
    from r42.learning import learned_adjustments

    return [
        {
            "user": user,
            "model": model,
            "domain": domain,
            "value": round(adj.value, 4),
            "good": adj.good,
            "bad": adj.bad,
            "failures": adj.failures,
            "slow": adj.slow,
        }
        for (model, domain), adj in learned_adjustments(user, half_life_days).items()
        if abs(adj.value) >= 0.005
    ]


_learning_pending: set[tuple] = set()


def _learn_in_background(key: tuple, user: str | None, half_life_days: float) -> None:
    """Compute one user's adjustments on a thread of its own (its own store connection)."""
    from r42.store.db import close_thread_connection

    def work() -> None:
        try:
            _learning[key] = (time.monotonic(), _learned(user, half_life_days))
        except Exception:  # noqa: BLE001 - the panel says it is unavailable; the page must not fail
            pass
        finally:
            _learning_pending.discard(key)
            close_thread_connection()

    with _cache_lock:
        if key in _learning_pending:
            return
        _learning_pending.add(key)
    threading.Thread(target=work, name="r42-dashboard-learning", daemon=True).start()


def learning_changes(
    users: list[str | None], half_life_days: float, limit: int = LEARNING_SHOWN, wait: bool = True
) -> list[dict[str, Any]] | None:
    """What rank has learned from feedback, failures and slow answers (r42.learning) for these
    users: the largest adjustments first, as (user, model, domain, value, evidence counts).

    Reading a user's evidence parses their routing log's attempts over 90 days, so results are
    reused for LEARNING_TTL_S. wait=False (the dashboard): a stale or missing user is computed on
    a background thread and the page does not wait; None while nothing is known yet."""
    now = time.monotonic()
    out: list[dict[str, Any]] = []
    missing = False
    for user in users:
        key = (str(_store_id()), user, half_life_days)
        cached = _learning.get(key)
        if cached is None or now - cached[0] > LEARNING_TTL_S:
            if wait:
                cached = _learning[key] = (now, _learned(user, half_life_days))
            else:
                _learn_in_background(key, user, half_life_days)
                if cached is None:
                    missing = True
                    continue
        out.extend(cached[1])
    if missing and not out:
        return None
    out.sort(key=lambda item: (-abs(item["value"]), item["model"], str(item["domain"])))
    return out[:limit]


def key_active(key_id: int) -> bool:
    """Is this key still in the store and not revoked? (A dashboard session ends with its key.)"""
    return bool(_rows("SELECT 1 FROM gateway_keys WHERE id = ? AND revoked IS NULL", [key_id]))


def dashboard_data(
    period: str,
    user: str | None,
    reference: Reference | None,
    provider: str | None = None,
    kind: str | None = None,
    now: float | None = None,
    half_life_days: float | None = None,
) -> dict[str, Any]:
    """Every panel of the dashboard for one period ending now: "1h" is the last 12 five-minute
    buckets, "24h" the last 24 hours and "30d" the last 30 days (UTC), each counting the current,
    partial bucket, so that everything before the current bucket can be reused (see Part)."""
    now = time.time() if now is None else now
    span, bucket = PERIODS[period]
    cut = now // bucket * bucket
    scope = Scope(since=cut + bucket - span, until=now + 1, user=user)
    found = panels(scope, reference, bucket, provider, kind, now, cut=cut, half_life_days=half_life_days, wait=False)
    return {"period": period, **found}


def bucket_for(span_s: float) -> int:
    """The chart bucket for a span: 5 minutes up to 2 hours, an hour up to 2 days, else a day."""
    return 300 if span_s <= 7200 else 3600 if span_s <= 2 * 86_400 else 86_400


# ---- parts: the additive pieces of a period, and the cache of the past ---------------------------


@dataclass
class Part:
    """Everything the panels need over [since, until), in a form two parts can be added in."""

    folded: Folded
    lat: Latencies
    series: dict[float, tuple[int, int, int, float]]  # bucket start -> requests, errors, tokens, cost
    failed: list[Failed]  # newest first


def _dims(scope: Scope) -> tuple[str, ...]:
    return ("model", "provider", "mode", "domain") + (("user",) if scope.user is None else ())


def part(scope: Scope, bucket_s: int, start: float) -> Part:
    """Query one part; scope.since and scope.until must be set."""
    assert scope.since is not None and scope.until is not None
    buckets = {}
    for point in timeseries(scope, bucket_s, start):
        buckets[point["start"]] = (point["requests"], point["errors"], point["tokens"], point["cost_usd"])
    return Part(
        fold(scope, _dims(scope), with_complexity=True), latencies(scope, ("model",)), buckets, failed_rows(scope)
    )


def merge(old: Part, new: Part) -> Part:
    """old (earlier) + new (later): sums added, latencies merged, failures newest first."""
    series = dict(old.series)
    for start, (n, e, t, c) in new.series.items():
        was = series.get(start, (0, 0, 0, 0.0))
        series[start] = (was[0] + n, was[1] + e, was[2] + t, was[3] + c)
    return Part(
        merge_folded(old.folded, new.folded), merge_latencies(old.lat, new.lat), series, new.failed + old.failed
    )


CACHE_ENTRIES = 8  # a 30-day admin entry over 100,000 requests holds ~300,000 latencies (~10 MB)
_cache: dict[tuple, tuple[tuple, Part]] = {}
_cache_lock = threading.Lock()
_building: dict[tuple, threading.Lock] = {}


def _fingerprint(scope: Scope) -> tuple:
    """What changes whenever a row of the scope is added or removed: their count and the sum of
    their ids (one pass over the time index; there are no UPDATEs of log rows)."""
    where, params = scope.where()
    rows = _rows(f"SELECT count(*), total(id) FROM routes {where}", params)
    return (str(_store_id()), *(rows[0] if rows else (0, 0)))


def _store_id() -> Any:
    from r42.store.db import store_path

    return store_path()


def past_part(scope: Scope, bucket_s: int, start: float) -> Part:
    """part() of a period that lies wholly before the current bucket, reused while no row in it is
    added or removed (checked on every use, so late rows and pruning are never missed)."""
    key = (str(_store_id()), scope, bucket_s, start)
    with _cache_lock:
        building = _building.setdefault(key, threading.Lock())
    with building:  # viewers arriving together wait for one query instead of each running it
        fingerprint = _fingerprint(scope)
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        found = part(scope, bucket_s, start)
        with _cache_lock:
            if len(_cache) >= CACHE_ENTRIES:
                oldest = next(iter(_cache))
                _cache.pop(oldest)
                _building.pop(oldest, None)
            _cache[key] = (fingerprint, found)
    return found


def panels(
    scope: Scope,
    reference: Reference | None,
    bucket_s: int,
    provider: str | None = None,
    kind: str | None = None,
    now: float | None = None,
    cut: float | None = None,
    half_life_days: float | None = None,
    wait: bool = True,
) -> dict[str, Any]:
    """Every panel over a scope: what /dashboard and `r42 stats --html` render. With `cut`, the
    rows before it come from past_part() (cached) and only the rest is queried. With
    half_life_days (the feedback_half_life_days setting), also what learning changed (wait=False:
    without waiting for it, see learning_changes)."""
    now = time.time() if now is None else now
    since = scope.since if scope.since is not None else (first_time(scope) or now)
    until = scope.until if scope.until is not None else now + 1
    start = since // bucket_s * bucket_s
    whole = Scope(since, until, scope.user)
    if cut is not None and since < cut < until:
        data = merge(
            past_part(Scope(since, cut, scope.user), bucket_s, start),
            part(Scope(cut, until, scope.user), bucket_s, cut),
        )
    else:
        data = part(whole, bucket_s, start)
    folded, lat = data.folded, data.lat
    ps = (50, 90, 95, 99)
    series = [
        {"start": b, "requests": v[0], "errors": v[1], "tokens": v[2], "cost_usd": round(v[3], 6)}
        for b, v in sorted(data.series.items())
    ]
    return {
        "user": scope.user,
        "since": iso(since),
        "generated": iso(now),
        "reference": reference_dict(reference),
        "totals": _totals(folded, lat, reference),
        "series": series,
        "bucket_s": bucket_s,
        **{f"by_{d}": _groups(folded, lat, d, reference) for d in ("model", "provider", "mode", "domain")},
        "by_user": _groups(folded, None, "user", reference) if scope.user is None else None,
        "latency": {"latency_ms": pick(lat.latency, ps), "ttft_ms": pick(lat.ttft, ps)},
        "complexity": _complexity_bins(folded.complexity),
        "failures": filter_failures(data.failed, provider, kind),
        "keys": key_use(scope.user, now),
        "feedback": feedback_summary(whole),
        **(
            {}
            if half_life_days is None
            else {
                "learning": learning_changes(_learning_users(scope, folded), half_life_days, wait=wait),
            }
        ),
    }


def _learning_users(scope: Scope, folded: Folded) -> list[str | None]:
    """The viewed user, or (for everyone) the users with requests in the period, busiest first."""
    if scope.user is not None:
        return [scope.user]
    users = sorted(folded.by.get("user", {}).items(), key=lambda kv: -kv[1][0])[:20]
    return [None if name == NONE_KEY else name for name, _ in users]


def first_time(scope: Scope) -> float | None:
    """The time of the scope's oldest row (None when it has none)."""
    where, params = scope.where()
    rows = _rows(f"SELECT min(ts) FROM routes {where}", params)
    return rows[0][0] if rows else None
