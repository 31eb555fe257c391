"""The store: one SQLite file in R42_HOME (r42.db) with gateway users and keys, encrypted
provider credentials and custom endpoints, and the routing log.

This package never imports click nor r42.availability (which imports it to look credentials up);
`cryptography` loads only when a secret is sealed or opened.
Every function opens this thread's connection on first use; the read functions return empty
results (or None) when no store exists yet and never create one.
"""

from __future__ import annotations

from r42.credential import Credential

from r42.store.credentials import (
    MASTER_KEY_ENV,
    MasterKeyError,
    StoredCredential,
    custom_models,
    custom_providers,
    get_secret,
    list_credentials,
    master_key_path,
    remove_credential,
    set_credential,
)
from r42.store.db import STORE_FILE, StoreError, close_thread_connection, store_exists, store_path
from r42.store.keys import (
    Admission,
    KeyRecord,
    LimitHit,
    NewKey,
    NotFoundError,
    Usage,
    admit,
    authenticate,
    authenticate_cached,
    check_limits,
    create_key,
    expiring_within,
    extend,
    has_limits,
    limit_exceeded,
    list_keys,
    list_users,
    parse_duration,
    parse_expiry,
    record_usage,
    reserve,
    revoke,
    rotate,
    settle,
    spent_this_month,
    update_key,
    usage,
)
from r42.store.log import iter_routes, prune, read_routes, write_route, write_route_from_document


__all__ = [
    "MASTER_KEY_ENV",
    "STORE_FILE",
    "KeyRecord",
    "LimitHit",
    "MasterKeyError",
    "NewKey",
    "NotFoundError",
    "StoreError",
    "StoredCredential",
    "Usage",
    "authenticate",
    "authenticate_cached",
    "check_limits",
    "close_thread_connection",
    "create_key",
    "custom_models",
    "custom_providers",
    "get_secret",
    "iter_routes",
    "limit_exceeded",
    "list_credentials",
    "list_keys",
    "list_users",
    "lookup_credential",
    "master_key_path",
    "prune",
    "read_routes",
    "record_usage",
    "remove_credential",
    "revoke",
    "rotate",
    "set_credential",
    "spent_this_month",
    "store_exists",
    "store_path",
    "usage",
    "write_route",
    "write_route_from_document",
    "expiring_within",
    "extend",
    "parse_duration",
    "parse_expiry",
    "update_key",
    "Admission",
    "admit",
    "has_limits",
    "reserve",
    "settle",
]


def lookup_credential(provider_id: str, user: str | None = None) -> Credential | None:
    """The stored credential for a provider: the user's own first, else the global one.

    Raises MasterKeyError when a credential exists but the master key is missing or wrong.
    """
    found = get_secret(provider_id, user)
    return None if found is None else Credential(found.secret, found.source)
