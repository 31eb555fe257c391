"""`r42 keys`: gateway users and keys, provider credentials and custom endpoints."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import click

from r42.cli.complete import complete_providers, complete_users
from tabulate import tabulate

from r42 import store
from r42.cli.pipe import terminal_of
from r42.store import audit
from r42.store.keys import iso
from r42.document import dumps
from r42.errors import NoCredentialsError, UsageError
from r42.terminal import Terminal

SECRET_NOT_ON_ARGV = "the secret is read from stdin or a hidden prompt, never from the command line"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:g}"


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _print_new_key(term: Terminal, new: store.NewKey, force_json: bool) -> None:
    record = new.record
    if force_json:
        term.write(dumps({"key": new.key, **record.as_dict()}) + b"\n")
    else:
        term.write(new.key.encode() + b"\n")
    term.note(f"r42: key {record.prefix}… for user {record.user}: shown once, store it now (only its hash is kept)")


@click.group()
def keys() -> None:
    """Gateway users and keys, and provider credentials.

    \b
    Gateway keys (for `r42 serve`):
      r42 keys create alice --rpm 60 --budget 20 --expires 30d
      r42 keys create ops --admin          (may use the admin API, /v1/admin/keys)
      r42 keys list --expiring 7d
      r42 keys extend r42_AbCd1234 30d
      r42 keys rotate alice
      r42 keys revoke r42_AbCd1234
      r42 keys audit
      r42 keys privacy-prompt alice --set judge.txt   (alice's own privacy-judge template)
    \b
    Provider credentials (encrypted under R42_HOME/master.key or R42_MASTER_KEY):
      printf %s "$OPENAI_API_KEY" | r42 keys set openai
      r42 keys set myvllm --base-url http://10.0.0.5:8000/v1 --model llama3 < key.txt
      export OPENAI_API_KEY=$(r42 keys get openai)
    """


@keys.command()
@click.argument("user", shell_complete=complete_users)
@click.option("--rpm", type=click.IntRange(min=0), default=None, help="Requests per minute (default: no limit).")
@click.option("--rpd", type=click.IntRange(min=0), default=None, help="Requests per day (default: no limit).")
@click.option(
    "--budget", type=click.FloatRange(min=0), default=None, help="USD per calendar month (default: no limit)."
)
@click.option(
    "--expires",
    default=None,
    metavar="DURATION|DATE",
    help="Expire after a duration (90s, 12h, 30d, 2w) or at an ISO 8601 date or time"
    " (UTC unless given; default: never).",
)
@click.option("--admin", is_flag=True, help="An admin key: may manage gateway keys over HTTP (/v1/admin/keys).")
@click.option("--json", "force_json", is_flag=True, help="Write the key and its record as JSON.")
@click.pass_context
def create(
    ctx: click.Context,
    user: str,
    rpm: int | None,
    rpd: int | None,
    budget: float | None,
    expires: str | None,
    admin: bool,
    force_json: bool,
) -> None:
    """Create a gateway key for USER and print it (once: only its hash is stored).

    \b
    Example:
      r42 keys create alice --rpm 60 --rpd 2000 --budget 25 --expires 30d > alice.key
      r42 keys create ops --admin > ops.key
    """
    when = store.parse_expiry(expires) if expires is not None else None
    new = store.create_key(user, rpm=rpm, rpd=rpd, budget_usd=budget, expires=when, admin=admin)
    audit.record(audit.cli_actor(), "key.create", new.record.prefix, _limits_detail(new.record))
    _print_new_key(terminal_of(ctx), new, force_json)


def _limits_detail(record: store.KeyRecord) -> dict[str, Any]:
    """What the audit log keeps of a key: its user, limits, expiry and role (never the key)."""
    doc = record.as_dict()
    return {name: doc[name] for name in ("user", "rpm", "rpd", "budget_usd", "expires", "admin")}


@keys.command()
@click.argument("key_or_prefix")
@click.argument("when", metavar="DURATION|DATE|never")
@click.pass_context
def extend(ctx: click.Context, key_or_prefix: str, when: str) -> None:
    """Extend a gateway key's expiry: by a duration (from its current expiry, or from now if that
    is past or unset), to an ISO 8601 date or time, or `never`.

    \b
    Example:
      r42 keys extend r42_AbCd1234 30d
      r42 keys extend r42_AbCd1234 2027-06-30
      r42 keys extend r42_AbCd1234 never
    """
    before, after = store.extend(key_or_prefix, when)
    change = {"expires": [iso(before.expires), iso(after.expires)]}
    audit.record(audit.cli_actor(), "key.update", after.prefix, change)
    until = f"until {iso(after.expires)}" if after.expires else "with no expiry"
    terminal_of(ctx).note(f"r42: key {after.prefix}… of user {after.user} is valid {until}")


@keys.command()
@click.argument("key_or_prefix")
@click.pass_context
def revoke(ctx: click.Context, key_or_prefix: str) -> None:
    """Revoke a gateway key, named by the key or a unique prefix (as `r42 keys list` shows it).

    \b
    Example:
      r42 keys revoke r42_AbCd1234
    """
    record = store.revoke(key_or_prefix)
    audit.record(audit.cli_actor(), "key.revoke", record.prefix, {"user": record.user})
    terminal_of(ctx).note(f"r42: revoked key {record.prefix}… of user {record.user}")


@keys.command()
@click.argument("user_or_prefix", shell_complete=complete_users)
@click.option("--json", "force_json", is_flag=True, help="Write the new key and its record as JSON.")
@click.pass_context
def rotate(ctx: click.Context, user_or_prefix: str, force_json: bool) -> None:
    """Replace a key (or every key of a user) by a new one with the same limits; print it once.

    \b
    Example:
      r42 keys rotate alice > alice.key
    """
    new, old = store.rotate(user_or_prefix)
    detail = {"user": new.record.user, "revoked": [r.prefix for r in old]}
    audit.record(audit.cli_actor(), "key.rotate", new.record.prefix, detail)
    term = terminal_of(ctx)
    term.note("r42: revoked " + ", ".join(f"{r.prefix}…" for r in old))
    _print_new_key(term, new, force_json)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option(
    "--expiring",
    default=None,
    metavar="DURATION",
    help="Only keys that expire within DURATION (e.g. 7d), those already expired included.",
)
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.pass_context
def list_command(ctx: click.Context, include_revoked: bool, expiring: str | None, force_json: bool) -> None:
    """Gateway keys (user, prefix, created, last used, limits, expiry, admin) and where each provider's credential
    comes from.

    Never prints a secret. A table on a terminal, JSON when piped.

    \b
    Example:
      r42 keys list | jq '.credentials[] | select(.used) | .provider'
      r42 keys list --expiring 7d
    """
    term = terminal_of(ctx)
    if expiring is not None:
        seconds = store.parse_duration(expiring)
        if seconds is None:
            raise UsageError(f"--expiring takes a duration, not {expiring!r}", "e.g. --expiring 7d, 12h or 90s")
        records = store.expiring_within(seconds)
    else:
        records = store.list_keys(include_revoked=include_revoked)
    credentials = credential_sources()
    if force_json or not term.stdout_isatty:
        term.write(dumps({"keys": [r.as_dict() for r in records], "credentials": credentials}) + b"\n")
        return
    term.write(render_list(records, credentials).encode() + b"\n")


def refresh_endpoints_layer() -> None:
    """Custom endpoints become catalog providers through a layer file that rank and ask load."""
    from r42.catalog import write_endpoints_layer

    write_endpoints_layer(store.custom_providers(), store.custom_models())


def credential_sources(env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One entry per place a provider's credential is found: env variables and the store."""
    from r42.catalog import load_catalog

    env = dict(os.environ) if env is None else env
    providers = load_catalog().providers
    out: list[dict[str, Any]] = []
    env_providers = set()
    for provider in providers.values():
        for name in provider.key_env:
            if env.get(name):
                env_providers.add(provider.id)
                out.append(
                    {
                        "provider": provider.id,
                        "user": None,
                        "source": f"env {name}",
                        "base_url": None,
                        "models": None,
                        "used": _first_env(provider, env) == name,
                    }
                )
    for c in store.list_credentials():
        # A user's own key wins for that user; a global stored key only when no env variable is set.
        shadowed = c.user is None and c.provider in env_providers
        source = "store" if c.has_secret else "store (no key)"
        out.append(
            {
                "provider": c.provider,
                "user": c.user,
                "source": source,
                "base_url": c.base_url,
                "models": list(c.models) or None,
                "used": not shadowed,
            }
        )
    return out


