"""r42.evaluation: RouteLLM's metrics on hand-computed examples, against an independent
straightforward implementation, against numpy/pandas themselves when installed, and `r42 eval`."""

from __future__ import annotations

import io
import math
import random

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from r42 import evaluation as ev
from r42.cli import cli
from r42.terminal import Terminal

# --- hand-computed -----------------------------------------------------------------------------


def test_perfect_router_on_four_rows_by_hand() -> None:
    # Rows: only row 3 needs the strong model (strong right, weak wrong).
    scores = [0.1, 0.2, 0.3, 0.9]
    strong = [1.0, 1.0, 0.0, 1.0]
    weak = [1.0, 1.0, 0.0, 0.0]
    curve = ev.routing_curve(scores, strong, weak, bins=2)
    # thresholds: quantiles 0, .5, 1 of [.1,.2,.3,.9] = .1, .25, .9 -> shares 1, .5, 0 (last uses >)
    assert [(p.strong_share, p.quality) for p in curve] == [(0.0, 0.5), (0.5, 0.75), (1.0, 0.75)]
    # AUC = .5*(.5+.75)/2 + .5*.75 = .6875; weak .5, strong .75 -> APGR = (.6875-.5)/.25 = .75
    assert ev.apgr(curve, 0.75, 0.5) == pytest.approx(0.75)
    # CPT(50%): quality .625 is reached half-way to share .5
    assert ev.cpt(curve, 0.5, 0.75, 0.5) == pytest.approx(0.25)


def test_ties_never_split_and_duplicate_thresholds_add_nothing() -> None:
    scores = [0.5] * 8 + [0.9, 0.9]
    strong = [1.0] * 10
    weak = [0.0] * 8 + [1.0, 1.0]
    curve = ev.routing_curve(scores, strong, weak)
    assert {p.strong_share for p in curve} == {0.0, 0.2, 1.0}  # the 8 tied rows always move together
    assert len(curve) == 11
    # Distinct points (0, .2), (.2, .2), (1, 1): area .04 + .48 = .52, APGR (.52 - .2) / .8 = .4.
    assert ev.apgr(curve, 1.0, 0.2) == pytest.approx(0.4)


def test_equal_models_give_nan_apgr_not_a_crash() -> None:
    curve = ev.routing_curve([0.1, 0.2], [1.0, 0.0], [1.0, 0.0])
    assert math.isnan(ev.apgr(curve, 0.5, 0.5))


def test_share_for_quality_is_the_first_crossing() -> None:
    curve = [ev.Point(0, 0.0, 0.5), ev.Point(0, 0.5, 0.9), ev.Point(0, 1.0, 0.8)]
    assert ev.share_for_quality(curve, 0.7) == pytest.approx(0.25)
    assert ev.share_for_quality(curve, 0.95) == 1.0


# --- an independent, straightforward implementation of RouteLLM's algorithm ----------------------


def _reference(scores, strong, weak):
    """Written from RouteLLM's benchmarks.py/evaluate.py text, sharing no code with r42.evaluation:
    thresholds by numpy's linear quantile at pandas' qcut levels, a full pass over the rows per
    threshold, trapezoids, and a plain first-segment interpolation (valid for monotonic curves)."""
    n = len(scores)
    ordered = sorted(scores)
    levels = [i * 0.1 for i in range(10)] + [1.0]  # np.linspace(0, 1, 11): i * step, last exactly 1
    levels = [q if q * 10 == i else math.nextafter(q, 1) for i, q in enumerate(levels)]
    thresholds = []
    for q in levels:
        pos = (n - 1) * q
        lo = min(int(math.floor(pos)), n - 1)
        hi = min(lo + 1, n - 1)
        g = pos - math.floor(pos)
        d = ordered[hi] - ordered[lo]
        thresholds.append(ordered[hi] - d * (1 - g) if g >= 0.5 else ordered[lo] + d * g)
    points = []
    for i, t in enumerate(thresholds):
        chosen = [(s > t) if i == 10 else (s >= t) for s in scores]
        quality = sum(st if c else wk for c, st, wk in zip(chosen, strong, weak)) / n
        points.append((sum(chosen) / n, quality))
    points.sort()
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(10))
    sq, wq = sum(strong) / n, sum(weak) / n
    apgr = (area - wq) / (sq - wq)
    target = wq + 0.5 * (sq - wq)
    cpt = None
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y0 <= target <= y1 and y1 > y0:
            cpt = x0 + (target - y0) * (x1 - x0) / (y1 - y0)
            break
    return apgr, cpt, points


