"""The hand-built scorer: keyword and structure evidence, combined by a fixed logistic formula.

Every term is named in `signals`, so a user can see why a prompt scored as it did. The weights
were set by hand (and checked against the labelled data in data/routing); the trained scorer
learns its weights instead.
"""

from __future__ import annotations

import math
import re

from r42.config import DOMAINS
from r42.scoring import Estimate, Prompt


def _words(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


# Domain evidence: (pattern, weight). Counts are capped so one repeated word cannot dominate.
DOMAIN_CUES: dict[str, tuple[tuple[re.Pattern[str], float], ...]] = {
    "code": (
        (re.compile(r"```|\bdef |\bclass \w+[:({]|\bfunction\s*\w*\(|=>|#include|\bimport \w+|;\s*$", re.M), 2.0),
        (_words("python", "javascript", "typescript", "java", "rust", "golang", "c\\+\\+", "c#", "sql", "bash",
                "html", "css", "react", "api", "regex", "json", "yaml", "docker", "kubernetes", "git"), 1.2),
        (_words("code", "function", "bug", "debug", "compile", "compiler", "refactor", "script", "program",
                "implement", "stack trace", "exception", "variable", "method", "library", "endpoint",
                "unit test", "algorithm", "runtime", "syntax", "queue", "thread\\w*", "data structures?",
                "concurren\\w*", "lock-free", "linked list", "hash ?map", "database", "server", "backend",
                "frontend", "app", "class", "interface", "module"), 1.0),
        (re.compile(r"Traceback \(most recent call last\)|\bError:|\w+\.\w+\(\)"), 1.5),
    ),
    "math": (
        (_words("prove", "proof", "theorem", "lemma", "integral", "derivative", "equation", "solve",
                "probability", "matrix", "eigen\\w*", "polynomial", "prime", "modulo", "calculate", "compute",
                "sum of", "how many", "geometry", "triangle", "algebra", "calculus", "irrational", "factorial",
                "logarithm", "expected value", "variance", "limit", "converge\\w*"), 1.3),
        (re.compile(r"\d+\s*[-+*/^×÷=]\s*\d+|\\frac|\\sum|\\int|\$[^$]+\$|\bx\s*[=<>]|\bf\(x\)|√|π"), 1.6),
    ),
    "reasoning": (
        (_words("why", "analy[sz]e", "analysis", "compare", "trade-?offs?", "pros and cons", "plan",
                "strategy", "evaluate", "step by step", "reason\\w*", "argue", "implications?", "decide",
                "should i", "puzzle", "riddle", "logic\\w*", "infer", "deduce", "design", "architecture",
                "assess", "critique"), 1.0),
        (_words("if .{1,40} then", "suppose", "assume", "given that", "what would happen"), 1.0),
    ),
    "creative": (
        (_words("story", "poem", "poetry", "haiku", "song", "lyrics", "novel", "fiction", "character",
                "role-?play", "pretend", "imagine", "screenplay", "script for a", "slogan", "tagline",
                "marketing", "ad copy", "blog post", "creative", "rap", "limerick", "fantasy", "narrative",
                "dialogue", "joke", "funny"), 1.4),
        (_words("write an?", "compose", "come up with", "brainstorm", "invent"), 0.6),
    ),
    "extraction": (
        (_words("summari[sz]e", "summary", "tl;?dr", "translate", "translation", "extract", "list all",
                "rewrite", "rephrase", "paraphrase", "reformat", "convert", "parse", "classify",
                "categori[sz]e", "proofread", "correct the grammar", "bullet points", "key points",
                "into json", "as a table", "fill in"), 1.5),
        (re.compile(r"(?:following|this|the below|above) (?:text|article|passage|email|document|paragraph|transcript)", re.I), 1.5),
    ),
    "knowledge": (
        (_words("what is", "what are", "who (?:is|was|were)", "when (?:did|was|is)", "where (?:is|was)",
                "explain", "define", "definition", "history", "meaning of", "difference between", "how does",
                "how do", "which of the following", "describe", "fact\\w*", "capital of"), 1.0),
        (re.compile(r"^\s*[A-D][.)]\s", re.M), 1.2),  # multiple-choice options
    ),
    "chat": (
        (_words("hi", "hello", "hey", "thanks", "thank you", "how are you", "good morning", "good night",
                "lol", "ok", "okay", "cool", "nice", "bye", "who are you", "what's up"), 1.6),
    ),
}
PRIOR = {"code": 0.3, "math": 0.2, "reasoning": 0.3, "creative": 0.2, "extraction": 0.2, "knowledge": 0.5, "chat": 0.3}

# How demanding a domain is for a small model, before any other evidence (logit offsets).
DOMAIN_DIFFICULTY = {"code": 0.7, "math": 1.2, "reasoning": 0.6, "creative": -0.1, "extraction": -0.2, "knowledge": 0.0, "chat": -1.2}

HARD_WORDS = _words(
    "prove", "derive", "optimi[sz]e", "concurren\\w*", "distributed", "scalab\\w*", "edge cases?",
    "rigorous\\w*", "formal\\w*", "complexity", "asymptotic", "thread-safe", "lock-free", "cryptograph\\w*",
    "compiler", "kernel", "production", "security", "vulnerabilit\\w*", "multi-step", "from scratch",
    "in depth", "comprehensive", "detailed", "research", "novel", "benchmark", "inference", "theorem",
    "nuanced", "ambiguous", "contradict\\w*", "counterexample", "without using", "constraint\\w*",
)
CONSTRAINT_WORDS = _words("must", "should", "ensure", "exactly", "at least", "at most", "no more than",
                          "without", "only", "do not", "don't", "never", "always", "make sure", "requirements?")
EASY_WORDS = _words("simple", "quick", "quickly", "brief", "briefly", "short", "one sentence", "one word",
                    "in a nutshell", "eli5", "basic", "example of", "yes or no")
LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.M)
WORD = re.compile(r"\w+")


