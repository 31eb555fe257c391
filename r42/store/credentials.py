"""Provider credentials (global and per user) and custom endpoints, encrypted at rest with Fernet.

The master key is R42_MASTER_KEY, else R42_HOME/master.key (mode 0600, created on the first
`r42 keys set`). Each secret is sealed together with its provider and user, so a token copied
to another row does not decrypt there. A check token in the meta table tells a wrong master key
from a damaged secret before anything is written with it. `cryptography` is imported only here,
and only when a secret is sealed or opened.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from r42.config import ensure_home, home_dir
from r42.errors import ConfigError, UsageError
from r42.store.db import reading, readable_errors, writing

MASTER_KEY_ENV = "R42_MASTER_KEY"
MASTER_KEY_FILE = "master.key"
_CHECK_PLAINTEXT = b"r42 master key check v1"
GENERATE_HINT = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class MasterKeyError(ConfigError):
    """The master key is missing, malformed or not the one the secrets were sealed with (exit 6)."""


@dataclass(frozen=True)
class StoredCredential:
    """A row of the credentials table, without its secret: what `r42 keys list` shows."""

    provider: str
    user: str | None  # None = every user
    has_secret: bool
    base_url: str | None  # set for custom endpoints
    models: tuple[str, ...]
    updated: float


@dataclass(frozen=True)
class Secret:
    secret: str
    source: str  # "store" | "store (user alice)"

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})"


# ---- the master key --------------------------------------------------------------------------


def master_key_path() -> Path:
    return home_dir() / MASTER_KEY_FILE


def _read_master_key(create: bool) -> tuple[bytes, str] | None:
    """(key, where it came from), creating the key file when asked and nothing else exists."""
    from_env = os.environ.get(MASTER_KEY_ENV)
    if from_env:
        return from_env.strip().encode(), MASTER_KEY_ENV
    path = master_key_path()
    if path.exists():
        return _read_key_file(path), str(path)
    if not create:
        return None
    return _create_key_file(path), str(path)


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise MasterKeyError(
            f"cannot read the master key {path}: {exc.strerror}", "check the file's owner and mode (0600)"
        ) from None


def _create_key_file(path: Path) -> bytes:
    from cryptography.fernet import Fernet

    ensure_home()
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)  # another process made it first: use theirs
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def _fernet(create: bool):  # noqa: ANN202 - cryptography's type, imported lazily
    """The cipher under the master key, checked against the store's check token."""
    from cryptography.fernet import Fernet, InvalidToken

    found = _read_master_key(create=False)
    if found is None:
        if _has_check_token():
            raise MasterKeyError(
                f"the master key is missing: {master_key_path()} does not exist and {MASTER_KEY_ENV} is not set",
                f"restore master.key or set {MASTER_KEY_ENV}; "
                "or remove the stored credentials with `r42 keys rm` and set them again",
            )
        if not create:
            return None
        found = _read_master_key(create=True)
    key, where = found  # type: ignore[misc]
    try:
        cipher = Fernet(key)
    except (ValueError, TypeError):
        raise MasterKeyError(
            f"the master key in {where} is not a valid key (it must be 32 url-safe base64-encoded bytes)",
            f"generate one with: {GENERATE_HINT}",
        ) from None
    _verify_or_write_check(cipher, where, InvalidToken)
    return cipher


def _has_check_token() -> bool:
    conn = reading()
    if conn is None:
        return False
    with readable_errors():
        return conn.execute("SELECT 1 FROM meta WHERE name = 'master_check'").fetchone() is not None


def _verify_or_write_check(cipher: Any, where: str, invalid: type[Exception]) -> None:
    conn = reading()
    select = "SELECT value FROM meta WHERE name = 'master_check'"
    with readable_errors():
        row = conn.execute(select).fetchone() if conn is not None else None
    if row is None:
        with writing() as conn:
            row = conn.execute(select).fetchone()  # again under the write lock: another process may have written it
            if row is None:
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('master_check', ?)", (cipher.encrypt(_CHECK_PLAINTEXT),)
                )
                return
    try:
        ok = cipher.decrypt(row[0]) == _CHECK_PLAINTEXT
    except invalid:
        ok = False
    if not ok:
        raise MasterKeyError(
            f"wrong master key: the key in {where} is not the one the stored credentials were encrypted with",
            f"use the original master.key or {MASTER_KEY_ENV}",
        )


