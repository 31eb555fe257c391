"""`r42 score`: add the `score` key to each document."""

from __future__ import annotations

import json
from typing import Any

import click

from r42.cli.options import scorer_option
from r42.cli.pipe import input_options, run_stage, terminal_of
from r42.config import load_settings, write_config_values
from r42.scoring import score_document
from r42.views import render_score


@click.command()
@input_options
@scorer_option
@click.option(
    "--calibrate",
    "calibrate_file",
    type=click.File("rb"),
    default=None,
    metavar="PROMPTS",
    help="Instead of scoring: find the cut points that send --strong-share of these prompts (text lines or NDJSON) "
    "to strong models, and save them in config.toml.",
)
@click.option(
    "--strong-share",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="With --calibrate: the share of prompts to treat as complex.",
)
@click.pass_context
def score(
    ctx: click.Context, input_file, form, force_json: bool, scorer: str | None, calibrate_file, strong_share: float
) -> None:
    """Estimate how hard a prompt is, its domain, what it needs and what sensitive data it holds.

    Adds `score` to each document and passes every other key through.

    \b
    Example:
      echo "Prove that the square root of 2 is irrational" | r42 score
      r42 score --calibrate my_prompts.txt --strong-share 0.3
    """
    settings = load_settings({"scorer": scorer})
    if calibrate_file is not None:
        calibrate_levels(ctx, calibrate_file.read(), settings, strong_share)
        return

    def stage(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "score": score_document(doc, settings)}

    run_stage(ctx, stage, render_score, input_file, form, force_json)


def calibrate_levels(ctx: click.Context, raw: bytes, settings, strong_share: float) -> None:  # noqa: ANN001
    """Score the user's prompts, choose cut points for the share asked, save them as settings."""
    from r42.document import read_items, text_document
    from r42.errors import InputError
    from r42.evaluation import calibrate

    if raw.lstrip().startswith(b"{"):
        docs = [item.doc for item in read_items(raw, "nl") if item.doc is not None]
    else:
        docs = [text_document(line) for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    if not docs:
        raise InputError("no prompts to calibrate on", "one prompt per line, or NDJSON requests")
    complexities = [score_document(doc, settings)["complexity"] for doc in docs]
    simple_below, complex_from = calibrate(complexities, strong_share)
    path = write_config_values({"simple_below": round(simple_below, 6), "complex_from": round(complex_from, 6)})
    share = sum(c >= complex_from for c in complexities) / len(complexities)
    result = {
        "prompts": len(docs),
        "strong_share": strong_share,
        "complex_share": round(share, 4),
        "simple_below": round(simple_below, 6),
        "complex_from": round(complex_from, 6),
        "config": str(path),
    }
    terminal_of(ctx).write(json.dumps(result, separators=(",", ":")).encode() + b"\n")
