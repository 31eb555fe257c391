"""The trained scorer: a calibrated P(a cheap model fails where a strong one succeeds), in pure Python.

A logistic regression whose logit is the sum of
- a task-kind prior (`kind_of`: small_talk, choice, code, math or task; `kind_prior` in the weights,
  learned from the training sources' effects, each kind its own);
- a within-source difficulty term over a few dozen standardised text statistics (length, digits,
  maths symbols, multiple-choice shape, code shape) and the hand-built scorer's complexity and domain
  cues, fitted with one indicator per source so that it learns what makes a prompt harder than
  another of the same source (open requests, kind `task`, have weights of their own: `kind_coef`);
  clipped to the range it had on the training prompts of the same kind (`kind_range`), so a prompt
  unlike any of its kind cannot move far from it;
- optionally hashed word unigrams, word bigrams and character 3..5-grams of each word (CRC32 buckets,
  counts divided by the square root of their total), when the exported representation has them
  (`buckets` > 0; the current default has none).
Its output is Platt-scaled on out-of-source predictions, so `complexity` is a probability.

Training (scripts/train_scorer.py) uses every source in data/routing with routing labels and
hand-written easy prompts; the representation was chosen by leave-one-source-out cross-validation
(data/eval/cv_report.json).

With n-grams, each word's summed unigram and character-gram weight is cached: words repeat, so most
prompts cost one dict lookup per word. Weights load on first use (r42/scoring/weights/), never at import.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from array import array
from functools import cache
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from r42.errors import ConfigError
from r42.scoring import Estimate, Prompt, head_tail
from r42.scoring.ability import sigmoid

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS = WEIGHTS_DIR / "trained.json"  # metadata, statistics' scaling, calibration
COEF = WEIGHTS_DIR / "trained.f32"  # the hashed features' coefficients, little-endian float32

TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]", re.IGNORECASE)
WORD = re.compile(r"[A-Za-z]+")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
MATH_SYMBOL = re.compile(r"[=+*/^<>√π∑∫]|\\[a-z]+|\b[a-z]\s*[=<>]")
# Marks that use maths symbols for prose, not counted as maths (`maths_symbols`; compiled on first use).
# Markdown: list bullets ("* item", "+ item"), quoted lines ("> ..."), emphasis ("**bold**", "*word*"), whose
# text is kept (group 2: it cannot hold a star, so a line of unclosed stars is read in linear time).
MARKDOWN = r"(?m)^[ \t]*(?:[*+]|>+)[ \t]+|(?<![\w*])(\*\*?)(?=\S)([^*\n]*?\S)\1(?![\w*])"
# A slash between words ("and/or", "cats / dogs"; "x/y" and "km/h" still count). Links, HTML tags and
# arrows ("->") were left out of the count too, and put back: the Arena-bench prompts they moved from `math`
# to `task` (an e-mail thread of addresses, a scene graph of arrows, ...) are mostly hard ones, and both the
# cross-validation and Arena-bench in halves fell (README, stop 29).
WORD_SLASH = r"(?<=[A-Za-z]{2})[ \t]?/[ \t]?(?=[A-Za-z]{2})"
# Answer options on their own lines. A line's leading blanks are `[^\S\n]*`, not `\s*`: `^\s*` tries every run
# of blank lines to its end, which made a prompt of 20,000 newlines take seconds.
CHOICE = re.compile(r"^[^\S\n]*(?:[A-Da-d][.)]|\(\w\))\s*(.*)$", re.MULTILINE)
INLINE_OPTION = re.compile(
    r"(?:^|(?<=\s))(?:\(([A-Da-d])\)|([A-D])[).:]|[Oo]ption\s*([1-4])\s*[:.)]?)\s*", re.MULTILINE
)
OPTION_ORDER = ("abcd", "1234")
# markers that are options only after a question asking to choose ("Which of the following ...? a) x
# b) y", "... ?\n1. x\n2. y", "[A] x [B] y"): elsewhere "a) ... b) ..." and "1. ... 2. ..." are the
# parts of a request ("Discuss a) the causes b) the effects"), and "[1]" a citation
QUESTION_OPTION = re.compile(r"(?:^|(?<=\s))(?:\[([A-Da-d])\]|([a-d])[.)]|([1-4])[.)])[ \t]*", re.MULTILINE)
# a word of choosing (compiled on first use, by `compiled`: only a run of those markers needs it)
CHOOSING = (
    r"\b(?:which|of the following|choose|select|pick|correct|true|false|best|most likely|options?|choices?|"
    r"answers?)\b"
)


def _option_label(marker: re.Match[str]) -> str:
    """An INLINE_OPTION or QUESTION_OPTION marker's letter or number, lower case: "a" for "(A)", "1"
    for "Option 1"."""
    return next(group for group in marker.groups() if group).lower()


def _asks_to_choose(stem: str) -> bool:
    """The text before a run of QUESTION_OPTION markers ends a question that asks to choose: a "?" or
    a ":" closing a sentence with a word of choosing (CHOOSING)."""
    stem = stem.rstrip()
    if not stem.endswith(("?", ":")):
        return False
    last = re.split(r"(?<=[.!?\n])\s", stem[:-1])[-1]
    return bool(compiled(CHOOSING).search(last))


def _option_run(text: str) -> tuple[int, list[str]]:
    """Where inline or labelled answer options start, and the options (none: (0, [])): markers
    that run A, B, ... (or 1, 2, ...) from the first (INLINE_OPTION anywhere; QUESTION_OPTION after a
    question that asks to choose), each option the text up to the next marker or line end."""
    for pattern in (INLINE_OPTION, QUESTION_OPTION):
        markers = [(m.start(), m.end(), _option_label(m)) for m in pattern.finditer(text)]
        for order in OPTION_ORDER:
            run: list[tuple[int, int, str]] = []
            for marker in markers:
                if len(run) < len(order) and marker[2] == order[len(run)]:
                    run.append(marker)
                elif marker[2] == order[0]:
                    run = [marker]  # a new run starts: an "A" earlier in the text was not an option
            if len(run) >= 2 and (pattern is INLINE_OPTION or _asks_to_choose(text[: run[0][0]])):
                ends = [start for start, _, _ in run[1:]] + [len(text)]
                return run[0][0], [text[end:stop].split("\n")[0].strip() for (_, end, _), stop in zip(run, ends)]
    return 0, []


def answer_options(text: str) -> list[str]:
    """The answer options: on their own lines ("A. ...", "(b) ..."), else inline or labelled
    ("(A) x (B) y", "Option 1: x Option 2: y", after a question that asks to choose also "a) x b) y",
    "1. x 2. y" and "[A] x [B] y": _option_run). Same shape whatever the format, so an inline question
    reads like a multiple-choice one on lines."""
    lines = CHOICE.findall(text)
    if len(lines) >= 2:
        return lines
    return _option_run(text)[1]


def options_on_lines(text: str) -> str:
    """The text with inline or labelled answer options moved onto their own lines ("A. x"), the shape
    of the multiple-choice questions in training: statistics and the heuristic's domains then read a
    question alike whatever its format. Text without such options is returned unchanged."""
    if len(CHOICE.findall(text)) >= 2:
        return text
    start, options = _option_run(text)
    if len(options) < 2:
        return text
    stem = text[:start].rstrip()
    return stem + "".join(f"\n{letter}. {option}" for letter, option in zip("ABCD", options))


def with_options_on_lines(prompt: Prompt) -> Prompt:
    """The prompt whose last turn has its answer options on lines (options_on_lines); the same object
    when there is nothing to move (training and scoring both read prompts through this)."""
    head = head_tail(prompt.last_user, MAX_TEXT)
    moved = options_on_lines(head)
    return prompt if moved == head else Prompt(moved, prompt.context, prompt.turns, prompt.chars, prompt.earlier_user)


# The labels of a prompt's parts: "Scenario 1 | ... Scenario 2 | ...", "Statement 2", a numbered list
# ("1. ...", "II) ..."). A prompt that asks about several parts at once is harder than one about one;
# counted apart from the numbers, which in these labels are structure, not content.
PART_LABEL = re.compile(
    r"\b(?:scenario|statement|part|question|step|case|claim|sentence|passage|item)\s+(?:\d+|[ivx]+)\b"
    r"|(?:^|\n)[^\S\n]*(?:[ivx]+|\d+)[.)]\s",
    re.IGNORECASE,
)
NEGATION = re.compile(r"\b(?:not|except|false|incorrect|least|never)\b", re.IGNORECASE)
CODE_SHAPE = re.compile(r"[{};]|\bdef |\breturn\b|\bfunction\b|\bclass |==|\[\]|\(\)")
MAX_TEXT = 6_000  # features read at most this much of the prompt (its start and end: head_tail), a bounded cost
CHAR_GRAMS = (3, 4, 5)
CACHE_LIMIT = 200_000  # words remembered with their summed weight; cleared when full


def word_keys(token: str) -> list[bytes]:
    """The hashed keys one token contributes: itself, and its character n-grams when it is a word."""
    keys = [b"u" + token.encode()]
    if token.isalpha() and len(token) > 2:
        padded = "<" + token + ">"
        for n in CHAR_GRAMS:
            keys.extend(("c" + padded[i : i + n]).encode() for i in range(len(padded) - n + 1))
    return keys


def bigram_key(a: str, b: str) -> bytes:
    return ("b" + a + " " + b).encode()


def tokens_of(text: str) -> list[str]:
    return [t.lower() for t in TOKEN.findall(head_tail(text, MAX_TEXT))]


def hashed_counts(text: str, buckets: int) -> dict[int, float]:
    """Bucket -> count / sqrt(total count): what the training script feeds the regression."""
    tokens = tokens_of(text)
    counts: dict[int, float] = {}
    keys = [k for t in tokens for k in word_keys(t)] + [bigram_key(a, b) for a, b in zip(tokens, tokens[1:])]
    for key in keys:
        bucket = zlib.crc32(key) % buckets
        counts[bucket] = counts.get(bucket, 0.0) + 1.0
    scale = 1.0 / math.sqrt(len(keys) or 1)
    return {k: v * scale for k, v in counts.items()}


def maths_symbols(text: str) -> int:
    """The maths symbols in the text (MATH_SYMBOL), not counting the marks of prose (MARKDOWN, WORD_SLASH):
    a bulleted list, a bold word or "and/or" is no maths problem."""
    if "*" in text or "+" in text or ">" in text:
        text = compiled(MARKDOWN).sub(lambda m: m.group(2) or " ", text)
    if "/" in text:
        text = compiled(WORD_SLASH).sub(" ", text)
    return len(MATH_SYMBOL.findall(text))


def text_statistics(text: str, heuristic: Estimate) -> dict[str, float]:
    """The dense inputs. Names and order are stored with the weights."""
    text = head_tail(text, MAX_TEXT)
    words = WORD.findall(text)
    n_words = len(words) or 1
    choices = answer_options(text)
    choice_lengths = [len(c) for c in choices] or [0]
    stats = {
        "log_chars": math.log1p(len(text)),
        "log_words": math.log1p(n_words),
        "log_lines": math.log1p(text.count("\n") + 1),
        "digit_frac": sum(c.isdigit() for c in text) / max(1, len(text)),
        "log_nums": math.log1p(len(NUMBER.findall(text))),
        "math_syms": math.log1p(maths_symbols(text)),
        "code_shape": math.log1p(len(CODE_SHAPE.findall(text))),
        "avg_wlen": sum(map(len, words)) / n_words,
        "long_frac": sum(len(w) >= 9 for w in words) / n_words,
        "cap_frac": sum(w[0].isupper() for w in words) / n_words,
        "qmarks": float(min(text.count("?"), 5)),
        "neg": float(min(len(NEGATION.findall(text)), 5)),
        "log_parts": math.log1p(len(PART_LABEL.findall(text))),
        "n_choices": float(min(len(choices), 8)),
        "choice_mean": math.log1p(sum(choice_lengths) / len(choice_lengths)),
        "choice_num": sum(bool(NUMBER.fullmatch(c.strip().rstrip("."))) for c in choices) / max(1, len(choices)),
        "heur": heuristic.complexity,
    }
    for domain, p in heuristic.domains.items():
        stats["dom_" + domain] = p
    return stats


SMALL_TALK_DOMAINS = frozenset({"chat", "knowledge", "creative", "extraction"})
SMALL_TALK_CHARS = 120  # small talk is one line of at most this many characters (and 12 words)
# The small-talk rule reads English: a line of five words or more without English words is in a language
# it cannot read, and is not called small talk (`reads_as_english`). One of ENGLISH_WORDS is enough; the
# SHARED_WORDS are English words that are also common words of other European languages ("a" in Spanish,
# French and Portuguese, "in", "was", "so", "am" in German, "is" in Dutch, "i" in Polish), two distinct
# ones are needed. "m", "re", "ve" and "ll" are the ends of "I'm", "you're", "I've", "I'll".
SHARED_WORDS = frozenset("a an in is was am so on do no me as will he her i to for".split())
ENGLISH_WORDS = frozenset(
    "the are were be been does did you she it we they my your his its our their this that these those what which "
    "who whom whose when where why how and or but if of at with about from by into than then not can could would "
    "should shall may might must have has had there here please tell give write make explain m re ve ll".split()
)
ENGLISH_CHECK_CHARS = 1_000  # an English text has English words well before this
# Common words of other European languages, written without accents. A line of plain ASCII letters with
# none of these and no English word is a run of English keywords ("Cheap flights Paris London December").
FOREIGN_WORDS = frozenset(
    "de la el los las un una unos que y en es por para con del al su se lo le les et est une des du au sur pour "
    "avec dans ce qui der das und ist ein eine einen mit nicht sie wir ich mir den dem zu von auf fur wie il che "
    "di per sono non sul della het een van niet wat heeft hoe hoeveel zijn ik je och att det ar jag og er ikke jest "
    "nie na sie czy o w z jak co".split()
)
# Chinese, Japanese and Korean letters, written without spaces: each counts as half a word (compiled on
# first use by `cjk_letters`, for a text that is not ASCII: its ranges take about 3 ms to compile)
CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
LETTERS = re.compile(r"[^\W\d_]+")


@cache
def cjk_letters() -> re.Pattern[str]:
    return re.compile(CJK)


def reads_as_english(text: str) -> bool:
    """Too short to tell (at most four words: "你好", "Bonjour, comment ça va ?"), has one of
    ENGLISH_WORDS or two different SHARED_WORDS, or is English keywords (plain ASCII without
    FOREIGN_WORDS). The training prompts are all English: a longer line in another language may be a
    maths problem or a proof the rules cannot see, so it is not taken for small talk."""
    ascii_text = text.isascii()
    cjk = 0 if ascii_text else len(cjk_letters().findall(text))
    words = 0
    shared: set[str] = set()
    foreign = False
    for match in LETTERS.finditer(cjk_letters().sub(" ", text) if cjk else text):
        word = match.group().lower()
        if word in ENGLISH_WORDS:
            return True  # most English texts stop here, at one of their first words
        if word in SHARED_WORDS:
            shared.add(word)
            if len(shared) == 2:
                return True
        foreign = foreign or word in FOREIGN_WORDS
        words += 1
    return words + cjk / 2 <= 4 or (ascii_text and not foreign)


# The kinds the prior is looked up by, each with its own learned effect (training: fit_within).
KINDS = ("small_talk", "choice", "code", "math", "task")
# "$n$", "$2^{10} - 5$", "\\frac{1}{2}", an Asymptote figure; not prices ("$3 and 6 pens at $1.50"):
# inline maths is a pair of dollars around a LaTeX character, or around no space at the ends and no
# words after a leading number
LATEX = re.compile(
    r"\[asy\]|\$[^$\n]*[\\^_{}][^$\n]*\$|\$(?:[^$\s\d][^$\n]*(?<!\s)|\d[^$\s]*)\$"
    r"|\\[a-zA-Z]+\{|\\\(|\\\[|\\frac|\\sqrt"
)
CODE_REQUEST = re.compile(
    r"\b(?:python|javascript|typescript|java|golang|rust|sql|bash|regex|function|program|script|code|"
    r"implement|algorithm|compile|def|assert)\b|\bc\+\+(?!\w)"  # "c++ " ends in no word boundary
    # a source file ("tests/test_api.py", "App.tsx"): a coding agent's request names the files to change
    r"|\b\w{2,}\.(?:py|ipynb|js|jsx|ts|tsx|java|go|rs|cpp|cc|hpp|rb|php|cs|swift|kt|scala|sql|sh|vue|svelte)\b",
    re.IGNORECASE | re.ASCII,  # ASCII word boundaries: "写一个Python函数" names Python too
)
# the words of CODE_REQUEST in phrases about something else: a dress code, a code of conduct, an exercise
# program, a movie script, compiling a list, the function of the liver (compiled on first use)
NOT_CODE = (
    r"\b(?:dress|zip|postal|post|area|country|promo|discount|coupon|voucher|colou?r|morse|bar|qr|access|door|"
    r"ethics|honou?r|penal|civil|tax|building)\s+codes?\b|\bcodes?\s+of\s+(?:conduct|ethics|practice|honou?r)\b"
    r"|\b(?:tv|television|radio|training|exercise|workout|fitness|meal|diet|study|loyalty|degree|graduate|master'?s|"
    r"phd|doctoral|exchange|rewards?|mentoring|wellness|space|nuclear|research|government|social)\s+programs?\b"
    r"|\b(?:movie|film|play|video|podcast|youtube|tv|radio|sales|call|theatre|theater|comedy|stage)\s+scripts?\b"
    r"|\bcompil\w*\s+(?:a|an|the|my|our|your|some)?\s*(?:list|report|summary|table|bibliography|reading)\b"
    r"|\bfunctions?\s+of\s+(?:the|a|an|each|this|these|its|their|his|her)\b"
)


PHRASE_REACH = 40  # the word before a code word, in a NOT_CODE phrase, starts at most this far before it
PREVIOUS_WORD = re.compile(r"[\w']+\s+$")
PHRASE_WORDS = frozenset({"code", "program", "script", "compile", "function"})  # the code words NOT_CODE holds


def code_words(text: str) -> Iterator[tuple[re.Match[str], bool]]:
    """Each code word (CODE_REQUEST) and whether it is part of a phrase about something else (NOT_CODE):
    one that starts at the word or at the word before it. NOT_CODE is tried at those two places only: searched
    through a whole text it takes about 0.4 µs a character (0.8 ms for 2 kB of code)."""
    phrase = compiled(NOT_CODE)
    for word in CODE_REQUEST.finditer(text):
        if word.group().lower() not in PHRASE_WORDS:
            yield word, False  # "python", "def", ...: in no such phrase
            continue
        starts = [word.start()]
        before = PREVIOUS_WORD.search(text, max(0, word.start() - PHRASE_REACH), word.start())
        if before:
            starts.append(before.start())
        yield word, any((m := phrase.match(text, start)) is not None and m.end() >= word.end() for start in starts)


def code_request(text: str) -> bool:
    """The text asks for or about code (CODE_REQUEST), not counting phrases about something else (NOT_CODE)."""
    return any(not other for _, other in code_words(text))


def without_other_code_words(text: str) -> str:
    """The text without the code words of phrases about something else ("exercise program" -> "exercise ")."""
    spans = [word.span() for word, other in code_words(text) if other]
    for begin, end in reversed(spans):
        text = text[:begin] + text[end:]
    return text


# a proof or a derivation asked for: maths, however short the line and whatever the heuristic's domain
PROOF_REQUEST = re.compile(r"\b(?:prove|proof|derive|derivation)\b", re.IGNORECASE)
# a semicolon between two clauses of prose ("return them as a list; ignore times"), not between statements
# ("x = [1]; print(x)", "i < n; i++"): a word, a space and a letter follow it (compiled on first use)
PROSE_SEMICOLON = r";(?=\s+[A-Za-z]+\s+[A-Za-z])"
# a blank to fill: a run of at most 12 underscores between words ("the _ is too large"); a longer run is a
# rule across the page, as between the messages of an email thread
BLANK = re.compile(r"(?:^|\s)_{1,12}(?=[\s.,;:!?]|$)")
NUMBER_WORD = re.compile(
    r"\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|half|third|quarter|twice|double|triple)\b",
    re.IGNORECASE,
)
QUANTITY_QUESTION = re.compile(
    r"\b(?:how (?:many|much|long|far|old|fast)|what (?:is|was|will be) the (?:total|sum|difference|product|"
    r"cost|price|average|area|percentage|probability)|calculate|compute|find the|solve)\b",
    re.IGNORECASE,
)
# What the question of a word problem asks for, however it is phrased ("what does he spend altogether?",
# "what fraction is left?", "Ana's age?"): read in the prompt's last sentence that asks something.
QUANTITY_WORD = re.compile(
    r"\b(?:how (?:many|much|long|far|old|fast)|total|altogether|in all|left|remain\w*|fraction|percent\w*|"
    r"average|speed|cost|costs|price|pay|paid|spend|spent|earn\w*|profit|age|number|minimum|maximum|least|most|"
    r"difference|sum|product|ratio|area|volume|perimeter|distance|hours|minutes|days|weeks|years)\b",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
ASK_VERB = re.compile(r"^\s*(?:find|calculate|compute|determine|work out|estimate|evaluate|what|how)\b", re.IGNORECASE)


def word_problem(text: str) -> bool:
    """Two or more numbers (in digits or words) and a question about a quantity: a QUANTITY_QUESTION
    anywhere, or QUANTITY_WORD in the last sentence that asks something (ends with a question mark, or
    starts with "find", "calculate", ...: "Find its area.")."""
    if len(NUMBER.findall(text)) + len(NUMBER_WORD.findall(text)) < 2:
        return False
    if QUANTITY_QUESTION.search(text):
        return True
    asks = [s for s in SENTENCE_END.split(text.strip()) if s.rstrip().endswith("?") or ASK_VERB.match(s)]
    return bool(asks) and bool(QUANTITY_WORD.search(asks[-1]))


# "How many legs does a spider have?": the heuristic reads "how many" as maths; without a number or a
# counting problem's words it is a lookup
QUANTITY_LOOKUP = re.compile(r"^\s*how (?:many|much|long|far|old|tall|big|heavy|deep)\b", re.IGNORECASE)
COUNTING_PROBLEM = re.compile(
    r"\b(?:ways?|arrange\w*|combinations?|permutations?|probabilit\w*|integers?|primes?|solutions?|digits?|"
    r"divisible|sum|product|equations?|roots?|multiples?|factors?|remainder|sequences?|subsets?)\b",
    re.IGNORECASE,
)


def small_talk(text: str, stats: dict[str, float], heuristic: Estimate) -> bool:
    """One short line in English (or too short to tell: reads_as_english) with no maths, code or answer
    options, asking for neither code nor a proof, whose heuristic domain is chat, knowledge, creative or
    extraction: greetings, thanks, one-line chat and
    lookups (a "how many/much/long ..." question without numbers or a counting problem's words is a
    lookup too, and so is one operation on two small numbers: simple_arithmetic)."""
    short = stats["log_words"] <= math.log1p(12) and len(text) <= SMALL_TALK_CHARS and "\n" not in text.strip()
    if not short or "$" in text or "\\" in text or stats["code_shape"] > 0 or stats["math_syms"] > math.log1p(1):
        return False
    if not reads_as_english(text):
        return False  # "Докажите, что корень из двух иррационален." is a proof, not small talk
    if code_request(text) or PROOF_REQUEST.search(text):
        return False  # "Write code to parse an XML document ..." and "Provide a derivation of ..." are short tasks
    if stats["n_choices"] > 0 or heuristic.signals.get("terms", {}).get("hard_words") or word_problem(text):
        return False  # "A train travels 240 km in 3 hours. What is its average speed?" is short, but maths
    top = top_domain(heuristic)
    return top in SMALL_TALK_DOMAINS or (top == "math" and (quantity_lookup(text) or simple_arithmetic(text)))


def top_domain(heuristic: Estimate) -> str:
    """The heuristic's most likely domain ("" when it gives none)."""
    domains = heuristic.domains
    return max(domains, key=domains.__getitem__) if domains else ""


