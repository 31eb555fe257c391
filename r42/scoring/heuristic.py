"""The hand-built scorer: keyword and structure evidence, combined by a fixed logistic formula.

Every term is named in `signals`, so a user can see why a prompt scored as it did. Keywords are
looked up in sets over one pass of the words (not one regex per cue), which costs little at
start-up and a fraction of a millisecond per prompt. The trained scorer learns its weights instead.
"""

from __future__ import annotations

import math
import re

from r42.config import DOMAINS
from r42.scoring import Estimate, Prompt


class Cue:
    """A group of words and phrases that is evidence for one domain (or one complexity term)."""

    __slots__ = ("name", "weight", "words", "phrases", "prefixes")

    def __init__(self, name: str, weight: float, terms: str, prefixes: str = "") -> None:
        self.name = name
        self.weight = weight
        entries = [t.strip() for t in terms.split(",") if t.strip()]
        self.words = frozenset(t for t in entries if " " not in t)
        self.phrases = frozenset(tuple(t.split()) for t in entries if " " in t)
        self.prefixes = tuple(p.strip() for p in prefixes.split(",") if p.strip())


DOMAIN_CUES: tuple[Cue, ...] = (
    Cue(
        "code",
        1.2,
        "python, javascript, typescript, java, rust, golang, c++, c#, sql, bash, html, css, react, api, "
        "regex, json, yaml, docker, kubernetes, git, numpy, pandas, django, flask, node, npm",
    ),
    Cue(
        "code",
        1.0,
        "code, function, bug, debug, compile, compiler, refactor, script, program, implement, stack trace, "
        "exception, variable, method, library, endpoint, unit test, algorithm, runtime, syntax, queue, data structure, "
        "lock-free, linked list, hashmap, hash map, database, server, backend, frontend, app, class, interface, module",
        "thread, concurren",
    ),
    Cue(
        "math",
        1.3,
        "prove, proof, theorem, lemma, integral, derivative, equation, equations, solve, probability, matrix, "
        "polynomial, prime, primes, modulo, calculate, compute, sum of, how many, geometry, triangle, algebra, "
        "calculus, irrational, factorial, logarithm, expected value, variance, limit",
        "eigen, converge",
    ),
    Cue(
        "reasoning",
        1.0,
        "why, analyze, analyse, analysis, compare, tradeoff, trade-off, tradeoffs, trade-offs, pros and cons, "
        "plan, strategy, evaluate, step by step, argue, implication, implications, decide, should i, puzzle, riddle, "
        "infer, deduce, design, architecture, assess, critique, suppose, assume, given that, what would happen",
        "reason, logic",
    ),
    Cue(
        "creative",
        1.4,
        "story, stories, poem, poetry, haiku, song, lyrics, novel, fiction, character, roleplay, role-play, "
        "pretend, imagine, screenplay, slogan, tagline, marketing, ad copy, blog post, creative, rap, limerick, "
        "fantasy, narrative, dialogue, joke, funny",
    ),
    Cue("creative", 0.6, "write a, write an, compose, come up with, brainstorm, invent"),
    Cue(
        "extraction",
        1.5,
        "summarize, summarise, summary, tldr, tl;dr, translate, translation, extract, list all, rewrite, "
        "rephrase, paraphrase, reformat, convert, parse, classify, categorize, categorise, proofread, "
        "correct the grammar, bullet points, key points, into json, as a table, fill in, following text, "
        "following article, following passage, following email, following document, following paragraph, "
        "this text, this article, this email, this document",
    ),
    Cue(
        "knowledge",
        1.0,
        "what is, what are, who is, who was, who were, when did, when was, where is, where was, explain, "
        "define, definition, history, meaning of, difference between, how does, how do, which of the following, "
        "describe, capital of",
        "fact",
    ),
    Cue(
        "chat",
        1.6,
        "hi, hello, hey, thanks, thank you, how are you, good morning, good night, lol, ok, okay, cool, nice, "
        "bye, who are you, what's up",
    ),
)
HARD = Cue(
    "hard_words",
    0.45,
    "prove, derive, distributed, edge case, edge cases, complexity, asymptotic, thread-safe, "
    "lock-free, compiler, kernel, production, security, multi-step, from scratch, in depth, comprehensive, detailed, "
    "research, novel, benchmark, benchmarks, inference, theorem, nuanced, ambiguous, counterexample, without using",
    "optimi, concurren, scalab, rigorous, formal, cryptograph, vulnerab, contradict, constraint",
)
CONSTRAINTS = Cue(
    "constraints",
    0.18,
    "must, should, ensure, exactly, at least, at most, no more than, without, only, "
    "do not, don't, never, always, make sure, requirement, requirements",
)
EASY = Cue(
    "easy_words",
    -0.5,
    "simple, quick, quickly, brief, briefly, short, one sentence, one word, in a nutshell, "
    "eli5, basic, example of, yes or no",
)

