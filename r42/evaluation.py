"""Routing quality of scorers on labelled prompts, measured the way RouteLLM measures it.

A labelled row says what quality a strong and a weak model got on one prompt. A scorer routes a
prompt to the strong model when its complexity reaches a threshold; sweeping the threshold traces
quality against the share of strong calls. From that curve come RouteLLM's numbers:

- APGR: the area under the curve, normalised so weak-only is 0 and strong-only is 1.
- CPT(x%): the share of strong calls needed to recover x% of the weak-to-strong quality gap.

What is matched, and where (lm-sys/RouteLLM, routellm/evals/benchmarks.py and evaluate.py):

- thresholds are the score's deciles, `pd.qcut(scores, 10, retbins=True)`: numpy's "linear"
  quantiles at the levels pandas' qcut uses (`decile_levels`), computed step by step as numpy
  computes them so that a decile falling exactly on a data point lands where numpy puts it;
- a prompt goes to the strong model when `score >= threshold`, except at the last (largest)
  threshold where it is `score > threshold`, so the curve always runs from 100% to 0% strong;
- quality at a threshold is the mean over all rows of the routed model's quality;
- AUC is `np.trapz(quality, share)` over the points sorted by share; APGR is
  `(AUC - weak_auc) / (strong_auc - weak_auc)` with the flat weak and strong lines integrated the
  same way; CPT is `np.interp(weak + x * (strong - weak), quality, share)`, reproduced here with
  numpy's own search so it agrees even where the curve is not monotonic (`numpy_interp`).

Units: shares and CPT are fractions (0..1) where RouteLLM prints percentages (CPT 0.432 here is
RouteLLM's "43.20%"); APGR is the same dimensionless number.

Ties: RouteLLM's qcut raises "Bin edges must be unique" when tied scores make two deciles equal.
Here duplicate thresholds are kept: they give identical points, which add nothing to the area and
nothing to the interpolation, so the metrics are what RouteLLM reports with duplicates dropped.
All prompts with the same score always go to the same model, so a scorer with many ties (a
keyword rule, an integer length) has fewer distinct points on its curve; that is its real
behaviour and is not smoothed away.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import orjson

from r42.config import DOMAINS
from r42.errors import InputError

BINS = 10  # deciles, as RouteLLM's num_results default
RANDOM_SEEDS = 100
GAP_FRACTIONS = (0.5, 0.8)  # CPT(50%), CPT(80%)
STRONG_QUALITY_TARGET = 0.95  # "strong-call share and cost saving at 95% of strong-only quality"


# --- input -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One labelled prompt."""

    id: str
    messages: list[dict[str, Any]]
    strong: float  # quality the strong model got (0/1 correctness, or any score)
    weak: float
    domain: str | None = None
    strong_cost: float | None = None
    weak_cost: float | None = None
    scores: dict[str, float] = field(default_factory=dict)  # precomputed scores of other routers


def load_rows(raw: bytes) -> list[Row]:
    """Parse labelled JSONL. Raises InputError naming the first bad line."""
    rows: list[Row] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if line.strip():
            rows.append(_row_of(line, number))
    if not rows:
        raise InputError(
            "the eval file has no rows", 'one JSON object per line: {"prompt": ..., "strong": 1, "weak": 0}'
        )
    return rows


def _row_of(line: bytes, number: int) -> Row:
    where = f"line {number}"
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON: {exc}", "each line must be one JSON object") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object", "each line must be one JSON object")
    messages = _messages_of(obj, where)
    domain = obj.get("domain")
    if domain is not None and domain not in DOMAINS:
        raise InputError(f"{where}: unknown domain {domain!r}", "domains: " + ", ".join(DOMAINS))
    scores = obj.get("scores") or {}
    if not isinstance(scores, dict) or not all(_is_number(v) for v in scores.values()):
        raise InputError(f"{where}: 'scores' must map names to numbers")
    return Row(
        id=str(obj.get("id", number)),
        messages=messages,
        strong=_number(obj, "strong", where),
        weak=_number(obj, "weak", where),
        domain=domain,
        strong_cost=_number(obj, "strong_cost", where, required=False),
        weak_cost=_number(obj, "weak_cost", where, required=False),
        scores={str(k): float(v) for k, v in scores.items()},
    )