# "What is 2 + 2?", "12*7", "15% of 80": one operation on two small numbers, the whole of the maths in
# the line; as easy for a small model as a lookup ("2^100 mod 7" has a third number and is not)
ARITHMETIC = (
    r"(?<![\w.])\d{1,3}(?:\.\d{1,2})?\s*(?:[-+*/×÷x]|times|plus|minus|divided by|multiplied by|%\s*of|percent of)"
    r"\s*\d{1,3}(?:\.\d{1,2})?(?![\w.]?\d)"
)


def simple_arithmetic(text: str) -> bool:
    return len(NUMBER.findall(text)) == 2 and bool(compiled(ARITHMETIC).search(text))


def quantity_lookup(text: str) -> bool:
    return bool(QUANTITY_LOOKUP.match(text)) and not (
        NUMBER.search(text) or NUMBER_WORD.search(text) or COUNTING_PROBLEM.search(text)
    )


def code_tokens(text: str, stats: dict[str, float]) -> int:
    """The code tokens (CODE_SHAPE) in the text, less the semicolons between clauses of prose."""
    count = round(math.expm1(stats["code_shape"]))  # the statistic is log1p(count): read back, not counted again
    return count - len(compiled(PROSE_SEMICOLON).findall(text)) if count >= 2 and ";" in text else count


