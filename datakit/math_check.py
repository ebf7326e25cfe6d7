"""The math verifier: is the result an answer section states equal in value to the reference?

The result is found by `datakit.answer_extract.find_answer` (boxes, answer phrases, else the last math
span or amount; take-backs and hedges void it) and compared with math-verify, the reference as gold,
after what math-verify does not do itself:
- numbers are read in the row's language (`1,000`, `0,5`, `1 000`), percentages both ways (`20\\%` is
  20 and 0.2), repeating decimals as fractions, a `\\pm` as both signs, a column vector as a tuple;
- amounts with units on both sides are compared as quantities (`1.2 m` = `120 cm`, `120 m` != `120 cm`),
  a unit on one side only is dropped, degrees meet a reference in pi in radians;
- a one-variable inequality is its interval, "x = a = b" is x = b, and what follows `\\Rightarrow` is
  the result; a function definition's argument is a dummy (`f(y) = y` = `f(x) = x`);
- two exact numbers must agree to 12 significant digits (math-verify's absolute tolerance calls
  1/2006! and 1/2004! equal); an elided list is compared as written;
- a reference of words (`Monday`) or an option letter (`(C)`) is compared as text or as a choice, never
  as a product of letter symbols, where `Monday` would equal `dynamo`;
- several boxes answer a several-part reference together, and a value restated after the result must
  agree with it.

math-verify runs with its signal-based timeouts disabled (they only work in the main thread), so a
check can run without bound on a pathological answer: callers run `check_math` through
`datakit.pool.map_with_timeout`. `quick_verdict` is the cheap part, safe in-process.
"""

from __future__ import annotations

import logging
import math
import re
from fractions import Fraction
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from datakit.answer_extract import BOX_OPEN, DECIMAL_COMMA, TEXT_COMMAND, Statement, find_answer, plain_number
from datakit.units import UNIT, join_digit_groups, quantity
from datakit.verify import Check, extract_choice, normalize_text, option_letter

# math-verify warns once per process that its timeouts are off; here that is by design (see above).
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).setLevel(logging.ERROR)

_MATH_EXTRACTION = (LatexExtractionConfig(), ExprExtractionConfig())
NO_ANSWER = "no \\boxed{}, answer phrase, math span or final number in the answer"
# A number with plain-word units ("20 dollars", "$5 per hour", "12 square meters", "5 cm^2"). Connectives
# are not units: "3 or 4" is two answers, "5 pi" a multiple of pi.
_UNIT_WORD = r"(?!(?:pi|or|and|not|but|maybe|to|of|if|is|are|plus|minus|times|than|then)\b)[A-Za-z]{2,}(?:\^\d)?"
_NUMBER_WITH_WORDS = re.compile(rf"\\?\$?\s*+([-+]?\d[\d,.]*(?:\\?%)?)\s+{_UNIT_WORD}(?:\s+{_UNIT_WORD})*\s*+\.?")
# A unit or currency at either end of an answer: "\$45", "12,75 €", "2{,}5\ \text{m}^3", "150 km".
_LEADING_CURRENCY = re.compile(r"^(?:R\$|US\$|\\\$|\$|€|£|¥)\s*+(?:\\[,;! ]\s*+)*")
_TRAILING_UNIT = re.compile(
    rf"(?:\s|\\[,;! ~]|~)*+(?:\\(?:text|mathrm|textrm|mbox|operatorname)\s*+\{{[^{{}}]*\}}|€|£|¥|{UNIT}(?:/{UNIT})?)(?:\^\{{?[23]\}}?)?\s*+$",
    re.IGNORECASE,
)
_SCRIPT_WORD = r"[\u0400-\u04ff\u0600-\u06ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+"  # Cyrillic, Arabic, Kana, Han, Hangul: not Greek (pi)
_OTHER_SCRIPT_UNIT = re.compile(rf"(?<=\d)\s*+{_SCRIPT_WORD}(?:/{_SCRIPT_WORD})?\.?\s*+$")
# "10001_2" is a number written in base 2.
_BASE_NUMBER = re.compile(r"(?<![\w\\])([0-9A-Za-z]+)_\{?(\d{1,2})\}?(?![\w])")
_EDGE_PUNCTUATION = " \t\n\"'`“”‘’.,;:!?*_$"
# A reference made of words ("Monday", "no solution", "\\text{East}").
_WORDS = re.compile(r"[^\W\d_]+(?:[ '\-][^\W\d_]+)*")
_MATH_WORDS = frozenset([
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "max", "min", "gcd", "lcm",
    "det", "mod", "arcsin", "arccos", "arctan", "inf",
])
# One-variable inequalities, read as the interval they describe: "x \\geq 5" is [5, oo).
_LESS = r"<=|\\leqslant|\\leq?(?![a-zA-Z])|\\lt(?![a-zA-Z])|≤|<"
_GREATER = r">=|\\geqslant|\\geq?(?![a-zA-Z])|\\gt(?![a-zA-Z])|≥|>"
_VAR = r"[a-zA-Z]"
# An elided sequence ("1, 3, 5, \\ldots, 2n-1") is no set math-verify can compare: it is compared as text.
_ELLIPSIS = re.compile(r"\\[lc]?dots|\.\.\.|…")
# "\{4, -1\}" is a set and "(4, -1)" an ordered pair: math-verify would call them equal.
_SET_LITERAL = re.compile(r"\\\{[^{}]*,[^{}]*\\\}|\\left\\\{.*,.*\\right\\\}")
_TUPLE_LITERAL = re.compile(r"\((?:[^()]|\([^()]*\))*,(?:[^()]|\([^()]*\))*\)")
# "]-\infty ; 2]", "[1 ; 4[": the French way to write an open end is a bracket turned outwards.
_FRENCH_INTERVAL = re.compile(r"^\s*+([\]\[])\s*+([^;\[\]]+?)\s*+(?:\\[,;!]\s*+)*[;,]\s*+(?:\\[,;!]\s*+)*([^;\[\]]+?)\s*+([\]\[])\s*+$")
_IMPLIES = re.compile(r"\\(?:Longrightarrow|Rightarrow|implies|iff|therefore)|⟹|⇒")
_COLUMN_VECTOR = re.compile(r"\\begin\{[pb]matrix\}(.*?)\\end\{[pb]matrix\}", re.DOTALL)


