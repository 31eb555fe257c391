"""Model names reduced to what identifies a model, so that the same model can be recognised across
providers, benchmarks and local tags (`meta-llama-3.1-70b-instruct`, `llama3.1:70b`,
`accounts/fireworks/models/llama-v3p1-70b-instruct`). Shared by the catalog build script (joining
benchmarks to models) and by sync and discovery (joining new models to measured ones).
"""

from __future__ import annotations

import re

SIZE_RE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])")


def canonical(s: str, drop_chat_suffix: bool = False) -> str:
    """The common reductions of an already lower-cased name without a provider prefix."""
    s = s.replace("_", "-").replace(" ", "-")
    s = re.sub(r"v(\d+)p(\d+)", r"\1.\2", s)  # fireworks llama-v3p1 -> llama-3.1
    s = re.sub(r"(\d)p(\d)(?=$|-)", r"\1.\2", s)  # fireworks glm-4p5 -> glm-4.5
    s = re.sub(r"-(20\d\d-\d\d-\d\d|20\d{6})(?=$|-)", "", s)
    s = re.sub(r"-latest$", "", s)
    s = re.sub(r"^meta-llama-", "llama-", s)
    s = re.sub(r"^meta-", "", s)
    s = re.sub(r"^llama(\d)", r"llama-\1", s)
    s = re.sub(r"^qwen-(\d)", r"qwen\1", s)
    s = re.sub(r"^gemma(\d)", r"gemma-\1", s)
    s = re.sub(r"^phi(\d)", r"phi-\1", s)
    s = re.sub(r"-instruct(-turbo)?(?=$|-)", "", s)
    s = re.sub(r"-(it|hf|fp8|bf16|chat)(?=$|-)" if drop_chat_suffix else r"-(it|hf|fp8|bf16)(?=$|-)", "", s)
    s = re.sub(r"-v(\d)", r"-\1", s)  # mistral-7b-v0.3 -> mistral-7b-0.3, deepseek-v3 -> deepseek-3 (both sides)
    s = re.sub(r"(?<![\d.])(\d)-(\d)(?=$|-[a-z])", r"\1.\2", s)  # claude-3-5-sonnet -> claude-3.5-sonnet
    s = re.sub(r"^claude-(\d[\d.]*)-(opus|sonnet|haiku)", r"claude-\2-\1", s)
    return s


def param_billions(name: str) -> float | None:
    """Parameters in billions from a name (`qwen2.5:7b` -> 7, `mixtral-8x7b` -> 56), else None."""
    s = name.lower().replace("_", "-")
    s = re.sub(r"-a\d+(\.\d+)?b", "", s)  # MoE active parameters
    s = re.sub(r"(\d)x(\d+(?:\.\d+)?)b", lambda m: f"{int(m.group(1)) * float(m.group(2)):g}b", s)
    found = SIZE_RE.findall(s.replace("-", " ").replace(":", " ").replace("/", " "))
    return float(found[-1]) if found else None
