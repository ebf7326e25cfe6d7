"""Rule verifiers on answers written the way small reasoning models write them."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from datakit.answer_extract import extract_final_answer
from datakit.math_check import check_math
from datakit.pool import Outcome, map_with_timeout
from datakit.verify import Check, check_choice, check_exact, extract_choice, normalize_text

# A power tower: parsing is instant, but verify() asks sympy for 9**(9**9), a 370-million-digit
# integer, on its way to 9**(that). With math-verify's own alarm off it runs for hours.
POWER_TOWER = "So the number is astronomically large: $\\boxed{9^{9^{9^{9}}}}$"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("So the total is 84 muffins. \\boxed{84}", "84"),
        ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("First I got \\boxed{3}. Wait, I forgot the last term, so \\boxed{4}.", "4"),
        ("Thus $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("The solutions form the set $\\boxed{{a,b}}$", "{a,b}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("The perimeter is \\fbox{12} cm.", "12"),
        ("\\boxed{} Hmm, let me restate: the answer is 5.", "5"),
        ("Final Answer: The final answer is $84$. I hope it is correct.", "84"),
        ("She needs 7 more cups.\n\n**Answer:** 7", "7"),
        ("Therefore, the answer is **\\(2\\sqrt{3}\\)**. Hope this helps!", "2\\sqrt{3}"),
        ("I could not solve this problem.", None),
        ("\\boxed{\\frac{1}{2}", None),
    ],
)
def test_extract_final_answer(answer: str, expected: str | None) -> None:
    assert extract_final_answer(answer) == expected


@pytest.mark.parametrize(
    ("answer", "reference", "verdict"),
    [
        ("So the total is 84 muffins. \\boxed{84}", "84", "correct"),
        ("The answer is $\\frac{1}{2}$.", "0.5", "correct"),
        ("\\boxed{0.5}", "\\frac{1}{2}", "correct"),
        ("Dividing, we get $\\boxed{1/2}$.", "\\frac{1}{2}", "correct"),
        ("The area is $\\boxed{49\\pi}$ square units.", "49\\pi", "correct"),
        ("So the area is \\boxed{49π}.", "49\\pi", "correct"),
        ("The exact value is \\boxed{49\\pi}, about 153.94.", "153.94", "wrong"),
        ("\\boxed{84.0}", "84", "correct"),
        ("\\boxed{24.5}", "\\frac{49}{2}", "correct"),
        ("\\boxed{\\dfrac{\\sqrt{3}}{2}}", "\\frac{\\sqrt 3}{2}", "correct"),
        ("She earned \\$20 in total. The answer is \\$20.", "20", "correct"),
        ("The answer is $20.", "20", "correct"),
        ("The answer is 20 dollars.", "20", "correct"),
        ("Each box holds \\boxed{12 \\text{ eggs}}", "12", "correct"),
        ("The answer is 5 pi.", "5", "wrong"),  # "pi" is not read as a unit word
        ("The discount is \\boxed{20\\%}.", "20", "correct"),  # math-verify: 20% matches 20 ...
        ("The discount is \\boxed{20\\%}.", "0.2", "correct"),  # ... and 0.2
        ("The discount is \\boxed{0.2}.", "20", "wrong"),
        ("\\boxed{1,000}", "1000", "correct"),
        ("\\boxed{\\{3, 1, 2\\}}", "\\{1,2,3\\}", "correct"),  # sets are unordered
        ("The roots are \\boxed{2, 3}", "3, 2", "correct"),
        ("\\boxed{(1, 2]}", "(1,2]", "correct"),
        ("\\boxed{(1, 2)}", "(1,2]", "wrong"),  # interval ends matter
        ("\\boxed{x = 5}", "5", "correct"),
        ("So the total is \\boxed{78}", "84", "wrong"),
        ("\\boxed{???}", "84", "wrong"),
        ("I am not sure how to finish this.", "84", "no_answer"),
        ("\\boxed{84}", "\\frac{1}{", "bad_reference"),
        ("\\boxed{84}", "", "bad_reference"),
    ],
)
def test_check_math(answer: str, reference: str, verdict: str) -> None:
    assert check_math(answer, reference).verdict == verdict


def test_check_math_reasons_name_what_was_compared() -> None:
    assert check_math("\\boxed{78}", "84") == Check("wrong", "78", "boxed 78, expected 84", "boxed")
    assert check_math("So the total is $84$.", "84") == Check("correct", "84", "span 84, matches 84", "span")
    no_answer = check_math("No idea.", "84")
    assert no_answer.extracted is None and no_answer.found_by is None
    assert no_answer.reason == "no \\boxed{}, answer phrase, math span or final number in the answer"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The correct choice is $\\boxed{C}$.", "C"),
        ("$\\boxed{\\text{(B)}}$", "B"),
        ("Comparing the options, the answer is (C).", "C"),
        ("Answer: C", "C"),
        ("**Answer:** D", "D"),
        ("So the correct option is **(E)**.", "E"),
        ("Only one option survives:\n\n**B**", "B"),
        ("Checking each option in turn.\nC) 42", "C"),
        ("Everything else is ruled out.\n(D)", "D"),
        ("A", "A"),
        ("The answer is (A). Wait, no, option A ignores friction.\n\nAnswer: D", "D"),
        ("A good way to see this is to test B first. The answer is B.", "B"),
        ("A good approach is to eliminate options.", None),
        ("Answer: a", None),
    ],
)
def test_extract_choice(answer: str, expected: str | None) -> None:
    assert extract_choice(answer) == expected


# R1-style final answers to a lettered question (reference B): kept when they state B, dropped when they state
# another letter, and never kept for naming every letter (a hedge, or the options restated as a list).
R1_CHOICE_ANSWERS = [
    ("**Final Answer**\n\\[\n\\boxed{B}\n\\]", "correct"),
    ("The correct answer is **B) Helium**.", "correct"),
    ("Therefore, the answer is option B: helium has the lowest boiling point.", "correct"),
    ("The answer is B, as A ignores the Pauli exclusion principle.", "correct"),
    ("The answer is B, I think.", "correct"),
    ("Answer: **B**", "correct"),
    ("\\boxed{A}\n\nWait, option A double-counts the spin states. The answer is \\boxed{B}", "correct"),
    ("The answer is \\boxed{D}. Option B would need a second photon.", "wrong"),
    ("So the correct option is (C) 3/2.", "wrong"),
    ("The answer is (A) or (B).", "no_answer"),
    ("The answer is A, B, C or D.", "no_answer"),
    ("\\boxed{A} \\boxed{B} \\boxed{C} \\boxed{D}", "no_answer"),
    ("The answer is $\\boxed{A}$ or $\\boxed{B}$.", "no_answer"),
    ("\\boxed{B or C}", "no_answer"),
    ("\\boxed{ABCD}", "no_answer"),
    ("The options were:\nA) Neon\nB) Helium\nC) Argon\nD) Xenon", "no_answer"),
    ("A\nB\nC\nD", "no_answer"),
]


@pytest.mark.parametrize(("answer", "verdict"), R1_CHOICE_ANSWERS)
def test_choice_answers_as_r1_writes_them(answer: str, verdict: str) -> None:
    assert check_choice(answer, "B").verdict == verdict


def test_a_hedge_says_which_options_it_names() -> None:
    hedge = check_choice("The answer is (A) or (B).", "A")
    assert hedge == Check("no_answer", None, "the final statement names several options (A, B): a hedge")


def test_extract_choice_respects_the_letter_set() -> None:
    assert extract_choice("The answer is (E).", letters="ABCD") is None


@pytest.mark.parametrize(
    ("answer", "reference", "verdict"),
    [
        ("The answer is (C).", "C", "correct"),
        ("The answer is (C).", "(C)", "correct"),
        ("\\boxed{B}", "C", "wrong"),
        ("A good question; I am unsure.", "C", "no_answer"),
        ("\\boxed{B}", "42", "bad_reference"),
    ],
)
def test_check_choice(answer: str, reference: str, verdict: str) -> None:
    assert check_choice(answer, reference).verdict == verdict


def test_normalize_text() -> None:
    assert normalize_text('  "The   Eiffel\nTower."  ') == "the eiffel tower"
    assert normalize_text("**Paris**") == "paris"
    assert normalize_text("$\\text{Mercury}$") == "mercury"
    assert normalize_text("Ünïcode STRASSE") == normalize_text("ünïcode straße")


@pytest.mark.parametrize(
    ("answer", "reference", "verdict"),
    [
        ("The capital of France is Paris. \\boxed{\\text{Paris}}", "Paris", "correct"),
        ("The answer is **Paris**.", "paris", "correct"),
        ("  Paris. ", '"Paris"', "correct"),
        ("The capital is Lyon.", "Paris", "wrong"),
        ("", "Paris", "no_answer"),
        ("Paris", "  ", "bad_reference"),
    ],
)
def test_check_exact(answer: str, reference: str, verdict: str) -> None:
    assert check_exact(answer, reference).verdict == verdict


def _check_math_pair(pair: tuple[str, str]) -> Check:
    return check_math(*pair)


def test_power_tower_really_outlives_the_timeout() -> None:
    """Run unbounded in a child process; the join timeout keeps this test from hanging."""
    child = multiprocessing.Process(target=check_math, args=(POWER_TOWER, "84"))
    child.start()
    child.join(timeout=4)
    still_running = child.is_alive()
    child.kill()
    child.join()
    assert still_running


def test_pool_turns_a_hanging_check_into_a_timeout() -> None:
    items = [
        ("So the total is 84 muffins. \\boxed{84}", "84"),
        (POWER_TOWER, "84"),
        ("The answer is $\\frac{1}{2}$.", "0.5"),
        ("\\boxed{49π}", "49\\pi"),
    ]
    outcomes = map_with_timeout(_check_math_pair, items, timeout_s=2.0, workers=2)
    assert outcomes[1] == Outcome("timeout", reason="used more than 2 CPU seconds")
    assert [outcomes[i].value.verdict for i in (0, 2, 3)] == ["correct"] * 3
    assert multiprocessing.active_children() == []


def test_the_filter_records_how_each_answer_was_found_and_require_boxed_re_decides_from_scores() -> None:
    import polars as pl

    from datakit.filters import make_filter

    answers = ["So \\boxed{12}.", "The answer is 12.", "Thus we get $12$.", "In total, 12 eggs.", "No idea.", "Die Summe ist \\boxed{0,5}."]
    rows = pl.DataFrame({
        "verifier": ["math"] * 6, "answer": answers, "reference": ["12"] * 5 + ["\\frac{1}{2}"], "language": ["en"] * 5 + ["de"],
    })
    lenient = make_filter("correctness", {"timeout_s": 5, "workers": 1}, "t")
    scores = lenient.score(rows)
    assert scores["correct_extracted_from"].to_list() == ["boxed", "phrase", "span", "number", None, "boxed"]
    assert scores["correct_verdict"].to_list() == ["correct"] * 4 + ["no_answer", "correct"]
    frame = pl.concat([rows, scores], how="horizontal")
    assert [r is None for r in lenient.keep(frame).to_list()] == [True, True, True, True, False, True]
    strict = make_filter("correctness", {"timeout_s": 5, "workers": 1, "require_boxed": True}, "t")
    assert strict.score_identity() == lenient.score_identity()  # a threshold: stored scores are reused
    reasons = strict.keep(frame).to_list()
    assert [r is None for r in reasons] == [True, False, False, False, False, True]
    assert reasons[1] == "not_boxed: math: phrase 12, matches 12 (require_boxed)"
    assert reasons[4].startswith("no_answer: ")


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("\\boxed{5}\n\nWait, that's wrong.", "5"),  # revoked, nothing after
        ("\\boxed{5}\n\nActually, let me recompute: it should be 6.", "5"),  # revoked, a new result
        ("\\boxed{1}\\boxed{2}\\boxed{3}\\boxed{4}", "2"),  # box spam is one answer: all of them
        ("The answer is one of 1, 2, 3, 4, 5.", "5"),
        ("Answer: 5 or 6", "5"),
        ("\\boxed{5 \\text{ or } 6}", "5"),
        ("\\boxed{\\pm 5}", "5"),
        ("\\boxed{x}", "5"),
        ("\\boxed{3.1416}", "\\pi"),  # a rounded decimal for an exact irrational
        ("\\boxed{\\frac{1}{2006!}}", "\\frac{1}{2004!}"),  # math-verify's absolute tolerance calls these equal
        ("\\boxed{2^{-98}}", "2^{-99}"),
        ("\\boxed{1, 3, 5, \\ldots}", "1, 3, 5"),
        ("The rod is 120 m long.", "120\\text{ cm}"),  # same number, other unit
        ("El rendimiento fue de 1,57 %.", "157\\%"),
        ("So the minimum value is attained at $x = -5$.", "-5"),  # a condition, not the result
        ("We are asked to find $n$ where $n = 42$ is given... I could not finish.", "42"),
        ("So the answer is \\boxed{12}.\n\nLet me double-check the last digit... Final answer: \\boxed{1", "12"),
        ("It is neither even nor odd.", "even"),
        ("\\boxed{dynamo}", "Monday"),  # letters as symbols would make these a product of the same letters
    ],
)
def test_no_attack_or_slip_is_accepted(answer: str, reference: str) -> None:
    language = "es" if answer.startswith("El ") else "en"
    assert check_math(answer, reference, language).verdict != "correct"


@pytest.mark.parametrize(
    ("answer", "reference", "language"),
    [
        ("Answer: (B) 42", "42", "en"),
        ("#### 42", "42", "en"),
        ("最终答案：\\boxed{42}", "42", "zh"),
        ("答案是 42", "42", "zh"),
        ("\\boxed{0.\\overline{3}}", "\\frac13", "en"),
        ("\\boxed{2\\frac{1}{2}}", "\\frac{5}{2}", "en"),
        ("The probability is 3/4.", "\\frac34", "en"),
        ("The total is \\$1,250.", "1250", "en"),
        ("El total es 1.250 €.", "1250", "es"),
        ("Das Ergebnis ist 1,5.", "1.5", "de"),
        ("Il faut donc 12\u202f500 litres.", "12500", "fr"),
        ("The rod is $1.2\\text{ m}$ long.", "120\\text{ cm}", "en"),
        ("It takes 2 hours 30 minutes.", "2.5\\text{ hours}", "en"),
        ("The angle is $90^\\circ$.", "\\frac{\\pi}{2}", "en"),
        ("We find that $x \\lt 3$.", "x < 3", "en"),
        ("Therefore,\n$$a_{n} = 3 \\cdot 2^{n-1} - 1$$\nfor all $n \\ge 1$.", "a_n=3\\cdot 2^{n-1}-1", "en"),
        ("We need $x > 2$. Solving, the answer is $x = 7$, and indeed $7 > 2$.", "7", "en"),
        ("The answer is $\\frac{1}{2}\\cdot 2^{3}$, i.e. $4$.", "4", "en"),
        ("So yes, such a coloring exists.", "Yes", "en"),
        ("Either $a = 1$ or $a = -1$; both satisfy the condition, so $a = \\pm 1$.", "\\pm 1", "en"),
    ],
)
def test_right_answers_written_every_way_are_accepted(answer: str, reference: str, language: str) -> None:
    assert check_math(answer, reference, language).verdict == "correct"


def test_samples_stating_the_same_box_share_a_check_only_when_nothing_else_differs() -> None:
    import polars as pl

    from datakit.filters import make_filter

    answers = [
        "So \\boxed{\\frac{90}{2}}.",
        "Thus the answer is $\\boxed{\\frac{90}{2}}$.",  # the same statement elsewhere: one check for both
        "So \\boxed{\\frac{90}{2}}. In other words, the minimum number of moves is $44$.",  # restated otherwise
    ]
    rows = pl.DataFrame({"verifier": ["math"] * 3, "answer": answers, "reference": ["45"] * 3, "language": ["en"] * 3})
    scores = make_filter("correctness", {"timeout_s": 30, "workers": 1}, "t").score(rows)
    assert scores["correct_verdict"].to_list() == ["correct", "correct", "wrong"]
    assert "restates it as 44" in scores["correct_detail"][2]
