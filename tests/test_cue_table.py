"""The one-pass cue counter gives exactly the counts of the plain per-cue definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from r42.scoring.heuristic import DOMAIN_CUES, LAST_TURN, TERM_CUES, Cue, words_of


def reference_hits(cue: Cue, words: list[str]) -> int:
    """The definition: a word hits when it is a cue word or has a cue prefix; otherwise a phrase of
    two or three words starting at it may hit."""
    hits = 0
    for index, word in enumerate(words):
        if word in cue.words or (cue.prefixes and word.startswith(cue.prefixes)):
            hits += 1
        elif cue.phrases and index + 1 < len(words):
            pair = (word, words[index + 1])
            if pair in cue.phrases or (index + 2 < len(words) and (*pair, words[index + 2]) in cue.phrases):
                hits += 1
    return hits


CUES = DOMAIN_CUES + TERM_CUES
VOCABULARY = sorted(
    {w for cue in CUES for w in cue.words}
    | {w for cue in CUES for p in cue.phrases for w in p}
    | {p + "ing" for cue in CUES for p in cue.prefixes}
    | {"the", "a", "x"}
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=40))
def test_one_pass_counts_equal_the_definition(words):
    assert LAST_TURN.hits(words) == [reference_hits(cue, words) for cue in CUES]


def test_phrases_prefixes_and_words_in_a_real_prompt():
    words = words_of("Write a thread-safe lock-free queue in Rust, step by step; what is the edge case? Say hello.")
    counts = dict(zip([c.name for c in CUES], LAST_TURN.hits(words)))
    assert counts["reasoning"] >= 1 and counts["hard_words"] >= 2 and counts["chat"] == 1
    assert LAST_TURN.hits(words) == [reference_hits(cue, words) for cue in CUES]
