"""The privacy judge: for a prompt with privacy cues (health, finance, legal, ... words) but no
definite sensitive data, a local model decides whether it is private. It runs only on local models,
so asking the question never sends the prompt anywhere; a "yes" adds `judged_private` to the
score's `sensitive` list, which keeps the prompt on local models (sensitive_policy local).
"""

from __future__ import annotations

from typing import Any

from r42.errors import InputError

DEFAULT_PROMPT = (
    "You decide whether a message contains private information about a real person or organisation "
    "(health, money, legal matters, confidential business details, home address, identity documents).\n"
    'Answer with one word, YES or NO.\n\nMessage:\n"""\n{prompt}\n"""\n\nPrivate (YES or NO)?'
)
MAX_PROMPT_CHARS = 4000  # the judge sees the start of a long prompt only: enough to tell, cheap on a small model
MAX_TEMPLATE_CHARS = 4000  # a user's own template (r42.store.prompts): room for instructions, not a document
PLACEHOLDER = "{prompt}"


def check_template(template: object) -> str:
    """A user's template as given, or InputError (a 400 on the gateway, exit code 2 on the CLI):
    `{prompt}` exactly once (the judge must see the prompt, and only once), at most MAX_TEMPLATE_CHARS
    characters, no control characters but newlines and tabs."""
    if not isinstance(template, str):
        raise InputError("template must be a string")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise InputError(
            f"template is {len(template):,} characters; at most {MAX_TEMPLATE_CHARS:,} are allowed",
            "keep the instructions short: the prompt is put in place of {prompt}",
        )
    count = template.count(PLACEHOLDER)
    if count != 1:
        found = "no" if count == 0 else f"{count} times"
        raise InputError(
            f"template must contain {PLACEHOLDER} exactly once (found {found})",
            "put {prompt} where the judged prompt goes",
        )
    if any(ord(c) < 32 and c not in "\n\r\t" for c in template):
        raise InputError("template holds control characters", "use plain text with newlines")
    return template


def default_template(configured: str | None) -> str:
    """The template a user without their own gets: the `privacy_judge_prompt` setting, else DEFAULT_PROMPT."""
    return configured or DEFAULT_PROMPT


def judge_prompt(template: str | None, prompt: str) -> str:
    return (template or DEFAULT_PROMPT).replace("{prompt}", prompt[:MAX_PROMPT_CHARS])


def parse_verdict(answer: str) -> bool | None:
    """True for yes, False for no, None when the model said neither."""
    word = answer.strip().lstrip("*\"'").upper()
    if word.startswith(("YES", "Y\n")) or word == "Y":
        return True
    if word.startswith(("NO", "N\n")) or word == "N":
        return False
    return None


def needs_judge(score: dict[str, Any]) -> bool:
    """Is there something to decide: privacy cues, and nothing sensitive for sure yet?"""
    cues = (score.get("signals") or {}).get("privacy_cues") or []
    return bool(cues) and not score.get("sensitive")


def with_verdict(score: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The score with the judge's record in `signals.privacy_judge`; a yes adds `judged_private`
    to `sensitive`, which keeps the prompt on local models."""
    score = {**score, "signals": {**(score.get("signals") or {}), "privacy_judge": record}}
    if record["verdict"]:
        score["sensitive"] = sorted({*(score.get("sensitive") or []), "judged_private"})
    return score


VERDICTS = {True: "private", False: "not private", None: "undecided"}


def judged(
    router: Any, executor: Any, doc: dict[str, Any], template: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The document with its score (computed when missing) after the judge looked at it, and the
    judge's record (None when there was nothing to ask). The one sequence the CLI and the gateway run."""
    score = router.score(doc)
    record = judge(router, executor, doc, score, template)
    return {**doc, "score": score if record is None else with_verdict(score, record)}, record


def verdict_line(record: dict[str, Any]) -> str:
    """`private (lmstudio/qwen3-4b)`, `undecided (no local model to ask)`: for the gateway's
    X-R42-Privacy-Judge header."""
    return f"{VERDICTS[record.get('verdict')]} ({record.get('model') or record.get('note')})"


def judge(
    router: Any, executor: Any, doc: dict[str, Any], score: dict[str, Any], template: str | None
) -> dict[str, Any] | None:
    """Ask a local model; returns the verdict record for `score.signals` (None when not asked).

    `router`: routing.Router; `executor`: executor.Executor (the one that will answer the prompt).
    """
    if not needs_judge(score):
        return None
    cues = score["signals"]["privacy_cues"]
    from r42.document import message_text, messages_of
    from r42.formats.openai import answer_text

    ranking = router.rank(score, router.constraints(mode="local"))
    candidates = [r.model.id for r in ranking.candidates[:2]]
    if not candidates:
        return {"cues": cues, "verdict": None, "note": "no local model to ask"}
    text = "\n".join(message_text(m) for m in messages_of(doc) if m.get("role") == "user")
    request = {
        "messages": [{"role": "user", "content": judge_prompt(template, text)}],
        "max_tokens": 3,
        "temperature": 0,
    }
    try:
        result = executor.complete(request, candidates)
    except Exception as exc:  # noqa: BLE001 - a failed judge leaves routing to the pattern finder
        return {"cues": cues, "verdict": None, "note": f"the judge failed: {type(exc).__name__}"}
    verdict = parse_verdict(answer_text(result.response))
    return {"cues": cues, "verdict": verdict, "model": result.route["model"]}
