"""What `r42 catalog list/show/path/validate` ask of the catalog: filters, records, file checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from r42.catalog import Catalog, Model, catalog_layers, check_catalog, read_yaml, shipped_catalog_path
from r42.config import DOMAINS
from r42.errors import ConfigError

CAPABILITIES = ("tools", "vision", "json", "reasoning")
SORTS = ("id", "quality", "price", "context")


@dataclass
class Filters:
    providers: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    local: bool | None = None  # True: local only, False: cloud only
    max_price: float | None = None  # USD per 1M tokens, input and output both at most this
    min_quality: tuple[tuple[str, float], ...] = ()  # (domain or "overall", minimum)
    include_unavailable: bool = False
    usable: Callable[[str], bool] | None = None  # provider id -> has a credential / server


def select(catalog: Catalog, f: Filters, sort: str = "id") -> list[Model]:
    models = [m for m in catalog.models if _keep(m, f)]
    keys: dict[str, Callable[[Model], Any]] = {
        "id": lambda m: m.id,
        "quality": lambda m: (-m.quality["overall"], m.id),
        "price": lambda m: (m.price_output is None, m.price_output or 0.0, m.price_input or 0.0, m.id),
        "context": lambda m: (-(m.context or 0), m.id),
    }
    return sorted(models, key=keys[sort])


def _keep(m: Model, f: Filters) -> bool:
    if not m.available and not f.include_unavailable:
        return False
    if f.providers and m.provider not in f.providers:
        return False
    if any(not getattr(m, cap) for cap in f.capabilities):
        return False
    if f.local is not None and m.local is not f.local:
        return False
    if f.max_price is not None and (
        m.price_input is None or m.price_output is None or max(m.price_input, m.price_output) > f.max_price
    ):
        return False
    if any(m.quality.get(domain, 0.0) < q for domain, q in f.min_quality):
        return False
    return f.usable is None or f.usable(m.provider)


def parse_min_quality(text: str) -> tuple[str, float]:
    """`code=0.6` -> ("code", 0.6); `0.6` -> ("overall", 0.6). Raises ValueError with the reason."""
    domain, _, value = text.rpartition("=")
    domain = domain.strip().lower() or "overall"
    if domain not in ("overall", *DOMAINS):
        raise ValueError(f"unknown domain {domain!r} (domains: overall, {', '.join(DOMAINS)})")
    try:
        q = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number from 0 to 1") from None
    if not 0 <= q <= 1:
        raise ValueError(f"{q:g} is not from 0 to 1")
    return domain, q


def model_record(m: Model) -> dict[str, Any]:
    """A model as JSON: what `list` writes per line and `show` writes whole."""
    return {
        "id": m.id,
        "provider": m.provider,
        "name": m.name,
        "aliases": list(m.aliases),
        "price": {"input": m.price_input, "output": m.price_output, "unit": "USD per 1M tokens"},
        "context": m.context,
        "max_output": m.max_output,
        "capabilities": {cap: getattr(m, cap) for cap in CAPABILITIES},
        "local": m.local,
        "available": m.available,
        "quality": {
            **{k: round(v, 3) for k, v in m.quality.items()},
            "estimated": m.quality_estimated,
            "method": m.quality_method,
        },
        "speed": {"tokens_per_s": m.tokens_per_s, "ttft_s": m.ttft_s},
    }


def layer_records(extra: str | None) -> list[dict[str, Any]]:
    return [{"layer": role, "path": str(path), "exists": path.exists()} for role, path in catalog_layers(extra)]


def validate_file(path: Path) -> dict[str, Any]:
    """Check one catalog file as r42 would load it: the shipped catalog alone, any other file as a
    layer over it (partial entries for known models, complete ones for new models). Raises
    ConfigError naming file, line and field."""
    if not path.exists():
        raise ConfigError(f"{path}: no such file", "give the path of a catalog YAML file")
    data = read_yaml(path)
    shipped = shipped_catalog_path()
    if path.resolve() == shipped.resolve():
        check_catalog(data, path)
    else:
        from r42.catalog import _cached_merge

        base = _cached_merge([shipped])
        check_catalog(
            data if data is not None else {},
            path,
            partial=True,
            known_models=set(base["models"]),
            known_providers=set(base["providers"]),
        )
    data = data or {}
    return {
        "file": str(path),
        "ok": True,
        "models": len(data.get("models") or []),
        "providers": len(data.get("providers") or {}),
    }