def _seal(cipher: Any, provider: str, user: str, secret: str) -> bytes:
    return cipher.encrypt(orjson.dumps({"p": provider, "u": user, "s": secret}))


def _open(cipher: Any, provider: str, user: str, token: bytes) -> str:
    from cryptography.fernet import InvalidToken

    try:
        sealed = orjson.loads(cipher.decrypt(token))
    except (InvalidToken, orjson.JSONDecodeError):
        sealed = None
    if not isinstance(sealed, dict) or sealed.get("p") != provider or sealed.get("u") != user:
        who = f" for user {user}" if user else ""
        raise MasterKeyError(
            f"the stored credential for {provider}{who} cannot be decrypted (damaged or moved)",
            f"set it again with `r42 keys set {provider}`",
        )
    return str(sealed["s"])


# ---- credentials -----------------------------------------------------------------------------


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not an http(s) URL: {url!r}", "e.g. --base-url http://127.0.0.1:8000/v1")
    if parts.username or parts.password:
        raise UsageError("the base URL holds a user name or password", "give the URL without them and the key on stdin")
    return url.rstrip("/")


def set_credential(
    provider: str,
    secret: str | None,
    user: str | None = None,
    base_url: str | None = None,
    models: list[str] | None = None,
) -> None:
    """Store (or replace) a provider's secret, globally or for one user.

    base_url makes the provider a custom OpenAI-compatible endpoint (its secret may be None: no key).
    """
    provider = provider.strip()
    if not provider or "/" in provider:
        raise UsageError(f"invalid provider name {provider!r}", "a name without '/', e.g. myvllm")
    if base_url is None and not secret:
        raise UsageError("the secret is empty", f'pipe it in: printf %s "$KEY" | r42 keys set {provider}')
    if base_url is not None:
        base_url = _check_base_url(base_url)
        if user:
            raise UsageError(
                "custom endpoints are shared by every user", "leave out --user, or set only a key for the user"
            )
    token = _seal(_fernet(create=True), provider, user or "", secret) if secret else None
    with writing() as conn:
        conn.execute(
            """INSERT INTO credentials (provider, user, secret, base_url, models, updated) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (provider, user) DO UPDATE SET secret = excluded.secret,
                 base_url = coalesce(excluded.base_url, credentials.base_url),
                 models = coalesce(excluded.models, credentials.models), updated = excluded.updated""",
            (provider, user or "", token, base_url, orjson.dumps(models).decode() if models else None, time.time()),
        )


def remove_credential(provider: str, user: str | None = None) -> bool:
    """Delete a stored credential (and endpoint). True when there was one."""
    if reading() is None:
        return False
    with writing() as conn:
        return (
            conn.execute("DELETE FROM credentials WHERE provider = ? AND user = ?", (provider, user or "")).rowcount > 0
        )


def list_credentials() -> list[StoredCredential]:
    conn = reading()
    if conn is None:
        return []
    with readable_errors():
        rows = conn.execute(
            "SELECT provider, user, secret IS NOT NULL, base_url, models, updated "
            "FROM credentials ORDER BY provider, user"
        ).fetchall()
    return [
        StoredCredential(p, u or None, bool(s), b, tuple(orjson.loads(m)) if m else (), t) for p, u, s, b, m, t in rows
    ]


def get_secret(provider: str, user: str | None = None) -> Secret | None:
    """The decrypted secret: the user's own when there is one, else the global one."""
    conn = reading()
    if conn is None:
        return None
    owners = [user, ""] if user else [""]
    with readable_errors():
        for owner in owners:
            row = conn.execute(
                "SELECT secret, base_url FROM credentials WHERE provider = ? AND user = ?", (provider, owner)
            ).fetchone()
            if row is None:
                continue
            source = f"store (user {owner})" if owner else "store"
            if row[0] is None:
                # a custom endpoint that needs no key: available, with an empty secret
                return Secret("", source + ", no key") if row[1] else None
            cipher = _fernet(create=False)
            if cipher is None:
                raise MasterKeyError("the master key is missing", f"restore master.key or set {MASTER_KEY_ENV}")
            return Secret(_open(cipher, provider, owner, row[0]), source)
    return None


# ---- custom endpoints as catalog entries -----------------------------------------------------


def _is_local_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoints() -> list[StoredCredential]:
    return [c for c in list_credentials() if c.base_url and c.user is None]


