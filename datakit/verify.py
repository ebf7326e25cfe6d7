"""Rule verifiers for the correctness filter: the verdict record, and the choice and exact checks (math is
`datakit.math_check`, code `datakit.code_verify`).

Every `answer` argument here is the final answer section of a completion, the text after
`</think>` (see `datakit.reasoning.split_completion`), never the chain of thought: a model tries
and discards candidate answers while it thinks, and grading those would reward the wrong ones.
Within the answer the last explicit statement wins, since models restate and correct themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datakit.answer_extract import BOX_OPEN, TEXT_COMMAND, closing_braces, extract_final_answer

_EDGE_PUNCTUATION = " \t\n\"'`“”‘’.,;:!?*_$"


@dataclass(frozen=True)
class Check:
    """A verifier's verdict on one answer, with what it graded and a one-line explanation."""

    verdict: str  # "correct" | "wrong" | "no_answer" | "bad_reference"
    extracted: str | None
    reason: str
    found_by: str | None = None  # math: how the answer was found, boxed | phrase | span | number


def extract_choice(answer: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """The option letter of the last explicit statement: a boxed letter, "the answer is (C)",
    "Answer: C", a bold **C**, or a last line that opens with "C)" or is just "C".

    Letters are matched case-sensitively and only in those positions, so neither the article in
    "A good way to see this..." nor "answer: a" (a variable) is read as an option. A final statement
    that names several letters ("(A) or (B)", "\\boxed{A} \\boxed{B}", the options restated as a list)
    is a hedge, not an answer: None."""
    return _final_choice(answer, letters)[0]


def check_choice(answer: str, reference: str, letters: str = "ABCDEFGHIJ") -> Check:
    """Grade a multiple-choice answer against a reference letter such as "C" or "(C)"."""
    expected = _bare_option(reference)
    if len(expected) != 1 or expected not in letters:
        return Check("bad_reference", None, f"reference {reference!r} is not one of {letters}")
    extracted, hedged = _final_choice(answer, letters)
    if hedged:
        return Check("no_answer", None, f"the final statement names several options ({', '.join(hedged)}): a hedge")
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


# what may stand between two letters of one hedged statement: "A or B", "(A), (B)", "\\boxed{A} \\boxed{B}"
_JOINERS = r"(?:[\s,;/&$.*]|\\quad|\\qquad|\\text\{\s*(?:or|and)\s*\}|\b(?:or|and)\b)*"


def _final_choice(answer: str, letters: str) -> tuple[str | None, list[str]]:
    """(letter, []) for the last statement; (None, letters) when the last statement names several options:
    statements joined only by punctuation, "or" and "and" are one statement, and so is one followed by
    ", B" or "or (B)"."""
    statements = sorted([*_boxed_choices(answer, letters), *_phrase_choices(answer, letters)])
    if not statements:
        return None, []
    group = [statements[-1]]
    for previous in reversed(statements[:-1]):
        if previous[1] < group[-1][0] and not re.fullmatch(_JOINERS, answer[previous[1] : group[-1][0]]):
            break
        group.append(previous)
    named = [letter for _, _, letter in group]
    follower = rf"\)?{_JOINERS}(?:\(([{re.escape(letters)}])\)|([{re.escape(letters)}])(?=\s*(?:[.,;)]|\bor\b|\band\b|$)))"
    after = re.match(follower, answer[statements[-1][1] :])
    if after and (after[1] or after[2]):
        named.append(after[1] or after[2])
    distinct = sorted(set(named))
    return (distinct[0], []) if len(distinct) == 1 else (None, distinct)


def _boxed_choices(answer: str, letters: str) -> list[tuple[int, int, str]]:
    """(start, end, letter) for every box holding just an option: {C}, {(C)}, {\\text{C}}. A labelled box
    ("\\boxed{A or B}") that names a second option is a hedge: both letters are found."""
    found, closes = [], closing_braces(answer)
    for opening in BOX_OPEN.finditer(answer):
        close = closes.get(opening.end() - 1)
        content = answer[opening.end() : close] if close is not None else ""
        end = close + 1 if close is not None else opening.end()
        bare = _bare_option(content)
        # an option's letter, then what it stands for: "\textbf{(D)}\ 120", "B\text{（6）}", "\text{A. }x=2", "D.\ \frac{\sqrt{65}}{2}"
        labelled = re.match(
            rf"\s*(?:\\text(?:bf)?\{{\s*)?\(?([{re.escape(letters)}])(?:\)|\.|\s|\\[ ,;]|（|\\text|\\left|\}}|$)", content
        )
        if len(bare) == 1 and bare in letters:
            found.append((opening.start(), end, bare))
        elif labelled:
            found.append((opening.start(), end, labelled[1]))
            second = re.match(rf"\)?\.?{_JOINERS}\(?([{re.escape(letters)}])\)?\s*\}}?\s*$", content[labelled.end(1) :])
            if second and re.search(r"\bor\b|\band\b|,|/", content[labelled.end(1) :]):
                found.append((opening.start(), end, second[1]))
    return found


def option_letter(reference: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """The option a reference names, "(C)", "C" or "\\text{(C)}"; None for anything else."""
    bare = _bare_option(reference)
    return bare if len(bare) == 1 and bare in letters else None


def _bare_option(text: str) -> str:
    """"(C)", "\\text{C}." or "**C**" -> "C"; anything longer than a letter stays long."""
    return TEXT_COMMAND.sub(r"\1", text).strip(" \t\n.*$()")


def _phrase_choices(answer: str, letters: str) -> list[tuple[int, int, str]]:
    """(start, end, letter) for "answer is (C)", "the answer is option C", "Answer: C", a bold "**C**" or
    "**C)", and a last line that opens with "C)" or "(C)" or is just "C" — unless the line above opens with
    an option too: that is the options restated as a list, not a choice among them."""
    letter = rf"\(?([{re.escape(letters)}])\)?"
    patterns = (
        rf"(?i:answer|option|choice)(?:\s+is\b\s*:?|\s*:)[\s*_]*(?i:(?:option|choice)\s+)?{letter}(?![A-Za-z0-9])",
        rf"\*\*\s*{letter}(?:[).:]|\*\*)",
    )
    found = [(m.start(), m.end(), m.group(1)) for pattern in patterns for m in re.finditer(pattern, answer)]
    *above, last_line = [line for line in answer.rstrip().split("\n") if line.strip()] or [""]
    opener = rf"\s*(?:\(([{re.escape(letters)}])\)|([{re.escape(letters)}])(?:\)|\.?\s*$|\.\s))"  # "C) 42", "(D)", "A. $10i$"
    match = re.match(opener, last_line)
    if match and not (above and re.match(opener, above[-1])):
        found.append((len(answer.rstrip()) - len(last_line), len(answer.rstrip()), match.group(1) or match.group(2)))
    return found
