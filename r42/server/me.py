"""Self-service endpoints: each gateway user manages their own provider keys and reads their own usage.

    GET    /v1/me/credentials              the providers this user can call and where each key comes from
    PUT    /v1/me/credentials/{provider}   store this user's own key for a provider: {"key": "..."}
    DELETE /v1/me/credentials/{provider}   remove it (the shared key, if any, is used again)
    GET    /v1/me/usage                    this key's requests (minute, day) and spend (month) against its limits
    GET    /v1/me/privacy-prompt           this user's privacy-judge template (their own or the default)
    PUT    /v1/me/privacy-prompt           set it: {"template": "... {prompt} ..."}
    DELETE /v1/me/privacy-prompt           back to the default

An admin key may add `?user=NAME` to the privacy-prompt endpoints to read or edit another user's.

A key is shown only as a fingerprint (`sha256:` and the first 12 hex digits of its SHA-256), never
itself; keys are encrypted at rest like every stored credential. Changes are audited.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from urllib.parse import unquote

from r42.server.call import Call, json_response, read_json
from r42.server.errors import GatewayError
from r42.server.http import Response
from r42.store import audit

if TYPE_CHECKING:
    from r42.server.app import Gateway

ME_CREDENTIALS = "/v1/me/credentials"
MAX_KEY_LENGTH = 4096


def fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


def _user(call: Call) -> str:
    if call.caller.key is None or not call.caller.user:
        raise GatewayError(403, "this endpoint needs a gateway key: it acts for the key's user", "user_required")
    return call.caller.user


def _provider(call: Call) -> str:
    from r42.catalog import load_catalog

    name = unquote(call.request.path[len(ME_CREDENTIALS) :].strip("/"))
    if name not in load_catalog().providers:
        raise GatewayError(404, f"unknown provider {name!r}", "provider_not_found", param="provider")
    return name


def _actor(call: Call) -> str:
    return f"key:{call.caller.key.prefix} ({call.caller.user})"


def _forget(gateway: Gateway, provider: str, user: str) -> None:
    """This user's next request sees the change: drop their cached credential and availability."""
    gateway.credentials.forget(provider, user)
    routers = getattr(gateway, "_routers", None)
    if isinstance(routers, dict):
        routers.pop(user, None)


def me_credentials(gateway: Gateway, call: Call) -> Response:
    """GET /v1/me/credentials: per provider with a key for this user, its source and (own keys) a fingerprint."""
    from r42.availability import find_credential
    from r42.catalog import load_catalog
    from r42.store import get_secret

    user = _user(call)
    out: list[dict[str, str | None]] = []
    for provider in load_catalog().providers.values():
        own = get_secret(provider.id, user)
        if own is not None and own.source.startswith(f"store (user {user})") and own.secret:
            out.append({"provider": provider.id, "source": "yours", "fingerprint": fingerprint(own.secret)})
        elif provider.key_env and find_credential(provider, None, user) is not None:
            out.append({"provider": provider.id, "source": "shared", "fingerprint": None})
    return json_response({"user": user, "credentials": out})


def me_put_credential(gateway: Gateway, call: Call) -> Response:
    """PUT /v1/me/credentials/{provider} {"key": "..."}: this user's own key, encrypted at rest."""
    from r42.store import set_credential

    user, provider = _user(call), _provider(call)
    body = read_json(call)
    secret = body.get("key")
    if set(body) - {"key"}:
        raise GatewayError(400, 'the body takes only {"key": "..."}', "invalid_request")
    if (
        not isinstance(secret, str)
        or not secret.strip()
        or len(secret) > MAX_KEY_LENGTH
        or any(c.isspace() for c in secret)
    ):
        raise GatewayError(400, "key must be a non-empty string without whitespace", "invalid_request", param="key")
    set_credential(provider, secret, user=user)
    _forget(gateway, provider, user)
    audit.record(_actor(call), "credential.set", provider, {"user": user})
    return json_response({"provider": provider, "source": "yours", "fingerprint": fingerprint(secret)})


def me_delete_credential(gateway: Gateway, call: Call) -> Response:
    """DELETE /v1/me/credentials/{provider}: remove this user's own key."""
    from r42.store import remove_credential

    user, provider = _user(call), _provider(call)
    if not remove_credential(provider, user):
        raise GatewayError(404, f"you have no stored key for {provider}", "credential_not_found")
    _forget(gateway, provider, user)
    audit.record(_actor(call), "credential.rm", provider, {"user": user})
    return json_response({"provider": provider, "removed": True})


def me_usage(gateway: Gateway, call: Call) -> Response:
    """GET /v1/me/usage: this key's requests in the last minute and day, spend this month, and its limits."""
    from r42.store import usage

    _user(call)
    key = call.caller.key
    used = usage(key.id)
    return json_response(
        {
            "user": key.user,
            "key_prefix": key.prefix,
            "requests_minute": used.requests_minute,
            "requests_day": used.requests_day,
            "cost_month_usd": round(used.cost_month_usd, 6),
            "limits": {"rpm": key.rpm, "rpd": key.rpd, "budget_usd": key.budget_usd},
            "expires": key.as_dict()["expires"],
        }
    )


# ---- the privacy judge's template --------------------------------------------------------------


def _prompt_user(call: Call) -> str:
    """Whose template: the caller's own, or with ?user=NAME another user's (admin keys only)."""
    own = _user(call)
    named = (call.request.query.get("user") or [""])[0]
    if not named or named == own:
        return own
    from r42.server.admin import require_admin
    from r42.store import list_users

    require_admin(call.caller)
    if named not in list_users():
        raise GatewayError(404, f"no gateway user {named[:80]!r}", "user_not_found", param="user")
    return named


def _template(gateway: Gateway, user: str) -> Response:
    from r42.store.prompts import template_for

    return json_response(template_for(user, gateway.settings.privacy_judge_prompt).as_dict())


def me_privacy_prompt(gateway: Gateway, call: Call) -> Response:
    """GET /v1/me/privacy-prompt[?user=NAME]: the template the privacy judge uses for this user,
    whether it is their own or the default, and the default. `?user=` names another user (admin keys only).
    OpenAPI: - -> PrivacyPrompt"""
    return _template(gateway, _prompt_user(call))


def me_put_privacy_prompt(gateway: Gateway, call: Call) -> Response:
    """PUT /v1/me/privacy-prompt[?user=NAME] {"template": "..."}: this user's own template for the
    privacy judge; it must hold {prompt} exactly once (400 otherwise). `?user=` for admins.
    OpenAPI: PrivacyPromptUpdate -> PrivacyPrompt"""
    from r42.server.validate import privacy_prompt_request
    from r42.store.prompts import set_template

    user = _prompt_user(call)
    template = privacy_prompt_request(read_json(call))
    set_template(user, template, _actor(call))
    return _template(gateway, user)


def me_delete_privacy_prompt(gateway: Gateway, call: Call) -> Response:
    """DELETE /v1/me/privacy-prompt[?user=NAME]: back to the default template (the `privacy_judge_prompt`
    setting, else r42's own). `?user=` for admins.
    OpenAPI: - -> PrivacyPrompt"""
    from r42.store.prompts import reset_template

    user = _prompt_user(call)
    reset_template(user, _actor(call))
    return _template(gateway, user)
