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
import re
from dataclasses import dataclass

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

# math-verify warns once per process that its timeouts are off; here that is by design (see above).
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).setLevel(logging.ERROR)

_MATH_EXTRACTION = (LatexExtractionConfig(), ExprExtractionConfig())
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_PHRASES = (
    re.compile(r"final answer is\s*:?\s*(.*)", re.IGNORECASE),
    re.compile(r"the answer is\s*:?\s*(.*)", re.IGNORECASE),
    re.compile(r"answer(?:\*\*)?\s*:\s*(.*)", re.IGNORECASE),
)
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
# A number with plain-word units ("20 dollars", "$5 per hour"); "pi" is a constant, not a unit.
_NUMBER_WITH_WORDS = re.compile(
    r"\\?\$?\s*([-+]?\d[\d,]*(?:\.\d+)?(?:\\?%)?)\s+(?!pi\b)[A-Za-z]{2,}[A-Za-z .]*"
)
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf)\s*\{([^{}]*)\}")
_EDGE_PUNCTUATION = " \t\n\"'`“”‘’.,;:!?*_$"


@dataclass(frozen=True)
class Check:
    """A verifier's verdict on one answer, with what it graded and a one-line explanation."""

    verdict: str  # "correct" | "wrong" | "no_answer" | "bad_reference"
    extracted: str | None
    reason: str


def extract_final_answer(answer: str) -> str | None:
    """The last non-empty \\boxed{}/\\fbox{}; failing that the last "final answer is X", "the
    answer is X" or "Answer: X" (tried in that order); None when the answer states nothing."""
    boxed = _last_boxed(answer)
    if boxed:
        return boxed
    for phrase in _ANSWER_PHRASES:
        matches = list(phrase.finditer(answer))
        stated = _clean_stated(matches[-1].group(1)) if matches else ""
        if stated:
            return stated
    return None


def check_math(answer: str, reference: str) -> Check:
    """Grade a math answer by value, not spelling, through math-verify (reference as gold).

    1/2 == 0.5 == \\frac{1}{2}, 49\\pi == 49π, 84 == 84.0, \\$20 == "20 dollars" == 20, and sets
    are unordered. A percent sign is decoration to math-verify: 20\\% matches both 20 and 0.2."""
    gold = _parse_math(reference)
    if not gold:
        return Check("bad_reference", None, f"could not parse reference {reference!r}")
    extracted = extract_final_answer(answer)
    if extracted is None:
        return Check("no_answer", None, "no \\boxed{} or 'the answer is' in the answer")
    predicted = _parse_math(_drop_unit_words(extracted))
    if not predicted:
        return Check("wrong", extracted, f"could not parse extracted {extracted!r}")
    if verify(gold, predicted, timeout_seconds=None):
        return Check("correct", extracted, f"extracted {extracted}, matches {reference}")
    return Check("wrong", extracted, f"extracted {extracted}, expected {reference}")


def same_answer(first: str, second: str) -> bool:
    """Whether two extracted answers state the same value (math-verify), for grouping votes: "2",
    "x=2" and "\\frac{4}{2}" are one answer. Text that does not parse as math compares normalised.
    Unbounded like every check here: run it under `datakit.pool.map_with_timeout`."""
    parsed = [_parse_math(_drop_unit_words(text)) for text in (first, second)]
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
    text = _TEXT_COMMAND.sub(r"\1", text).replace("**", "")
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


def _last_boxed(text: str) -> str | None:
    """Content of the last non-empty box whose braces close; nested and escaped braces are fine."""
    for opening in reversed(list(_BOX_OPEN.finditer(text))):
        content = _braced(text, opening.end())
        if content and content.strip():
            return content.strip()
    return None


def _braced(text: str, start: int) -> str | None:
    """Text from `start` up to the brace closing the one just before it; \\{ and \\} are literal."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return text[start:i]
        i += 1
    return None


def _clean_stated(stated: str) -> str:
    """Reduce "... the answer is **$\\frac{1}{2}$**. Hope this helps!" to "\\frac{1}{2}"."""
    stated = re.split(r"\.\s", stated.strip(), maxsplit=1)[0]
    stated = stated.strip(" *").removesuffix(".").strip(" *")
    for left, right in _MATH_DELIMITERS:
        if stated.startswith(left) and stated.endswith(right) and len(stated) > len(left + right):
            return stated[len(left) : -len(right)].strip()
    return stated


def _drop_unit_words(extracted: str) -> str:
    """"20 dollars" -> "20": math-verify drops units in \\text{} but multiplies bare words in
    as symbols (20*a*d*l*l*o*r*s), which would make a right number wrong."""
    match = _NUMBER_WITH_WORDS.fullmatch(extracted.strip())
    return match.group(1) if match else extracted


def _parse_math(text: str) -> list:
    """Parse a bare expression ("84", "\\frac{1}{2}", "$20") or one already in $...$ or a box.

    No string fallback, so an empty list means unparseable; no timeout (see the module doc)."""
    in_math = len(text) > 1 and text.startswith("$") and text.endswith("$")
    if not in_math and not _BOX_OPEN.search(text):
        text = f"\\boxed{{{text}}}"
    return parse(text, _MATH_EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)


def _boxed_choices(answer: str, letters: str) -> list[tuple[int, str]]:
    """(position, letter) for every box holding just an option: {C}, {(C)}, {\\text{C}}."""
    found = []
    for opening in _BOX_OPEN.finditer(answer):
        content = _bare_option(_braced(answer, opening.end()) or "")
        if len(content) == 1 and content in letters:
            found.append((opening.start(), content))
    return found


def _bare_option(text: str) -> str:
    """"(C)", "\\text{C}." or "**C**" -> "C"; anything longer than a letter stays long."""
    return _TEXT_COMMAND.sub(r"\1", text).strip(" \t\n.*$()")


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
