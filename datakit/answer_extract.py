"""Find the stated result in a completion's final answer section, the way answers are really written.

Every function here reads the answer section only (the text after `</think>`), never the chain of
thought. In order of trust:

- `boxed`: `\\boxed{...}`/`\\fbox{...}`. Several boxes written as one statement ("`\\boxed{(2,2)}` and
  `\\boxed{(6,2)}`") are kept together as `parts`, so a several-part reference can grade them as one.
- `phrase`: "the final answer is X", "the answer is X", "Answer: X". "Final Answer: The volume is 120"
  states 120, and an empty box inside the phrase ("is `\\boxed{} 20`") is skipped.
- Among boxes and phrases the last by position wins: models restate and correct themselves.
- `span`, `number`: failing both, the last math span (`$...$`, `\\(...\\)`, `$$...$$`, `\\[...\\]`),
  else the last number, of the last paragraph that holds one; not when that sentence or the prose
  after it hedges ("either 3 or 4", "not sure") or negates.

Numbers follow the answer's language (`plain_number`): `1,000` is a thousand in English, `0,5` a half
in German; `1 000` and `1\\,000` are a thousand everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_PHRASE = re.compile(
    r"(?:final\s+answer\s*(?:is|:|=)|the\s+answer\s+(?:is|would\s+be|will\s+be)|\banswer(?:\*\*)?\s*:)[\s*:]*",
    re.IGNORECASE,
)
# What follows "the answer is" when it points elsewhere or denies: not a stated result.
_NOT_A_RESULT = re.compile(
    r"(?:not|within|in|inside|below|above|as\s+follows|given|shown|provided|stated|written|boxed|"
    r"the\s+following|correct|right|wrong|incorrect|unclear|unknown|undefined|[:.,;]|\Z)\b",
    re.IGNORECASE,
)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$([^$]+?)\$", re.S)
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_NUMBER = re.compile(r"(?<![\w.,])[-+−]?\d(?:[\d,.]|\\,|\{,\}|[ \u00a0\u202f](?=\d{3}\b))*\d(?![\w])|(?<![\w.,])[-+−]?\d(?![\w])")
# A result that hedges or denies is no statement of one: "either 3 or 4", "maybe 7", "not 5".
_HEDGE = re.compile(
    r"\b(?:or|either|maybe|perhaps|possibly|probably|might|not|unsure|guess|between|unless|wrong|incorrect|mistake)\b|n't\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*#])|\n")
# A sentence that restates its result after a verb: "The volume of the box is 120".
_RESULT_VERB = re.compile(r"\b(?:is|are|equals|was|were|be|gives|becomes)\b\s*:?\s*", re.IGNORECASE)
# What may stand between boxes (or math spans) stated together: "\\boxed{2}, \\boxed{3}", "$x=2$ or $x=3$",
# one per line or bullet; not a sentence end or a blank line, which start a new statement.
_JOIN = re.compile(r"(?:[ \t,;$&]|\n[ \t]*[-*]?|\\quad|\\qquad|\\\(|\\\)|\\\[|\\\]|\\,|\band\b|\bor\b|\\text\{\s*(?:and|or|,)?\s*\})*")

# ISO 639-1 codes of languages that write a decimal comma (0,5) and group thousands with a dot or a space.
DECIMAL_COMMA = frozenset(
    "de fr es it pt ru uk be pl nl cs sk sl hr sr bs bg ro hu tr sv da no nb nn fi et lv lt is el id vi az kk ka uz mn".split()
)


@dataclass(frozen=True)
class Statement:
    """A stated result: its text, how it was found, and for several boxes stated together each box's content."""

    text: str
    found_by: str  # boxed | phrase | span | number
    start: int  # where it is in the answer; the last statement wins
    parts: tuple[str, ...] = ()