def check_math(answer: str, reference: str, language: str = "en") -> Check:
    """Grade the result `answer` states against `reference` by value (see the module doc)."""
    statement = find_answer(answer)
    decided = quick_verdict(answer, statement, reference, language)
    return decided if decided is not None else grade_statement(statement, reference, language)  # type: ignore[arg-type]


def grade_statement(statement: Statement, reference: str, language: str = "en") -> Check:
    """The math-verify part of `check_math`, for a statement `quick_verdict` left undecided."""
    check = _grade(stated_answer(statement, language), reference, language, statement)
    parts = _reference_parts(reference, language)
    if check.verdict != "correct" and statement.found_by == "boxed" and len(statement.parts) < parts and 2 <= parts <= len(statement.boxes):
        boxes = statement.boxes[-parts:]
        joined = _grade(", ".join(_plain_numbers(b, language) for b in boxes), reference, language, statement)
        if joined.verdict == "correct":
            check = Check("correct", joined.extracted, f"the last {parts} boxes {', '.join(boxes)} match {reference}", "boxed")
    if check.verdict == "correct" and statement.restated is not None:
        again = _grade(statement.restated, reference, language, statement)
        if again.verdict != "correct":
            return Check("wrong", check.extracted, f"{check.reason}, but the answer then restates it as {statement.restated}", statement.found_by)
    return check


def quick_verdict(answer: str, statement: Statement | None, reference: str | None, language: str = "en") -> Check | None:
    """What `check_math` decides without math-verify, given `statement = find_answer(answer)`: no reference,
    no stated answer, a reference of words or an option letter, and plain numbers or quantities on both
    sides. None: math-verify must decide (`grade_statement`). Cheap and bounded: safe in-process."""
    if reference is None or not reference.strip():
        return Check("bad_reference", None, f"no reference ({reference!r})")
    letter = option_letter(reference)
    if letter is not None:
        return _check_option(answer, statement, letter, reference)
    if _is_words(reference):
        return _check_words(answer, statement, reference)
    if statement is None:
        return Check("no_answer", None, NO_ANSWER)
    if statement.found_by == "boxed" and len(statement.boxes) > max(1, len(statement.parts)) and "," in reference:
        return None  # the boxes may answer the reference's parts together
    stated = stated_answer(statement, language)
    verdicts = [_compare_numbers(value, reference, language) for value in (stated, statement.restated) if value is not None]
    if any(v is None for v in verdicts):
        return None
    verdict, relation = ("correct", "matches") if all(verdicts) else ("wrong", "expected")
    restated = f" (restated as {statement.restated})" if statement.restated is not None else ""
    return Check(verdict, stated, f"{statement.found_by} {stated}{restated}, {relation} {reference}", statement.found_by)