def _messages_of(obj: dict[str, Any], where: str) -> list[dict[str, Any]]:
    from r42.document import messages_of  # validates the OpenAI shape

    try:
        return messages_of(obj)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}", exc.hint) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(obj: dict[str, Any], key: str, where: str, required: bool = True) -> float | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool):
        return float(value)
    if not _is_number(value):
        raise InputError(f"{where}: {key!r} must be a number", f'e.g. "{key}": 1')
    return float(value)


# --- the RouteLLM curve and its metrics ------------------------------------------------------


@dataclass(frozen=True)
class Point:
    threshold: float
    strong_share: float  # fraction of prompts routed to the strong model
    quality: float  # mean quality of the routed answers
    cost: float | None = None  # total cost of the routed calls, when every row has costs


def decile_levels(bins: int = BINS) -> list[float]:
    """The quantile levels of pandas' qcut(q=bins): np.linspace(0, 1, bins + 1), each level that is not
    exactly representable rounded up by one ulp (pandas >= 3; earlier pandas left them as they were,
    which can move a threshold that falls exactly on a data point)."""
    step = 1.0 / bins
    levels = [i * step for i in range(bins)] + [1.0]
    return [q if q * bins == i else math.nextafter(q, 1.0) for i, q in enumerate(levels)]


def linear_quantile(sorted_values: Sequence[float], q: float) -> float:
    """numpy.quantile(values, q, method="linear"), with numpy's own rounding steps."""
    n = len(sorted_values)
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return sorted_values[-1]
    if virtual < 0:
        return sorted_values[0]
    below = math.floor(virtual)
    gamma = virtual - below
    a, b = sorted_values[below], sorted_values[below + 1]
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma  # numpy's _lerp


def thresholds_of(scores: Sequence[float], bins: int = BINS) -> list[float]:
    ordered = sorted(scores)
    return [linear_quantile(ordered, q) for q in decile_levels(bins)]


def routing_curve(
    scores: Sequence[float],
    strong: Sequence[float],
    weak: Sequence[float],
    bins: int = BINS,
    strong_cost: Sequence[float] | None = None,
    weak_cost: Sequence[float] | None = None,
) -> list[Point]:
    """Quality against strong-call share at each decile threshold, sorted by share (ascending)."""
    n = len(scores)
    if n == 0 or not (len(strong) == len(weak) == n):
        raise ValueError("scores, strong and weak must be non-empty and of equal length")
    order = sorted(range(n), key=scores.__getitem__)
    ordered = [scores[i] for i in order]
    # Suffix sums over rows sorted by score: routing "score >= t" sends a suffix to the strong model.
    gain = _suffix_sums([strong[i] - weak[i] for i in order])
    weak_total = math.fsum(weak)
    cost_gain = _suffix_sums([strong_cost[i] - weak_cost[i] for i in order]) if strong_cost and weak_cost else None
    weak_cost_total = math.fsum(weak_cost) if weak_cost else 0.0
    points = []
    thresholds = [linear_quantile(ordered, q) for q in decile_levels(bins)]
    for index, threshold in enumerate(thresholds):
        last = index == len(thresholds) - 1
        start = bisect.bisect_right(ordered, threshold) if last else bisect.bisect_left(ordered, threshold)
        cost = weak_cost_total + cost_gain[start] if cost_gain is not None else None
        points.append(Point(threshold, (n - start) / n, (weak_total + gain[start]) / n, cost))
    points.sort(key=lambda p: p.strong_share)
    return points


