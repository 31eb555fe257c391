"""Schema check of a catalog file: the first problem as `file:line: field: what is wrong`.

Line numbers come from composing the YAML node tree again, only when there is an error to report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r42.errors import ConfigError
from r42.protocols import PROTOCOLS

QUALITY_KEYS = ("overall", "code", "math", "reasoning", "creative", "extraction", "knowledge", "chat")
Field = tuple[Any, ...]  # a path into the document, e.g. ("models", 3, "price", "input")


class _Problem(Exception):
    def __init__(self, where: Field, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _need(condition: bool, where: Field, message: str) -> None:
    if not condition:
        raise _Problem(where, message)


def _check_provider(pid: str, p: Any, where: Field) -> None:
    _need(isinstance(p, dict), where, "must be a mapping")
    if "protocol" in p:
        _need(p["protocol"] in PROTOCOLS, (*where, "protocol"), f"must be one of {', '.join(PROTOCOLS)}")
    if "key_env" in p:
        _need(
            isinstance(p["key_env"], list) and all(isinstance(k, str) for k in p["key_env"]),
            (*where, "key_env"),
            "must be a list of variable names",
        )
    for key in ("base_url", "base_url_env", "name"):
        if key in p:
            _need(p[key] is None or isinstance(p[key], str), (*where, key), "must be a string")
    if "local" in p:
        _need(isinstance(p["local"], bool), (*where, "local"), "must be true or false")


def _check_model(m: Any, where: Field, partial: bool, providers: set[str]) -> None:
    _need(isinstance(m, dict), where, "must be a mapping")
    mid = m.get("id")
    _need(isinstance(mid, str) and "/" in mid.strip("/"), (*where, "id"), "must be 'provider/model'")
    _need(mid.split("/", 1)[0] in providers, (*where, "id"), f"unknown provider {mid.split('/', 1)[0]!r}")
    if not partial:
        for key in ("price", "context", "capabilities", "quality"):
            _need(key in m, (*where, key), "is required")
    price = m.get("price", {})
    _need(isinstance(price, dict), (*where, "price"), "must be a mapping with input and output")
    for key in ("input", "output"):
        if key in price:
            value = price[key]
            _need(
                value is None or (_is_number(value) and value >= 0),
                (*where, "price", key),
                "must be a number >= 0 (USD per 1M tokens) or null",
            )
    for key in ("context", "max_output"):
        if key in m:
            _need(
                m[key] is None or (isinstance(m[key], int) and not isinstance(m[key], bool) and m[key] > 0),
                (*where, key),
                "must be a positive integer or null",
            )
    caps = m.get("capabilities", {})
    _need(isinstance(caps, dict), (*where, "capabilities"), "must be a mapping")
    for key, value in caps.items():
        _need(isinstance(value, bool), (*where, "capabilities", key), "must be true or false")
    quality = m.get("quality", {})
    _need(isinstance(quality, dict), (*where, "quality"), "must be a mapping")
    for key in QUALITY_KEYS:
        if key in quality and quality[key] is not None:
            _need(
                _is_number(quality[key]) and 0 <= quality[key] <= 1,
                (*where, "quality", key),
                "must be a number from 0 to 1",
            )
    if "aliases" in m:
        _need(
            isinstance(m["aliases"], list) and all(isinstance(a, str) for a in m["aliases"]),
            (*where, "aliases"),
            "must be a list of strings",
        )


def _check(data: Any, partial: bool, known_providers: set[str]) -> None:
    _need(isinstance(data, dict), (), "a catalog file must be a mapping with 'providers' and/or 'models'")
    providers = data.get("providers") or {}
    _need(isinstance(providers, dict), ("providers",), "must be a mapping of provider id to settings")
    for pid, p in providers.items():
        _check_provider(pid, p, ("providers", pid))
    all_providers = known_providers | set(providers)
    models = data.get("models") or []
    _need(isinstance(models, list), ("models",), "must be a list of model entries")
    for index, m in enumerate(models):
        _check_model(m, ("models", index), partial, all_providers)


def check_catalog(
    data: Any,
    path: Path,
    partial: bool = False,
    known_models: set[str] | None = None,
    known_providers: set[str] | None = None,
) -> None:
    """Raise ConfigError naming file, line and field of the first problem.

    partial: a user's file may give only some fields of a model that already exists; a model new
    to the catalog must be complete.
    """
    try:
        _check(data, partial, known_providers or set())
        if partial:
            for index, m in enumerate(data.get("models") or []):
                if m["id"] not in (known_models or set()):
                    _check_model(
                        m, ("models", index), False, (known_providers or set()) | set(data.get("providers") or {})
                    )
    except _Problem as problem:
        line = _line_of(path, problem.where)
        name = ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in problem.where).replace(
            ".[", "["
        )
        location = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{location}: {name or 'catalog'}: {problem.message}", "fix the catalog file") from None


def _line_of(path: Path, where: Field) -> int | None:
    import yaml

    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    line = node.start_mark.line + 1 if node else None
    for part in where:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            node = match[1]
            line = match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