def stated_answer(statement: Statement, language: str = "en") -> str:
    """What is graded: the statement's text, or its parts as one list (each number read in `language`):
    "x = -2, y = 3" with labelled values in the variables' order, "(12, 8)" for parts labelled (a), (b)."""
    if not statement.parts:
        return statement.text
    parts = [_plain_numbers(part, language) for part in statement.parts]
    names = [re.match(r"\s*([A-Za-z](?:_\{?\w+\}?)?)\s*=(?!=)", part) for part in parts]
    if all(names) and len({n[1] for n in names}) == len(names):  # type: ignore[index]
        parts = [part for _, part in sorted(zip([n[1] for n in names], parts))]  # type: ignore[index]
    if all(re.search(rf"{_LESS}|{_GREATER}", part) for part in parts):
        return " or ".join(parts)  # "x < -2", "x > 3": the union of what each states
    joined = ", ".join(parts)
    return f"({joined})" if statement.ordered else joined


def same_answer(first: str, second: str) -> bool:
    """Whether two extracted answers state the same value (math-verify), for grouping votes: "2",
    "x=2" and "\\frac{4}{2}" are one answer. Text that does not parse as math compares normalised.
    Unbounded like every check here: run it under `datakit.pool.map_with_timeout`."""
    parsed = [_parse_math(text) for text in (first, second)]
    if not all(parsed):
        return normalize_text(first) == normalize_text(second)
    return bool(verify(parsed[0], parsed[1], timeout_seconds=None) or verify(parsed[1], parsed[0], timeout_seconds=None))


def _grade(stated: str, reference: str, language: str, statement: Statement) -> Check:
    """One stated value against the reference, by math-verify and the additions of the module doc."""
    how = statement.found_by
    amount, expected = quantity(_localised(_right_side(_last_of_chain(stated)), language)), quantity(reference)
    if amount and expected:  # "\text{Speed} = ... = 60 \text{ m/s}" against "60 \text{ km/h}"
        same = amount.dimension == expected.dimension and math.isclose(amount.value, expected.value, rel_tol=1e-6)
        return Check("correct" if same else "wrong", stated, f"{how} {stated}, {'matches' if same else 'expected'} {reference} as quantities", how)
    if amount and amount.dimension == "angle" and "\\pi" in reference:  # 90^\circ against \frac{\pi}{2}
        stated = f"{amount.value * 180 / math.pi:g} \\cdot \\frac{{\\pi}}{{180}}"
    labelled = re.sub(r"(?<![\w\\])\(?[a-h]\)\s+", "", reference)  # "(a) 12, (b) 30": the values, in order
    if statement.ordered and statement.parts:
        reference = labelled if labelled.strip().startswith("(") and labelled != reference else f"({labelled})"
    if _SET_LITERAL.fullmatch(stated.strip()) and _TUPLE_LITERAL.fullmatch(reference.strip()) or (
        _TUPLE_LITERAL.fullmatch(stated.strip()) and _SET_LITERAL.fullmatch(reference.strip())
    ):
        return Check("wrong", stated, f"{how} {stated} is a set, {reference} an ordered tuple (or the other way round)", how)
    gold = _parse_reference(reference, language)
    if not gold:
        return _compare_text(stated, reference, statement, mismatch="bad_reference")
    golds = [gold, *([_parse_reference(_base_numbers(reference), language)] if _BASE_NUMBER.search(reference) else [])]
    if _ELLIPSIS.search(stated + reference):
        same = _compact(stated) == _compact(reference)
        return Check("correct" if same else "wrong", stated, f"{how} {stated!r}, {'equal' if same else 'unequal'} as written to {reference!r} (an elided list)", how)
    sides = [side for side in re.split(r"\\approx|≈", stated) if side.strip()] or [stated]  # "\sqrt{3} \approx 1.73": either side
    parsed = [_parse_math(side, language) for side in sides]
    if not any(parsed):
        return Check("wrong", stated, f"could not parse {how} answer {stated!r}", how)
    if any(predicted and _equal(g, predicted) for predicted in parsed for g in golds if g):  # "10001_2": 10001 or 17
        return Check("correct", stated, f"{how} {stated}, matches {reference}", how)
    return Check("wrong", stated, f"{how} {stated}, expected {reference}", how)


