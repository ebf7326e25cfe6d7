"""Rule verifiers for the correctness filter: is a completion's final answer the reference answer?

Every `answer` argument here is the final answer section of a completion, the text after
`</think>` (see `datakit.reasoning.split_completion`), never the chain of thought: a model tries
and discards candidate answers while it thinks, and grading those would reward the wrong ones.
Within the answer the last explicit statement wins, since models restate and correct themselves.

Math answers are compared with math-verify, with its signal-based timeouts disabled (they only
work in the main thread). These checks can therefore run without bound on a pathological answer;
callers run them through `datakit.pool.map_with_timeout`, which kills an item that overruns.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from datakit.answer_extract import BOX_OPEN, DECIMAL_COMMA, TEXT_COMMAND, Statement, braced, extract_final_answer, find_answer, plain_number
from datakit.units import join_digit_groups, quantity

# math-verify warns once per process that its timeouts are off; here that is by design (see above).
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).setLevel(logging.ERROR)

_MATH_EXTRACTION = (LatexExtractionConfig(), ExprExtractionConfig())
# A number with plain-word units ("20 dollars", "$5 per hour", "12 square meters", "5 cm^2"). Connectives
# are not units: "3 or 4" is two answers, "5 pi" a multiple of pi.
_UNIT_WORD = r"(?!(?:pi|or|and|not|but|maybe|to|of|if|is|are|plus|minus|times|than|then)\b)[A-Za-z]{2,}(?:\^\d)?"
_NUMBER_WITH_WORDS = re.compile(rf"\\?\$?\s*([-+]?\d[\d,.]*(?:\\?%)?)\s+{_UNIT_WORD}(?:\s+{_UNIT_WORD})*\s*\.?")
_EDGE_PUNCTUATION = " \t\n\"'`“”‘’.,;:!?*_$"
# A reference made of words ("Monday", "no solution", "\\text{East}"): math-verify would read it as a
# product of letter symbols, so "Monday" would equal "dynamo"; it is compared as text.
_WORDS = re.compile(r"[^\W\d_]+(?:[ '\-][^\W\d_]+)*")
_MATH_WORDS = frozenset("sin cos tan cot sec csc log ln exp sqrt pi max min gcd lcm det mod arcsin arccos arctan inf".split())
# One-variable inequalities, read as the interval they describe: "x \\geq 5" is [5, oo).
_LESS = r"<=|\\leqslant|\\leq?(?![a-zA-Z])|\\lt(?![a-zA-Z])|≤|<"
_GREATER = r">=|\\geqslant|\\geq?(?![a-zA-Z])|\\gt(?![a-zA-Z])|≥|>"
# An elided sequence ("1, 3, 5, \\ldots, 2n-1") is no set math-verify can compare: it is compared as text.
_ELLIPSIS = re.compile(r"\\[lc]?dots|\.\.\.|…")
_VAR = r"[a-zA-Z]"


@dataclass(frozen=True)
class Check:
    """A verifier's verdict on one answer, with what it graded and a one-line explanation."""

    verdict: str  # "correct" | "wrong" | "no_answer" | "bad_reference"
    extracted: str | None
    reason: str
    found_by: str | None = None  # math: how the answer was found, boxed | phrase | span | number