# Structure a keyword list cannot see.
# Speed: re tries a branch that starts with \b at every position of the text, one that starts with
# a literal only where that literal is; `def(?<=\bdef)` is `\bdef` written literal first (the same
# matches), and `\w\.\w+\(\)` counts what `\w+\.\w+\(\)` did without backtracking through each word.
CODE_SHAPES = re.compile(
    r"```|def(?<=\bdef) \w|class(?<=\bclass) \w+[:({]|function(?<=\bfunction)\s*\w*\(|=>|#include"
    r"|^[^\S\n]*import \w|;\s*$|Traceback \(most recent|\w\.\w+\(\)",
    re.M,
)
MATH_SHAPES = re.compile(r"\d\s*[-+*/^×÷=]\s*\d|\\frac|\\sum|\\int|\$[^$\n]+\$|x(?<=\bx)\s*[=<>]|f(?<=\bf)\(x\)|√|π")
# a line's leading blanks are `[^\S\n]*`: `^\s*` tries every run of blank lines to its end (quadratic)
CHOICES = re.compile(r"^[^\S\n]*[A-D][.)]\s", re.M)
LIST_ITEM = re.compile(r"^[^\S\n]*(?:\d+[.)]|[-*•])\s+\S", re.M)
WORD = re.compile(r"[\w+#'-]+")

PRIOR = {"code": 0.3, "math": 0.2, "reasoning": 0.3, "creative": 0.2, "extraction": 0.2, "knowledge": 0.5, "chat": 0.3}
# How demanding a domain is for a small model, before any other evidence (logit offsets).
DOMAIN_DIFFICULTY = {
    "code": 0.7,
    "math": 1.2,
    "reasoning": 0.6,
    "creative": -0.1,
    "extraction": -0.2,
    "knowledge": 0.0,
    "chat": -1.2,
}
SHAPE_CUES = ((CODE_SHAPES, "code", 2.0), (MATH_SHAPES, "math", 1.6), (CHOICES, "knowledge", 1.2))


class CueTable:
    """Counts the hits of several cues in one pass over the words. A word hits a cue when it is
    one of its words or starts with one of its prefixes; otherwise a phrase of two or three words
    starting at it may hit. Most words hit nothing and cost two dict lookups."""

    def __init__(self, cues: tuple[Cue, ...]) -> None:
        self.cues = cues
        words: dict[str, set[int]] = {}
        phrases: dict[str, list[tuple[int, frozenset[tuple[str, ...]]]]] = {}
        for index, cue in enumerate(cues):
            for word in cue.words:
                words.setdefault(word, set()).add(index)
            starts: dict[str, set[tuple[str, ...]]] = {}
            for phrase in cue.phrases:
                starts.setdefault(phrase[0], set()).add(phrase)
            for first, group in starts.items():
                phrases.setdefault(first, []).append((index, frozenset(group)))
        self.words = {word: tuple(sorted(indexes)) for word, indexes in words.items()}
        self.phrases = phrases
        self.prefixed = tuple((index, cue.prefixes) for index, cue in enumerate(cues) if cue.prefixes)
        self.any_prefix = tuple(p for _, prefixes in self.prefixed for p in prefixes)

    def hits(self, words: list[str]) -> list[int]:
        counts = [0] * len(self.cues)
        table, starts, any_prefix = self.words, self.phrases, self.any_prefix
        last = len(words) - 1
        for position, word in enumerate(words):
            matched: tuple[int, ...] = table.get(word, ())
            if any_prefix and word.startswith(any_prefix):
                matched = matched + tuple(
                    i for i, prefixes in self.prefixed if i not in matched and word.startswith(prefixes)
                )
            for index in matched:
                counts[index] += 1
            candidates = starts.get(word)
            if candidates is None or position == last:
                continue
            pair = (word, words[position + 1])
            triple = (*pair, words[position + 2]) if position + 1 < last else None
            for index, phrases in candidates:
                if index not in matched and (pair in phrases or (triple is not None and triple in phrases)):
                    counts[index] += 1
        return counts