def _first_env(provider: Any, env: dict[str, str]) -> str | None:
    return next((name for name in provider.key_env if env.get(name)), None)


def _state(record: store.KeyRecord) -> str:
    if record.revoked:
        return "revoked"
    state = "expired" if record.expired() else "active"
    return state + (", admin" if record.admin else "")


def render_list(records: list[store.KeyRecord], credentials: list[dict[str, Any]]) -> str:
    key_rows = [
        [
            r.user,
            r.prefix + "…",
            iso(r.created),
            iso(r.last_used) or "never",
            _limit(r.rpm),
            _limit(r.rpd),
            _money(r.budget_usd),
            iso(r.expires) or "never",
            _state(r),
        ]
        for r in records
    ]
    headers = ["user", "key", "created", "last used", "rpm", "rpd", "budget/month", "expires", "state"]
    keys_table = tabulate(key_rows, headers=headers) if key_rows else "no gateway keys (r42 keys create USER)"
    cred_rows = [
        [
            c["provider"],
            c["user"] or "(all)",
            c["source"],
            c.get("base_url") or "",
            "yes" if c["used"] else "no (env wins)",
        ]
        for c in credentials
    ]
    cred_table = (
        tabulate(cred_rows, headers=["provider", "user", "credential from", "base url", "used"])
        if cred_rows
        else 'no provider credentials (set one: printf %s "$KEY" | r42 keys set PROVIDER)'
    )
    return f"{keys_table}\n\n{cred_table}"