def _equal(gold: list, predicted: list) -> bool:
    gold, predicted = _as_function_definitions(gold, predicted)
    return bool(verify(gold, predicted, timeout_seconds=None)) and _exact_values_agree(gold[0], predicted[0])


@lru_cache(maxsize=1024)
def _parse_reference(reference: str, language: str) -> list:
    """The parsed reference, once per process: the N samples of a prompt share it."""
    return _parse_math(reference, _reference_language(reference, language))


def _reference_language(reference: str, language: str) -> str:
    """How to read a reference's numbers: datasets write references with a decimal point, so the row's
    language applies only to a reference with a comma and no point ("0,5" in a German row)."""
    return language if "," in reference and "." not in reference and language.split("-")[0] in DECIMAL_COMMA else "en"


def _reference_parts(reference: str, language: str) -> int:
    """How many values the reference lists: 2 for "(2, 2), (6, 2)", "-5, 2" and "(3, -2)"; 1 for "84"."""
    if "," not in reference and "\\pm" not in reference:
        return 1
    gold = _parse_reference(reference, language)
    value = gold[0] if gold else None
    return len(value.args) if type(value).__name__ in ("FiniteSet", "Tuple") else 1


def _parse_math(text: str, language: str = "en") -> list:
    """Parse a stated answer or a reference for math-verify, after the rewrites of the module doc. No
    string fallback: an empty list means unparseable; no timeout (see the module doc)."""
    text = _IMPLIES.split(text.strip())[-1].strip()
    text = _last_of_chain(_column_vectors(text))
    text = re.sub(r"^\s*[A-Za-z]\s*\\in\s*", "", text)  # "x \in [1, 4)" is the set
    if re.fullmatch(r"\s*[\[(][^;\[\]()]*;[^;\[\]()]*[\])]\s*", text):
        text = text.replace(";", ",")  # "[1;\,4)": a semicolon separates the ends where the comma is decimal
    text = _FRENCH_INTERVAL.sub(lambda m: f"{'(' if m[1] == ']' else '['}{m[2]}, {m[3]}{')' if m[4] == '[' else ']'}", text)
    text = _as_interval(_plain_numbers(_mixed_numbers(_repeating_decimals(_drop_units(text))), language))
    parsed = _parse_latex(text)
    if not parsed and text.count("\\pm") == 1:  # "x = \frac{-1 \pm \sqrt{13}}{2}": both roots
        value = _right_side(text)
        parsed = _parse_latex(f"{value.replace(chr(92) + 'pm', '+')}, {value.replace(chr(92) + 'pm', '-')}")
    return parsed


def _parse_latex(text: str) -> list:
    in_math = len(text) > 1 and text.startswith("$") and text.endswith("$")
    if not in_math and not BOX_OPEN.search(text):
        text = f"\\boxed{{{text}}}"
    return parse(text, _MATH_EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)


def _base_numbers(text: str) -> str:
    """"10001_2" -> "17": a numeral with its base as a subscript, read in that base."""

    def as_decimal(match: re.Match[str]) -> str:
        base = int(match[2])
        try:
            return str(int(match[1], base)) if 2 <= base <= 36 else match[0]
        except ValueError:
            return match[0]

    return _BASE_NUMBER.sub(as_decimal, text)


def _right_side(text: str) -> str:
    """"x = 5" -> "5", "\\theta = 45^\\circ" -> "45^\\circ"; anything else unchanged."""
    lhs, equals, rhs = text.rpartition("=")
    name = r"\s*(?:\\?[A-Za-z]\w*(?:_\{?\w+\}?)?|\\(?:text|mathrm)\{[^{}]*\})\s*"
    return rhs.strip() if equals and re.fullmatch(name, lhs) else text


