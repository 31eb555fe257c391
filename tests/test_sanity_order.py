"""The default scorer on prompts we wrote ourselves (data/routing/sanity, never trained on): the kinds
of task come out in the order a router needs, and small talk stays below a tenth."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean

import pytest

from r42.scoring import get_scorer, prompt_of

SANITY = Path(__file__).resolve().parent.parent / "data/routing/sanity/sanity_handwritten.jsonl"


@pytest.fixture(scope="module")
def by_kind() -> dict[str, list[float]]:
    scorer = get_scorer("trained")
    out: dict[str, list[float]] = {}
    for line in SANITY.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        p = scorer.estimate(prompt_of([{"role": "user", "content": row["prompt"]}])).complexity
        out.setdefault(row["kind"], []).append(p)
    return out


def test_every_kind_has_prompts(by_kind: dict[str, list[float]]) -> None:
    assert {"greeting", "lookup", "science_mc", "word_problem", "code_write", "fill_blank", "chat"} <= set(by_kind)


def test_kinds_in_order_small_talk_science_mc_word_problem(by_kind: dict[str, list[float]]) -> None:
    """Greetings and one-line lookups are both small talk (any model answers them): each of them below
    every science multiple-choice question, whose mean is below the word problems'. (Greetings and
    lookups are not ordered between themselves: both sit near 0.01.)"""
    small_talk = by_kind["greeting"] + by_kind["lookup"]
    assert max(small_talk) < min(by_kind["science_mc"])
    assert mean(by_kind["science_mc"]) < mean(by_kind["word_problem"])


def test_greetings_and_lookups_below_a_tenth(by_kind: dict[str, list[float]]) -> None:
    assert max(by_kind["greeting"] + by_kind["lookup"]) < 0.1


def test_word_problems_and_code_writing_above_science_multiple_choice(by_kind: dict[str, list[float]]) -> None:
    assert min(by_kind["word_problem"]) > mean(by_kind["science_mc"])
    assert mean(by_kind["code_write"]) > mean(by_kind["science_mc"])
