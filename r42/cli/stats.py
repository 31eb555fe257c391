"""`r42 stats`: totals and breakdowns of the routing log, with savings against a reference model."""

from __future__ import annotations

from typing import Any

import click

from r42.cli.options import SettingOption

from r42.cli.complete import complete_users
from tabulate import tabulate

from r42.cli.pipe import terminal_of
from r42.document import dumps
from r42.store.keys import iso
from r42.store.queries import Scope, bucket_for, first_time, panels, stats_report
from r42.store.stats import GROUPS, parse_since, reference_for


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _group_rows(groups: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            key,
            g["requests"],
            f"{100 * g['error_rate']:.1f}%",
            g["input_tokens"],
            g["output_tokens"],
            f"${g['cost_usd']:.4f}",
            f"${g['savings_usd']:.4f}",
            _ms(g["latency_ms"]["p50"]),
            _ms(g["latency_ms"]["p95"]),
        ]
        for key, g in groups.items()
    ]


def render_stats(result: dict[str, Any]) -> str:
    t = result["totals"]
    if not t["requests"]:
        return "no requests logged" + (" in this period" if result.get("since") else "")
    ref = result["reference"]
    pct = f" ({t['savings_pct']:.1f}%)" if t["savings_pct"] is not None else ""
    lines = [
        f"requests    {t['requests']} from {result['first']} to {result['last']}, "
        f"{t['errors']} errors ({100 * t['error_rate']:.1f}%)",
        f"tokens      {t['input_tokens']} in, {t['output_tokens']} out",
        f"cost        ${t['cost_usd']:.4f}",
        f"savings     ${t['savings_usd']:.4f}{pct} against {ref['model']} "
        f"(${t['reference_cost_usd']:.4f}; {ref['why']})"
        if ref
        else "savings     - (no priced reference model)",
        f"latency     p50 {_ms(t['latency_ms']['p50'])} ms, p95 {_ms(t['latency_ms']['p95'])} ms; "
        f"first token p50 {_ms(t['ttft_ms']['p50'])} ms, p95 {_ms(t['ttft_ms']['p95'])} ms",
    ]
    headers = ["requests", "errors", "tokens in", "tokens out", "cost", "saved", "p50 ms", "p95 ms"]
    for group in GROUPS:
        lines += ["", tabulate(_group_rows(result["by_" + group]), headers=[group, *headers])]
    return "\n".join(lines)


def render_health(circuits: dict[str, dict[str, Any]]) -> str:
    """The circuits as a table (r42 stats --health on a terminal)."""
    if not circuits:
        return "no attempts in the health window (nothing was asked recently, or health is off)"
    rows = [
        [
            key,
            c["state"],
            f"{c['failures']}/{c['attempts']}",
            ", ".join(f"{k} {n}" for k, n in sorted(c["errors"].items())) or "-",
            _ms(c["latency_ms_p50"]),
            _ms(c["ttft_ms_p50"]),
            c.get("reason") or "",
        ]
        for key, c in circuits.items()
    ]
    headers = ["provider / model", "circuit", "failed", "errors", "p50 ms", "ttft p50 ms", "reason"]
    return tabulate(rows, headers=headers)


def html_report(scope: Scope, ref: Any) -> str:
    """The dashboard's panels over a scope as one standalone page (no script, no forms)."""
    import time

    from r42.views_html import render_page

    now = time.time()
    start = scope.since if scope.since is not None else (first_time(scope) or now)
    from r42.config import load_settings

    settings = load_settings()
    data = panels(scope, ref, bucket_for(now - start), now=now, half_life_days=settings.feedback_half_life_days)
    from r42.health import shared_circuits

    data["health"] = shared_circuits(settings) if settings.health else None
    who = f"user {scope.user}" if scope.user else "every user"
    return render_page(data, title="r42 report", subtitle=f"{data['since']} to {data['generated']} UTC, {who}")


@click.command()
@click.option("--since", default=None, help="Only requests since then: 7d, 24h, 30m, 2w, or a date (2026-01-31).")
@click.option("--user", default=None, shell_complete=complete_users, help="Only this gateway user's requests.")
@click.option(
    "--reference",
    default=None,
    cls=SettingOption,
    envvar="R42_STATS_REFERENCE_MODEL",
    show_envvar=True,
    help="Compute savings against this model (default: the strongest model you have a credential for).",
)
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.option("--html", "as_html", is_flag=True, help="Write the dashboard's panels as one standalone HTML page.")
@click.option(
    "--health",
    "show_health",
    is_flag=True,
    help="Show each provider's and model's circuit (state, failures, latency) instead.",
)
@click.pass_context
def stats(
    ctx: click.Context,
    since: str | None,
    user: str | None,
    reference: str | None,
    force_json: bool,
    as_html: bool,
    show_health: bool,
) -> None:
    """Totals and breakdowns of the routing log by model, mode, domain, user and day.

    Cost, savings against a reference model, latency p50/p95 and error rate. A table on a
    terminal, JSON when piped.

    \b
    Example:
      r42 stats --since 7d --user alice
      r42 stats --since 2026-01-01 | jq '.totals.savings_usd'
      r42 stats --since 30d --html > report.html
      r42 stats --health
    """
    term = terminal_of(ctx)
    if show_health:
        from r42.config import load_settings
        from r42.health import shared_circuits

        circuits = shared_circuits(load_settings())
        if force_json or not term.stdout_isatty:
            term.write(dumps({"health": circuits}) + b"\n")
        else:
            term.write(render_health(circuits).encode() + b"\n")
        return
    since_ts = parse_since(since) if since else None
    from r42.availability import find_credential

    def has_credential(provider: Any) -> bool:  # the user's own keys count, then env, then the store's
        return find_credential(provider, user=user) is not None

    scope = Scope(since=since_ts, user=user)
    ref = reference_for(reference, has_credential)
    if as_html:
        term.write(html_report(scope, ref).encode() + b"\n")
        return
    result = stats_report(scope, ref)
    result = {"since": None if since_ts is None else iso(since_ts), "user": user, **result}
    if force_json or not term.stdout_isatty:
        term.write(dumps(result) + b"\n")
    else:
        term.write(render_stats(result).encode() + b"\n")