def check_math(answer: str, reference: str, language: str = "en") -> Check:
    """Grade a math answer by value, not spelling, through math-verify (reference as gold).

    The stated result is found as `datakit.answer_extract.find_answer` says (boxes, answer phrases,
    else the last math span or number), numbers are read in the answer's `language`. 1/2 == 0.5 ==
    \\frac{1}{2}, 49\\pi == 49π, 84 == 84.0, \\$20 == "20 dollars" == 20, x \\geq 5 == [5, \\infty),
    f(y) = y == f(x) = x, and sets are unordered. Several boxes stated together are one answer.
    A percent sign is decoration to math-verify: 20\\% matches both 20 and 0.2. A reference of words is
    compared as normalised text; one that does not parse falls back to that comparison."""
    quick = quick_math_check(answer, reference, language)
    if quick is not None:
        return quick
    statement = find_answer(answer)
    assert statement is not None  # quick_math_check answers no_answer itself
    stated = stated_answer(statement)
    degrees = quantity(stated)
    if degrees and degrees[1] == "angle" and "\\pi" in reference:  # 90^\circ against \frac{\pi}{2}
        stated = f"{degrees[0] * 180 / math.pi:g} \\cdot \\frac{{\\pi}}{{180}}"
    gold = _parse_math(reference, _reference_language(reference, language))
    if not gold:
        return _compare_text(stated, reference, statement, mismatch="bad_reference")
    if _ELLIPSIS.search(stated + reference):
        same = _compact(stated) == _compact(reference)
        return Check("correct" if same else "wrong", stated, f"{statement.found_by} {stated!r}, {'equal' if same else 'unequal'} as written to {reference!r} (an elided list)", statement.found_by)
    predicted = _parse_math(stated, language)
    if not predicted:
        return Check("wrong", stated, f"could not parse {statement.found_by} answer {stated!r}", statement.found_by)
    if verify(gold, predicted, timeout_seconds=None) and _exact_values_agree(gold[0], predicted[0]):
        return Check("correct", stated, f"{statement.found_by} {stated}, matches {reference}", statement.found_by)
    return Check("wrong", stated, f"{statement.found_by} {stated}, expected {reference}", statement.found_by)


def quick_math_check(answer: str, reference: str | None, language: str = "en") -> Check | None:
    """The cases `check_math` decides without math-verify: no reference, no stated answer, and two plain
    numbers (compared by value). None: math-verify must decide. Cheap, so it runs in-process."""
    if reference is None or not reference.strip():
        return Check("bad_reference", None, f"no reference ({reference!r})")
    statement = find_answer(answer)
    if _is_words(reference):
        return _check_words(answer, statement, reference)
    if statement is None:
        return Check("no_answer", None, "no \\boxed{}, answer phrase, math span or final number in the answer")
    stated = stated_answer(statement)
    measured = quantity(stated), quantity(reference)
    if measured[0] and measured[1]:  # both carry units: 1.2 m is 120 cm, 120 m is not
        same = measured[0][1] == measured[1][1] and math.isclose(measured[0][0], measured[1][0], rel_tol=1e-6)
        return _number_check(same, stated, reference, statement, "as quantities")
    a = plain_number(_drop_unit_words(stated), language)
    b = plain_number(_drop_unit_words(reference), _reference_language(reference, language))
    if a is None or b is None:
        return None
    return _number_check(math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12), stated, reference, statement, "")


def _number_check(same: bool, stated: str, reference: str, statement: Statement, how: str) -> Check:
    verdict, relation = ("correct", "matches") if same else ("wrong", "expected")
    return Check(verdict, stated, f"{statement.found_by} {stated}, {relation} {reference}{' ' + how if how else ''}", statement.found_by)


def _reference_language(reference: str, language: str) -> str:
    """How to read a reference's numbers: datasets write references with a decimal point, so the row's
    language applies only to a reference with a comma and no point ("0,5" in a German row)."""
    return language if "," in reference and "." not in reference and language.split("-")[0] in DECIMAL_COMMA else "en"


def stated_answer(statement: Statement) -> str:
    """What is graded: the statement's text, or its parts as one list when several were stated together."""
    return ", ".join(statement.parts) if statement.parts else statement.text


def same_answer(first: str, second: str) -> bool:
    """Whether two extracted answers state the same value (math-verify), for grouping votes: "2",
    "x=2" and "\\frac{4}{2}" are one answer. Text that does not parse as math compares normalised.
    Unbounded like every check here: run it under `datakit.pool.map_with_timeout`."""
    parsed = [_parse_math(text) for text in (first, second)]
    if not all(parsed):
        return normalize_text(first) == normalize_text(second)
    return bool(verify(parsed[0], parsed[1], timeout_seconds=None) or verify(parsed[1], parsed[0], timeout_seconds=None))