def _last_of_chain(text: str) -> str:
    """"x = \\frac{8 \\cdot 7}{2} = 28" -> "x = 28": a chain of equalities states its last side."""
    if re.search(r",|;|\\quad|\\text\{\s*(?:and|or)\b", text):
        return text  # a list of equations ("a = 3, b = 5"), not a chain
    sides = re.split(r"(?<![<>!\\])=(?!=)", text)
    return f"{sides[0].strip()} = {sides[-1].strip()}" if len(sides) > 2 else text


def _column_vectors(text: str) -> str:
    """"\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}" -> "(1, -2)": a column vector is the tuple of its entries."""

    def as_tuple(match: re.Match[str]) -> str:
        rows = [row.strip() for row in match[1].split("\\\\") if row.strip()]
        return f"({', '.join(rows)})" if len(rows) > 1 and not any("&" in row for row in rows) else match[0]

    return _COLUMN_VECTOR.sub(as_tuple, text)


def _drop_units(text: str) -> str:
    """"20 dollars" -> "20", "\\$45" -> "45", "2{,}5\\ \\text{m}^3" -> "2{,}5": math-verify multiplies bare
    words in as symbols (20*a*d*l*l*o*r*s), which would make a right number wrong."""
    text = join_digit_groups(text.strip())
    text = re.sub(r"^\\text\{([^{}]*)\}$", r"\1", text)  # "\text{5 apples}"
    match = _NUMBER_WITH_WORDS.fullmatch(text)
    if match:
        return match.group(1)
    text = _LEADING_CURRENCY.sub("", text)
    head, tail = text[:-120], text[-120:]  # a unit ends the text: looking for one further back only costs time
    bare = (head + _TRAILING_UNIT.sub("", tail)).strip()
    bare = _OTHER_SCRIPT_UNIT.sub("", bare).strip()  # "75 км/ч", "3,5 元"
    return bare if bare and re.search(r"\d", bare) else text


def _mixed_numbers(text: str) -> str:
    """"33\\frac{1}{3}" -> "\\frac{100}{3}": a whole number before a fraction of digits is a mixed number
    (math-verify drops the 33 before a percent sign)."""

    def improper(match: re.Match[str]) -> str:
        whole, numerator, denominator = int(match[2]), int(match[3]), int(match[4])
        return f"{match[1]}\\frac{{{whole * denominator + numerator}}}{{{denominator}}}"

    return re.sub(r"(^|[\s(=$-])(\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}", improper, text)


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
    if re.fullmatch(r"\s*[-+]?\d+,\d+\s*", text):  # "3,5" where no decimal comma is written: two values, as math-verify
        return text.replace(",", ", ")  # would otherwise read it as 3.5
    lhs, equals, rhs = text.rpartition("=")
    number = plain_number(rhs, language) if equals and re.fullmatch(r"\s*[A-Za-z]\w*\s*", lhs) else None
    return f"{lhs}= {number}" if number is not None else text


def _compare_numbers(stated: str, reference: str, language: str) -> bool | None:
    """Whether two plain numbers (or percentages, or quantities with units) are equal; None when either
    is more than that. A percentage is its number and its hundredth: 20\\% is 20 and 0.2."""
    measured = quantity(_localised(stated, language)), quantity(reference)
    stated_amount, reference_amount = measured
    if stated_amount and reference_amount:  # both carry units: 1.2 m is 120 cm, 120 m is not
        return stated_amount.dimension == reference_amount.dimension and math.isclose(stated_amount.value, reference_amount.value, rel_tol=1e-6)
    bare_reference = plain_number(reference, "en")
    if stated_amount and stated_amount.terms > 1 and bare_reference is not None:  # "3 hours and 30 minutes" against 3.5
        return math.isclose(stated_amount.value / stated_amount.first_unit, float(bare_reference), rel_tol=1e-9)
    a, b = _percent(stated, language), _percent(reference, _reference_language(reference, language))
    if a is None or b is None:
        return None
    (x, x_percent), (y, y_percent) = a, b
    candidates = {x, x / 100} if x_percent and not y_percent else {x * 100, x} if y_percent and not x_percent else {x}
    return any(math.isclose(c, y, rel_tol=1e-9, abs_tol=1e-12) for c in candidates)


def _localised(text: str, language: str) -> str:
    """Every number of `text` as a plain decimal in `language` ("2,5 kg" -> "2.5 kg" in German)."""
    return re.sub(r"\d(?:[\d.,]|\{,\})*\d", lambda m: plain_number(m[0], language) or m[0], text)