def _monotone_data(seed: int, n: int):
    rng = random.Random(seed)
    scores = [round(rng.random(), 2) for _ in range(n)]  # rounding makes ties
    weak = [1.0 if rng.random() > s else 0.0 for s in scores]
    strong = [1.0] * n  # strong always right: the curve is monotonic
    return scores, strong, weak


@pytest.mark.parametrize("seed", range(6))
def test_equals_the_reference_implementation(seed: int) -> None:
    scores, strong, weak = _monotone_data(seed, 50 + 37 * seed)
    assert len(set(weak)) > 1  # the seeds are fixed: no draw is degenerate
    curve = ev.routing_curve(scores, strong, weak)
    ref_apgr, ref_cpt, ref_points = _reference(scores, strong, weak)
    flat = [v for p in curve for v in (p.strong_share, p.quality)]
    assert flat == pytest.approx([v for point in ref_points for v in point], abs=1e-12)
    sq, wq = sum(strong) / len(strong), sum(weak) / len(weak)
    assert ev.apgr(curve, sq, wq) == pytest.approx(ref_apgr, abs=1e-12)
    assert ev.cpt(curve, 0.5, sq, wq) == pytest.approx(ref_cpt, abs=1e-12)


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=60), st.randoms(use_true_random=False))
@settings(max_examples=80, deadline=None)
def test_curve_runs_from_all_weak_to_all_strong(scores, rng) -> None:
    strong = [float(rng.random() < 0.8) for _ in scores]
    weak = [float(rng.random() < 0.6) for _ in scores]
    curve = ev.routing_curve(scores, strong, weak)
    assert curve[0].strong_share == 0.0 and curve[-1].strong_share == 1.0
    assert curve[0].quality == pytest.approx(sum(weak) / len(weak))
    assert curve[-1].quality == pytest.approx(sum(strong) / len(strong))
    assert [p.strong_share for p in curve] == sorted(p.strong_share for p in curve)


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=12), st.floats(-6, 6, allow_nan=False))
def test_interp_agrees_with_a_linear_scan_on_increasing_points(values, x) -> None:
    xp = sorted(set(values))
    fp = [v * 2 + 1 for v in xp]
    if x <= xp[0]:
        expected = fp[0]
    elif x >= xp[-1]:
        expected = fp[-1]
    else:
        j = max(i for i in range(len(xp)) if xp[i] <= x)
        expected = fp[j] + (x - xp[j]) * (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    assert ev.numpy_interp(x, xp, fp) == pytest.approx(expected)


# --- numpy and pandas themselves (RouteLLM's own code path), when installed ------------------------


def test_equals_routellm_code_path_with_numpy_and_pandas() -> None:
    import numpy as np
    import pandas as pd

    trapz = getattr(np, "trapezoid", None) or np.trapz
    rng = random.Random(7)
    for trial in range(30):
        n = rng.choice([11, 37, 101, 400])
        scores = [rng.choice([0.0, 0.25, 0.5, 1.0]) if trial % 3 == 0 else rng.random() for _ in range(n)]
        strong = [float(rng.random() < 0.8) for _ in range(n)]
        weak = [float(rng.random() < 0.55) for _ in range(n)]
        series = pd.Series(scores)
        try:
            _, thresholds = pd.qcut(series, 10, retbins=True)
        except ValueError:  # RouteLLM's qcut refuses duplicate edges; r42 keeps them (documented)
            thresholds = None
        if thresholds is not None:
            assert list(thresholds) == ev.thresholds_of(scores)
        rows = []
        edges = thresholds if thresholds is not None else ev.thresholds_of(scores)
        for i, t in enumerate(edges):
            sel = series >= t if i != len(edges) - 1 else series > t
            res = np.where(sel, strong, weak)
            rows.append({"strong_percentage": sel.sum() / n * 100, "accuracy": sum(res) / len(res) * 100})
        df = pd.DataFrame(rows).sort_values(by=["strong_percentage"])
        sq, wq = sum(strong) / n * 100, sum(weak) / n * 100
        if sq == wq:
            continue
        auc = trapz(df["accuracy"], df["strong_percentage"] / 100)
        weak_auc = trapz(np.full(len(df), wq), df["strong_percentage"] / 100)
        strong_auc = trapz(np.full(len(df), sq), df["strong_percentage"] / 100)
        apgr = (auc - weak_auc) / (strong_auc - weak_auc)
        curve = ev.routing_curve(scores, strong, weak)
        assert ev.apgr(curve, sq / 100, wq / 100) == pytest.approx(apgr, abs=1e-9)
        for frac in (0.2, 0.5, 0.8):
            want = np.interp(frac * (sq - wq) + wq, df["accuracy"], df["strong_percentage"]) / 100
            assert ev.cpt(curve, frac, sq / 100, wq / 100) == pytest.approx(want, abs=1e-9)


def test_interp_matches_numpy_on_non_monotonic_curves() -> None:
    import numpy as np

    rng = random.Random(3)
    for _ in range(300):
        n = rng.choice([2, 3, 4, 5, 8, 11, 20])
        xp = [rng.random() for _ in range(n)]
        fp = [rng.random() for _ in range(n)]
        x = rng.random()
        assert ev.numpy_interp(x, xp, fp) == pytest.approx(float(np.interp(x, xp, fp)), abs=1e-12)


# --- random band, domains, calibration ---------------------------------------------------------


def test_random_band_brackets_one_half() -> None:
    rows = [ev.Row(str(i), [{"role": "user", "content": "x"}], 1.0, float(i % 3 == 0)) for i in range(300)]
    band = ev.random_band(rows, seeds=40)
    assert band["apgr_p05"] <= band["apgr_mean"] <= band["apgr_p95"]
    assert 0.4 < band["apgr_mean"] < 0.6


def test_domain_metrics_confusion() -> None:
    result = ev.domain_metrics(["math", "math", "code", None], ["math", "code", "code", "chat"])
    assert result is not None
    assert result.labelled == 3
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.confusion["math"]["code"] == 1 and result.confusion["code"]["code"] == 1
    assert ev.domain_metrics([None], ["math"]) is None


def test_calibrate_sends_the_requested_share() -> None:
    values = [i / 100 for i in range(100)]
    simple_below, complex_from = ev.calibrate(values, 0.3)
    assert sum(v >= complex_from for v in values) == 30
    assert sum(v < simple_below for v in values) == 35
    assert simple_below <= complex_from


def test_calibrate_with_ties_stays_under_the_share() -> None:
    values = [0.2] * 50 + [0.8] * 50
    _, complex_from = ev.calibrate(values, 0.3)
    assert sum(v >= complex_from for v in values) == 0  # 50% tied at 0.8 cannot be split
    _, complex_from = ev.calibrate(values, 0.5)
    assert complex_from == 0.8


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=200), st.floats(0, 1))
def test_calibrate_never_exceeds_the_share(values, share) -> None:
    simple_below, complex_from = ev.calibrate(values, share)
    assert sum(v >= complex_from for v in values) <= share * len(values) + 1e-9
    assert simple_below <= complex_from


