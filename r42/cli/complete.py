"""Dynamic shell completion: model ids, providers and gateway user names, read at completion time."""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem


def _catalog():
    from r42.catalog import load_catalog
    from r42.config import load_settings

    return load_catalog(load_settings().catalog)


def complete_models(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        models = _catalog().models
    except Exception:  # noqa: BLE001 - completion must never print a traceback into the shell
        return []
    return [CompletionItem(m.id) for m in models if m.id.startswith(incomplete)][:200]


def complete_providers(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        providers = _catalog().providers
    except Exception:  # noqa: BLE001
        return []
    return [CompletionItem(p) for p in sorted(providers) if p.startswith(incomplete)]


def complete_users(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        from r42.store import list_users

        users = list_users()
    except Exception:  # noqa: BLE001 - no store yet: nothing to complete
        return []
    return [CompletionItem(u) for u in users if u.startswith(incomplete)]


def complete_hooks(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        from r42.store.hooks import list_hooks

        hooks = list_hooks()
    except Exception:  # noqa: BLE001 - no store yet: nothing to complete
        return []
    return [CompletionItem(h.id, help=h.url) for h in hooks if h.id.startswith(incomplete)]