@keys.command("set")
@click.argument("provider", shell_complete=complete_providers)
@click.option(
    "--user",
    default=None,
    shell_complete=complete_users,
    help="Only for this gateway user (overrides the global credential for them).",
)
@click.option("--base-url", default=None, help="Make PROVIDER a custom OpenAI-compatible endpoint at this URL.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A model the custom endpoint serves (repeatable; default: ask its /models).",
)
@click.pass_context
def set_command(
    ctx: click.Context, provider: str, user: str | None, base_url: str | None, models: tuple[str, ...]
) -> None:
    """Store PROVIDER's key, encrypted. The key comes from stdin or a hidden prompt, never from argv.

    \b
    Example:
      printf %s "$KEY" | r42 keys set anthropic
      r42 keys set openai --user alice          (prompts, without echo)
      r42 keys set lmstudio2 --base-url http://127.0.0.1:1235/v1 < /dev/null   (no key)
    """
    term = terminal_of(ctx)
    _check_provider_name(provider, base_url, user)
    if models and base_url is None and not _is_custom(provider):
        raise UsageError("--model applies to custom endpoints only", "add --base-url URL")
    secret = read_secret(term, provider, optional=base_url is not None or (_is_custom(provider) and user is None))
    had_master_key = store.master_key_path().exists() or bool(os.environ.get(store.MASTER_KEY_ENV))
    if base_url is not None and not models:
        models = tuple(_list_endpoint_models(term, base_url, secret))
    store.set_credential(provider, secret or None, user=user, base_url=base_url, models=list(models) or None)
    audit.record(audit.cli_actor(), "credential.set", provider, {"user": user, "base_url": base_url})
    refresh_endpoints_layer()
    if not had_master_key and store.master_key_path().exists():
        term.note(
            f"r42: created the master key {store.master_key_path()}: back it up; "
            "without it the stored credentials cannot be read"
        )
    where = f" for user {user}" if user else ""
    term.note(
        f"r42: stored the credential for {provider}{where}"
        + (f" ({len(models)} model{'' if len(models) == 1 else 's'})" if base_url else "")
    )