# --- input -------------------------------------------------------------------------------------


def test_load_rows_reads_prompt_messages_and_optional_fields() -> None:
    raw = (
        b'{"id": 1, "prompt": "hi", "strong": true, "weak": 0, "domain": "chat"}\n\n'
        b'{"messages": [{"role": "user", "content": "x"}], '
        b'"strong": 8.5, "weak": 6, "strong_cost": 2, "weak_cost": 0.1}\n'
    )
    rows = ev.load_rows(raw)
    assert rows[0].strong == 1.0 and rows[0].domain == "chat" and rows[0].id == "1"
    assert rows[1].strong == 8.5 and rows[1].weak_cost == 0.1 and rows[1].id == "3"


@pytest.mark.parametrize(
    "line, needle",
    [
        (b'{"prompt": "x", "weak": 0}', "'strong'"),
        (b'{"prompt": "x", "strong": 1, "weak": 0, "domain": "poetry"}', "unknown domain"),
        (b"not json", "invalid JSON"),
        (b'{"strong": 1, "weak": 0}', "no 'messages'"),
    ],
)
def test_load_rows_names_the_bad_line(line: bytes, needle: str) -> None:
    with pytest.raises(ev.InputError) as info:
        ev.load_rows(b'{"prompt": "ok", "strong": 1, "weak": 0}\n' + line)
    assert "line 2" in info.value.message and needle in info.value.message