def _suffix_sums(values: list[float]) -> list[float]:
    out = [0.0] * (len(values) + 1)
    for i in range(len(values) - 1, -1, -1):
        out[i] = out[i + 1] + values[i]
    return out


def trapezoid(y: Sequence[float], x: Sequence[float]) -> float:
    """np.trapz(y, x)."""
    return sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2.0 for i in range(len(x) - 1))


def apgr(curve: Sequence[Point], strong_quality: float, weak_quality: float) -> float:
    """Average performance gap recovered (RouteLLM evaluate.py, apgr_metric)."""
    x = [p.strong_share for p in curve]
    area = trapezoid([p.quality for p in curve], x)
    weak_area = trapezoid([weak_quality] * len(x), x)
    strong_area = trapezoid([strong_quality] * len(x), x)
    if strong_area == weak_area:
        return math.nan  # the two models are equally good: there is no gap to recover
    return (area - weak_area) / (strong_area - weak_area)


def cpt(curve: Sequence[Point], fraction: float, strong_quality: float, weak_quality: float) -> float:
    """Call-performance threshold (RouteLLM evaluate.py, pct_call_metric): the strong-call share at
    which the curve reaches weak + fraction * (strong - weak)."""
    # In percent, with RouteLLM's order of operations: when the target equals a point of the curve
    # exactly (common with 0/1 labels), the search must break the tie as numpy does on their numbers.
    strong_pct, weak_pct = strong_quality * 100, weak_quality * 100
    target = fraction * (strong_pct - weak_pct) + weak_pct
    return numpy_interp(target, [p.quality * 100 for p in curve], [p.strong_share * 100 for p in curve]) / 100


def numpy_interp(x: float, xp: Sequence[float], fp: Sequence[float]) -> float:
    """np.interp(x, xp, fp) for one x, including its answer when xp is not increasing (numpy does not
    check; RouteLLM's quality curve need not be monotonic). Mirrors numpy's compiled interp: a
    search that first tries the neighbours of guess 0, then bisects."""
    n = len(xp)
    if n == 1:
        return fp[0]  # numpy: left and right defaults are fp[0] and fp[-1], the same value
    j = _search_with_guess(x, xp, 0)
    if j == -1:
        return fp[0]
    if j == n:
        return fp[-1]
    if j == n - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    value = slope * (x - xp[j]) + fp[j]
    if math.isnan(value):
        value = slope * (x - xp[j + 1]) + fp[j + 1]
        if math.isnan(value) and fp[j] == fp[j + 1]:
            value = fp[j]
    return value


def _search_with_guess(key: float, arr: Sequence[float], guess: int) -> int:
    """numpy's binary_search_with_guess (numpy/_core/src/multiarray/compiled_base.c)."""
    n = len(arr)
    if key > arr[-1]:
        return n
    if key < arr[0]:
        return -1
    if n <= 4:  # numpy searches short arrays linearly
        i = 1
        while i < n and key >= arr[i]:
            i += 1
        return i - 1
    guess = min(max(guess, 1), n - 3)
    lo, hi = 0, n
    if key < arr[guess]:
        if key < arr[guess - 1]:
            hi = guess - 1
            if guess > 8 and key >= arr[guess - 8]:
                lo = guess - 8
        else:
            return guess - 1
    else:
        if key < arr[guess + 1]:
            return guess
        if key < arr[guess + 2]:
            return guess + 1
        lo = guess + 2
        if guess < n - 8 - 1 and key < arr[guess + 8]:
            hi = guess + 8
    while lo < hi:
        mid = lo + ((hi - lo) >> 1)
        if key >= arr[mid]:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


# --- a scorer's report -----------------------------------------------------------------------


@dataclass
class RoutingMetrics:
    apgr: float
    cpt50: float
    cpt80: float
    share95: float  # strong-call share needed to reach 95% of strong-only quality
    cost_saving95: float | None  # 1 - routed cost / strong-only cost at that share (None without costs)
    curve: list[Point]


