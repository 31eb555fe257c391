"""`r42 rank`: add the `ranking` key (scoring first when the document has no `score`)."""

from __future__ import annotations

from typing import Any

import click
from r42.cli.complete import complete_providers
from r42.cli.options import max_cost_option, explain_option, mode_option, privacy_options, scorer_option
from r42.cli.pipe import input_options, run_stage, terminal_of
from r42.config import load_settings
from r42.errors import ExitCode
from r42.ranking import privacy_explanation
from r42.routing import Router
from r42.views import render_ranking


@click.command()
@input_options
@mode_option
@scorer_option
@click.option(
    "--top", "-n", type=click.IntRange(min=1), default=10, show_default=True, help="How many candidates to keep."
)
@click.option("--all", "show_all", is_flag=True, help="Keep every candidate.")
@click.option("--include-unavailable", is_flag=True, help="Rank as if every provider were configured.")
@max_cost_option
@click.option(
    "--min-quality",
    type=click.FloatRange(0, 1),
    default=None,
    help="Strict minimum quality (0..1), instead of the one derived from complexity.",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    shell_complete=complete_providers,
    help="Only these providers (repeatable).",
)
@privacy_options
@explain_option
@click.option("--local", "force", flag_value="local", help="Only local models.")
@click.option("--cloud", "force", flag_value="cloud", help="Only cloud models.")
@click.pass_context
def rank(
    ctx: click.Context,
    input_file,
    form,
    force_json,
    mode,
    scorer,
    top,
    show_all,
    include_unavailable,
    max_cost,
    min_quality,
    providers,
    sensitive_policy,
    explain,
    force,
) -> None:
    """Rank the catalog's models for each prompt, best first, with reasons.

    Adds `ranking` (and `score`, when missing) and passes every other key through. Exits 3 when
    no model satisfies the prompt's needs and the constraints.

    \b
    Example:
      echo "Prove that the square root of 2 is irrational" | r42 score | r42 rank --mode cost --include-unavailable
    """
    settings = load_settings(
        {"mode": mode, "scorer": scorer, "max_cost": max_cost, "sensitive_policy": sensitive_policy}
    )
    router = Router.from_settings(settings)
    constraints = router.constraints(
        include_unavailable=include_unavailable, min_quality=min_quality, providers=tuple(providers), force=force
    )
    term = terminal_of(ctx)
    empty = []

    def stage(doc: dict[str, Any]) -> dict[str, Any]:
        score = router.score(doc)
        ranking = router.rank(score, constraints)
        if not ranking.candidates:
            empty.append(doc.get("id"))
        elif ranking.relaxed:
            term.note(
                f"r42: warning: no model reaches quality {ranking.required_quality:.2f}; showing the best available"
            )
        if explain:
            for line in privacy_explanation(score, constraints, ranking.excluded):
                term.note(f"r42: {line}")
        return {**doc, "score": score, "ranking": router.ranking_document(ranking, score, None if show_all else top)}

    run_stage(ctx, stage, render_ranking, input_file, form, force_json)
    if empty:
        term.note(
            "r42: error: no model satisfies the prompt's needs and the constraints "
            "(see ranking.excluded; --include-unavailable ranks as if every provider were configured)"
        )
        ctx.exit(int(ExitCode.NO_CANDIDATE))
