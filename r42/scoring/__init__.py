"""Score a request: how hard it is, its domain, what it needs, what sensitive data it holds.

The parts every scorer shares (tokens, needs, sensitive data, level) are computed here; a scorer
only estimates `complexity` and the domain probabilities from a `Prompt`. Scorers are looked up by
name in SCORERS and imported only when used, so a trained model's weights load only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from r42.config import DOMAINS, Settings
from r42.document import has_image, message_text, messages_of
from r42.errors import UsageError
from r42.scoring.sensitive import scan_messages

LAST_TURN_CHARS = 20_000  # a scorer reads at most this much of the last user turn ...
EARLIER_TURNS = 8  # earlier user turns kept on their own, for scorers that read a follow-up by its conversation
CONTEXT_CHARS = 8_000  # ... and of the earlier conversation: enough to judge, bounded cost


# Plain classes rather than dataclasses: the dataclasses module costs ~8 ms of start-up.
class Prompt:
    """What a scorer sees: the last user turn (weighted most) and the conversation before it."""

    __slots__ = ("last_user", "context", "turns", "chars", "earlier_user")

    def __init__(
        self, last_user: str, context: str = "", turns: int = 1, chars: int = 0, earlier_user: tuple[str, ...] = ()
    ) -> None:
        self.last_user = last_user
        self.context = context  # system prompt and earlier turns, oldest first, the most recent kept
        self.turns = turns  # number of user turns
        self.chars = chars or len(last_user)  # characters of the whole conversation (untruncated)
        self.earlier_user = earlier_user  # the user turns before the last, oldest first (EARLIER_TURNS at most)


class Estimate:
    __slots__ = ("complexity", "domains", "signals")

    def __init__(self, complexity: float, domains: dict[str, float], signals: dict[str, Any] | None = None) -> None:
        self.complexity = complexity
        self.domains = domains
        self.signals = signals if signals is not None else {}


class Scorer(Protocol):
    name: str
    version: str

    def estimate(self, prompt: Prompt) -> Estimate: ...


# name -> "module:class". "default" is resolved by default_scorer_name().
SCORERS: dict[str, str] = {
    "heuristic": "r42.scoring.heuristic:HeuristicScorer",
    "length": "r42.scoring.baselines:LengthScorer",
    "random": "r42.scoring.baselines:RandomScorer",
    "trained": "r42.scoring.trained:TrainedScorer",
}
DEFAULT_SCORER = "trained"  # chosen by leave-one-source-out cross-validation (data/eval/cv_report.json)
_loaded: dict[str, Scorer] = {}


def get_scorer(name: str) -> Scorer:
    if name == "default":
        name = DEFAULT_SCORER
    if name not in _loaded:
        target = SCORERS.get(name)
        if target is None:
            raise UsageError(f"unknown scorer {name!r}", "scorers: " + ", ".join(["default", *SCORERS]))
        module_name, class_name = target.split(":")
        _loaded[name] = getattr(importlib.import_module(module_name), class_name)()
    return _loaded[name]


# Blocks that coding agents add to a user turn, which are not the user's words: Claude Code's reminders,
# Cline's and Roo Code's editor state (removed with their content), and Cline's <task> wrapper (its content
# is the request). Scored without them: "hi" after a reminder full of tags read as maths (0.56).
AGENT_BLOCKS = ("system-reminder", "environment_details")
AGENT_WRAPPERS = ("<task>", "</task>")


def without_agent_blocks(text: str) -> str:
    """The text without AGENT_BLOCKS and AGENT_WRAPPERS, stripped; the same text when it has none.
    One pass over the text per kind of block (an unclosed block is left as it is)."""
    if "<" not in text:
        return text
    cleaned = text
    for tag in AGENT_BLOCKS:
        opening, closing = f"<{tag}>", f"</{tag}>"
        pieces, at = [], 0
        while (start := cleaned.find(opening, at)) != -1 and (end := cleaned.find(closing, start)) != -1:
            pieces.append(cleaned[at:start])
            at = end + len(closing)
        if pieces:
            cleaned = "".join(pieces) + cleaned[at:]
    for wrapper in AGENT_WRAPPERS:
        cleaned = cleaned.replace(wrapper, "")
    return cleaned.strip() if cleaned != text else text


def prompt_of(messages: list[dict[str, Any]]) -> Prompt:
    raw = [message_text(m) for m in messages]
    texts = [(m.get("role"), without_agent_blocks(text)) for m, text in zip(messages, raw)]
    user_indexes = [i for i, (role, _) in enumerate(texts) if role == "user"]
    last = user_indexes[-1] if user_indexes else len(texts) - 1
    last_text = texts[last][1]
    earlier = "\n".join(text for i, (_, text) in enumerate(texts) if i != last and text)
    return Prompt(
        last_user=head_tail(last_text, LAST_TURN_CHARS),
        context=earlier[-CONTEXT_CHARS:],
        turns=max(1, len(user_indexes)),
        chars=sum(map(len, raw)),  # what the model will read, agent blocks and all
        earlier_user=tuple(head_tail(texts[i][1], LAST_TURN_CHARS) for i in user_indexes[:-1][-EARLIER_TURNS:]),
    )


def head_tail(text: str, limit: int) -> str:
    """Keep the start (the task) and the end (often the question) of a very long text."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n...\n" + text[-half:]


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """About 4 characters per token for English; non-ASCII text costs more bytes per token."""
    total = 0
    for message in messages:
        text = message_text(message)
        extra_bytes = len(text.encode("utf-8", "surrogatepass")) - len(text)
        total += 4 + (len(text) + extra_bytes // 2 + 3) // 4
        if message.get("tool_calls"):
            total += len(str(message["tool_calls"])) // 4
    return total


def needs_of(doc: dict[str, Any], messages: list[dict[str, Any]], tokens: int, default_output: int) -> dict[str, Any]:
    response_format = doc.get("response_format")
    wants_json = isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")
    output = doc.get("max_completion_tokens") or doc.get("max_tokens") or default_output
    tool_tokens = len(str(doc["tools"])) // 4 if doc.get("tools") else 0
    return {
        "tools": bool(doc.get("tools")),
        "vision": has_image(messages),
        "json": wants_json,
        "context_tokens": tokens + tool_tokens + int(output),
    }


def level_of(complexity: float, settings: Settings) -> str:
    if complexity < settings.simple_below:
        return "simple"
    if complexity < settings.complex_from:
        return "moderate"
    return "complex"


def normalise_domains(raw: dict[str, float]) -> dict[str, float]:
    """Probabilities over all seven domains, rounded, summing to exactly 1."""
    total = sum(max(0.0, raw.get(d, 0.0)) for d in DOMAINS) or 1.0
    probs = {d: round(max(0.0, raw.get(d, 0.0)) / total, 4) for d in DOMAINS}
    top = max(probs, key=probs.__getitem__)
    probs[top] = round(probs[top] + 1.0 - sum(probs.values()), 4)
    return probs


def score_document(doc: dict[str, Any], settings: Settings, scorer_name: str | None = None) -> dict[str, Any]:
    """The `score` key for a document."""
    messages = messages_of(doc)
    scorer = get_scorer(scorer_name or settings.scorer)
    prompt = prompt_of(messages)
    estimate = scorer.estimate(prompt)
    tokens = estimate_tokens(messages)
    domains = normalise_domains(estimate.domains)
    complexity = round(min(1.0, max(0.0, estimate.complexity)), 4)
    sensitive, cues = scan_messages(message_text(m) for m in messages)
    signals = {**estimate.signals, "tokens": "chars/4, non-ASCII weighted"}
    if cues:
        signals["privacy_cues"] = cues  # unsure evidence: only the privacy judge acts on it
    return {
        "complexity": complexity,
        "level": level_of(complexity, settings),
        "domain": max(DOMAINS, key=domains.__getitem__),
        "domains": domains,
        "tokens": tokens,
        "needs": needs_of(doc, messages, tokens, settings.max_output_tokens),
        "sensitive": sensitive,
        "signals": signals,
        "scorer": f"{scorer.name}@{scorer.version}",
    }