def _damped(hits: int) -> float:
    """One repeated word cannot dominate: 1, 1.6, 2.2, then flat."""
    return min(hits, 4) ** 0.7 if hits else 0.0


TERM_CUES = (HARD, CONSTRAINTS, EASY)
LAST_TURN = CueTable(DOMAIN_CUES + TERM_CUES)  # the last user turn: domains and complexity terms
CONTEXT = CueTable(DOMAIN_CUES)  # earlier turns: domains only


def cue_scores(text: str, hits: list[int]) -> dict[str, float]:
    """Domain evidence from the hits of DOMAIN_CUES (the first len(DOMAIN_CUES) counts) and the
    text's structure."""
    scores = dict(PRIOR)
    for cue, count in zip(DOMAIN_CUES, hits):
        scores[cue.name] += cue.weight * _damped(count)
    for pattern, domain, weight in SHAPE_CUES:
        scores[domain] += weight * _damped(count_matches(pattern, text, 4))
    return scores


def count_matches(pattern: re.Pattern[str], text: str, cap: int) -> int:
    """Matches in the first 20,000 characters, counted up to `cap` (all the formula uses)."""
    count = 0
    for _ in pattern.finditer(text, 0, 20_000):
        count += 1
        if count == cap:
            break
    return count


def softmax(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exps = {d: math.exp(s - top) for d, s in scores.items()}
    total = sum(exps.values())
    return {d: exps[d] / total for d in DOMAINS}


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


class HeuristicScorer:
    name = "heuristic"
    version = "2"

    def estimate(self, prompt: Prompt) -> Estimate:
        text = prompt.last_user
        words = words_of(text)
        hits = LAST_TURN.hits(words)
        hard, constraints, easy = hits[len(DOMAIN_CUES) :]
        cue = cue_scores(text, hits)
        if prompt.context:
            # Earlier turns say what the conversation is about, at a third of the weight.
            for domain, value in cue_scores(prompt.context, CONTEXT.hits(words_of(prompt.context))).items():
                cue[domain] += (value - PRIOR[domain]) / 3.0
        domains = softmax(cue)
        terms = {
            "domain": sum(domains[d] * DOMAIN_DIFFICULTY[d] for d in DOMAINS),
            "length": 0.55 * math.log1p(len(words) / 12.0),
            "hard_words": HARD.weight * min(hard, 5),
            "constraints": CONSTRAINTS.weight * min(constraints, 6),
            "steps": 0.15 * count_matches(LIST_ITEM, text, 8),
            "questions": 0.12 * min(text.count("?"), 5),
            "easy_words": EASY.weight * min(easy, 3),
            "conversation": 0.12 * min(prompt.turns - 1, 5) + (0.2 if len(prompt.context) > 2000 else 0.0),
        }
        logit = -2.3 + sum(terms.values())
        signals = {
            "words": len(words),
            "terms": {name: round(value, 3) for name, value in terms.items() if value},
            "top_cues": sorted((d for d in DOMAINS if cue[d] > PRIOR[d]), key=lambda d: -cue[d])[:3],
        }
        return Estimate(1.0 / (1.0 + math.exp(-logit)), domains, signals)