def kind_of(text: str, stats: dict[str, float], heuristic: Estimate) -> str:
    """The task kind the prior is looked up by (KINDS), first rule that holds: `small_talk`; `choice`
    (answer options on their own lines); `code` (a fenced code block); `math` (LaTeX or an Asymptote
    figure); `code` (two code tokens, prose semicolons not counted, or a request for code: code_request);
    `choice` (inline options, or a blank to fill); `math` (a word problem: two or more numbers and a
    question about a quantity, word_problem; or two maths symbols, maths_symbols); `task` (everything
    else: open requests and chat)."""
    text = head_tail(text, MAX_TEXT)
    if small_talk(text, stats, heuristic):
        return "small_talk"
    if len(CHOICE.findall(text)) >= 2:
        return "choice"
    if "```" in text:
        return "code"  # before LaTeX: a "$" in a regular expression or a shell variable is not maths
    if LATEX.search(text):
        return "math"
    if code_tokens(text, stats) >= 2 or code_request(text):
        return "code"
    if stats["n_choices"] >= 2 or BLANK.search(text):
        return "choice"
    if stats["math_syms"] >= math.log1p(2) or word_problem(text):
        return "math"
    return "task"


# "write/draft/compose ... a <prose form>": a request for a piece of writing, whatever the heuristic's
# keywords make of its subject ("a speech for a colleague's retirement from the library" is not code).
# Compiled on first use (about a millisecond), for a `task` only.
WRITING_REQUEST = (
    r"\b(?:write|draft|compose|create|pen|craft)\b[^.?!\n]{0,60}?\b(?:e-?mails?|letters?|stor(?:y|ies)|poems?|"
    r"essays?|speech(?:es)?|toasts?|blog(?: post)?s?|articles?|descriptions?|messages?|posts?|dialogues?|"
    r"scripts?|screenplays?|limericks?|haikus?|sonnets?|songs?|lyrics|jokes?|tweets?|slogans?|eulog(?:y|ies)|"
    r"invitations?|announcements?|bios?|reviews?|job (?:posting|ad)s?|newsletters?|press releases?|"
    r"paragraphs?|narratives?|fables?|tales?|ads?|advertisements?|captions?|taglines?)\b"
)


