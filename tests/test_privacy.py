"""Reversible redaction of sensitive values."""

from __future__ import annotations

from hypothesis import given, strategies as st

from r42.privacy import StreamRestorer, redact_messages
from r42.scoring.sensitive import find_sensitive

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"


def test_redact_and_restore_round_trip():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Mail bob@example.com the key {SECRET}, then bob@example.com again."},
        {"role": "user", "content": [{"type": "text", "text": "card 4111 1111 1111 1111"}]},
    ]
    redacted, redaction = redact_messages(messages)
    text = str(redacted)
    assert SECRET not in text and "bob@example.com" not in text and "4111" not in text
    assert find_sensitive(text) == []
    assert redacted[1]["content"].count("[R42_EMAIL_1]") == 2  # one value, one placeholder
    assert messages[1]["content"].startswith("Mail bob@")  # the original is untouched
    answer = "Sent [R42_API_KEY_1] to [R42_EMAIL_1]; charged [R42_CREDIT_CARD_1]."
    assert redaction.restore(answer) == f"Sent {SECRET} to bob@example.com; charged 4111 1111 1111 1111."
    assert SECRET not in repr(redaction)


@given(st.integers(1, 30))
def test_stream_restore_across_any_chunking(size):
    _, redaction = redact_messages([{"role": "user", "content": f"use {SECRET} please"}])
    answer = "I will use [R42_API_KEY_1] now [not a placeholder] and [R42_API_KEY_1]."
    restorer = StreamRestorer(redaction)
    chunks = [answer[i : i + size] for i in range(0, len(answer), size)]
    out = "".join(restorer.feed(c) for c in chunks) + restorer.flush()
    assert out == redaction.restore(answer) == answer.replace("[R42_API_KEY_1]", SECRET)