def extract_choice(answer: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """The option letter of the last explicit statement: a boxed letter, "the answer is (C)",
    "Answer: C", a bold **C**, or a last line that opens with "C)" or is just "C".

    Letters are matched case-sensitively and only in those positions, so neither the article in
    "A good way to see this..." nor "answer: a" (a variable) is read as an option."""
    statements = [*_boxed_choices(answer, letters), *_phrase_choices(answer, letters)]
    return max(statements)[1] if statements else None


def check_choice(answer: str, reference: str, letters: str = "ABCDEFGHIJ") -> Check:
    """Grade a multiple-choice answer against a reference letter such as "C" or "(C)"."""
    expected = _bare_option(reference)
    if len(expected) != 1 or expected not in letters:
        return Check("bad_reference", None, f"reference {reference!r} is not one of {letters}")
    extracted = extract_choice(answer, letters)
    if extracted is None:
        return Check("no_answer", None, "no option letter stated in the answer")
    verdict = "correct" if extracted == expected else "wrong"
    return Check(verdict, extracted, f"extracted {extracted}, expected {expected}")


def normalize_text(text: str) -> str:
    """Fold away formatting that does not change a short text answer: case, spacing, \\text{},
    markdown bold, surrounding quotes and punctuation (a final period included)."""
    text = TEXT_COMMAND.sub(r"\1", text).replace("**", "")
    text = " ".join(text.split()).strip(_EDGE_PUNCTUATION)
    return text.casefold()


def check_exact(answer: str, reference: str) -> Check:
    """Grade a short text answer by normalised string equality; the whole answer is the
    candidate when it has no box and no "the answer is"."""
    expected = normalize_text(reference)
    if not expected:
        return Check("bad_reference", None, f"reference {reference!r} is empty once normalised")
    extracted = extract_final_answer(answer) or answer.strip()
    if not normalize_text(extracted):
        return Check("no_answer", None, "the answer is empty")
    verdict = "correct" if normalize_text(extracted) == expected else "wrong"
    return Check(verdict, extracted, f"extracted {extracted!r}, expected {reference!r}")


def _drop_unit_words(extracted: str) -> str:
    """"20 dollars" -> "20": math-verify drops units in \\text{} but multiplies bare words in
    as symbols (20*a*d*l*l*o*r*s), which would make a right number wrong."""
    match = _NUMBER_WITH_WORDS.fullmatch(join_digit_groups(extracted.strip()))
    return match.group(1) if match else extracted


def _parse_math(text: str, language: str = "en") -> list:
    """Parse a stated answer or a reference ("84", "\\frac{1}{2}", "$20", "x \\geq 5", "1 000") for math-verify.

    Numbers are read in `language`, unit words dropped, one-variable inequalities become intervals and
    the argument of a function definition is renamed, so f(y) = y is f(x) = x. No string fallback: an
    empty list means unparseable; no timeout (see the module doc)."""
    text = _as_interval(_plain_numbers(_repeating_decimals(_drop_unit_words(text.strip())), language))
    in_math = len(text) > 1 and text.startswith("$") and text.endswith("$")
    if not in_math and not BOX_OPEN.search(text):
        text = f"\\boxed{{{text}}}"
    parsed = parse(text, _MATH_EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)
    return [_rename_function_argument(value) for value in parsed]


def _repeating_decimals(text: str) -> str:
    """"0.\\overline{3}" -> "\\frac{1}{3}", "1.2\\overline{45}" -> "\\frac{137}{110}": math-verify reads the bar as a symbol."""

    def as_fraction(match: re.Match[str]) -> str:
        whole, fixed, repeated = match[1] or "0", match[2], match[3]
        value = Fraction(int(whole + fixed + repeated) - int(whole + fixed), int("9" * len(repeated) + "0" * len(fixed)))
        return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"

    return re.sub(r"(\d*)\.(\d*)\\overline\{(\d+)\}", as_fraction, text)


def _plain_numbers(text: str, language: str) -> str:
    """A whole-answer number or percentage, or the right side of "x = number", as a plain decimal in `language`."""
    percent = re.fullmatch(r"(.+?)(?:\s|\\,|\\ )*\\?%", text.strip().strip("$").strip())
    number = plain_number(percent[1] if percent else text, language)
    if number is not None:
        return f"{number}\\%" if percent else number
    lhs, equals, rhs = text.rpartition("=")
    number = plain_number(rhs, language) if equals and re.fullmatch(r"\s*[A-Za-z]\w*\s*", lhs) else None
    return f"{lhs}= {number}" if number is not None else text


def _as_interval(text: str) -> str:
    """"x \\geq 5" -> "[5, \\infty)", "5 > x" -> "(-\\infty, 5)", "2 < x \\le 5" -> "(2, 5]"; else unchanged."""
    bare = text.strip().strip("$").strip()
    value = r"(?P<value>[^<>=]+?)"
    between = re.fullmatch(rf"(?P<low>[^<>=]+?)\s*(?P<op1>{_LESS})\s*{_VAR}\s*(?P<op2>{_LESS})\s*(?P<high>[^<>=]+)", bare)
    if between:
        left, right = ("[" if _inclusive(between["op1"]) else "("), ("]" if _inclusive(between["op2"]) else ")")
        return f"{left}{between['low'].strip()}, {between['high'].strip()}{right}"
    for pattern, bound in (
        (rf"{_VAR}\s*(?P<op>{_GREATER})\s*{value}", "low"), (rf"{value}\s*(?P<op>{_LESS})\s*{_VAR}", "low"),
        (rf"{_VAR}\s*(?P<op>{_LESS})\s*{value}", "high"), (rf"{value}\s*(?P<op>{_GREATER})\s*{_VAR}", "high"),
    ):
        match = re.fullmatch(pattern, bare)
        if match:
            closed = _inclusive(match["op"])
            if bound == "low":
                return f"{'[' if closed else '('}{match['value'].strip()}, \\infty)"
            return f"(-\\infty, {match['value'].strip()}{']' if closed else ')'}"
    return text


def _exact_values_agree(gold: object, predicted: object) -> bool:
    """math-verify compares numbers with an absolute tolerance, so 1/2006! "equals" 1/2004! and 2^-98
    equals 2^-99. Two exact numbers (no decimals written) must also agree to 12 significant digits."""
    from sympy import Basic, Float

    if not (isinstance(gold, Basic) and isinstance(predicted, Basic) and gold.is_number and predicted.is_number):
        return True
    if gold.atoms(Float) or predicted.atoms(Float):
        return True  # a written decimal: math-verify's rounding rules decide
    try:
        difference, scale = abs((gold - predicted).evalf(50)), max(abs(gold.evalf(50)), abs(predicted.evalf(50)))
        return bool(difference <= scale * 1e-12)
    except (TypeError, ValueError, ArithmeticError):
        return True


def _inclusive(operator: str) -> bool:
    return operator in ("<=", ">=", "≤", "≥") or operator.startswith(("\\le", "\\ge"))


def _rename_function_argument(value: object) -> object:
    """Eq(f(y), y) -> Eq(f(_arg), _arg): a function definition's argument is a dummy variable."""
    from sympy import Eq, Symbol
    from sympy.core.function import AppliedUndef

    if isinstance(value, Eq) and isinstance(value.lhs, AppliedUndef) and len(value.lhs.args) == 1 and isinstance(value.lhs.args[0], Symbol):
        argument = value.lhs.args[0]
        return value.xreplace({argument: Symbol("_arg")})
    return value


def _is_words(reference: str) -> bool:
    """Whether the reference is words ("Monday", "\\text{no solution}") rather than math."""
    text = TEXT_COMMAND.sub(r"\1", reference).strip(_EDGE_PUNCTUATION + "()")
    words = text.casefold().replace("-", " ").replace("'", " ").split()
    return bool(_WORDS.fullmatch(text)) and any(len(w) >= 3 and w not in _MATH_WORDS for w in words)


def _check_words(answer: str, statement: Statement | None, reference: str) -> Check:
    """A reference of words ("Monday", "no solution", "Yes"): a boxed or phrased answer must equal it as
    normalised text; failing those, the answer's last sentence must say it, once, and deny nothing
    ("So yes, such a coloring exists." says Yes; "It is neither even nor odd." does not say even)."""
    if statement is not None and statement.found_by in ("boxed", "phrase"):
        return _compare_text(stated_answer(statement), reference, statement, mismatch="wrong")
    expected = normalize_text(reference)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", answer.strip()) if s.strip()]
    last = normalize_text(sentences[-1]) if sentences else ""
    said = list(re.finditer(rf"(?<!\w){re.escape(expected)}(?:e?s)?(?!\w)", last))
    rest = last[: said[0].start()] + " " + last[said[0].end() :] if len(said) == 1 else ""
    if len(said) == 1 and not re.search(r"\b(?:not|no|neither|nor|never|or|either|unless)\b|n't\b", rest):
        return Check("correct", reference, f"the last sentence says {reference!r}", "phrase")
    if statement is not None:
        return _compare_text(stated_answer(statement), reference, statement, mismatch="wrong")
    return Check("no_answer", None, f"the answer does not state {reference!r} or any other result")


def _compact(text: str) -> str:
    """A list as written, spacing and dots notation aside: "1, 3, \\dots, 2n-1" -> "1,3,\\ldots,2n-1"."""
    text = _ELLIPSIS.sub(r"\\ldots", TEXT_COMMAND.sub(r"\1", text))
    return re.sub(r"\s|\\[,;! ]|\$", "", text).rstrip(".")


def _compare_text(stated: str, reference: str, statement: Statement, mismatch: str) -> Check:
    """The text fallback: normalised equality; otherwise `mismatch` (wrong, or bad_reference when the
    reference should have been math and could not be read)."""
    if normalize_text(stated) == normalize_text(reference):
        return Check("correct", stated, f"{statement.found_by} {stated!r}, equal as text to {reference!r}", statement.found_by)
    why = "compared as text" if mismatch == "wrong" else "the reference does not parse as math; the texts differ"
    return Check(mismatch, stated, f"{statement.found_by} {stated!r}, expected {reference!r} ({why})", statement.found_by)


def _boxed_choices(answer: str, letters: str) -> list[tuple[int, str]]:
    """(position, letter) for every box holding just an option: {C}, {(C)}, {\\text{C}}."""
    found = []
    for opening in BOX_OPEN.finditer(answer):
        content = _bare_option(braced(answer, opening.end()) or "")
        if len(content) == 1 and content in letters:
            found.append((opening.start(), content))
    return found


def _bare_option(text: str) -> str:
    """"(C)", "\\text{C}." or "**C**" -> "C"; anything longer than a letter stays long."""
    return TEXT_COMMAND.sub(r"\1", text).strip(" \t\n.*$()")


def _phrase_choices(answer: str, letters: str) -> list[tuple[int, str]]:
    """(position, letter) for "answer is (C)", "Answer: C", a bold "**C**" or "**C)", and a last
    line that opens with "C)" or "(C)" or is just "C"."""
    letter = rf"\(?([{re.escape(letters)}])\)?"
    patterns = (
        rf"(?i:answer|option|choice)(?:\s+is\b\s*:?|\s*:)[\s*_]*{letter}(?![A-Za-z0-9])",
        rf"\*\*\s*{letter}(?:[).:]|\*\*)",
    )
    found = [(m.start(), m.group(1)) for pattern in patterns for m in re.finditer(pattern, answer)]
    last_line = answer.rstrip().rpartition("\n")[2]
    opener = rf"\s*(?:\(([{re.escape(letters)}])\)|([{re.escape(letters)}])(?:\)|\.?\s*$))"
    match = re.match(opener, last_line)
    if match:
        found.append((len(answer.rstrip()) - len(last_line), match.group(1) or match.group(2)))
    return found
