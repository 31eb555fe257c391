"""Find kinds of sensitive data in text: which kinds, never the matched values.

Patterns that match plenty of harmless text (digit runs, 'password') carry a validator: a
credit-card number must pass the Luhn check, an IBAN its mod-97 check, a phone number must have
a plausible digit count.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Iterable


class LazyPattern:
    """Compiled on first use: most prompts never need most patterns, and compiling all of them
    would cost every `r42 score` start several milliseconds."""

    __slots__ = ("source", "flags", "_compiled")

    def __init__(self, source: str, flags: int = 0) -> None:
        self.source, self.flags, self._compiled = source, flags, None

    def _get(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.source, self.flags)
        return self._compiled

    def search(self, text: str) -> re.Match[str] | None:
        return self._get().search(text)

    def finditer(self, text: str):  # noqa: ANN201 - an iterator of matches
        return self._get().finditer(text)


_EMAIL = LazyPattern(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# International numbers start with +; without it, only the North American 3-3-4 shape counts.
_PHONE = LazyPattern(
    r"(?<![\w+])\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,4}(?![\w-])"
    r"|(?<![\w-])(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])"
)
_CARD = LazyPattern(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = LazyPattern(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN = LazyPattern(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_PRIVATE_KEY = LazyPattern(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PASSWORD = LazyPattern(
    r"(?i)(?<![a-z])(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token|auth[_-]?token)\b"
    r"\s*(?:=|:|:=|=>)\s*['\"]?(?P<value>[^\s'\"]{4,})"  # only the value is the secret
)
_CONNECTION_STRING = LazyPattern(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]+:[^\s/@]+@[^\s/]+")
_JWT = LazyPattern(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_API_KEY = LazyPattern(
    "|".join(
        [
            r"\bsk-(?:proj-|ant-(?:api|admin)\d{2}-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
            r"\bsk-or-v1-[a-f0-9]{32,}",  # OpenRouter
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
            r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{22,}",  # GitHub
            r"\bglpat-[A-Za-z0-9_-]{20,}",  # GitLab
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
            r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}",  # Stripe
            r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face
            r"\bgsk_[A-Za-z0-9]{40,}",  # Groq
            r"\bxai-[A-Za-z0-9]{40,}",  # xAI
            r"\bnpm_[A-Za-z0-9]{36}\b",  # npm
            r"\bSG\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}",  # SendGrid
            r"\br42_[A-Za-z0-9_-]{32,}",  # r42 gateway keys
        ]
    )
)


_KEY_PREFIXES = (
    "sk-",
    "AKIA",
    "ASIA",
    "AIza",
    "gh",
    "glpat-",
    "xox",
    "_live_",
    "hf_",
    "gsk_",
    "xai-",
    "npm_",
    "SG.",
    "r42_",
)
_SECRET_WORDS = ("password", "passwd", "pwd", "passphrase", "secret", "key", "token")


def _mentions_secret(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_ok(digits)


def iban_ok(match: str) -> bool:
    compact = match.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in moved)
    return int(number) % 97 == 1


def _phone_ok(match: str) -> bool:
    return 9 <= len(re.sub(r"\D", "", match)) <= 15


def _has_digit_run(text: str) -> bool:
    return _DIGITS.search(text) is not None


_DIGITS = re.compile(r"\d\d\d")

Check = tuple[str, "re.Pattern[str] | LazyPattern", Callable[[str], bool] | None, Callable[[str], bool]]

# kind, pattern, validator of one match, cheap pre-check on the whole text (skip the regex when false)
CHECKS: tuple[Check, ...] = (
    ("private_key", _PRIVATE_KEY, None, lambda t: "-----BEGIN" in t),
    ("api_key", _API_KEY, None, lambda t: any(prefix in t for prefix in _KEY_PREFIXES)),
    ("jwt", _JWT, None, lambda t: "eyJ" in t),
    ("password", _PASSWORD, None, _mentions_secret),
    ("connection_string", _CONNECTION_STRING, None, lambda t: "://" in t),
    ("email", _EMAIL, None, lambda t: "@" in t),
    ("credit_card", _CARD, _card_ok, _has_digit_run),
    ("iban", _IBAN, iban_ok, _has_digit_run),
    ("ssn", _SSN, None, lambda t: "-" in t and _has_digit_run(t)),
    ("phone", _PHONE, _phone_ok, _has_digit_run),
)


def _matches(text: str, first_only: bool):
    """(kind, start, end) of each valid match; with first_only, at most one per kind."""
    for kind, pattern, validator, precheck in CHECKS:
        if not precheck(text):
            continue
        for match in pattern.finditer(text):
            if validator is None or validator(match.group()):
                value = "value" if "value" in match.re.groupindex else 0
                yield kind, match.start(value), match.end(value)
                if first_only:
                    break


def find_sensitive(text: str) -> list[str]:
    """Sorted kinds of sensitive data found in text."""
    return sorted({kind for kind, _, _ in _matches(text, first_only=True)})


def find_sensitive_spans(text: str) -> list[tuple[str, int, int]]:
    """Every sensitive value as (kind, start, end), overlaps resolved in favour of the earliest
    and then the longest match (for redaction)."""
    spans = sorted(_matches(text, first_only=False), key=lambda s: (s[1], -(s[2] - s[1])))
    kept: list[tuple[str, int, int]] = []
    for span in spans:
        if not kept or span[1] >= kept[-1][2]:
            kept.append(span)
    return kept


# Words that often come with private matters but are no proof of them: the privacy judge (a local
# model, when the user turns it on) decides these cases; alone they never change routing.
PRIVACY_CUES: dict[str, frozenset[str]] = {
    "health": frozenset(
        {
            "diagnosis",
            "diagnosed",
            "prescription",
            "prescribed",
            "symptoms",
            "patient",
            "therapy",
            "therapist",
            "medication",
            "hiv",
            "pregnant",
            "pregnancy",
            "depression",
            "medical",
        }
    ),
    "finance": frozenset({"salary", "payslip", "mortgage", "debt", "bankruptcy", "tax", "taxes", "loan", "credit"}),
    "legal": frozenset({"lawsuit", "divorce", "custody", "arrested", "convicted", "lawyer", "attorney", "settlement"}),
    "confidential": frozenset({"confidential", "nda", "proprietary", "internal-only", "unreleased", "secret"}),
    "personal": frozenset({"passport", "birthday", "address", "born", "home"}),
}
_CUE_WORD = re.compile(r"[a-z][a-z-]+")


def find_privacy_cues(text: str) -> list[str]:
    """Sorted kinds of possibly private matter (health, finance, legal, confidential, personal)."""
    words = set(_CUE_WORD.findall(text[:20_000].lower()))
    return sorted(kind for kind, cues in PRIVACY_CUES.items() if words & cues)


def scan_messages(texts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(sorted kinds of sensitive data, sorted kinds of privacy cues) found in any of the texts,
    each scanned on its own, so no match spans two messages, and every message is read (a long
    system prompt no longer hides the cues of the question after it). Recent texts are not
    scanned again: an agent resends its whole conversation with every turn."""
    kinds: set[str] = set()
    cues: set[str] = set()
    for text in texts:
        if text:
            found, cued = _scan(text)
            kinds.update(found)
            cues.update(cued)
    return sorted(kinds), sorted(cues)


@functools.lru_cache(maxsize=256)
def _scan(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(find_sensitive(text)), tuple(find_privacy_cues(text))
