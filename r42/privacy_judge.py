"""The privacy judge: for a prompt with privacy cues (health, finance, legal, ... words) but no
definite sensitive data, a local model decides whether it is private. It runs only on local models,
so asking the question never sends the prompt anywhere; a "yes" adds `judged_private` to the
score's `sensitive` list, which keeps the prompt on local models (sensitive_policy local).
"""

from __future__ import annotations

from typing import Any

DEFAULT_PROMPT = (
    "You decide whether a message contains private information about a real person or organisation "
    "(health, money, legal matters, confidential business details, home address, identity documents).\n"
    'Answer with one word, YES or NO.\n\nMessage:\n"""\n{prompt}\n"""\n\nPrivate (YES or NO)?'
)
MAX_PROMPT_CHARS = 4000  # the judge sees the start of a long prompt only: enough to tell, cheap on a small model


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


def judge(
    router: Any, executor: Any, doc: dict[str, Any], score: dict[str, Any], template: str | None
) -> dict[str, Any] | None:
    """Ask a local model; returns the verdict record for `score.signals` (None when not asked).

    `router`: routing.Router; `executor`: executor.Executor (the one that will answer the prompt).
    """
    cues = (score.get("signals") or {}).get("privacy_cues") or []
    if not cues or score.get("sensitive"):
        return None  # nothing to decide: no cue, or already sensitive for sure
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
