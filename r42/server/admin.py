"""Operator endpoints: expired keys refused, and the admin API for gateway keys.

    POST   /v1/admin/keys            create a key: {"user", "rpm", "rpd", "budget_usd", "expires", "admin"}
    GET    /v1/admin/keys            list keys (?all=1: revoked ones too; ?expiring=7d)
    DELETE /v1/admin/keys/{prefix}   revoke a key (also DELETE /v1/admin/keys?prefix=...)
    PATCH  /v1/admin/keys/{prefix}   change limits and expiry: {"rpm", "rpd", "budget_usd", "expires"}

Only a key made with `r42 keys create NAME --admin` may call them (403 otherwise). Every change
goes to the audit log with the admin key's prefix as the actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from r42.server.call import Call, json_response, read_json
from r42.server.errors import GatewayError
from r42.server.http import Response
from r42.server.validate import known_fields
from r42.store import audit
from r42.store.keys import (
    MAX_RATE,
    KeyRecord,
    NotFoundError,
    create_key,
    expiring_within,
    iso,
    list_keys,
    parse_duration,
    parse_expiry,
    revoke,
    update_key,
)

if TYPE_CHECKING:
    from r42.server.app import Gateway

ADMIN_KEYS = "/v1/admin/keys"


def refuse_expired(record: KeyRecord) -> None:
    """401 with type `key_expired` and the date, for a key past its expiry (the injected clock's now)."""
    if record.expired():
        when = iso(record.expires)
        raise GatewayError(
            401,
            f"this gateway key expired at {when}; ask an admin to extend it (r42 keys extend {record.prefix} 30d)",
            "key_expired",
            [("WWW-Authenticate", 'Bearer realm="r42", error="invalid_token"')],
            kind="key_expired",
        )


# ---- the admin API ---------------------------------------------------------------------------

LIMIT_FIELDS = ("rpm", "rpd", "budget_usd")


def require_admin(caller: Any) -> None:
    """403 unless the caller's key is an admin key (`r42 keys create NAME --admin`)."""
    if not getattr(caller.key, "admin", False):
        raise GatewayError(403, "this endpoint needs an admin key (r42 keys create NAME --admin)", "admin_required")


def _actor(call: Call) -> str:
    key = call.caller.key
    return f"key:{key.prefix} ({key.user})"


def _path_prefix(call: Call) -> str:
    """The {prefix} of /v1/admin/keys/{prefix}, else ?prefix=."""
    tail = call.request.path[len(ADMIN_KEYS) :].strip("/")
    prefix = unquote(tail) if tail else (call.request.query.get("prefix") or [""])[0]
    if not prefix:
        raise GatewayError(
            400, "name the key: /v1/admin/keys/{prefix} or ?prefix=r42_...", "missing_prefix", param="prefix"
        )
    return prefix


def _limit(body: dict[str, Any], name: str) -> int | float | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise GatewayError(400, f"{name} must be a number, 0 or more, or null", "invalid_request", param=name)
    if name in ("rpm", "rpd") and value is not None and (value > MAX_RATE or value != int(value)):
        raise GatewayError(400, f"{name} must be a whole number up to {MAX_RATE}", "invalid_request", param=name)
    return int(value) if name in ("rpm", "rpd") and value is not None else value


def _expires(body: dict[str, Any]) -> float | None:
    value = body.get("expires")
    if value is None:
        return None
    if not isinstance(value, str):
        raise GatewayError(
            400, "expires must be a duration (30d) or an ISO 8601 date, or null", "invalid_request", param="expires"
        )
    return parse_expiry(value)


def _not_found(exc: NotFoundError) -> GatewayError:
    return GatewayError(404, exc.one_line(), "key_not_found")


def admin_create_key(gateway: Gateway, call: Call) -> Response:
    """POST /v1/admin/keys {"user", "rpm", "rpd", "budget_usd", "expires", "admin"}: 201 with the key (shown once)."""
    body = read_json(call)
    known_fields(body, ("user", "rpm", "rpd", "budget_usd", "expires", "admin"))
    user = body.get("user")
    if not isinstance(user, str) or not user.strip():
        raise GatewayError(400, "user must be a non-empty string", "invalid_request", param="user")
    if not isinstance(body.get("admin", False), bool):
        raise GatewayError(400, "admin must be true or false", "invalid_request", param="admin")
    limits = {name: _limit(body, name) for name in LIMIT_FIELDS}
    new = create_key(user, expires=_expires(body), admin=body.get("admin", False), **limits)  # type: ignore[arg-type]
    audit.record(_actor(call), "key.create", new.record.prefix, _detail(new.record))
    return json_response({"key": new.key, **new.record.as_dict()}, status=201)


def admin_list_keys(gateway: Gateway, call: Call) -> Response:
    """GET /v1/admin/keys[?all=1][&expiring=7d]: every key's record (never a key or a hash)."""
    query = call.request.query
    expiring = next(iter(query.get("expiring") or []), None)
    if expiring is not None:
        seconds = parse_duration(expiring)
        if seconds is None:
            raise GatewayError(
                400, f"expiring takes a duration such as 7d, not {expiring!r}", "invalid_request", param="expiring"
            )
        records = expiring_within(seconds)
    else:
        records = list_keys(include_revoked=(query.get("all") or ["0"])[0] in ("1", "true", "yes"))
    return json_response({"keys": [r.as_dict() for r in records]})


def admin_revoke_key(gateway: Gateway, call: Call) -> Response:
    """DELETE /v1/admin/keys/{prefix} (or ?prefix=): revoke the key at once."""
    try:
        record = revoke(_path_prefix(call))
    except NotFoundError as exc:
        raise _not_found(exc) from None
    audit.record(_actor(call), "key.revoke", record.prefix, {"user": record.user})
    return json_response({"revoked": record.as_dict()})


def admin_update_key(gateway: Gateway, call: Call) -> Response:
    """PATCH /v1/admin/keys/{prefix} {"rpm", "rpd", "budget_usd", "expires"}: fields given change (null clears)."""
    body = read_json(call)
    known_fields(body, (*LIMIT_FIELDS, "expires"))
    changes: dict[str, Any] = {name: _limit(body, name) for name in LIMIT_FIELDS if name in body}
    if "expires" in body:
        changes["expires"] = _expires(body)
    try:
        before, after = update_key(_path_prefix(call), **changes)
    except NotFoundError as exc:
        raise _not_found(exc) from None
    old, new = before.as_dict(), after.as_dict()
    changed = {name: [old[name], new[name]] for name in (*LIMIT_FIELDS, "expires") if old[name] != new[name]}
    audit.record(_actor(call), "key.update", after.prefix, changed)
    return json_response({"key": new})


def _detail(record: KeyRecord) -> dict[str, Any]:
    doc = record.as_dict()
    return {name: doc[name] for name in ("user", "rpm", "rpd", "budget_usd", "expires", "admin")}