def find_answer(answer: str, fallback: bool = True) -> Statement | None:
    """The answer's stated result (see the module doc); with `fallback` False only boxes and phrases count."""
    explicit = [*_box_statements(answer), *_phrase_statements(answer)]
    if explicit:
        return max(explicit, key=lambda s: s.start)
    return _last_span_or_number(answer) if fallback else None


def extract_final_answer(answer: str) -> str | None:
    """The text of the last box or answer phrase; None when the answer states neither."""
    statement = find_answer(answer, fallback=False)
    return statement.text if statement else None


def braced(text: str, start: int) -> str | None:
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


def plain_number(text: str, language: str = "en") -> str | None:
    """A number written in `language`'s convention as a plain decimal ("1,000" -> "1000" in English,
    "0,5" -> "0.5" in German); None when `text` is not one number. A comma that is neither a
    thousands group (English) nor a decimal comma (German, French, ...) stays unread: "3,5" in an
    English answer may be two solutions."""
    text = text.strip().rstrip(".").strip().strip("$").strip().replace("−", "-")
    text = re.sub(r"(?<=\d)(?:\\,|\\ |\\;|~|[ \u00a0\u202f\u2009])(?=\d{3}(?!\d))", "", text)  # 1 000, 1\,000
    decimal_comma = language.split("-")[0].lower() in DECIMAL_COMMA
    text = text.replace("{,}", "," if decimal_comma or not re.search(r"\{,\}\d{3}(?!\d)", text) else "")
    sign, digits = (text[0], text[1:]) if text[:1] in "+-" else ("", text)
    if decimal_comma:
        if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", digits):  # 1.000 / 1.000,5
            digits = digits.replace(".", "")
        digits = digits.replace(",", ".") if re.fullmatch(r"\d+,\d+", digits) else digits
    elif re.fullmatch(r"[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?", digits):  # 1,000 / 12,345.5
        digits = digits.replace(",", "")
    return sign + digits if re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", digits) else None


def strip_delimiters(text: str) -> str:
    """"$x$" -> "x"; "**\\(2\\sqrt{3}\\)**" -> "2\\sqrt{3}"."""
    text = text.strip().strip("*").strip()
    for left, right in _MATH_DELIMITERS:
        if text.startswith(left) and text.endswith(right) and len(text) > len(left + right):
            inner = text[len(left) : -len(right)]
            if left != "$" or "$" not in inner:
                return inner.strip()
    return text


def _box_statements(answer: str) -> list[Statement]:
    """One statement per run of boxes written together; a run's text is its last box."""
    boxes = []
    for opening in BOX_OPEN.finditer(answer):
        content = braced(answer, opening.end())
        if content is not None and content.strip():
            boxes.append((opening.start(), opening.end() + len(content) + 1, content.strip()))
    runs: list[list[tuple[int, int, str]]] = []
    for box in boxes:
        if runs and _JOIN.fullmatch(answer[runs[-1][-1][1] : box[0]]):
            runs[-1].append(box)
        else:
            runs.append([box])
    statements = []
    for run in runs:
        parts = tuple(dict.fromkeys(content for _, _, content in run))
        statements.append(Statement(run[-1][2], "boxed", run[-1][0], parts if len(parts) > 1 else ()))
    return statements


def _phrase_statements(answer: str) -> list[Statement]:
    """One statement per answer phrase that states a result; a phrase whose result is boxed is the box's."""
    statements = []
    for match in _PHRASE.finditer(answer):
        rest = answer[match.end() :]
        sentence = re.split(r"\n|(?<=[^\d\\])\.(?:\s|$)|\.\s", rest, maxsplit=1)[0]
        if BOX_OPEN.search(sentence.replace("\\boxed{}", "").replace("\\fbox{}", "")):
            continue  # the box itself is the statement
        statement = _phrase_result(re.sub(r"\\(?:boxed|fbox)\s*\{\s*\}", " ", sentence), match.start())
        if statement is not None:
            statements.append(statement)
    return statements