def _is_custom(provider: str) -> bool:
    return any(c.provider == provider and c.base_url for c in store.list_credentials())


def _check_provider_name(provider: str, base_url: str | None, user: str | None) -> None:
    from r42.catalog import load_catalog

    known = load_catalog().providers
    if base_url is not None and provider in known:
        raise UsageError(
            f"{provider} is a built-in provider", "give the custom endpoint a name of its own, e.g. my" + provider
        )
    if base_url is None and provider not in known and not _is_custom(provider):
        close = difflib.get_close_matches(provider, list(known), n=3)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else "add --base-url URL to store a custom endpoint under this name"
        )
        raise UsageError(f"unknown provider {provider!r}", hint)


def read_secret(term: Terminal, provider: str, optional: bool) -> str:
    """The secret from stdin when piped, else from a prompt that does not echo."""
    if term.stdin_isatty:
        label = f"{provider} key" + (" (empty for none)" if optional else "")
        text = click.prompt(label, hide_input=True, default="" if optional else None, show_default=False, err=True)
    else:
        text = term.stdin.read().decode("utf-8", "replace")
    secret = text.strip()
    if not secret and not optional:
        raise UsageError(
            f"no key given for {provider}", f'{SECRET_NOT_ON_ARGV}: printf %s "$KEY" | r42 keys set {provider}'
        )
    if any(ch.isspace() for ch in secret):
        raise UsageError("the key contains whitespace", "pipe only the key itself")
    return secret


def _list_endpoint_models(term: Terminal, base_url: str, secret: str) -> list[str]:
    """Ask an OpenAI-compatible endpoint which models it serves (GET /models)."""
    import httpx

    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=5.0)
        response.raise_for_status()
        names = [
            m["id"] for m in response.json().get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)
        ]
    except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
        term.note(
            f"r42: warning: could not list the models of {base_url} ({type(exc).__name__}); add them with --model NAME"
        )
        return []
    if not names:
        term.note(f"r42: warning: {base_url} lists no models; add them with --model NAME")
    return names


@keys.command("get")
@click.argument("provider", shell_complete=complete_providers)
@click.option(
    "--user", default=None, shell_complete=complete_users, help="This user's credential (falls back to the global one)."
)
@click.pass_context
def get_command(ctx: click.Context, provider: str, user: str | None) -> None:
    """Print PROVIDER's stored key (the user's own with --user, else the global one).

    \b
    Example:
      export OPENAI_API_KEY=$(r42 keys get openai)
    """
    found = store.get_secret(provider, user)
    if found is None or not found.secret:
        raise NoCredentialsError(
            f"no stored key for {provider}", f'store one: printf %s "$KEY" | r42 keys set {provider}'
        )
    terminal_of(ctx).write(found.secret.encode() + b"\n")


@keys.command("rm")
@click.argument("provider", shell_complete=complete_providers)
@click.option("--user", default=None, shell_complete=complete_users, help="Remove this user's credential only.")
@click.pass_context
def rm_command(ctx: click.Context, provider: str, user: str | None) -> None:
    """Remove PROVIDER's stored credential (or custom endpoint).

    \b
    Example:
      r42 keys rm openai --user alice
    """
    removed = store.remove_credential(provider, user)
    if removed:
        audit.record(audit.cli_actor(), "credential.rm", provider, {"user": user})
    refresh_endpoints_layer()
    if not removed:
        where = f" for user {user}" if user else ""
        raise store.NotFoundError(f"no stored credential for {provider}{where}", "see `r42 keys list`")
    terminal_of(ctx).note(f"r42: removed the credential for {provider}" + (f" (user {user})" if user else ""))


