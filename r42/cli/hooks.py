"""`r42 hooks`: webhook endpoints that `r42 serve` sends signed events to."""

from __future__ import annotations

import os

import click
from tabulate import tabulate

from r42.cli.complete import complete_hooks
from r42.cli.pipe import terminal_of
from r42.document import dumps
from r42.errors import R42Error, UsageError
from r42.terminal import Terminal

SECRET_ENV = "R42_WEBHOOK_SECRET"
EVENTS_HELP = (
    "rate_limit.warning, budget.threshold, key.expiring, key.expired, provider.unhealthy,"
    " provider.recovered, or * for all"
)


@click.group()
def hooks() -> None:
    """Webhooks: signed events from `r42 serve` to your endpoints (rate limits, budgets, key expiry, provider health).

    \b
      printf %s "$SECRET" | r42 hooks add https://ops.example.com/r42 --event key.expiring --secret-stdin
      r42 hooks list
      r42 hooks test hook_1a2b3c4d
      r42 hooks log
      r42 hooks rm hook_1a2b3c4d
    """


def _read_secret(term: Terminal, secret: str | None, secret_stdin: bool) -> str:
    """--secret, else --secret-stdin, else R42_WEBHOOK_SECRET, else a prompt that does not echo."""
    if secret is not None and secret_stdin:
        raise UsageError("--secret and --secret-stdin exclude each other", "give the secret one way")
    if secret_stdin:
        text = term.stdin.read().decode("utf-8", "replace")
    elif secret is not None:
        text = secret
    elif os.environ.get(SECRET_ENV):
        text = os.environ[SECRET_ENV]
    elif term.stdin_isatty:
        text = click.prompt("webhook secret", hide_input=True, err=True)
    else:
        raise UsageError(
            "no webhook secret given",
            f"pipe it with --secret-stdin, set {SECRET_ENV}, or run on a terminal to be asked",
        )
    text = text.strip()
    if not text:
        raise UsageError("the webhook secret is empty", "give a long random string, e.g. from `openssl rand -hex 32`")
    return text


@hooks.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True, help=f"An event to send (repeatable): {EVENTS_HELP}.")
@click.option(
    "--secret", default=None, help=f"The signing secret. Visible in `ps`: prefer --secret-stdin or {SECRET_ENV}."
)
@click.option("--secret-stdin", is_flag=True, help="Read the signing secret from stdin.")
@click.option("--allow-private", is_flag=True, help="Allow a loopback or private address (refused by default).")
@click.option("--json", "force_json", is_flag=True, help="Write the hook as JSON.")
@click.pass_context
def add_command(
    ctx: click.Context,
    url: str,
    events: tuple[str, ...],
    secret: str | None,
    secret_stdin: bool,
    allow_private: bool,
    force_json: bool,
) -> None:
    """Add a webhook endpoint for EVENTs and print its id. The secret is stored encrypted and never printed.

    The secret comes from --secret-stdin, R42_WEBHOOK_SECRET, a prompt that does not echo, or --secret
    (which other users of the machine can see in `ps`).

    \b
    Example:
      printf %s "$SECRET" | r42 hooks add https://ops.example.com/r42 --event '*' --secret-stdin
      R42_WEBHOOK_SECRET=... r42 hooks add http://10.0.0.7:9000/hook --event key.expired --allow-private
    """
    from r42.store import audit
    from r42.store.hooks import add_hook, check_events
    from r42.webhooks import check_target, forget_subscribers

    term = terminal_of(ctx)
    check_events(events)
    check_target(url, allow_private)
    hook = add_hook(url, events, _read_secret(term, secret, secret_stdin), allow_private)
    forget_subscribers()
    audit.record(
        audit.cli_actor(),
        "hook.add",
        hook.id,
        {"url": hook.url, "events": list(hook.events), "allow_private": allow_private},
    )
    term.write((dumps(hook.as_dict()) if force_json else hook.id.encode()) + b"\n")
    term.note(f"r42: webhook {hook.id} sends {', '.join(hook.events)} to {hook.url} (while `r42 serve` runs)")