@cache
def compiled(pattern: str) -> re.Pattern[str]:
    """A pattern that only some prompts need (ARITHMETIC, PROSE_SEMICOLON, WRITING_REQUEST, CHOOSING,
    MARKDOWN, WORD_SLASH, NOT_CODE), compiled on first use and ignoring case: compiling them takes a
    few milliseconds, which every `echo hi | r42 score` would otherwise pay."""
    return re.compile(pattern, re.IGNORECASE)


def statistics_and_kind(text: str, heuristic: Estimate) -> tuple[dict[str, float], str]:
    """The dense inputs and the task kind. The last input, `writing`, is 1 for a `task` that asks for
    a piece of writing (a story, a letter, a poem, a role-play): one the heuristic reads as creative,
    or "write/draft/compose ... <a prose form>" (WRITING_REQUEST). In Arena-bench, the one source that
    mixes kinds, small models answer those far more often than other open requests, a difference the
    source effects cannot carry and the domain probabilities carried weakly."""
    stats = text_statistics(text, heuristic)
    kind = kind_of(text, stats, heuristic)
    stats["writing"] = float(kind == "task" and asks_for_writing(text, heuristic))
    return stats, kind


def asks_for_writing(text: str, heuristic: Estimate) -> bool:
    """The heuristic reads the text as creative writing, or it says "write ... a <prose form>"."""
    return top_domain(heuristic) == "creative" or bool(compiled(WRITING_REQUEST).search(head_tail(text, MAX_TEXT)))


