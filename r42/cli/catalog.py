"""`r42 catalog`: list, show, path, validate and sync the model catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from r42.cli.options import SettingOption

from r42.cli.complete import complete_models, complete_providers

from r42.cli.pipe import terminal_of
from r42.document import dumps
from r42.errors import ExitCode, UsageError
from r42.terminal import Terminal, _isatty

CAPABILITY_CHOICE = click.Choice(["tools", "vision", "json", "reasoning"])


class MinQuality(click.ParamType):
    name = "[DOMAIN=]Q"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, float]:
        from r42.catalog.query import parse_min_quality

        if isinstance(value, tuple):
            return value
        try:
            return parse_min_quality(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _catalog(discover: bool = True):
    """The merged catalog, with what local servers have right now (as `r42 rank` sees it)."""
    from r42.catalog import load_catalog
    from r42.config import load_settings

    settings = load_settings()
    catalog = load_catalog(settings.catalog)
    if discover and settings.local_discovery:
        from r42.catalog.discovery import discover as discover_local

        catalog = discover_local(catalog, settings.discovery_ttl, settings.local_probe_timeout)
    return settings, catalog


def _emit(term: Terminal, records: list[dict[str, Any]], render, force_json: bool) -> None:
    """A table (or text) on a terminal, one JSON object per line in a pipe."""
    if term.stdout_isatty and not force_json:
        term.write(render(records).encode() + b"\n")
    else:
        term.write(b"".join(dumps(r) + b"\n" for r in records))


@click.group()
def catalog() -> None:
    """The model catalog: what each model costs, can do and how good it is.

    \b
    Files, later wins (see `r42 catalog path`): the shipped catalog.yaml, the sync layer
    R42_HOME/catalog.sync.yaml (written by `r42 catalog sync`), your R42_HOME/catalog.yaml,
    the file in the `catalog` setting.
    \b
    Examples:
      r42 catalog list --capability tools --max-price 1 --min-quality code=0.5
      r42 catalog show claude-sonnet-4-5
      r42 catalog sync openai anthropic --dry-run
    """


@catalog.command("list")
@click.option("--provider", "providers", multiple=True, help="Only this provider (repeatable).")
@click.option(
    "--capability",
    "capabilities",
    type=CAPABILITY_CHOICE,
    multiple=True,
    help="Only models with this capability (repeatable: all of them).",
)
@click.option("--local", "where", flag_value="local", help="Only local models.")
@click.option("--cloud", "where", flag_value="cloud", help="Only cloud models.")
@click.option(
    "--max-price",
    type=click.FloatRange(min=0),
    default=None,
    help="Highest input and output price, USD per 1M tokens (unknown prices are left out).",
)
@click.option(
    "--min-quality",
    "min_quality",
    type=MinQuality(),
    multiple=True,
    help="Minimum quality, overall (0.6) or in a domain (code=0.6); repeatable.",
)
@click.option(
    "--configured", is_flag=True, help="Only providers r42 can call now (a credential, or a local server that answers)."
)
@click.option("--all", "include_unavailable", is_flag=True, help="Include models their provider no longer lists.")
@click.option(
    "--sort",
    type=click.Choice(["id", "quality", "price", "context"]),
    default="id",
    show_default=True,
    help="Order of the rows.",
)
@click.option("--json", "force_json", is_flag=True, help="Write NDJSON even on a terminal.")
@click.pass_context
def list_models(
    ctx: click.Context,
    providers,
    capabilities,
    where,
    max_price,
    min_quality,
    configured,
    include_unavailable,
    sort,
    force_json,
) -> None:
    """List models: a table on a terminal, one JSON object per model (NDJSON) in a pipe.

    \b
    Examples:
      r42 catalog list --local
      r42 catalog list --capability vision --sort price | jq -r .id
    """
    from r42.catalog.query import Filters, model_record, select

    settings, cat = _catalog()
    unknown = [p for p in providers if p not in cat.providers]
    if unknown:
        raise UsageError(f"unknown provider {unknown[0]!r}", "providers: " + ", ".join(sorted(cat.providers)))
    usable = None
    if configured:
        from r42.availability import AvailabilityChecker

        checker = AvailabilityChecker(settings.local_probe_timeout)
        usable = lambda pid: checker.check(cat.providers[pid]).ok  # noqa: E731
    filters = Filters(
        tuple(providers),
        tuple(capabilities),
        None if where is None else where == "local",
        max_price,
        tuple(min_quality),
        include_unavailable,
        usable,
    )
    records = [model_record(m) for m in select(cat, filters, sort)]
    _emit(terminal_of(ctx), records, render_table, force_json)
    if not records:
        terminal_of(ctx).note("r42: no model matches these filters")


@catalog.command()
@click.argument("model", shell_complete=complete_models)
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.pass_context
def show(ctx: click.Context, model: str, force_json: bool) -> None:
    """Everything the catalog knows about MODEL (an id like openai/gpt-4o, or an alias).

    \b
    Example:
      r42 catalog show ollama/qwen2.5:7b
    """
    import difflib

    from r42.catalog.query import model_record

    _, cat = _catalog()
    found = cat.find(model)
    if found is None:
        close = difflib.get_close_matches(model, [m.id for m in cat.models], n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see `r42 catalog list`"
        raise UsageError(f"no model {model!r} in the catalog", hint)
    term = terminal_of(ctx)
    record = model_record(found)
    if term.stdout_isatty and not force_json:
        term.write(render_model(record).encode() + b"\n")
    else:
        term.write(dumps(record) + b"\n")


@catalog.command()
@click.option("--json", "force_json", is_flag=True, help="Write NDJSON even on a terminal.")
@click.pass_context
def path(ctx: click.Context, force_json: bool) -> None:
    """The catalog files, in load order (a later file wins), and whether each exists.

    \b
    Example:
      r42 catalog path --json | jq -r 'select(.layer == "user") | .path'
    """
    from r42.catalog.query import layer_records
    from r42.config import load_settings

    records = layer_records(load_settings().catalog)
    _emit(
        terminal_of(ctx),
        records,
        lambda rs: "\n".join(f"{r['layer']:<8} {r['path']}{'' if r['exists'] else '  (not there)'}" for r in rs),
        force_json,
    )


@catalog.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.pass_context
def validate(ctx: click.Context, file: Path, force_json: bool) -> None:
    """Check a catalog file against the schema, as a layer over the shipped catalog.

    Exits 0 when it is valid, 6 with `file:line: field: problem` when it is not.

    \b
    Example:
      r42 catalog validate ~/.config/r42/catalog.yaml
    """
    from r42.catalog.query import validate_file

    result = validate_file(file)
    term = terminal_of(ctx)
    if term.stdout_isatty and not force_json:
        term.write(f"{result['file']}: ok ({result['models']} models, {result['providers']} providers)\n".encode())
    else:
        term.write(dumps(result) + b"\n")


@catalog.command()
@click.argument("providers", nargs=-1, shell_complete=complete_providers)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    cls=SettingOption,
    envvar="R42_SYNC_TIMEOUT",
    show_envvar=True,
    help="Seconds per request to a provider (default 20).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress lines on stderr (default: when stderr is a terminal)."
)
@click.pass_context
def sync(
    ctx: click.Context, providers: tuple[str, ...], dry_run: bool, timeout: float | None, progress: bool | None
) -> None:
    """Update the catalog from the providers' own model-listing APIs.

    Fetches every provider with a credential and every local server that answers (or only the
    PROVIDERS named), concurrently. Writes R42_HOME/catalog.sync.yaml, never your catalog.yaml:
    new models are added (quality joined from the shipped data or estimated, marked so), models a
    provider no longer lists are marked unavailable, prices and limits are updated with source and
    date. The summary of changes is JSON on stdout. Exits 1 when a provider failed (the others are
    still applied), 4 when there is nothing to sync.

    \b
    Examples:
      r42 catalog sync --dry-run | jq '.added'
      r42 catalog sync ollama
    """
    from r42.catalog.sync import run_sync

    settings, cat = _catalog(discover=False)
    term = terminal_of(ctx)
    show_progress = _isatty(term.stderr) if progress is None else progress

    def report(listing) -> None:
        if show_progress:
            term.note(
                f"r42: {listing.provider}: "
                + (f"failed: {listing.error}" if listing.error else f"{len(listing.entries)} models")
            )

    summary = run_sync(cat, providers, dry_run, timeout or settings.sync_timeout, settings.catalog, report)
    if term.stdout_isatty:
        term.write(json.dumps(summary, indent=2, ensure_ascii=False).encode() + b"\n")
    else:
        term.write(dumps(summary) + b"\n")
    if show_progress:
        verb = "would change" if dry_run else "changed"
        term.note(
            f"r42: {len(summary['added'])} added, {len(summary['changed'])} {verb}, "
            f"{len(summary['unavailable'])} unavailable"
            + (f", {len(summary['failed'])} providers failed" if summary["failed"] else "")
        )
    if summary["failed"]:
        ctx.exit(int(ExitCode.ERROR))


# --- terminal renderers ---------------------------------------------------------------------------


def _money(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def render_table(records: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    rows = [
        [
            r["id"] + ("" if r["available"] else " (unavailable)"),
            _money(r["price"]["input"]),
            _money(r["price"]["output"]),
            "?" if r["context"] is None else f"{r['context']:,}",
            "".join(
                letter if r["capabilities"][cap] else "-"
                for cap, letter in (("tools", "t"), ("vision", "v"), ("json", "j"), ("reasoning", "r"))
            ),
            ("~" if r["quality"]["estimated"] else "") + f"{r['quality']['overall']:.2f}",
            "local" if r["local"] else "",
        ]
        for r in records
    ]
    table = tabulate(
        rows, headers=["model", "in $/1M", "out $/1M", "context", "tvjr", "quality", ""], disable_numparse=True
    )
    return f"{table}\n{len(records)} models; tvjr = tools, vision, json, reasoning; ~ = estimated quality"


def render_model(r: dict[str, Any]) -> str:
    q = r["quality"]
    caps = ", ".join(c for c, ok in r["capabilities"].items() if ok) or "text only"
    lines = [
        f"{r['id']}  ({r['name']})" + ("" if r["available"] else "  [no longer listed by its provider]"),
        f"aliases     {', '.join(r['aliases']) or '-'}",
        f"price       ${_money(r['price']['input'])} in, ${_money(r['price']['output'])} out per 1M tokens",
        f"context     {r['context'] or '?'} tokens, max output {r['max_output'] or '?'}",
        f"can do      {caps}",
        f"runs        {'locally' if r['local'] else 'in the cloud'}",
        f"quality     {q['overall']:.2f} overall ({'estimated' if q['estimated'] else 'measured'})",
        "            "
        + ", ".join(
            f"{d} {q[d]:.2f}" for d in ("code", "math", "reasoning", "creative", "extraction", "knowledge", "chat")
        ),
        f"method      {q['method'] or '-'}",
    ]
    return "\n".join(lines)
