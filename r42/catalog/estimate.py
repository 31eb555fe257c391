"""Quality for a model the catalog has never measured: joined from a sibling, else an estimate.

Used by `r42 catalog sync` (new cloud models) and by local discovery (a freshly pulled Ollama or
LM Studio model). The order, first match wins:

1. join: a catalog model with the same normalised name (a dated snapshot, the same open-weight
   model at another provider, `qwen2.5:7b` next to `lmstudio/qwen2.5-7b-instruct`), measured ones
   first, the same provider first. Its quality is copied and the method says where from.
2. price: overall = a + b * log10((input + 3 * output) / 4), fitted on the measured cloud models.
3. size: overall = a + b * log10(parameters in B), fitted on the measured models whose name (or the
   server's metadata) gives a size.
4. provider median of the measured models of that provider; else the 25th percentile of all.

Estimates (2-4) are always `estimated: true`; domain scores come from per-domain lines against
overall fitted on the measured models, so an estimate never looks like a measurement.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from r42.catalog import Model
from r42.catalog.names import canonical, param_billions
from r42.config import DOMAINS

QUANT_RE = re.compile(r"-(q\d[\w.-]*|iq\d[\w.-]*|fp16|f16|bf16|fp8|int[48]|gguf|mlx|\d+bit)$")


def norm_key(name: str) -> str:
    """A name reduced to what identifies the model, local tags and quantisations included."""
    s = name.strip().lower()
    s = s.split("/")[-1]
    s = re.sub(r":latest$", "", s)
    s = s.replace(":", "-")
    s = QUANT_RE.sub("", s.replace("_", "-").replace(" ", "-"))
    return canonical(s, drop_chat_suffix=True)


def parse_size(text: Any) -> float | None:
    """Ollama's `parameter_size` ("27.8B", "135M") or LM Studio's `params_string` ("9B") in billions."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([BMK])\s*", str(text or ""), re.I)
    if not match:
        return None
    scale = {"B": 1.0, "M": 1e-3, "K": 1e-6}[match.group(2).upper()]
    return float(match.group(1)) * scale


def _line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares y = a + b x, or None with too few points or a non-positive slope."""
    if len(points) < 5:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return (my - b * mx, b) if b > 0 else None


def _clip(value: float) -> float:
    return round(min(0.99, max(0.01, value)), 3)


def blended_price(price_in: float | None, price_out: float | None) -> float | None:
    if not price_in or not price_out:
        return None
    return (price_in + 3 * price_out) / 4


@dataclass
class Estimator:
    """Fitted once per catalog (a few milliseconds over ~1,200 models), then asked per model."""

    models: tuple[Model, ...]

    def __post_init__(self) -> None:
        self.measured = [m for m in self.models if not m.quality_estimated]
        self._keys: dict[str, list[Model]] = {}
        for model in self.models:
            for name in {model.id, *model.aliases}:
                self._keys.setdefault(norm_key(name), []).append(model)
        overall = [m.quality["overall"] for m in self.measured]
        self.cautious = _clip(statistics.quantiles(overall, n=4)[0]) if len(overall) >= 4 else 0.3
        self.cap = _clip(statistics.quantiles(overall, n=10)[-1]) if len(overall) >= 10 else 0.7
        self.price_line = _line(
            [
                (math.log10(b), m.quality["overall"])
                for m in self.measured
                if not m.local and (b := blended_price(m.price_input, m.price_output))
            ]
        )
        sizes = [(param_billions(m.id), m.quality["overall"]) for m in self.measured]
        self.size_line = _line([(math.log10(s), q) for s, q in sizes if s])
        self.domain_lines = {d: _line([(m.quality["overall"], m.quality[d]) for m in self.measured]) for d in DOMAINS}

    def sibling(self, model_id: str, provider: str) -> Model | None:
        """The catalog model this one is a copy of (same normalised name), measured first."""
        matches = [m for m in self._keys.get(norm_key(model_id.split("/", 1)[-1]), []) if m.id != model_id]
        if not matches:
            return None
        matches.sort(key=lambda m: (m.quality_estimated, m.provider != provider, m.id))
        return matches[0]

    def quality(
        self,
        model_id: str,
        provider: str,
        price_in: float | None = None,
        price_out: float | None = None,
        size_b: float | None = None,
        local: bool = False,
    ) -> dict[str, Any]:
        """A catalog `quality` block for a model the catalog does not have."""
        sibling = self.sibling(model_id, provider)
        if sibling is not None:
            scores = {k: sibling.quality[k] for k in ("overall", *DOMAINS)}
            method = f"joined from {sibling.id} (same model by name)" + (
                f"; {sibling.quality_method}" if sibling.quality_method else ""
            )
            return {**scores, "estimated": sibling.quality_estimated, "method": method}
        overall, method = self._overall(model_id, provider, price_in, price_out, size_b, local)
        return self.spread(overall, method)

    def _overall(
        self,
        model_id: str,
        provider: str,
        price_in: float | None,
        price_out: float | None,
        size_b: float | None,
        local: bool,
    ) -> tuple[float, str]:
        blended = None if local else blended_price(price_in, price_out)
        if blended and self.price_line:
            a, b = self.price_line
            return min(
                self.cap, _clip(a + b * math.log10(blended))
            ), f"estimate: overall = {a:.3f} + {b:.3f}*log10(blended USD/1M) fitted on measured cloud models"
        size = size_b or param_billions(model_id)
        if size and self.size_line:
            a, b = self.size_line
            return _clip(
                a + b * math.log10(size)
            ), f"estimate: overall = {a:.3f} + {b:.3f}*log10(params in B, {size:g}B) fitted on measured models"
        own = [m.quality["overall"] for m in self.measured if m.provider == provider]
        if len(own) >= 3:
            return _clip(statistics.median(own)), f"estimate: median overall of {len(own)} measured {provider} models"
        return self.cautious, "estimate: 25th percentile of measured models (no price, size or provider data)"

    def spread(self, overall: float, method: str) -> dict[str, Any]:
        """Domain scores from overall by the per-domain lines; marked estimated."""
        block: dict[str, Any] = {"overall": overall}
        for domain in DOMAINS:
            line = self.domain_lines.get(domain)
            block[domain] = _clip(line[0] + line[1] * overall) if line else overall
        return {**block, "estimated": True, "method": method + "; domains from lines against overall"}


def estimator_for(models: Iterable[Model]) -> Estimator:
    return Estimator(tuple(models))