class Reading(NamedTuple):
    """One turn read by the model: the raw output (before calibration), the task kind whose prior it
    used ("" when the weights have no priors), whether it asks for a piece of writing, and whether its
    statistics were left out because it is an open request in a language other than English."""

    raw: float
    kind: str
    writing: bool
    not_english: bool = False


class TrainedScorer:
    name = "trained"

    def __init__(self, weights_path: Path = WEIGHTS, coef_path: Path = COEF) -> None:
        try:
            weights = json.loads(weights_path.read_bytes())  # stdlib: `r42 score`'s fast path avoids orjson
            coef = array("f")
            coef.frombytes(coef_path.read_bytes())
            self._load(weights, coef)
        except (OSError, KeyError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise ConfigError(
                f"cannot load the trained scorer's weights: {exc}", "reinstall r42 or use --scorer heuristic"
            ) from None
        from r42.scoring.heuristic import HeuristicScorer

        self._heuristic = HeuristicScorer()
        self._word_cache: dict[str, tuple[float, int]] = {}

    def _load(self, weights: dict[str, Any], coef: array) -> None:
        self.version = str(weights["version"])
        self.meta = weights["meta"]
        self._buckets = int(weights["buckets"])
        if len(coef) != self._buckets:  # 0 buckets: the chosen representation has no n-grams
            raise ValueError(f"{len(coef)} coefficients for {self._buckets} buckets")
        self._coef = coef
        self._intercept = float(weights["intercept"])
        dense = weights["dense"]
        self._features: list[str] = dense["features"]
        self._mean: list[float] = dense["mean"]
        self._scale: list[float] = dense["scale"]
        self._dense_coef: list[float] = dense["coef"]
        # kinds with weights of their own (open requests): the shared weights plus their fitted deviation
        self._kind_coef: dict[str, list[float]] = {
            k: [float(c) for c in v] for k, v in weights.get("kind_coef", {}).items()
        }
        if any(len(v) != len(self._features) for v in self._kind_coef.values()):
            raise ValueError("a kind's weights do not match the features")
        self._kind_prior: dict[str, float] = {k: float(v) for k, v in weights.get("kind_prior", {}).items()}
        # the difficulty term's range per kind on the training prompts: it is clipped to it
        self._kind_range: dict[str, tuple[float, float]] = {
            k: (float(v[0]), float(v[1])) for k, v in weights.get("kind_range", {}).items()
        }
        self._platt_a = float(weights["platt"]["a"])
        self._platt_b = float(weights["platt"]["b"])

    def _word(self, token: str) -> tuple[float, int]:
        """A token's summed weight over its hashed keys, and how many keys it has (cached)."""
        hit = self._word_cache.get(token)
        if hit is None:
            keys = word_keys(token)
            hit = (sum(self._coef[zlib.crc32(k) % self._buckets] for k in keys), len(keys))
            if len(self._word_cache) >= CACHE_LIMIT:
                self._word_cache.clear()
            self._word_cache[token] = hit
        return hit

    def logit(self, text: str, heuristic: Estimate) -> float:
        """The regression's raw output (before calibration) for one text."""
        return self.read(text, heuristic).raw

    def read(self, text: str, heuristic: Estimate) -> Reading:
        """The raw output, the task kind whose prior it used and the writing input for one text."""
        stats, kind = statistics_and_kind(text, heuristic)
        kind = kind if self._kind_prior else ""
        weights = self._kind_coef.get(kind, self._dense_coef)
        dense = sum(c * (stats[f] - m) / s for f, m, s, c in zip(self._features, self._mean, self._scale, weights))
        if kind in self._kind_range:
            low, high = self._kind_range[kind]
            dense = min(max(dense, low), high)
        # an open request in another language: its statistics (words, their length, the heuristic's English
        # cues) are unlike any training prompt's, so it is scored as an average one (the training
        # statistics' mean: 0); code, maths and options carry their own shape
        not_english = kind == "task" and not reads_as_english(text[:ENGLISH_CHECK_CHARS])
        if not_english:
            dense = 0.0
        prior = self._kind_prior.get(kind, 0.0)
        raw = self._intercept + prior + dense + (self._ngrams(text) if self._buckets else 0.0)
        return Reading(raw, kind, stats["writing"] == 1.0, not_english)

    def _ngrams(self, text: str) -> float:
        tokens = tokens_of(text)
        total, n_keys = 0.0, 0
        for token in tokens:
            weight, n = self._word(token)
            total += weight
            n_keys += n
        coef, buckets = self._coef, self._buckets
        for a, b in zip(tokens, tokens[1:]):
            total += coef[zlib.crc32(bigram_key(a, b)) % buckets]
        n_keys += max(0, len(tokens) - 1)
        return total / math.sqrt(n_keys or 1)

    def _follow_up(self, prompt: Prompt, kind: str) -> Reading | None:
        """A short last turn that continues a task ("and for n = 7?", "make it faster") is as hard as that
        task: when the last turn read alone is small talk, the reading of the most recent earlier user
        turn that is not, if any (a thank-you after small talk stays small talk). Alone,
        because the heuristic's domains read the whole conversation: "make it faster" after a code
        request is not small talk to them, but neither is it a task of its own."""
        if kind != "small_talk":
            text = prompt.last_user.strip()
            if len(text) > SMALL_TALK_CHARS or "\n" in text or self._read_alone(text).kind != "small_talk":
                return None  # (small talk is one short line: a longer turn is not read twice)
        for text in reversed(prompt.earlier_user):
            earlier = self._read_alone(text)
            if earlier.kind != "small_talk":
                return earlier
        return None

    def _read_alone(self, text: str) -> Reading:
        """One turn read as a conversation of its own."""
        turn = with_options_on_lines(Prompt(text))
        return self.read(turn.last_user, self._heuristic.estimate(turn))

    def probability(self, raw_logit: float) -> float:
        return sigmoid(self._platt_a * raw_logit + self._platt_b)

    def estimate(self, prompt: Prompt) -> Estimate:
        prompt = with_options_on_lines(prompt)
        heuristic = self._heuristic.estimate(prompt)
        reading = self.read(prompt.last_user, heuristic)
        follows = self._follow_up(prompt, reading.kind) if prompt.earlier_user else None
        if follows:
            reading = follows
        p = self.probability(reading.raw)
        # the heuristic's evidence (it reads the whole conversation) stays visible next to the probability
        signals = {
            **heuristic.signals,
            "p_cheap_fails": round(p, 4),
            "kind": reading.kind,  # the task kind whose learned rate the probability starts from
            **({"writing": True} if reading.writing else {}),  # asks for a piece of writing: scores lower
            **({"not_english": True} if reading.not_english else {}),  # scored as an average open request
            **({"kind_from": "an earlier turn"} if follows else {}),
            "heuristic": round(heuristic.complexity, 4),
            "domains_from": "heuristic",
        }
        domains = None if reading.kind == "code" else self._domains_without_other_phrases(prompt, heuristic)
        if domains is not None:
            signals["domains_from"] = "heuristic, without the code words of phrases about something else"
        return Estimate(p, domains or heuristic.domains, signals)

    def _domains_without_other_phrases(self, prompt: Prompt, heuristic: Estimate) -> dict[str, float] | None:
        """The heuristic's domains with the code words of NOT_CODE phrases left out ("exercise program" reads
        as "exercise"), when its most likely domain is code and the last turn has such a phrase; else None.
        Only the domains `rank` reads change: the statistics keep the heuristic's own reading, as in training.
        (Not asked for a prompt of kind `code`: whatever its phrases, its domain is code.)"""
        if top_domain(heuristic) != "code":
            return None
        cleaned = without_other_code_words(prompt.last_user)
        if cleaned == prompt.last_user:
            return None
        turn = Prompt(cleaned, prompt.context, prompt.turns, prompt.chars, prompt.earlier_user)
        return self._heuristic.estimate(turn).domains
