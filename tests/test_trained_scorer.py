"""The trained scorer: a calibrated probability that reproduces its training features, stays in range,
is deterministic, loads lazily, says what it was trained on, and knows that small talk is easy."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r42.config import DOMAINS
from r42.errors import ConfigError
from r42.scoring import DEFAULT_SCORER, get_scorer, normalise_domains, prompt_of
from r42.scoring import heuristic as heuristic_module
from r42.scoring import sensitive as sensitive_module
from r42.scoring import trained as trained_module
from r42.scoring.heuristic import HeuristicScorer
from r42.scoring.trained import (
    COEF,
    KINDS,
    MAX_TEXT,
    WEIGHTS,
    TrainedScorer,
    hashed_counts,
    kind_of,
    maths_symbols,
    reads_as_english,
    statistics_and_kind,
    text_statistics,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scorer() -> TrainedScorer:
    return TrainedScorer()


def _prompt(text: str):
    return prompt_of([{"role": "user", "content": text}])


def _kind(text: str) -> str:
    heuristic = HeuristicScorer().estimate(_prompt(text))
    return kind_of(text, text_statistics(text, heuristic), heuristic)


def test_artefact_within_the_size_budget() -> None:
    assert WEIGHTS.stat().st_size + COEF.stat().st_size <= 30_000_000


def test_metadata_names_existing_training_files_and_a_commit(scorer: TrainedScorer) -> None:
    files = scorer.meta["trained_on"]
    assert files and all((ROOT / f).is_file() for f in files)
    assert "data/routing/handwritten_easy.jsonl" in files
    assert len(scorer.meta["commit"].split("+")[0]) == 40


def test_trained_against_the_current_heuristic(scorer: TrainedScorer) -> None:
    # The heuristic's complexity and domains are inputs: change it, and retrain (scripts/train_scorer.py).
    assert scorer.meta["heuristic_version"] == HeuristicScorer.version


@pytest.mark.parametrize(
    "text",
    [
        "Reading the documentation of a library: what is the default encoding of open() in Python 3?",
        "hi",
        "Let $f(x) = x^3 - 3x + 1$. How many real roots does f(f(x)) = 0 have?",
        "the word " * 1500,
    ],
)
def test_the_logit_equals_the_training_features(scorer: TrainedScorer, text: str) -> None:
    # The scorer sums cached per-word weights (when its representation has n-grams); training sees bucket
    # counts, the standardised statistics and the kind's prior. Both must give the same logit (for English
    # text, as every training prompt is: an open request in another language is scored without its
    # statistics, test_text_in_another_language_is_not_taken_for_small_talk).
    heuristic = HeuristicScorer().estimate(_prompt(text))
    counts = hashed_counts(text, scorer._buckets) if scorer._buckets else {}
    stats, kind = statistics_and_kind(text, heuristic)
    weights = scorer._kind_coef.get(kind, scorer._dense_coef)
    dense = sum(c * (stats[f] - m) / s for f, m, s, c in zip(scorer._features, scorer._mean, scorer._scale, weights))
    low, high = scorer._kind_range.get(kind, (-math.inf, math.inf))
    dense = min(max(dense, low), high)
    prior = scorer._kind_prior.get(kind, 0.0)
    expected = scorer._intercept + prior + sum(scorer._coef[k] * v for k, v in counts.items()) + dense
    assert scorer.logit(text, heuristic) == pytest.approx(expected, abs=1e-4)
    assert scorer.logit(text, heuristic) == pytest.approx(expected, abs=1e-4)  # second call: from the cache


# None of these is in data/routing/handwritten_easy.jsonl: they test generalisation, not recall.
@pytest.mark.parametrize(
    "text",
    [
        "hello there!",
        "Hi, good morning to you",
        "thanks a bunch",
        "thank you very much :)",
        "ok great, thanks for that",
        "hey, how is your day going?",
        "What is 12 * 7?",
        "what's 15% of 80",
    ],
)
def test_small_talk_is_below_a_tenth(scorer: TrainedScorer, text: str) -> None:
    assert scorer.estimate(_prompt(text)).complexity < 0.1


def test_competition_maths_and_code_tracing_score_above_a_lookup(scorer: TrainedScorer) -> None:
    lookup = scorer.estimate(_prompt("What is the capital of Australia?")).complexity
    maths = scorer.estimate(
        _prompt(
            "Let $S$ be the set of positive integers $n$ such that $n^2 + 12n - 2007$ is a perfect square. "
            "Find the remainder when the sum of the elements of $S$ is divided by $1000$."
        )
    ).complexity
    code = scorer.estimate(
        _prompt(
            "What does this print?\ndef f(xs):\n    out = []\n    for i, x in enumerate(xs):\n"
            "        out.insert(i % 3, x * i)\n    return out\nprint(f([4, 1, 7, 2, 9]))"
        )
    ).complexity
    # ten points of probability more that the cheap model fails where the strong one succeeds
    assert maths > lookup + 0.1 and code > lookup + 0.1


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_scores_in_range_and_domains_sum_to_one(text: str) -> None:
    estimate = get_scorer("trained").estimate(_prompt(text))
    assert 0.0 <= estimate.complexity <= 1.0
    domains = normalise_domains(estimate.domains)
    assert set(domains) == set(DOMAINS) and sum(domains.values()) == pytest.approx(1.0)


def test_deterministic_across_processes() -> None:
    code = (
        "from r42.scoring import prompt_of; from r42.scoring.trained import TrainedScorer; "
        "print(TrainedScorer().estimate(prompt_of([{'role': 'user', 'content': 'Prove that 17 is prime'}])).complexity)"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
        for _ in range(2)
    }
    assert len(runs) == 1


def test_trained_is_the_default_and_heuristic_stays_available() -> None:
    assert DEFAULT_SCORER == "trained"
    assert get_scorer("heuristic").name == "heuristic"


def test_weights_load_only_when_the_trained_scorer_is_used() -> None:
    code = "import sys, r42.scoring; r42.scoring.get_scorer('heuristic'); print('r42.scoring.trained' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "False"


def test_bad_weights_file_is_a_config_error(tmp_path) -> None:
    bad = tmp_path / "trained.json"
    bad.write_bytes(b"{not json")
    with pytest.raises(ConfigError):
        TrainedScorer(bad)


def test_coefficients_that_do_not_match_the_buckets_are_a_config_error(tmp_path) -> None:
    wrong = tmp_path / "trained.f32"
    coef = COEF.read_bytes()
    wrong.write_bytes(coef[:4096] if len(coef) > 4096 else coef + b"\0\0\0\0")  # truncated, or one too many
    with pytest.raises(ConfigError):
        TrainedScorer(WEIGHTS, wrong)


def test_a_kind_s_weights_that_do_not_match_the_features_are_a_config_error(tmp_path) -> None:
    weights = orjson.loads(WEIGHTS.read_bytes())
    weights["kind_coef"] = {"task": [0.0]}  # one weight for two dozen statistics
    wrong = tmp_path / "trained.json"
    wrong.write_bytes(orjson.dumps(weights))
    with pytest.raises(ConfigError):
        TrainedScorer(wrong, COEF)


def test_small_talk_and_tasks_get_their_kind_prior(scorer: TrainedScorer) -> None:
    kind = _kind
    assert kind("thanks a lot!") == kind("Who wrote Hamlet?") == "small_talk"
    # the kind is shown with the score
    assert scorer.estimate(_prompt("Who wrote Hamlet?")).signals["kind"] == "small_talk"
    assert scorer.estimate(_prompt("Compute $\\sum_{k=1}^{10} k^2$.")).signals["kind"] == "math"
    # "how many" without numbers or a counting problem's words: a lookup, though the heuristic says maths
    assert kind("How many legs does a spider have?") == kind("How long is the Nile?") == "small_talk"
    assert kind("How many ways can you arrange the letters of BANANA?") != "small_talk"
    assert kind("How many primes are there below 50?") != "small_talk"
    assert kind("How many apples are left if Sam eats three of the twelve?") != "small_talk"
    assert kind("Prove that the square root of 2 is irrational") == "task"  # short, but maths: not small talk
    # one operation on two small numbers is as easy as a lookup; a third number or a big one is not
    assert kind("What is 12 * 7?") == kind("what's 15% of 80") == kind("What is 9 minus 4?") == "small_talk"
    assert kind("What is 2^100 mod 7?") != "small_talk"
    assert kind("What is 4821 * 3977?") != "small_talk"
    assert kind("What is 3 + 4 * 5?") != "small_talk"
    # a request for code is never small talk, however short and whatever the heuristic's domain
    assert kind("Write code to extract the email addresses from a text file.") == "code"
    assert kind("Summarize what this SQL does.") == "code"
    assert kind("Write a C++ class for a matrix with addition and multiplication.") == "code"  # not "++" maths
    # nor is a request for a proof or a derivation
    assert kind("Give me the derivation of the Black-Scholes formula.") != "small_talk"
    assert kind("Show me a proof of the Cauchy-Schwarz inequality.") != "small_talk"
    # a fenced code block is code, even with a "$" that reads as LaTeX
    assert kind("Add a unit test for this:\n```\nconst price = s.replace(/^\\$/, '');\n```") == "code"
    # a semicolon between clauses of prose is not code; between statements it is
    dates = "Extract the dates from this text and return them as a list; ignore times: We met on 3 May and 7 June."
    assert kind(dates) == "task"
    assert kind("What does this return? x = [1, 2]; print(x)") == "code"
    # a rule of 40 underscores between the messages of an email thread is not a blank to fill
    thread = "From: Ana\n" + "_" * 40 + "\nHi Bob, the invoice is attached. Could you list the contacts in this thread?"
    assert kind(thread) == "task"
    blank = "The trophy doesn't fit into the suitcase because the ___ is too large, said Ana to her brother."
    assert kind(blank) == "choice"
    assert kind("Compute $\\sum_{k=1}^{10} k^2$.") == "math"
    assert kind("Which planet is largest?\nA. Mars\nB. Jupiter") == "choice"
    assert (
        kind("Anna had 12 pens and gave away 5. Then she bought three boxes of 4. How many pens has she now?") == "math"
    )
    # a word problem however its question is phrased, and however short
    for problem in (
        "A train travels 240 km in 3 hours. What is its average speed?",
        "Ravi buys 4 notebooks at $3 and 6 pens at $1.50. What does he spend altogether?",
        "Mia reads 25 pages a day of a 340-page book. After 9 days, what fraction is left?",
        "Ana is 4 years older than twice her brother's age. Her brother is 9. Ana's age?",
        "A rectangle's length is three times its width and its perimeter is 96 cm. Find its area.",
    ):
        assert kind(problem) == "math", problem
    # numbers in a question that asks for no quantity: not a word problem
    assert kind("What are the 3 best GPUs under $500?") != "math"
    assert kind("I moved to Berlin in 2019 and to Paris in 2021. Which city has better museums?") != "math"
    assert kind("Write a function to find the shared elements of two lists.") == "code"
    assert kind("def f(x):\n    return x + 1\nassert f(1) == ??") == "code"
    assert (
        kind("The trophy doesn't fit into the suitcase because _ is too large. Option 1: trophy Option 2: suitcase")
        == "choice"
    )
    assert (
        kind("Explain the causes of the French Revolution and their long-term effects on European politics.") == "task"
    )
    assert set(scorer._kind_prior) == set(KINDS)
    assert all(scorer._kind_prior["small_talk"] < scorer._kind_prior[k] for k in KINDS if k != "small_talk")


def test_markup_is_not_maths() -> None:
    # Markdown bullets, quotes and emphasis and a slash between words use maths symbols for prose: none is
    # counted, so none of these is a maths problem
    assert maths_symbols("Make this list shorter:\n* apples\n* pears\n+ plums") == 0
    assert maths_symbols("> quoted\n>> and quoted again") == 0
    assert maths_symbols("Rewrite this: **Note** the meeting is at noon, *not* at 1") == 0
    assert maths_symbols("cats / dogs and/or birds, his/her") == 0
    # the same symbols in maths and code still count
    assert maths_symbols("x = 2*3 + 4") == 3
    assert maths_symbols("5*x + 3*y") == 3  # not emphasis: a word character touches each star
    assert maths_symbols("2 * 3 * 4") == 2
    assert maths_symbols("x/y + 1/2") == 3
    assert maths_symbols("x < y and y > z") == 2
    # links, tags and arrows were left out too and put back (hard Arena-bench prompts): they still count
    assert maths_symbols("see https://example.com/a") == 3
    assert maths_symbols("<div> -> </div>") == 6
    for text in (
        "Translate to French: I like cats / dogs / birds",
        "Make this list shorter:\n* apples\n* pears\n* plums",
        "Rewrite this: **Note** the meeting is at noon, *not* at 1",
    ):
        assert _kind(text) != "math", text
    assert _kind("Solve for x:\n* 3x + 5 = 20\n* 2x - 1 = 7") == "math"


def _scoring_patterns() -> list[re.Pattern[str]]:
    """Every regular expression of the scoring modules: compiled ones, the upper-case pattern strings and
    the sensitive-data patterns compiled on first use."""
    found: list[re.Pattern[str]] = []

    def collect(value: object, upper_name: bool) -> None:
        if isinstance(value, re.Pattern):
            found.append(value)
        elif isinstance(value, sensitive_module.LazyPattern):
            found.append(re.compile(value.source, value.flags))
        elif isinstance(value, str) and upper_name:
            try:
                found.append(re.compile(value))
            except re.error:
                pass
        elif isinstance(value, (tuple, list)):
            for part in value:
                collect(part, False)
        elif isinstance(value, dict):
            for part in value.values():
                collect(part, False)

    for module in (trained_module, heuristic_module, sensitive_module):
        for name, value in vars(module).items():
            collect(value, name.isupper())
    return found


def test_no_pattern_tries_every_run_of_blank_lines() -> None:
    # In a multi-line pattern, `^\s*X` (or `\n\s*X`) tries at every line start to cross all the blank lines
    # that follow: quadratic. A prompt of 20,000 newlines took 5 s to score (benchmarks/bench_scorer.py
    # measures it); a line's leading blanks are `[^\S\n]*`.
    patterns = _scoring_patterns()
    assert len(patterns) > 40
    for pattern in patterns:
        multiline = bool(pattern.flags & re.MULTILINE)
        assert not (multiline and r"^\s*" in pattern.pattern), pattern.pattern
        assert r"\n\s*" not in pattern.pattern and r"\n)\s*" not in pattern.pattern, pattern.pattern
    # such a prompt is read up to MAX_TEXT characters, like any other
    scorer = TrainedScorer()
    long, short = (scorer.estimate(_prompt("\n" * n + "thanks!")) for n in (20_000, MAX_TEXT + 1))
    assert 0.0 < long.complexity < 1.0 and long.complexity == short.complexity


def test_a_long_prompt_is_read_at_its_start_and_its_end(scorer: TrainedScorer) -> None:
    # The question of a long prompt is often at its end, after the text it is about: the statistics and
    # the kind read the first and last MAX_TEXT / 2 characters (head_tail), not the first MAX_TEXT only,
    # which made a long passage with options after it an open request (0.49) and a code request `task`
    passage = "The committee met again this spring to review the budget of the regional library network. " * 90
    assert len(passage) > MAX_TEXT
    question = "\n\nWhich of the following best states the committee's concern?\nA. Staff\nB. Budget\nC. Hours\nD. Rent"
    short, long = (scorer.estimate(_prompt(text + question)) for text in (passage[:3000], passage))
    assert short.signals["kind"] == long.signals["kind"] == "choice"
    assert abs(long.complexity - short.complexity) < 0.05
    code = scorer.estimate(_prompt(passage + "\n\nWrite a Python function that counts the words of this text."))
    assert code.signals["kind"] == "code"


def test_text_in_another_language_is_not_taken_for_small_talk(scorer: TrainedScorer) -> None:
    # The rules and the statistics were learned on English prompts. A line they cannot read may be a maths
    # problem or a proof (these were small talk at 0.006-0.008), and small models are weaker still in
    # other languages: such an open request is scored as an average one, the statistics left out.
    assert reads_as_english("Explain the difference between TCP and UDP.")
    assert reads_as_english("你好") and reads_as_english("Bonjour, comment ça va ?")  # too short to tell
    unread = [
        "Докажите, что корень из двух иррационален.",
        "Un tren recorre 240 km en 3 horas. ¿Cuál es su velocidad media?",
        "小明有5个苹果，吃了2个，又买了3袋，每袋4个。他现在有多少个苹果？",
        "Erkläre mir den Unterschied zwischen TCP und UDP.",
    ]
    assert not any(reads_as_english(text) for text in unread)
    # on 33 short prompts in 12 other languages (written by us, tests/data/languages) at most 2 read as
    # English (a Portuguese and a Dutch line: "a" and "do", "is" and "in"); on the short English lines of
    # the training and sanity data, only LaTeX (maths by its own rule) does not
    lines = (ROOT / "tests/data/languages/not_english.txt").read_text(encoding="utf-8").splitlines()
    foreign = [line for line in lines if line.strip() and not line.startswith("#")]
    assert len(foreign) == 33 and sum(map(reads_as_english, foreign)) <= 2
    sanity = [orjson.loads(line)["prompt"] for line in (ROOT / "data/routing/sanity/sanity_handwritten.jsonl").open()]
    easy = [orjson.loads(line)["prompt"] for line in (ROOT / "data/routing/handwritten_easy.jsonl").open()]
    assert all(map(reads_as_english, sanity + easy))
    assert reads_as_english("Is a tomato a fruit?") and reads_as_english("I'm feeling happy today")
    # a run of English keywords has no English function word, but no foreign one either; the same words
    # in another language, typed without accents, have some
    assert reads_as_english("Cheap flights Paris London December") and reads_as_english("Best pizza places downtown")
    assert not reads_as_english("Erklaere mir den Unterschied zwischen TCP und UDP.")
    assert not reads_as_english("Demuestra que la raiz cuadrada de 2 es irracional.")
    estimates = [scorer.estimate(_prompt(text)) for text in unread]
    assert {(e.signals["kind"], e.signals.get("not_english")) for e in estimates} == {("task", True)}
    assert len({e.complexity for e in estimates}) == 1  # the same: nothing of the text but its kind is read
    english_lookup = scorer.estimate(_prompt("Explain the difference between TCP and UDP."))
    assert english_lookup.signals["kind"] == "small_talk" and "not_english" not in english_lookup.signals
    for greeting in ("你好", "谢谢！", "Bonjour, comment ça va ?"):
        assert scorer.estimate(_prompt(greeting)).complexity < 0.1, greeting
    # a programming language named next to letters of another script is still named ("write a quicksort
    # function in Python"): ASCII word boundaries
    assert _kind("请写一个快速排序的Python函数") == "code"


def test_words_of_code_in_phrases_about_something_else_are_not_code(scorer: TrainedScorer) -> None:
    for text in (
        "Create a 4-week exercise program for a beginner",
        "Compile a list of 10 classic novels",
        "Write a movie script about a lost dog",
        "What is the dress code for a wedding?",
        "Write a code of conduct for our book club",
        "Which function of the liver is most important?",
    ):
        assert _kind(text) != "code", text
    for text in (
        "Write a function of two arguments that returns their sum",
        "Write a script to rename every file in a folder",
        "Compile this C program with gcc and explain the warnings",
        "My exercise program in Python crashes: how do I fix it?",  # the language still makes it code
        "What is the zip code of Berlin Mitte, and write Python to look it up",
    ):
        assert _kind(text) == "code", text
    # a movie script is a piece of writing
    script = "Write a movie script about a lost dog"
    assert statistics_and_kind(script, HeuristicScorer().estimate(_prompt(script)))[0]["writing"] == 1.0

    # nor is their domain, which `rank` reads: the heuristic's keywords took "program" for code (0.31)
    def top(text: str) -> tuple[str, str]:
        estimate = scorer.estimate(_prompt(text))
        return max(estimate.domains, key=estimate.domains.__getitem__), estimate.signals["domains_from"]

    assert top("Create a 4-week exercise program for a beginner")[0] != "code"
    assert top("Which function of the liver is most important?")[0] != "code"
    assert top("Write a code of conduct for our book club")[0] != "code"
    assert top("Write a Python function that merges two sorted lists.") == ("code", "heuristic")
    heuristic = HeuristicScorer().estimate(_prompt("Create a 4-week exercise program for a beginner"))
    assert max(heuristic.domains, key=heuristic.domains.__getitem__) == "code"  # the heuristic alone: unchanged


def test_a_short_follow_up_is_as_hard_as_the_turn_it_follows(scorer: TrainedScorer) -> None:
    from r42.scoring import prompt_of

    task = "Find the number of ordered pairs (a,b) of integers with a^2 + b^2 = 2025 and a < b."
    alone = scorer.estimate(_prompt(task))
    conversation = [
        {"role": "user", "content": task},
        {"role": "assistant", "content": "There are 6 such pairs."},
        {"role": "user", "content": "and for 2026?"},
    ]
    follow_up = scorer.estimate(prompt_of(conversation))
    assert follow_up.signals["kind"] == alone.signals["kind"] == "math"
    assert follow_up.signals["kind_from"] == "an earlier turn"
    assert follow_up.complexity == pytest.approx(alone.complexity)
    assert scorer.estimate(_prompt("and for 2026?")).complexity < 0.1  # the same words alone: small talk
    # "make it faster" after a code request: the heuristic's domains (which read the conversation) say code
    code = [
        {"role": "user", "content": "Write a Python function that merges overlapping intervals in a list of pairs."},
        {"role": "assistant", "content": "def merge(pairs): ..."},
        {"role": "user", "content": "Make it faster please"},
    ]
    assert scorer.estimate(prompt_of(code)).signals["kind"] == "code"
    # small talk after small talk stays small talk; a new task is read as itself
    chat = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "thanks, bye"},
    ]
    assert scorer.estimate(prompt_of(chat)).complexity < 0.1
    new_task = code[:2] + [{"role": "user", "content": task}]
    assert "kind_from" not in scorer.estimate(prompt_of(new_task)).signals
    assert scorer.estimate(prompt_of(new_task)).complexity == pytest.approx(alone.complexity, abs=0.05)


def test_the_earlier_user_turns_are_kept_on_their_own() -> None:
    from r42.scoring import EARLIER_TURNS, prompt_of

    messages = [{"role": "system", "content": "be brief"}]
    for n in range(EARLIER_TURNS + 3):
        messages += [{"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": f"answer {n}"}]
    messages.append({"role": "user", "content": "last"})
    prompt = prompt_of(messages)
    assert prompt.last_user == "last"
    assert prompt.earlier_user == tuple(f"question {n}" for n in range(3, EARLIER_TURNS + 3))  # the most recent
    assert prompt_of([{"role": "user", "content": "only"}]).earlier_user == ()


def test_the_calibration_is_stored(scorer: TrainedScorer) -> None:
    weights = orjson.loads(WEIGHTS.read_bytes())
    assert weights["platt"]["a"] > 0  # a higher regression output never means a lower probability


def test_r42_eval_routes_maths_before_small_talk_with_the_default_scorer(tmp_path) -> None:
    # Small talk that any model answers, and maths and code tracing where only the strong model is right:
    # routing by the trained scorer's probability should send the latter to the strong model first.
    from tests.helpers import run

    easy = ["hello!", "thanks, bye", "good night", "what's the capital of Spain?", "how are you doing?", "ok cool"]
    hard = [
        "Find the number of ordered pairs $(a,b)$ of integers with $a^2 + b^2 = 2025$ and $a < b$.",
        "Let $p(x)$ be a monic cubic with $p(1)=3$, $p(2)=7$, $p(3)=13$. Compute $p(5)$ modulo 11.",
        "What does this print?\ndef g(s):\n    return ''.join(sorted(set(s), key=s.rindex))\nprint(g('abracadabra'))",
        "How many positive divisors of $30^4$ are neither perfect squares nor perfect cubes?",
        "assert f([3, 1, 2]) == ??\ndef f(xs):\n    xs.insert(1, xs.pop())\n    return xs[::-1]",
        "Compute $\\sum_{k=1}^{100} \\lfloor \\sqrt{k} \\rfloor$.",
    ]
    lines = [{"id": f"e{i}", "prompt": t, "strong": 1, "weak": 1, "scores": {"oracle": 0}} for i, t in enumerate(easy)]
    lines += [{"id": f"h{i}", "prompt": t, "strong": 1, "weak": 0, "scores": {"oracle": 1}} for i, t in enumerate(hard)]
    path = tmp_path / "set.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    result = run(["eval", str(path), "--scorer", "default", "--scorer", "oracle", "--seeds", "5", "--json"])
    assert result.exit_code == 0
    report = orjson.loads(result.stdout)
    assert report["scorers"]["default"]["apgr"] == pytest.approx(report["scorers"]["oracle"]["apgr"])


def test_answer_options_read_alike_on_lines_inline_and_labelled() -> None:
    from r42.scoring.trained import answer_options

    on_lines = answer_options("Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. nitrogen")
    inline = answer_options("Which gas do plants take in? (A) oxygen (B) carbon dioxide (C) nitrogen")
    assert on_lines == inline == ["oxygen", "carbon dioxide", "nitrogen"]
    labelled = answer_options("The cup fell off the shelf because _ was tilted. Option 1: the cup Option 2: the shelf")
    assert labelled == ["the cup", "the shelf"]
    assert answer_options("def f(a):\n    return g(a) + h(b)") == []  # calls are not options
    assert answer_options("Washington D. C. is a city.") == []  # one letter is not a run of options


@pytest.mark.parametrize(
    "question",
    [
        "Which gas do plants take in? a) oxygen b) carbon dioxide c) nitrogen",
        "Which gas do plants take in? Choices: a. oxygen b. carbon dioxide c. nitrogen",
        "Which gas do plants take in? 1) oxygen 2) carbon dioxide 3) nitrogen",
        "Which gas do plants take in?\n1. oxygen\n2. carbon dioxide\n3. nitrogen",
        "Which gas do plants take in? [A] oxygen [B] carbon dioxide [C] nitrogen",
        "Choose the gas plants take in:\n1) oxygen\n2) carbon dioxide\n3) nitrogen",
    ],
)
def test_lower_case_numbered_and_bracketed_options_after_a_choosing_question(scorer: TrainedScorer, question) -> None:
    # these markers are options only after a question that asks to choose: a science multiple-choice
    # question in any of these formats is `choice`, as with "(A) ... (B) ..." (they were `task`, 0.36-0.41)
    from r42.scoring.trained import answer_options

    assert answer_options(question) == ["oxygen", "carbon dioxide", "nitrogen"]
    assert scorer.estimate(_prompt(question)).signals["kind"] == "choice"


@pytest.mark.parametrize(
    "text",
    [
        "Discuss a) the causes of the war b) its effects on Europe c) the peace treaties.",  # parts of a request
        "Can you help me with these tasks?\n1. write a cover letter\n2. plan my week",  # no choosing asked
        "See the results [1] and the discussion [2] of the paper.",  # citations
        "What is the answer? I think a) it rains b) it snows",  # the markers do not follow the question
    ],
)
def test_the_same_markers_elsewhere_are_not_options(text: str) -> None:
    from r42.scoring.trained import answer_options, options_on_lines

    assert answer_options(text) == [] and options_on_lines(text) == text


def test_a_question_scores_alike_with_options_inline_or_on_lines(scorer: TrainedScorer) -> None:
    from r42.scoring.trained import options_on_lines

    inline = "Which gas do plants take in from the air to make food? (A) oxygen (B) carbon dioxide (C) nitrogen"
    on_lines = "Which gas do plants take in from the air to make food?\nA. oxygen\nB. carbon dioxide\nC. nitrogen"
    assert options_on_lines(inline) == on_lines
    assert options_on_lines("hello there") == "hello there"
    assert scorer.estimate(_prompt(inline)).complexity == pytest.approx(scorer.estimate(_prompt(on_lines)).complexity)


def test_labelled_parts_are_counted_apart_from_the_numbers(scorer: TrainedScorer) -> None:
    import math

    from r42.scoring.trained import PART_LABEL

    def parts(text: str) -> int:
        return len(PART_LABEL.findall(text))

    assert parts("Scenario 1 | I kept the wallet I found. Scenario 2 | I returned it.") == 2
    assert parts("Statement 1 | Every group is abelian. Statement 2 | Z is cyclic.") == 2
    assert parts("Plan the trip:\n1. book the train\n2. find a hotel\n3) pack") == 3
    assert parts("I. the premise\nII. the conclusion") == 2
    # numbers that are quantities, years or options are not parts
    assert parts("In 2020 the town had 5 cases and 12 doctors.") == 0
    assert parts("Which is larger?\nA. 12\nB. 7") == 0
    text = "Statement 1 | A. Statement 2 | B."
    stats = text_statistics(text, HeuristicScorer().estimate(_prompt(text)))
    assert stats["log_parts"] == pytest.approx(math.log1p(2))
    assert "log_parts" in scorer._features  # the shipped weights read it


def test_a_writing_request_scores_below_code_and_maths(scorer: TrainedScorer) -> None:
    # In Arena-bench, small models answer the open requests for a piece of writing far more often than the
    # other open requests; the `writing` input carries that (1 for a task that asks for a piece of writing).
    def writing(text: str) -> float:
        return statistics_and_kind(text, HeuristicScorer().estimate(_prompt(text)))[0]["writing"]

    letters = [
        "Write a persuasive email to my landlord asking to fix the heating before winter.",
        "Write a short story about a robot who learns to paint, about 500 words, with a twist ending.",
        "Compose a sonnet about the sea in the style of Shakespeare, with a volta in the ninth line.",
        # the heuristic reads this one as code ("library"): the phrase "write ... a speech" marks it
        "Write a speech for the retirement party of a colleague who worked 30 years in the city library.",
    ]
    others = [
        "Write a Python function that merges two sorted lists into one sorted list, without using sort().",
        "A train travels 240 km in 3 hours and then 180 km in 2 hours. What is its average speed over the trip?",
    ]
    assert [writing(t) for t in letters] == [1.0, 1.0, 1.0, 1.0]
    assert [writing(t) for t in others] == [0.0, 0.0]
    assert writing("Write a short poem about the sea.") == 0.0  # small talk: one short line
    assert "writing" in scorer._features  # the shipped weights read it
    # the score says so, also for a follow-up that continues a writing request
    assert all(scorer.estimate(_prompt(t)).signals.get("writing") is True for t in letters)
    assert not any("writing" in scorer.estimate(_prompt(t)).signals for t in others)
    follow_up = prompt_of(
        [
            {"role": "user", "content": letters[0]},
            {"role": "assistant", "content": "Dear Ms Smith, ..."},
            {"role": "user", "content": "make it shorter"},
        ]
    )
    signals = scorer.estimate(follow_up).signals
    assert signals["writing"] is True and signals["kind_from"] == "an earlier turn"
    letter_scores = [scorer.estimate(_prompt(t)).complexity for t in letters]
    lowest_other = min(scorer.estimate(_prompt(t)).complexity for t in others)
    # every one below, and clearly on average: before `writing` the sonnet scored 0.381 and the code
    # request 0.377; with the stop 28 weights the 500-word story with a twist (0.316) is 0.09 below the
    # code request (0.404), the other three 0.15-0.19 below
    assert max(letter_scores) < lowest_other
    assert sum(letter_scores) / len(letter_scores) + 0.1 < lowest_other


def test_an_editing_request_scores_below_code_writing(scorer: TrainedScorer) -> None:
    # Open requests (kind `task`) have within-source weights of their own: what makes one benchmark item
    # harder than another (digits, length of the options, ...) is not what makes an open request hard.
    # With the shared weights, rewriting one sentence scored 0.452 and summarising a paragraph 0.413,
    # above writing a palindrome check (0.385).
    edits = [
        "Rewrite this sentence to sound more formal: hey, can u send me the report asap?",
        "Summarize this paragraph: The meeting was moved from Tuesday to Thursday because the projector broke, "
        "and the team agreed to order a new one.",
    ]
    code = "Write a Python function that checks whether a string is a palindrome."
    assert [scorer.estimate(_prompt(t)).signals["kind"] for t in edits] == ["task", "task"]
    assert "task" in scorer._kind_coef and scorer._kind_coef["task"] != scorer._dense_coef
    assert max(scorer.estimate(_prompt(t)).complexity for t in edits) < scorer.estimate(_prompt(code)).complexity
