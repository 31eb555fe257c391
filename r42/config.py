"""R42_HOME and settings.

Precedence, highest first: command-line flags > R42_* environment variables > the config file
(R42_HOME/config.toml) > the defaults of the `Settings` dataclass below, which is frozen: a
different value is a new Settings (dataclasses.replace). The config file is TOML (tomllib is in the standard
library); tomllib is imported only when the file exists, to keep `r42 score` starting fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from r42.errors import ConfigError
from r42.modes import MODES

# What happens to a prompt in which `score` found sensitive data: it stays on local models, or it
# may go to cloud models with each sensitive value replaced by a placeholder (put back in the
# answer), or it may go to cloud models as it is.
SENSITIVE_POLICIES = ("local", "redact", "allow")
DOMAINS = ("code", "math", "reasoning", "creative", "extraction", "knowledge", "chat")


@dataclass(frozen=True)
class Settings:
    """Resolved settings, built by load_settings. Every field can come from R42_<NAME> and from
    config.toml; its default's type is the type a value from either is converted to. `origin[name]`
    says where each value came from ("flag" | "env" | "file" | "default")."""

    mode: str = "auto"  # the routing preference: auto, balanced, quality, speed, cost, local, privacy, coding
    scorer: str = "default"  # which scorer estimates complexity and domain (default: trained)
    simple_below: float = 0.15  # complexity < this: simple (the trained scorer's P(cheap fails, strong succeeds))
    complex_from: float = 0.3  # complexity >= this: complex
    max_output_tokens: int = 1024  # assumed output size when a request sets no max_tokens
    sensitive_policy: str = "local"  # a prompt with sensitive data: local (local models only) | redact | allow
    privacy_judge: bool = False  # ask and serve: a local model judges prompts with privacy cues
    privacy_judge_prompt: str | None = (
        None  # the judge's prompt template ({prompt} is replaced); default in r42/privacy_judge.py
    )
    quality_floor: float = 0.25  # minimum quality for the simplest prompt
    quality_slope: float = 0.45  # extra quality needed per unit of complexity
    max_cost: float | None = None  # USD per request, None = no cap
    local_probe_timeout: float = 0.05  # seconds to wait for a local server's port
    catalog: str | None = None  # extra catalog file merged over the shipped one
    learning: bool = True  # rank adjusts models by this user's feedback and errors, per domain
    feedback_half_life_days: float = 14.0  # evidence counts half as much after this many days
    local_discovery: bool = True  # ask a reachable Ollama / LM Studio server which models it has, at rank time
    discovery_ttl: float = 60.0  # seconds a local server's model list is reused (R42_HOME/cache); 0 = ask every time
    sync_timeout: float = 20.0  # seconds per request to a provider's model-listing API (r42 catalog sync)
    # r42 ask / the executor
    max_attempts: int = 4  # candidates (and retries) tried per request at most
    connect_timeout: float = 5.0  # seconds to open a connection to a provider
    first_byte_timeout: float = 120.0  # seconds to wait for a provider's first byte (and between chunks)
    deadline: float = 300.0  # seconds for a whole request, every attempt included
    retry_after_max: float = 5.0  # a Retry-After up to this many seconds is waited out; longer: move on
    log_retention_days: int = 90  # routing log rows older than this are pruned; 0 keeps them all
    stats_reference_model: str | None = (
        None  # savings in `r42 stats` compare with this model (default: the strongest you could use)
    )
    # provider and model health (r42/health.py): a circuit breaker per provider and per model
    health: bool = True  # count attempt outcomes and skip providers and models whose circuit is open
    health_window: int = 20  # attempts kept per provider and per model (the sliding window)
    health_window_s: float = 300.0  # seconds an attempt stays in the window
    health_failures: int = 5  # failures in a row that open a circuit
    health_error_rate: float = 0.5  # share of failed attempts in the window that opens a circuit
    health_min_attempts: int = 10  # attempts the window needs before health_error_rate applies
    health_cooldown: float = 30.0  # seconds an open circuit waits before one probe may go through
    health_sync: float = 1.0  # seconds between writes and reads of the shared health (r42 serve)
    # r42 serve
    serve_max_body: int = 32 * 1024 * 1024  # bytes in a request body (413 above)
    serve_max_concurrency: int = 256  # requests handled at once (503 with Retry-After above)
    redis_url: str = field(
        default="", repr=False
    )  # redis://HOST:PORT/DB: rate-limit and budget counters and key news shared by every server
    database_url: str = field(
        default="", repr=False
    )  # postgresql://USER:PASSWORD@HOST:PORT/DB: the store on PostgreSQL, shared by every server (default: SQLite)
    serve_grace: float = 10.0  # seconds requests in flight get to finish on SIGINT/SIGTERM
    serve_builtin_local: bool = False  # may gateway clients start and use the built-in llama.cpp model (local/...)?
    origin: Mapping[str, str] = field(default_factory=dict, compare=False)  # not a setting: where each came from


DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings) if f.name != "origin"}


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _coerce(name: str, value: Any) -> Any:
    """Convert a value from env or file to the type of its default."""
    default = DEFAULTS[name]
    if value is None:
        return None
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else _parse_bool(str(value))
        if isinstance(default, float) or name == "max_cost":
            return float(value)
        if isinstance(default, int):
            return int(value)
    except ValueError as exc:
        raise ConfigError(
            f"setting {name}: {exc}", "fix the value in R42_" + name.upper() + " or config.toml"
        ) from None
    return str(value)


def home_dir() -> Path:
    """R42_HOME, else $XDG_CONFIG_HOME/r42, else ~/.config/r42. Not created here."""
    explicit = os.environ.get("R42_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "r42"


_database_urls: dict[tuple[str | None, str], str] = {}


def database_url() -> str:
    """The `database_url` setting ("" = the SQLite store), read once per R42_DATABASE_URL and
    R42_HOME: the store asks on every connection, and reading config.toml each time would add up."""
    env = os.environ.get("R42_DATABASE_URL")
    key = (env, str(home_dir()))
    url = _database_urls.get(key)
    if url is None:
        url = _database_urls[key] = (env if env is not None else load_settings().database_url).strip()
    return url


def ensure_home() -> Path:
    """Create R42_HOME (mode 0700) when a command needs to write there."""
    home = home_dir()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    return home


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}", "fix or remove the config file") from None
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}", "known settings: " + ", ".join(DEFAULTS))
    return data


def load_settings(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting: flags (non-None values) > R42_* env > config.toml > defaults."""
    env = os.environ if env is None else env
    file_values = _read_config_file(home_dir() / "config.toml")
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, default in DEFAULTS.items():
        env_name = "R42_" + name.upper()
        if flags and flags.get(name) is not None:
            value, origin = flags[name], "flag"
        elif env_name in env:
            value, origin = env[env_name], "env"
        elif name in file_values:
            value, origin = file_values[name], "file"
        else:
            value, origin = default, "default"
        values[name] = _coerce(name, value) if origin != "default" else value
        origins[name] = origin
    if values["sensitive_policy"] not in SENSITIVE_POLICIES:
        raise ConfigError(
            f"unknown sensitive_policy {values['sensitive_policy']!r}", "one of: " + ", ".join(SENSITIVE_POLICIES)
        )
    if values["mode"] not in MODES:
        raise ConfigError(f"unknown mode {values['mode']!r}", "modes: " + ", ".join(MODES))
    return Settings(**values, origin=origins)


def write_config_values(values: Mapping[str, float | int | str | bool]) -> Path:
    """Set top-level settings in config.toml, keeping every other line (and comment) as it is."""
    from r42.fileio import write_atomic

    for name in values:
        if name not in DEFAULTS:
            raise ConfigError(f"unknown setting {name!r}")
    path = ensure_home() / "config.toml"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pending = dict(values)
    for index, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in pending and not line.lstrip().startswith("#"):
            lines[index] = f"{key} = {_toml_value(pending.pop(key))}"
    lines += [f"{key} = {_toml_value(value)}" for key, value in pending.items()]
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def _toml_value(value: float | int | str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