def test_costs_give_a_cost_saving() -> None:
    rows = [
        ev.Row(str(i), [{"role": "user", "content": "q"}], 1.0, float(i >= 5), strong_cost=10.0, weak_cost=1.0)
        for i in range(10)
    ]
    metrics = ev.routing_metrics([1.0 - i / 10 for i in range(10)], rows)
    assert metrics.cost_saving95 is not None and 0.0 < metrics.cost_saving95 < 1.0


# --- the command -------------------------------------------------------------------------------


def _eval_file(tmp_path, n: int = 40):
    lines = []
    for i in range(n):
        hard = i % 2 == 0
        prompt = (
            "Prove that the sum of the first n odd numbers is n squared, rigorously. " * (3 if hard else 0)
        ) + f"q{i}"
        lines.append(
            orjson.dumps(
                {
                    "id": i,
                    "prompt": prompt,
                    "strong": 1,
                    "weak": 0 if hard else 1,
                    "domain": "math",
                    "scores": {"oracle": 1.0 if hard else 0.0},
                }
            )
        )
    path = tmp_path / "eval.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _run(args, tty: bool = False):
    out = io.BytesIO()
    term = Terminal(stdin=io.BytesIO(b""), stdout=out, stderr=io.StringIO(), stdout_isatty=tty)
    result = CliRunner().invoke(cli, args, obj=term)
    return result, out.getvalue(), term


def test_eval_json_shape_in_a_pipe(tmp_path) -> None:
    path = _eval_file(tmp_path)
    result, out, _ = _run(["eval", str(path), "--scorer", "length", "--scorer", "oracle", "--seeds", "5"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(out)
    assert set(report["scorers"]) == {"length", "oracle"}
    for metrics in report["scorers"].values():
        assert {"apgr", "cpt50", "cpt80", "strong_share_at_95", "curve"} <= set(metrics)
    assert report["scorers"]["oracle"]["apgr"] == pytest.approx(0.75)  # perfect router, half the rows hard: by hand
    assert report["random_band"]["seeds"] == 5


def test_eval_table_on_a_terminal_and_svg_plot(tmp_path) -> None:
    path = _eval_file(tmp_path)
    plot = tmp_path / "curves.svg"
    result, out, term = _run(["eval", str(path), "--scorer", "oracle", "--seeds", "3", "--plot", str(plot)], tty=True)
    assert result.exit_code == 0, result.output
    assert b"APGR" in out and b"oracle" in out and not out.startswith(b"{")
    svg = plot.read_text()
    assert svg.startswith("<svg") and "polyline" in svg and "oracle" in svg


@pytest.mark.parametrize(
    "content, args",
    [
        (b'{"prompt": "x", "strong": "good", "weak": 0}\n', []),
        (b'{"prompt": "x", "strong": 1, "weak": 0}\n', ["--scorer", "nope"]),
        (b'{"prompt": "x", "strong": 1, "weak": 0}\n', ["--plot", "x.pdf"]),
        (b"\n", []),
    ],
)
def test_eval_bad_input_is_one_line_and_exit_2(tmp_path, content: bytes, args: list[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    result, out, _ = _run(["eval", str(path), *args])
    assert result.exit_code == 2
    assert out == b""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("r42: error: ")