@keys.command("rotate-master")
@click.pass_context
def rotate_master_command(ctx: click.Context) -> None:
    """Re-encrypt the stored provider credentials and webhook secrets under a new master key.

    The new key replaces R42_HOME/master.key; the old one is kept as master.key.old (delete it once
    the new one is backed up). Stop `r42 serve` first: a running gateway holds the old key.

    \b
    Example:
      r42 keys rotate-master && cp "$R42_HOME/master.key" /secure/backup/
    """
    from r42.store.credentials import rotate_master_key

    count, backup = rotate_master_key()
    audit.record(audit.cli_actor(), "credential.rotate_master", None, {"secrets": count})
    terminal_of(ctx).note(
        f"r42: re-encrypted {count} stored secret{'s' if count != 1 else ''} under a new master key;"
        f" the old key is in {backup} (delete it once the new one is backed up)"
    )


@keys.command("privacy-prompt")
@click.argument("user", shell_complete=complete_users)
@click.option(
    "--set",
    "source",
    metavar="FILE|-",
    default=None,
    help="Set USER's own privacy-judge template from FILE (- reads stdin); it must hold {prompt} once.",
)
@click.option("--reset", is_flag=True, help="Back to the default (the privacy_judge_prompt setting, else r42's own).")
@click.option("--json", "force_json", is_flag=True, help="Write the template and where it comes from as JSON.")
@click.pass_context
def privacy_prompt_command(ctx: click.Context, user: str, source: str | None, reset: bool, force_json: bool) -> None:
    """Show, set or reset a gateway user's own privacy-judge template (what `r42 serve` asks a
    local model for USER's prompts when privacy_judge is on; users edit theirs at
    /v1/me/privacy-prompt and on /dashboard).

    \b
    Example:
      r42 keys privacy-prompt alice
      r42 keys privacy-prompt alice --set judge.txt
      r42 keys privacy-prompt alice --reset
    """
    from r42.config import load_settings
    from r42.store.prompts import reset_template, set_template, template_for

    if source is not None and reset:
        raise UsageError("--set and --reset exclude each other", "give one of them")
    if user not in store.list_users():
        raise store.NotFoundError(f"no gateway user {user!r}", "create one with `r42 keys create USER`")
    term = terminal_of(ctx)
    if source is not None:
        template = _read_template(term, source)
        set_template(user, template, audit.cli_actor())  # InputError (exit 2): no {prompt}, or too long
        term.note(f"r42: user {user} now has their own privacy-judge template")
    elif reset:
        reset_template(user, audit.cli_actor())
        term.note(f"r42: user {user} uses the default privacy-judge template")
    current = template_for(user, load_settings().privacy_judge_prompt)
    if force_json:
        term.write(dumps(current.as_dict()) + b"\n")
    elif source is None and not reset:
        term.write(current.template.encode() + b"\n")
        term.note(f"r42: {'their own' if current.own else 'the default'} template for user {user}")


def _read_template(term: Terminal, source: str) -> str:
    """The template from stdin (-) or a file, as UTF-8 text."""
    try:
        data = term.stdin.read() if source == "-" else Path(source).read_bytes()
        return data.decode("utf-8").removesuffix("\n")  # a file's last newline is not part of the template
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}", "give a readable file or - for stdin") from None
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not UTF-8 text", "save the template as UTF-8") from None


@keys.command("audit")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="How many of the latest entries."
)
@click.option("--action", default=None, help="Only this action or family (key, key.create, hook, ...).")
@click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")
@click.pass_context
def audit_command(ctx: click.Context, limit: int, action: str | None, force_json: bool) -> None:
    """The audit log of changes to gateway keys, provider credentials and webhooks: when, who (a CLI user or an
    admin key), what.

    Never a key or a secret.

    A table on a terminal, NDJSON when piped, oldest first.

    \b
    Example:
      r42 keys audit --action key --limit 20
    """
    term = terminal_of(ctx)
    entries = audit.read(limit=limit, action=action)
    if force_json or not term.stdout_isatty:
        term.write(b"".join(dumps(e.as_dict()) + b"\n" for e in entries))
        return
    rows = [[e.as_dict()["time"], e.actor, e.action, e.target or "", dumps(e.detail).decode()] for e in entries]
    table = tabulate(rows, headers=["time", "who", "action", "target", "detail"]) if rows else "no audit entries"
    term.write(table.encode() + b"\n")
