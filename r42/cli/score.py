"""`r42 score`: add the `score` key to each document."""

from __future__ import annotations

from typing import Any

import click

from r42.cli.options import scorer_option
from r42.cli.pipe import input_options, run_stage
from r42.config import load_settings
from r42.scoring import score_document
from r42.views import render_score


@click.command()
@input_options
@scorer_option
@click.pass_context
def score(ctx: click.Context, input_file, form, force_json: bool, scorer: str | None) -> None:
    """Estimate how hard a prompt is, its domain, what it needs and what sensitive data it holds.

    Adds `score` to each document and passes every other key through.

    \b
    Example:
      echo "Prove that the square root of 2 is irrational" | r42 score
    """
    settings = load_settings({"scorer": scorer})

    def stage(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "score": score_document(doc, settings)}

    run_stage(ctx, stage, render_score, input_file, form, force_json)