def routing_metrics(scores: Sequence[float], rows: Sequence[Row], bins: int = BINS) -> RoutingMetrics:
    strong = [r.strong for r in rows]
    weak = [r.weak for r in rows]
    with_costs = all(r.strong_cost is not None and r.weak_cost is not None for r in rows)
    strong_cost = [r.strong_cost or 0.0 for r in rows] if with_costs else None
    weak_cost = [r.weak_cost or 0.0 for r in rows] if with_costs else None
    curve = routing_curve(scores, strong, weak, bins, strong_cost, weak_cost)
    strong_q, weak_q = _mean(strong), _mean(weak)
    share95 = share_for_quality(curve, STRONG_QUALITY_TARGET * strong_q)
    saving = None
    if with_costs and strong_cost is not None:
        all_strong = math.fsum(strong_cost)
        cost95 = numpy_interp(share95, [p.strong_share for p in curve], [p.cost or 0.0 for p in curve])
        saving = 1.0 - cost95 / all_strong if all_strong > 0 else None
    return RoutingMetrics(
        apgr=apgr(curve, strong_q, weak_q),
        cpt50=cpt(curve, 0.5, strong_q, weak_q),
        cpt80=cpt(curve, 0.8, strong_q, weak_q),
        share95=share95,
        cost_saving95=saving,
        curve=curve,
    )


def share_for_quality(curve: Sequence[Point], target: float) -> float:
    """The smallest strong-call share at which the (linearly interpolated) curve reaches `target`;
    1.0 if it never does. First crossing, not np.interp: this one is a promise to a user."""
    if curve[0].quality >= target:
        return curve[0].strong_share
    for a, b in zip(curve, curve[1:]):
        if b.quality >= target:
            if b.quality == a.quality:
                return b.strong_share
            return a.strong_share + (target - a.quality) * (b.strong_share - a.strong_share) / (b.quality - a.quality)
    return 1.0


def random_band(rows: Sequence[Row], seeds: int = RANDOM_SEEDS, bins: int = BINS) -> dict[str, float]:
    """APGR and CPT(50%) of RouteLLM's random router (a uniform score per prompt) over many seeds:
    the band a router must clear to be better than chance."""
    strong = [r.strong for r in rows]
    weak = [r.weak for r in rows]
    strong_q, weak_q = _mean(strong), _mean(weak)
    apgrs, cpts = [], []
    for seed in range(seeds):
        rng = random.Random(seed)
        curve = routing_curve([rng.random() for _ in rows], strong, weak, bins)
        apgrs.append(apgr(curve, strong_q, weak_q))
        cpts.append(cpt(curve, 0.5, strong_q, weak_q))
    apgrs.sort()
    cpts.sort()
    return {
        "seeds": seeds,
        "apgr_mean": _mean(apgrs),
        "apgr_p05": linear_quantile(apgrs, 0.05),
        "apgr_p95": linear_quantile(apgrs, 0.95),
        "cpt50_mean": _mean(cpts),
    }


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


# --- domains ---------------------------------------------------------------------------------


@dataclass
class DomainMetrics:
    labelled: int
    accuracy: float
    confusion: dict[str, dict[str, int]]  # true domain -> predicted domain -> count


def domain_metrics(labels: Sequence[str | None], predicted: Sequence[str]) -> DomainMetrics | None:
    pairs = [(t, p) for t, p in zip(labels, predicted) if t is not None]
    if not pairs:
        return None
    confusion = {t: {p: 0 for p in DOMAINS} for t in DOMAINS if any(t == a for a, _ in pairs)}
    for truth, guess in pairs:
        confusion[truth][guess] += 1
    correct = sum(1 for t, p in pairs if t == p)
    return DomainMetrics(len(pairs), correct / len(pairs), confusion)


# --- the whole evaluation --------------------------------------------------------------------


@dataclass
class ScorerResult:
    name: str
    routing: RoutingMetrics
    domains: DomainMetrics | None