def _percent(text: str, language: str) -> tuple[float, bool] | None:
    """(value, written as a percentage) of a plain number such as "20", "20\\%", "12,5 %", "\\$45"; else None."""
    text = _drop_units(text)
    percent = re.fullmatch(r"(.+?)(?:\s|\\,|\\ )*\\?%", text.strip().strip("$").strip())
    number = plain_number(percent[1] if percent else text, language)
    return (float(number), bool(percent)) if number is not None else None


def _as_interval(text: str) -> str:
    """"x \\geq 5" -> "[5, \\infty)", "5 > x" -> "(-\\infty, 5)", "2 < x \\le 5" -> "(2, 5]", "x < 2 or x > 3" ->
    "(-\\infty, 2) \\cup (3, \\infty)"; anything else unchanged."""
    pieces = re.split(r"(?<!\s)\s*+(?:\\text\{\s*+or\s*+\}|\bor\b|\\lor|\\vee)\s*+", text.strip().strip("$").strip())
    if len(pieces) > 1:
        intervals = [_as_interval(piece) for piece in pieces]
        return " \\cup ".join(intervals) if all(i != p for i, p in zip(intervals, pieces)) else text
    bare = pieces[0]
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


def _inclusive(operator: str) -> bool:
    return operator in ("<=", ">=", "≤", "≥") or operator.startswith(("\\le", "\\ge"))


def _exact_values_agree(gold: object, predicted: object) -> bool:
    """math-verify compares numbers with an absolute tolerance, so 1/2006! "equals" 1/2004! and 2^-98
    equals 2^-99. Two exact numbers (no decimals written) must also agree to 12 significant digits."""
    from sympy import Basic, Float

    if gold == predicted or not (isinstance(gold, Basic) and isinstance(predicted, Basic) and gold.is_number and predicted.is_number):
        return True  # the same expression, or not two numbers
    if gold.atoms(Float) or predicted.atoms(Float):
        return True  # a written decimal: math-verify's rounding rules decide
    try:
        difference, scale = abs((gold - predicted).evalf(50)), max(abs(gold.evalf(50)), abs(predicted.evalf(50)))
        return bool(difference <= scale * 1e-12)
    except (TypeError, ValueError, ArithmeticError):
        return True


def _as_function_definitions(gold: list, predicted: list) -> tuple[list, list]:
    """Eq(f(y), y) and Eq(f(x), x) -> both Eq(f(_arg), _arg): a function definition's argument is a dummy.
    Only when both sides define a function: "f(x) = 3x - 2" against "3x - 2" compares the right side."""
    from sympy import Eq, Symbol
    from sympy.core.function import AppliedUndef

    def argument(value: object) -> Symbol | None:
        if isinstance(value, Eq) and isinstance(value.lhs, AppliedUndef) and len(value.lhs.args) == 1 and isinstance(value.lhs.args[0], Symbol):
            return value.lhs.args[0]
        return None

    if not (gold and predicted and argument(gold[0]) is not None and argument(predicted[0]) is not None):
        return gold, predicted
    dummy = Symbol("_arg")
    return [gold[0].xreplace({argument(gold[0]): dummy})], [predicted[0].xreplace({argument(predicted[0]): dummy})]


def _is_words(reference: str) -> bool:
    """Whether the reference is words ("Monday", "\\text{no solution}") rather than math."""
    text = TEXT_COMMAND.sub(r"\1", reference).strip(_EDGE_PUNCTUATION + "()")
    words = text.casefold().replace("-", " ").replace("'", " ").split()
    return bool(_WORDS.fullmatch(text)) and any(len(w) >= 3 and w not in _MATH_WORDS for w in words)


def _check_option(answer: str, statement: Statement | None, letter: str, reference: str) -> Check:
    """An option-letter reference ("(C)", "\\text{(C)}"): the letter the answer chooses, "\\boxed{\\textbf{(D)}\\ 120}"
    and "Answer: (B) 42" included."""
    chosen = extract_choice(answer)
    if chosen is None:
        return Check("no_answer", None, f"no option letter stated (the reference is option {letter})")
    verdict = "correct" if chosen == letter else "wrong"
    return Check(verdict, chosen, f"option {chosen}, expected {letter}", statement.found_by if statement else "phrase")


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