def _phrase_result(sentence: str, start: int) -> Statement | None:
    """What a phrase states: "**$\\frac{1}{2}$**." -> "\\frac{1}{2}"; "The volume of the box is 120" -> "120";
    "\\textbf{60} square meters" -> "60 square meters" (units are dropped when compared); "$x=2$ or $x=3$"
    -> both; None when it points elsewhere or denies ("within \\boxed{}", "not 5"), or when prose
    between math spans ("$4$, not $3$", "$3$, but maybe $4$") leaves the result unclear."""
    stated = TEXT_COMMAND.sub(r"\1", sentence) if "\\textbf" in sentence else sentence
    stated = stated.strip().strip("*").strip().removesuffix(".").strip(" *")
    spans = list(_MATH_SPAN.finditer(stated))
    if len(spans) > 1:
        if all(_JOIN.fullmatch(stated[a.end() : b.start()]) for a, b in zip(spans, spans[1:])):
            parts = tuple(dict.fromkeys(_span_inner(m) for m in spans))
            return Statement(parts[-1], "phrase", start, parts if len(parts) > 1 else ())
        return None
    rest = stated[spans[0].end() :] if spans else ""
    if spans and spans[0].start() == 0 and not re.search(r"\d", rest) and not _HEDGE.search(rest):
        return Statement(_span_inner(spans[0]), "phrase", start)  # "$x^2+1$ is the minimal polynomial"
    words = re.findall(r"(?<![\\\w])[A-Za-z]{2,}", _MATH_SPAN.sub(" ", stated))
    verbs = list(_RESULT_VERB.finditer(stated))
    if len(words) >= 3 and verbs:
        stated = stated[verbs[-1].end() :]
    stated = strip_delimiters(stated.strip().removesuffix(".").strip())
    if not stated or _NOT_A_RESULT.match(stated):
        return None
    return Statement(stated, "phrase", start)


def _last_span_or_number(answer: str) -> Statement | None:
    """The last math span, else the last number, of the last paragraph that holds either; None when its
    sentence or the prose after it hedges or denies."""
    breaks = list(re.finditer(r"\n\s*\n", answer))
    paragraphs = zip([0] + [b.end() for b in breaks], [b.start() for b in breaks] + [len(answer)])
    for start, end in reversed(list(paragraphs)):
        paragraph = answer[start:end]
        spans = [m for m in _MATH_SPAN.finditer(paragraph) if _has_content(_span_inner(m))]
        found = spans[-1] if spans else next(iter(reversed(list(_NUMBER.finditer(paragraph)))), None)
        if found is None:
            continue
        run = [found]
        while spans and len(run) < len(spans) and _JOIN.fullmatch(paragraph[spans[-len(run) - 1].end() : run[0].start()]):
            run.insert(0, spans[-len(run) - 1])
        sentence_start = max((m.end() for m in _SENTENCE_END.finditer(paragraph, 0, run[0].start())), default=0)
        around = paragraph[sentence_start : run[0].start()] + " " + answer[start + found.end() :]
        if _HEDGE.search(_MATH_SPAN.sub(" ", around)):
            return None
        if not spans:
            if _in_expression(paragraph, found):
                return None
            return Statement(found.group(0), "number", start + found.start())
        parts = tuple(dict.fromkeys(_span_inner(m) for m in run))
        return Statement(parts[-1], "span", start + found.start(), parts if len(parts) > 1 else ())
    return None


def _in_expression(text: str, number: re.Match[str]) -> bool:
    """Whether a number outside math delimiters is part of a formula ("\\frac{3}{4}", "3 + 4", "2^10"),
    not a result of its own."""
    before, after = text[: number.start()].rstrip()[-1:], text[number.end() :].lstrip()[:1]
    return before in tuple("+-*/^_{(\\×÷·") or after in tuple("+-*/^_{}\\×÷·=")


def _span_inner(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g is not None).strip()


def _has_content(span: str) -> bool:
    return bool(re.search(r"[\w\\]", span))