def custom_providers() -> dict[str, dict[str, Any]]:
    """Stored custom endpoints as provider entries in the catalog's provider schema."""
    out: dict[str, dict[str, Any]] = {}
    for c in _endpoints():
        local = _is_local_host(c.base_url or "")
        privacy = (
            {"trains_on_api_data": False, "retention_days": 0, "note": "runs on this machine"}
            if local
            else {
                "trains_on_api_data": None,
                "retention_days": None,
                "note": "a custom endpoint: its data policy is unknown to r42",
            }
        )
        out[c.provider] = {
            "name": f"{c.provider} (custom endpoint)",
            "protocol": "openai",
            "base_url": c.base_url,
            "key_env": [],
            "base_url_env": None,
            "local": local,
            "privacy": privacy,
        }
    return out


def custom_models() -> list[dict[str, Any]]:
    """The models of the stored custom endpoints, as complete entries in the catalog's model schema.

    Quality and speed are unknown: the entries say so (estimated) and a user can override any
    field in R42_HOME/catalog.yaml.
    """
    models = []
    for c in _endpoints():
        local = _is_local_host(c.base_url or "")
        for name in c.models:
            models.append(
                {
                    "id": f"{c.provider}/{name}",
                    "name": f"{name} ({c.provider})",
                    "aliases": [],
                    "price": {
                        "input": 0.0 if local else None,
                        "output": 0.0 if local else None,
                        "source": "custom endpoint",
                    },
                    "context": None,
                    "max_output": None,
                    "capabilities": {"tools": False, "vision": False, "json": False, "reasoning": False},
                    "local": local,
                    "quality": {
                        "estimated": True,
                        "method": "unknown: a custom endpoint (set quality in R42_HOME/catalog.yaml)",
                    },
                    "speed": None,
                }
            )
    return models


# ---- rotating the master key -----------------------------------------------------------------


def rotate_master_key() -> tuple[int, Path]:
    """Re-encrypt every stored secret (provider credentials, webhook secrets, the check token) under
    a new master key, in one store transaction, and make the new key master.key; the old one is
    kept as master.key.old until you delete it. Returns (secrets re-encrypted, the old key's path).

    Order, so that a crash leaves a way back: the new key is written to master.key.new first, then
    the store is re-encrypted and committed, then master.key.new replaces master.key. Not possible
    while the key comes from R42_MASTER_KEY (r42 cannot change the environment it was given)."""
    from cryptography.fernet import Fernet

    if os.environ.get(MASTER_KEY_ENV):
        raise UsageError(
            f"the master key comes from {MASTER_KEY_ENV}, which r42 cannot change",
            f"unset {MASTER_KEY_ENV} and put the key in {master_key_path()}, then rotate",
        )
    old = _fernet(create=False)
    path = master_key_path()
    if old is None:
        raise UsageError("there is no master key yet: nothing is encrypted", "store a credential with `r42 keys set`")
    fresh = Fernet.generate_key()
    staged = path.with_name(path.name + ".new")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(fresh + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    new = Fernet(fresh)
    try:
        count = _reseal_all(old, new)
    except BaseException:
        staged.unlink(missing_ok=True)  # nothing was committed: the old key stays the key
        raise
    backup = path.with_name(path.name + ".old")
    os.replace(path, backup)
    os.replace(staged, path)
    return count, backup


def _reseal_all(old: Any, new: Any) -> int:
    """Every stored secret opened with `old` and sealed with `new`, in one transaction."""
    with writing() as conn:
        count = 0
        for provider, user, token in conn.execute(
            "SELECT provider, user, secret FROM credentials WHERE secret IS NOT NULL"
        ).fetchall():
            sealed = _seal(new, provider, user, _open(old, provider, user, token))
            conn.execute("UPDATE credentials SET secret = ? WHERE provider = ? AND user = ?", (sealed, provider, user))
            count += 1
        for hook_id, token in conn.execute("SELECT id, secret FROM hooks").fetchall():
            sealed = _seal(new, "webhook", hook_id, _open(old, "webhook", hook_id, token))
            conn.execute("UPDATE hooks SET secret = ? WHERE id = ?", (sealed, hook_id))
            count += 1
        conn.execute("UPDATE meta SET value = ? WHERE name = 'master_check'", (new.encrypt(_CHECK_PLAINTEXT),))
    return count