@hooks.command("list")
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.pass_context
def list_command(ctx: click.Context, force_json: bool) -> None:
    """The webhook endpoints: id, URL, events, and their pending and failed deliveries. Never a secret.

    \b
    Example:
      r42 hooks list | jq -r '.hooks[].id'
    """
    from r42.store.hooks import deliveries, list_hooks

    term = terminal_of(ctx)
    found = list_hooks()
    states = {h.id: [d.state for d in deliveries(h.id, limit=1000)] for h in found}
    docs = [
        h.as_dict() | {"pending": states[h.id].count("pending"), "failed": states[h.id].count("failed")} for h in found
    ]
    if force_json or not term.stdout_isatty:
        term.write(dumps({"hooks": docs}) + b"\n")
        return
    rows = [
        [d["id"], d["url"], ", ".join(d["events"]), "yes" if d["allow_private"] else "no", d["pending"], d["failed"]]
        for d in docs
    ]
    headers = ["id", "url", "events", "private ok", "pending", "failed"]
    term.write(
        (tabulate(rows, headers=headers) if rows else "no webhooks (r42 hooks add URL --event E)").encode() + b"\n"
    )


@hooks.command("rm")
@click.argument("hook_id", shell_complete=complete_hooks)
@click.pass_context
def rm_command(ctx: click.Context, hook_id: str) -> None:
    """Remove a webhook endpoint and its pending deliveries.

    \b
    Example:
      r42 hooks rm hook_1a2b3c4d
    """
    from r42.store import audit
    from r42.store.hooks import remove_hook
    from r42.webhooks import forget_subscribers

    hook = remove_hook(hook_id)
    forget_subscribers()
    audit.record(audit.cli_actor(), "hook.rm", hook.id, {"url": hook.url})
    terminal_of(ctx).note(f"r42: removed webhook {hook.id} ({hook.url})")


@hooks.command("test")
@click.argument("hook_id", shell_complete=complete_hooks)
@click.pass_context
def test_command(ctx: click.Context, hook_id: str) -> None:
    """Send a signed `hook.test` event to a webhook now, once, and report the answer (exit 1 if not 2xx).

    \b
    Example:
      r42 hooks test hook_1a2b3c4d
    """
    from r42.store.hooks import deliveries, get_hook
    from r42.webhooks import Policy, deliver_due, emit

    hook = get_hook(hook_id)
    event_id = emit(
        "hook.test", {"hook": hook.id, "url": hook.url, "message": "a test event from r42 hooks test"}, hook_id=hook.id
    )
    deliver_due(Policy.from_env(), hook_id=hook.id)
    sent = next((d for d in deliveries(hook.id, limit=50) if d.event_id == event_id), None)
    if sent is None or sent.state != "delivered":
        what = sent.last_error if sent is not None else "not sent"
        raise R42Error(f"webhook {hook.id} at {hook.url} did not accept the test event ({what})", "see `r42 hooks log`")
    terminal_of(ctx).note(f"r42: {hook.url} answered HTTP {sent.last_status} to event {event_id}")


@hooks.command("log")
@click.argument("hook_id", required=False, shell_complete=complete_hooks)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="How many of the latest deliveries."
)
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.pass_context
def log_command(ctx: click.Context, hook_id: str | None, limit: int, force_json: bool) -> None:
    """The latest webhook deliveries (of one hook, or all): event, state, attempts, last answer. NDJSON when piped.

    \b
    Example:
      r42 hooks log hook_1a2b3c4d --limit 20
    """
    from r42.store.hooks import deliveries, get_hook

    term = terminal_of(ctx)
    if hook_id is not None:
        get_hook(hook_id)
    found = [d.as_dict() for d in deliveries(hook_id, limit)]
    if force_json or not term.stdout_isatty:
        term.write(b"".join(dumps(d) + b"\n" for d in found))
        return
    rows = [
        [
            d["created"],
            d["hook"],
            d["type"],
            d["event_id"],
            d["state"],
            d["attempts"],
            d["last_status"] or "",
            d["last_error"] or "",
        ]
        for d in found
    ]
    headers = ["created", "hook", "event", "id", "state", "attempts", "status", "error"]
    term.write((tabulate(rows, headers=headers) if rows else "no webhook deliveries yet").encode() + b"\n")
