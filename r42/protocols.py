"""The protocol registry: each wire protocol a provider can speak, and its adapter, defined once.

The catalog schema accepts the protocols listed here and r42.providers.open_adapter opens the
adapter named here ("module:class", imported only when a provider is called, so that `r42 score`
and `r42 rank` never load an SDK). A new protocol is one entry here and one adapter module.
"""

from __future__ import annotations

ADAPTERS: dict[str, str] = {
    "openai": "r42.providers.openai_compat:OpenAICompatAdapter",
    "anthropic": "r42.providers.anthropic:AnthropicAdapter",
    "gemini": "r42.providers.gemini:GeminiAdapter",
    "ollama": "r42.providers.ollama:OllamaAdapter",
}
PROTOCOLS = tuple(ADAPTERS)
