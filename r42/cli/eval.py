"""`r42 eval`: routing quality of scorers on a labelled JSONL file, as RouteLLM measures it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from r42.cli.pipe import terminal_of
from r42.document import dumps
from r42.errors import InputError, UsageError


@click.command("eval")
@click.argument("eval_file", type=click.File("rb"), metavar="FILE", required=False)
@click.option(
    "--scorer",
    "scorers",
    multiple=True,
    metavar="NAME",
    help="A scorer to evaluate (repeatable): a registered one, or a score every row carries in 'scores'. "
    "Default: every registered scorer and every precomputed score.",
)
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Draw the quality-vs-strong-share curves to FILE.svg (or FILE.png when matplotlib is installed).",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Seeds of the random router whose band is reported.",
)
@click.option(
    "--cv",
    "cross_validate",
    is_flag=True,
    help="Instead of FILE: leave-one-source-out cross-validation of the trained scorer on data/routing, "
    "per fold against random, length and heuristic (needs pip install -e '.[train]' and a checkout).",
)
@click.option(
    "--cv-rows",
    type=click.IntRange(50, 100_000),
    default=None,
    metavar="N",
    help="With --cv: at most N rows of each source (every k-th), a quick check.",
)
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.pass_context
def eval_command(
    ctx: click.Context,
    eval_file,
    scorers: tuple[str, ...],
    plot_file: Path | None,
    seeds: int,
    cross_validate: bool,
    cv_rows: int | None,
    force_json: bool,
) -> None:
    """Measure how well scorers route: APGR, CPT(50%), CPT(80%), the strong-call share at 95% of
    strong-only quality, and domain accuracy when rows carry a domain.

    \b
    FILE is JSONL, one labelled prompt a line:
      {"id": "q1", "prompt": "...", "strong": 1, "weak": 0}
    ("messages" may replace "prompt"; optional: "domain", "strong_cost", "weak_cost", "scores").

    \b
    Example:
      r42 eval data/eval/loso_cv.jsonl --scorer trained-cv --scorer heuristic --plot curves.svg
      r42 eval --cv                      # cross-validate the trained scorer (~30 s)
    """
    from r42 import evaluation

    term = terminal_of(ctx)
    if cross_validate:
        if eval_file is not None or scorers or plot_file is not None:
            raise UsageError("--cv takes no FILE, --scorer or --plot", "r42 eval --cv [--cv-rows N] [--json]")
        report = _cross_validation(cv_rows)
        term.write(
            dumps(report) + b"\n" if force_json or not term.stdout_isatty else render_cv(report).encode() + b"\n"
        )
        return
    if cv_rows is not None:
        raise UsageError("--cv-rows goes with --cv", "r42 eval --cv --cv-rows 300")
    if eval_file is None:
        raise UsageError("missing FILE", "r42 eval FILE, or r42 eval --cv")
    if plot_file is not None and plot_file.suffix.lower() not in (".svg", ".png"):
        raise UsageError(f"cannot draw {plot_file.name}: the plot must be .svg or .png", "e.g. --plot curves.svg")
    rows = evaluation.load_rows(eval_file.read())
    names = list(scorers) or _default_names(rows)
    result = evaluation.evaluate(rows, evaluation.scorer_functions(names, rows), seeds=seeds)
    report = evaluation.as_json(result)
    if plot_file is not None:
        _plot(plot_file, report)
        term.note(f"r42: wrote {plot_file}")
    if force_json or not term.stdout_isatty:
        term.write(dumps(report) + b"\n")
    else:
        term.write(render(report).encode() + b"\n")


def _cross_validation(rows_per_source: int | None) -> dict[str, Any]:
    try:
        from r42.scoring import training
    except ImportError:
        raise UsageError(
            "--cv needs numpy and scikit-learn, which are not installed", "pip install -e '.[train]'"
        ) from None
    try:
        return training.cross_validation(rows_per_source=rows_per_source)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None


def _short(candidate: str) -> str:
    """A column header: "within-source stats (5 kinds; cheap-vs-strong labels)" -> "5 kinds, cheap"."""
    if not candidate.startswith("within-source stats"):
        return candidate
    kinds = "5 kinds" if "5 kinds" in candidate else "2 kinds"
    return kinds + (", cheap" if "cheap-vs-strong" in candidate else "")


def render_cv(report: dict[str, Any]) -> str:
    """The per-fold APGR table (the mean over folds and the pooled stream last, then the many-model
    folds against their cheap and strong models), then calibration."""
    from tabulate import tabulate

    names = list(report["apgr_mean"])
    rows = [[row["fold"], row["rows"], *(f"{row[n]:.3f}" for n in names)] for row in report["apgr_by_fold"]]
    rows.append(["mean of the folds", "", *(f"{report['apgr_mean'][n]:.3f}" for n in names)])
    pooled = report["pooled"]
    rows.append(["all folds as one stream", pooled["rows"], *(f"{pooled[n]:.3f}" for n in names)])
    for row in report.get("apgr_by_fold_cheap_vs_strong", []):
        rows.append([f"{row['fold']} (cheap vs strong)", row["rows"], *(f"{row[n]:.3f}" for n in names)])
    seen = report.get("seen_kinds")
    if seen:
        rows.append([seen["fold"], seen["rows"], *(f"{seen[n]:.3f}" if n in seen else "" for n in names)])
    calibration = [
        [
            c["fold"],
            f"{c['base_rate']:.3f}",
            f"{c['mean_p']:.3f}",
            f"{c['brier']:.4f}",
            f"{c['brier_constant']:.4f}",
            f"{c['ece']:.3f}",
        ]
        for c in report["calibration_by_fold"]
    ]
    whole = report["calibration_pooled"]
    calibration.append(["all folds", "", "", f"{whole['brier']:.4f}", "", f"{whole['ece']:.3f}"])
    return "\n".join(
        [
            f"APGR on each held-out source ({report['rows']} rows; random = mean of 100 seeds):",
            tabulate(rows, headers=["held-out source", "rows", *map(_short, names)], disable_numparse=True),
            "(2 or 5 kinds: the within-source model's task-kind priors; cheap: trained on cheap-vs-strong labels)",
            *([f"(kinds seen, the default's kind prior alone: {seen['kind prior only']:.3f})"] if seen else []),
            "",
            f"Calibration of {report['chosen']} (Platt fit on the other folds):",
            tabulate(
                calibration,
                headers=["held-out source", "base rate", "mean predicted", "Brier", "Brier of base rate", "ECE"],
                disable_numparse=True,
            ),
        ]
    )


def _default_names(rows) -> list[str]:  # noqa: ANN001
    from r42.evaluation import precomputed_names
    from r42.scoring import SCORERS

    return [*SCORERS, *precomputed_names(rows)]


def render(report: dict[str, Any]) -> str:
    from tabulate import tabulate

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    table = []
    for name, s in sorted(report["scorers"].items(), key=lambda kv: -(kv[1]["apgr"] or 0)):
        table.append(
            [
                name,
                "-" if s["apgr"] is None else f"{s['apgr']:.3f}",
                pct(s["cpt50"]),
                pct(s["cpt80"]),
                pct(s["strong_share_at_95"]),
                pct(s["cost_saving_at_95"]),
                pct(s.get("domain_accuracy")),
            ]
        )
    band = report["random_band"]
    headers = ["scorer", "APGR", "CPT(50%)", "CPT(80%)", "strong @95%", "saving @95%", "domain acc"]
    lines = [
        f"{report['rows']} prompts; strong-only quality {report['strong_quality']:.3f}, "
        f"weak-only {report['weak_quality']:.3f}",
        tabulate(table, headers=headers, disable_numparse=True),
        f"random router over {band['seeds']} seeds: APGR {band['apgr_mean']:.3f} "
        f"(90% of seeds in {band['apgr_p05']:.3f}..{band['apgr_p95']:.3f}), CPT(50%) {pct(band['cpt50_mean'])}",
    ]
    return "\n".join(lines)


def _plot(path: Path, report: dict[str, Any]) -> None:
    from r42.evaluation import curves_svg

    series = {name: [(p["strong_share"], p["quality"]) for p in s["curve"]] for name, s in report["scorers"].items()}
    guides = {"strong only": report["strong_quality"], "weak only": report["weak_quality"]}
    if path.suffix.lower() == ".png":
        _plot_png(path, series, guides)
        return
    try:
        path.write_text(curves_svg(series, guides), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


def _plot_png(path: Path, series: dict[str, list[tuple[float, float]]], guides: dict[str, float]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "a .png plot needs matplotlib, which is not installed", "use --plot FILE.svg, or pip install matplotlib"
        ) from None
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, points in series.items():
        axes.plot([100 * x for x, _ in points], [y for _, y in points], marker=".", label=name)
    for name, y in guides.items():
        axes.axhline(y, linestyle="--", color="grey" if "weak" in name else "red", label=name)
    axes.set_xlabel("Strong model calls (%)")
    axes.set_ylabel("Quality")
    axes.legend()
    figure.savefig(path)
    plt.close(figure)
