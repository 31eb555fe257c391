"""Operator endpoints: expired keys refused, and the admin API for gateway keys.

    POST   /v1/admin/keys            create a key: {"user", "rpm", "rpd", "budget_usd", "expires", "admin"}
    GET    /v1/admin/keys            list keys (?all=1: revoked ones too; ?expiring=7d)
    DELETE /v1/admin/keys/{prefix}   revoke a key (also DELETE /v1/admin/keys?prefix=...)
    PATCH  /v1/admin/keys/{prefix}   change limits and expiry: {"rpm", "rpd", "budget_usd", "expires"}

Only a key made with `r42 keys create NAME --admin` may call them (403 otherwise). Every change
goes to the audit log with the admin key's prefix as the actor.
"""

from __future__ import annotations

from r42.server.errors import GatewayError
from r42.store.keys import KeyRecord, iso

ADMIN_KEYS = "/v1/admin/keys"


def refuse_expired(record: KeyRecord) -> None:
    """401 with type `key_expired` and the date, for a key past its expiry (the injected clock's now)."""
    if record.expired():
        when = iso(record.expires)
        raise GatewayError(
            401, f"this gateway key expired at {when}; ask an admin to extend it (r42 keys extend {record.prefix} 30d)",
            "key_expired", [("WWW-Authenticate", 'Bearer realm="r42", error="invalid_token"')], kind="key_expired",
        )