@dataclass
class Evaluation:
    rows: int
    strong_quality: float
    weak_quality: float
    scorers: list[ScorerResult]
    random_band: dict[str, float]


ScoreFn = Callable[[Row], tuple[float, str | None]]  # row -> (complexity, top domain or None)


def evaluate(
    rows: Sequence[Row], scorers: dict[str, ScoreFn], bins: int = BINS, seeds: int = RANDOM_SEEDS
) -> Evaluation:
    labels = [r.domain for r in rows]
    results = []
    for name, score in scorers.items():
        outputs = [score(r) for r in rows]
        complexities = [c for c, _ in outputs]
        domains = None
        if all(d is not None for _, d in outputs):
            domains = domain_metrics(labels, [d for _, d in outputs if d is not None])
        results.append(ScorerResult(name, routing_metrics(complexities, rows, bins), domains))
    return Evaluation(
        rows=len(rows),
        strong_quality=_mean([r.strong for r in rows]),
        weak_quality=_mean([r.weak for r in rows]),
        scorers=results,
        random_band=random_band(rows, seeds, bins),
    )


def scorer_functions(names: Iterable[str], rows: Sequence[Row]) -> dict[str, ScoreFn]:
    """A function per name: a registered scorer, else a score precomputed in every row's `scores`."""
    from r42.errors import UsageError
    from r42.scoring import SCORERS, get_scorer, normalise_domains, prompt_of

    out: dict[str, ScoreFn] = {}
    for name in names:
        if name in SCORERS or name == "default":
            scorer = get_scorer(name)

            def run(row: Row, scorer=scorer) -> tuple[float, str | None]:
                estimate = scorer.estimate(prompt_of(row.messages))
                domains = normalise_domains(estimate.domains)
                if len(set(domains.values())) <= 2:  # uniform (a baseline): no domain guess to score
                    return estimate.complexity, None
                return estimate.complexity, max(DOMAINS, key=domains.__getitem__)

            out[name] = run
        elif all(name in r.scores for r in rows):
            out[name] = lambda row, name=name: (row.scores[name], None)
        else:
            known = ", ".join(["default", *SCORERS, *precomputed_names(rows)])
            raise UsageError(
                f"unknown scorer {name!r} (not registered, not in every row's 'scores')", "scorers: " + known
            )
    return out


def precomputed_names(rows: Sequence[Row]) -> list[str]:
    """Names of scores present in every row."""
    if not rows:
        return []
    common = set(rows[0].scores)
    for row in rows[1:]:
        common &= set(row.scores)
    return sorted(common)


def as_json(result: Evaluation) -> dict[str, Any]:
    """The JSON shape `r42 eval` writes in a pipe."""
    return {
        "rows": result.rows,
        "strong_quality": result.strong_quality,
        "weak_quality": result.weak_quality,
        "random_band": result.random_band,
        "scorers": {s.name: _scorer_json(s) for s in result.scorers},
    }


def _scorer_json(result: ScorerResult) -> dict[str, Any]:
    r = result.routing
    out: dict[str, Any] = {
        "apgr": _finite(r.apgr),
        "cpt50": _finite(r.cpt50),
        "cpt80": _finite(r.cpt80),
        "strong_share_at_95": r.share95,
        "cost_saving_at_95": r.cost_saving95,
        "curve": [{"threshold": p.threshold, "strong_share": p.strong_share, "quality": p.quality} for p in r.curve],
    }
    if result.domains is not None:
        out["domain_accuracy"] = result.domains.accuracy
        out["domain_labelled"] = result.domains.labelled
        out["confusion"] = result.domains.confusion
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- calibration -----------------------------------------------------------------------------


