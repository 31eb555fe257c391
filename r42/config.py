"""R42_HOME and settings.

Precedence, highest first: command-line flags > R42_* environment variables > the config file
(R42_HOME/config.toml) > the defaults below. The config file is TOML (tomllib is in the standard
library); tomllib is imported only when the file exists, to keep `r42 score` starting fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from r42.errors import ConfigError

MODES = ("auto", "balanced", "quality", "speed", "cost", "local", "privacy", "coding")
# What happens to a prompt in which `score` found sensitive data: it stays on local models, or it
# may go to cloud models with each sensitive value replaced by a placeholder (put back in the
# answer), or it may go to cloud models as it is.
SENSITIVE_POLICIES = ("local", "redact", "allow")
DOMAINS = ("code", "math", "reasoning", "creative", "extraction", "knowledge", "chat")

# name -> (default, parser). Every setting can come from R42_<NAME> and from config.toml.
DEFAULTS: dict[str, Any] = {
    "mode": "auto",  # the routing preference: auto, balanced, quality, speed, cost, local, privacy, coding
    "scorer": "default",  # which scorer estimates complexity and domain (default: heuristic)
    "simple_below": 0.35,  # complexity < this: simple
    "complex_from": 0.6,  # complexity >= this: complex
    "max_output_tokens": 1024,  # assumed output size when a request sets no max_tokens
    "sensitive_policy": "local",  # a prompt with sensitive data: local (local models only) | redact | allow
    "privacy_judge": False,  # r42 ask: a local model decides whether a prompt with privacy cues is private
    "privacy_judge_prompt": None,  # the judge's prompt template ({prompt} is replaced); default in r42/privacy_judge.py
    "quality_floor": 0.25,  # minimum quality for the simplest prompt
    "quality_slope": 0.45,  # extra quality needed per unit of complexity
    "max_cost": None,  # USD per request, None = no cap
    "local_probe_timeout": 0.05,  # seconds to wait for a local server's port
    "catalog": None,  # extra catalog file merged over the shipped one
    "learning": True,  # rank adjusts models by this user's feedback and errors, per domain
    "feedback_half_life_days": 14.0,  # evidence counts half as much after this many days
    "local_discovery": True,  # ask a reachable Ollama / LM Studio server which models it has, at rank time
    "discovery_ttl": 60.0,  # seconds a local server's model list is reused (R42_HOME/cache); 0 = ask every time
    "sync_timeout": 20.0,  # seconds per request to a provider's model-listing API (r42 catalog sync)
    # r42 ask / the executor
    "max_attempts": 4,  # candidates (and retries) tried per request at most
    "connect_timeout": 5.0,  # seconds to open a connection to a provider
    "first_byte_timeout": 120.0,  # seconds to wait for a provider's first byte (and between chunks)
    "deadline": 300.0,  # seconds for a whole request, every attempt included
    "retry_after_max": 5.0,  # a Retry-After up to this many seconds is waited out; longer: move on
    "log_retention_days": 90,  # routing log rows older than this are pruned; 0 keeps them all
    "stats_reference_model": None,  # savings in `r42 stats` compare with this model (default: the strongest you could use)
    # r42 serve
    "serve_max_body": 32 * 1024 * 1024,  # bytes in a request body (413 above)
    "serve_max_concurrency": 256,  # requests handled at once (503 with Retry-After above)
    "serve_grace": 10.0,  # seconds requests in flight get to finish on SIGINT/SIGTERM
    "serve_builtin_local": False,  # may gateway clients start and use the built-in llama.cpp model (local/...)?
}


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
        raise ConfigError(f"setting {name}: {exc}", "fix the value in R42_" + name.upper() + " or config.toml") from None
    return str(value)


def home_dir() -> Path:
    """R42_HOME, else $XDG_CONFIG_HOME/r42, else ~/.config/r42. Not created here."""
    explicit = os.environ.get("R42_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "r42"


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


class Settings:
    """Resolved settings: `settings.mode`, ...; `origin[name]` says where each value came from."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}  # name -> "flag" | "env" | "file" | "default"

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def load_settings(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting: flags (non-None values) > R42_* env > config.toml > defaults."""
    env = os.environ if env is None else env
    file_values = _read_config_file(home_dir() / "config.toml")
    settings = Settings()
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
        settings.values[name] = _coerce(name, value) if origin != "default" else value
        settings.origin[name] = origin
    if settings.values["sensitive_policy"] not in SENSITIVE_POLICIES:
        raise ConfigError(f"unknown sensitive_policy {settings.values['sensitive_policy']!r}", "one of: " + ", ".join(SENSITIVE_POLICIES))
    if settings.values["mode"] not in MODES:
        raise ConfigError(f"unknown mode {settings.values['mode']!r}", "modes: " + ", ".join(MODES))
    return settings


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
