"""How the stated result is found in an answer section: every rule with a case where it must fire and
one where it must not, and the locale rules for numbers."""

from __future__ import annotations

import pytest

from datakit.answer_extract import find_answer, plain_number


@pytest.mark.parametrize(
    ("answer", "text", "found_by"),
    [
        # boxes: the last one wins; an empty box is no statement
        ("First I got \\boxed{3}. Wait, I forgot the last term, so \\boxed{4}.", "4", "boxed"),
        ("\\boxed{} Hmm, let me restate: the answer is 5.", "5", "phrase"),
        # the last explicit statement by position, box or phrase
        ("Part one is \\boxed{200}, part two \\boxed{255}.\n\nThe final answer is $10,455$.", "10,455", "phrase"),
        ("The answer is 7, as checked below.\n\nSo \\boxed{8}", "8", "boxed"),
        # a phrase whose result is boxed is the box
        ("The final answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", "boxed"),
        # a phrase stating a sentence gives the sentence's result
        ("Final Answer: The volume of the box is 120", "120", "phrase"),
        ("**Final Answer:** The number of apples Tom has is $\\frac{7}{2}$.", "\\frac{7}{2}", "phrase"),
        ("Final Answer: $x^2 + 1$ is the minimal polynomial", "x^2 + 1", "phrase"),
        # an empty box inside the phrase is skipped
        ("Thus the final answer is \\boxed{}\\textbf{60} square meters.", "60 square meters", "phrase"),
        ("The final answer is \\boxed{} 20", "20", "phrase"),
        # unboxed: the last math span of the final paragraph
        ("Answer $9$", "9", "span"),
        ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5", "span"),
        ("$$f(y) = y$$", "f(y) = y", "span"),
        ("We get \\(a = 3\\).\n\nThis satisfies every condition.", "a = 3", "span"),
        # ... else its last number, when it stands alone
        ("The total cost is 45 dollars.", "45 dollars", "number"),  # with its unit: compared as a quantity
        ("Die Antwort ist 0,5.", "0,5", "phrase"),  # answer phrases in other languages too
    ],
)
def test_a_rule_that_must_fire(answer: str, text: str, found_by: str) -> None:
    statement = find_answer(answer)
    assert statement is not None and (statement.text, statement.found_by) == (text, found_by)


@pytest.mark.parametrize(
    "answer",
    [
        "The answer is within \\boxed{}.",  # points at an empty box
        "The answer is not 5.",  # denies
        "The answer is given below.",  # points elsewhere
        "So it is either $3$ or $4$.",  # hedges between spans
        "I'm not sure, maybe 12.",  # hedges a number
        "It is $7$.\n\nBut this might be wrong.",  # revokes it afterwards
        "So x equals \\frac{3}{4}",  # numbers of a formula written outside math delimiters
        "So x = 3 + 4",  # a number inside a formula
        "The result: 2^10",
        "\\boxed{\\frac{1}{}",  # a box that never closes, and its inside
        "I could not solve this problem.",
        "",
    ],
)
def test_a_rule_that_must_not_fire(answer: str) -> None:
    assert find_answer(answer) is None


def test_boxes_stated_together_are_one_answer_and_separate_ones_are_not() -> None:
    together = find_answer("The pairs are $\\boxed{(2,2)}$ and $\\boxed{(6,2)}$.")
    assert together is not None and together.parts == ("(2,2)", "(6,2)")
    listed = find_answer("Solutions:\n- \\boxed{3}\n- \\boxed{-3}")
    assert listed is not None and listed.parts == ("3", "-3")
    spans = find_answer("Hence $x=2$ or $x=3$.")
    assert spans is not None and spans.parts == ("x=2", "x=3") and spans.found_by == "span"
    corrected = find_answer("\\boxed{3}.\n\nOn reflection: \\boxed{4}")  # a restatement, not a list
    assert corrected is not None and (corrected.text, corrected.parts) == ("4", ())
    sentences = find_answer("First \\boxed{200}. Then \\boxed{255}.")
    assert sentences is not None and sentences.parts == ()
    repeated = find_answer("\\boxed{4}, \\boxed{4}")
    assert repeated is not None and repeated.parts == ()


def test_without_fallback_only_boxes_and_phrases_count() -> None:
    assert find_answer("Answer $9$", fallback=False) is None
    assert find_answer("Answer: $9$", fallback=False).found_by == "phrase"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "language", "number"),
    [
        ("1,000", "en", "1000"),
        ("12,345.5", "en", "12345.5"),
        ("1 000", "en", "1000"),
        ("1\\,000", "fr", "1000"),
        ("1{,}000", "en", "1000"),
        ("−2", "en", "-2"),
        ("$84$.", "en", "84"),
        ("0,5", "de", "0.5"),
        ("0{,}5", "de", "0.5"),
        ("1.000", "de", "1000"),
        ("1.000,25", "de", "1000.25"),
        ("1 000,5", "fr", "1000.5"),
        ("-3,5", "ru", "-3.5"),
        ("1000,99", "pt-BR", "1000.99"),
        ("1.000", "en", "1.000"),  # a decimal point in English
        # left to math-verify: not one number in this language
        ("0,111", "en", None),  # a leading 0 groups no thousands
        ("3,5", "en", None),  # two solutions?
        ("1000,99", "en", None),
        ("1,00,000", "en", None),
        ("(2,3)", "de", None),
        ("x", "en", None),
    ],
)
def test_numbers_follow_the_answer_language(text: str, language: str, number: str | None) -> None:
    assert plain_number(text, language) == number


@pytest.mark.parametrize(
    "answer",
    [
        "The answer is " + "1" * 20000,
        "\\boxed{" * 5000,
        "the answer is " * 5000,
        "\\boxed{1}" + "\n " * 5000 + "x \\boxed{2}",  # a gap between boxes that once backtracked exponentially
        "1 " * 20000,
        "1, " * 20000,
        "$a$ " * 10000,
        "1 cm " * 10000,
        "\\boxed{1} " * 5000,
        "1\u202f" * 10000,
        "about 1 " * 8000,
        "```" * 5000,
        "$" + " " * 20000 + "5 m$",
        "a but " * 8000,
    ],
    ids=["digits", "open-boxes", "phrases", "gaps", "numbers", "list", "spans", "amounts", "boxes", "thin-spaces", "asides", "fences", "space-span", "clauses"],
)
def test_extraction_reads_adversarial_answers_in_one_pass(answer: str) -> None:
    """find_answer runs in the filter's own process, outside the pool's timeout: every pattern is linear
    (a quadratic one takes minutes on these; each takes well under a second)."""
    from datakit.math_check import quick_verdict

    statement = find_answer(answer)
    assert statement is None or statement.text
    check = quick_verdict(answer, statement, "5")
    assert check is None or check.verdict != "correct"