def calibrate(complexities: Sequence[float], strong_share: float) -> tuple[float, float]:
    """Cut points (simple_below, complex_from) for a user's own prompts.

    complex_from is chosen so that the prompts with complexity >= complex_from (the ones ranked
    as complex, sent to strong models) are at most `strong_share` of them, and as close to it as
    ties allow. The rest are split evenly: the lower half of them is simple. Ties never straddle a
    cut point, so the share can come out below the request when many prompts score alike.
    """
    if not complexities:
        raise ValueError("no complexities to calibrate on")
    if not 0.0 <= strong_share <= 1.0:
        raise ValueError("strong_share must be between 0 and 1")
    ordered = sorted(complexities)
    complex_from = _cut_for_top_share(ordered, strong_share)
    rest = bisect.bisect_left(ordered, complex_from)  # prompts below complex_from
    simple_below = _cut_for_top_share(ordered[:rest], 0.5) if rest else complex_from
    return min(simple_below, complex_from), complex_from


def _cut_for_top_share(ordered: list[float], share: float) -> float:
    """The smallest value v of `ordered` with count(x >= v) <= share * n; above the maximum if none."""
    n = len(ordered)
    allowed = math.floor(share * n + 1e-9)
    if allowed >= n:
        return ordered[0]
    if allowed == 0:
        return math.nextafter(ordered[-1], math.inf)
    v = ordered[n - allowed]
    if bisect.bisect_left(ordered, v) == n - allowed:
        return v
    above = bisect.bisect_right(ordered, v)  # ties straddle the cut: move past them
    return ordered[above] if above < n else math.nextafter(ordered[-1], math.inf)


# --- a plot without matplotlib ---------------------------------------------------------------

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def curves_svg(
    series: dict[str, list[tuple[float, float]]], guides: dict[str, float], title: str = "Quality vs strong-model calls"
) -> str:
    """A small SVG line chart: one polyline per scorer (x = strong share 0..1, y = quality) and a
    dashed horizontal line per guide (strong only, weak only)."""
    from html import escape

    width, height, left, right, top, bottom = 720, 440, 60, 170, 36, 48
    ys = [y for points in series.values() for _, y in points] + list(guides.values())
    low, high = min(ys), max(ys)
    pad = (high - low) * 0.05 or 0.05
    low, high = low - pad, high + pad

    def sx(x: float) -> float:
        return left + x * (width - left - right)

    def sy(y: float) -> float:
        return top + (high - y) / (high - low) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2 - 60}" y="20" font-size="14">{escape(title)}</text>',
        f'<line x1="{sx(0)}" y1="{sy(low)}" x2="{sx(1)}" y2="{sy(low)}" stroke="black"/>',
        f'<line x1="{sx(0)}" y1="{sy(low)}" x2="{sx(0)}" y2="{sy(high)}" stroke="black"/>',
    ]
    for tick in range(0, 101, 20):
        x = sx(tick / 100)
        out.append(f'<text x="{x - 10:.1f}" y="{sy(low) + 16:.1f}">{tick}%</text>')
    for i in range(5):
        y = low + (high - low) * i / 4
        out.append(f'<text x="4" y="{sy(y) + 4:.1f}">{y:.3f}</text>')
    out.append(f'<text x="{sx(0.5) - 60:.1f}" y="{height - 8}">strong-model calls</text>')
    legend_y = top + 10
    for i, (name, y) in enumerate(guides.items()):
        colour = "#888888" if i else "#d62728"
        out.append(
            f'<line x1="{sx(0)}" y1="{sy(y):.1f}" x2="{sx(1)}" y2="{sy(y):.1f}" '
            f'stroke="{colour}" stroke-dasharray="6 4"/>'
        )
        out.append(f'<text x="{sx(1) + 8}" y="{legend_y}" fill="{colour}">- - {escape(name)}</text>')
        legend_y += 18
    for i, (name, points) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(f'<text x="{sx(1) + 8}" y="{legend_y}" fill="{colour}">— {escape(name)}</text>')
        legend_y += 18
    out.append("</svg>")
    return "\n".join(out) + "\n"