def _cue_scores(text: str) -> dict[str, float]:
    scores = dict(PRIOR)
    for domain, cues in DOMAIN_CUES.items():
        for pattern, weight in cues:
            hits = len(pattern.findall(text))
            if hits:
                scores[domain] += weight * min(hits, 4) ** 0.7
    return scores


def _softmax(scores: dict[str, float], temperature: float = 1.0) -> dict[str, float]:
    top = max(scores.values())
    exps = {d: math.exp((s - top) / temperature) for d, s in scores.items()}
    total = sum(exps.values())
    return {d: exps[d] / total for d in DOMAINS}


class HeuristicScorer:
    name = "heuristic"
    version = "1"

    def estimate(self, prompt: Prompt) -> Estimate:
        text = prompt.last_user
        cue = _cue_scores(text)
        if prompt.context:
            # Earlier turns say what the conversation is about, at a third of the weight.
            for domain, value in _cue_scores(prompt.context).items():
                cue[domain] += (value - PRIOR[domain]) / 3.0
        domains = _softmax(cue)
        words = len(WORD.findall(text))
        terms = {
            "domain": sum(domains[d] * DOMAIN_DIFFICULTY[d] for d in DOMAINS),
            "length": 0.55 * math.log1p(words / 12.0),
            "hard_words": 0.45 * min(len(HARD_WORDS.findall(text)), 5),
            "constraints": 0.18 * min(len(CONSTRAINT_WORDS.findall(text)), 6),
            "steps": 0.15 * min(len(LIST_ITEM.findall(text)), 8),
            "questions": 0.12 * min(text.count("?"), 5),
            "easy_words": -0.5 * min(len(EASY_WORDS.findall(text)), 3),
            "conversation": 0.12 * min(prompt.turns - 1, 5) + (0.2 if len(prompt.context) > 2000 else 0.0),
        }
        logit = -2.3 + sum(terms.values())
        complexity = 1.0 / (1.0 + math.exp(-logit))
        signals = {
            "words": words,
            "terms": {name: round(value, 3) for name, value in terms.items() if value},
            "top_cues": sorted((d for d in DOMAINS if cue[d] > PRIOR[d]), key=lambda d: -cue[d])[:3],
        }
        return Estimate(complexity, domains, signals)
