"""Find the stated result in a completion's final answer section, the way answers are really written.

Every function here reads the answer section only (the text after `</think>`), never the chain of
thought. In order of trust:

- `boxed`: `\\boxed{...}`/`\\fbox{...}`. Several boxes written as one statement ("`\\boxed{(2,2)}` and
  `\\boxed{(6,2)}`") are kept together as `parts`, so a several-part reference can grade them as one.
- `phrase`: "the final answer is X", "the answer is X", "Answer: X", and "the correct value is 7",
  "the final probability is $\\frac13$" (these with a number or math). "Final Answer: The volume is 120"
  states 120; an empty box inside the phrase ("is `\\boxed{} 20`") is skipped.
- Among boxes and phrases the last by position wins: models restate and correct themselves. A
  statement that later prose revokes ("... so it is extraneous", "by mistake") or that is followed
  by a box that never closes does not count.
- `span`, `number`: failing both, the last math span (`$...$`, `\\(...\\)`, `$$...$$`, `\\[...\\]`), number
  standing alone (with its unit: "120 m") or bold word, of the last paragraph that holds one; not a
  span that states a condition ("attained at $x=-5$", "for all $n \\ge 1$"), and none at all when its
  sentence or the prose after it hedges ("either 3 or 4", "not sure") or revokes it.

Numbers follow the answer's language (`plain_number`): `1,000` is a thousand in English, `0,5` a half
in German; `1 000` and `1\\,000` are a thousand everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import pairwise

from datakit.units import UNIT, join_digit_groups

BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_PHRASE = re.compile(
    r"(?:final\s+answer\s*(?:is|:|=)|the\s+answer\s+(?:is|would\s+be|will\s+be)|\banswers?(?:\*\*)?\s*:"
    r"|correct\s+(?:option|choice)\s+is"
    # the same in the other languages answers are written in
    r"|\b(?:antwort|endergebnis|ergebnis|réponse(?:\s+finale)?|respuesta(?:\s+final)?|resposta(?:\s+final)?|risposta(?:\s+finale)?"
    r"|ответ|đáp\s+án|정답|답)(?:\*\*)?\s*[:：]|(?:最终)?答案\s*(?:是|为|[:：])|答\s*[:：]|答え\s*(?:は|[:：])"
    r"|die\s+antwort\s+ist|la\s+réponse\s+est|la\s+respuesta\s+es|a\s+resposta\s+é|la\s+risposta\s+è|ответ\s*[—-]|ответ\s+равен)[ \t*:：]*",
    re.IGNORECASE,
)
# "the correct value is 7", "the final probability is $\\frac13$": a result only with a number or math in it
_RESULT_PHRASE = re.compile(
    r"\b(?:(?:final|correct|right)\s+(?!answer\b)(?:[a-z]+\s+){0,2}?|(?:the\s+)?(?:only\s+)?solutions?\s+(?:set\s+)?)(?:is|are|equals|=|would\s+be)\s*:?\s*",
    re.IGNORECASE,
)
# What follows "the answer is" when it points elsewhere or denies: not a stated result.
_NOT_A_RESULT = re.compile(
    r"(?:not|within|in|inside|below|above|as\s+follows|given|shown|provided|stated|written|boxed|to|"
    r"the\s+following|correct|right|wrong|incorrect|unclear|unknown|undefined|[:.,;]|\Z)\b",
    re.IGNORECASE,
)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$((?:\\.|[^$\\])+?)\$", re.DOTALL)
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_NUMBER = re.compile(
    r"(?<![\w.,/])[-+−]?(?:\d{1,3}(?:(?:,|\.|\\,|\{,\}|[ \u00a0\u202f])\d{3})+(?![\d])(?:[.,]\d+)?|\d+(?:(?:[.,]|\{,\})\d+)?)"
    r"(?:/\d+)?(?:\s?\\?%)?(?![A-Za-z0-9_/])"
)
_AMOUNT = re.compile(rf"(?:{_NUMBER.pattern}\s*+{UNIT}\s++(?:and\s+)?)*{_NUMBER.pattern}(?:\s*+{UNIT})?", re.IGNORECASE)
_BOLD = re.compile(r"\*\*([^*\n$\d]{1,40}?)\*\*")
# A result that hedges, denies or is revoked is no statement of one: "either 3 or 4", "maybe 7", "not 5".
_HEDGE = re.compile(
    r"\b(?:or|either|one\s+of|maybe|perhaps|possibly|probably|might|not|unsure|guess|unless|wrong|incorrect|mistake|"
    r"extraneous|reject(?:ed|s)?|invalid)\b|n't\b",
    re.IGNORECASE,
)
# A box in a sentence with these (or boxes with these between them) is a guess, not a statement:
# "likely \\boxed{24}, though it could be 25".
_BOX_HEDGE = re.compile(
    r"\b(?:either|likely|could|might|maybe|perhaps|possibly|probably|unsure|guess|if\s+we\s+(?:count|include|assume|exclude))\b|not\s+sure",
    re.IGNORECASE,
)
# Prose after a box or phrase that takes it back.
_REVOKED = re.compile(
    r"\b(?:extraneous|reject(?:ed|s)?|invalid|mistake|wrong|incorrect|not\s+(?:correct|right|valid)|wait|actually|correction|"
    r"let\s+me\s+re-?(?:compute|calculate|check|consider|do)|should\s+(?:be|have\s+been)\s+(?=[-$\\\d])|"
    r"no\s+solutions?|does(?:n't|\s+not)\s+(?:work|satisfy|hold))\b",
    re.IGNORECASE,
)
# Words that make the math after them a condition, not a result: "attained at $x=-5$", "for all $n \\ge 1$".
_CONDITION = re.compile(
    r"\b(?:at|when|whenever|for(?:\s+all|\s+every|\s+each)?|if|where|with|since|because|given|unless|provided|assuming|"
    r"condition|constraint|domain|satisf(?:y|ies|ying))\s*+$",
    re.IGNORECASE,
)
# A number after these is a given, not the result: "saved 100 dollars after 5 weeks", "residents in 2020".
_GIVEN_BEFORE = re.compile(r"\b(?:after|in|for|within|per|at|from|with|over|every|than|as|the|those|these)\s*+$", re.IGNORECASE)
# A bold heading, not a bold result: "**Final Answer**", "**Step 2**".
_HEADING = re.compile(r"(?:final\s+)?(?:answers?|solutions?|results?|steps?(?:\s+\d+)?|summary|explanation|verification|conclusion)", re.IGNORECASE)
# A paragraph cut off mid-sentence ("Therefore, the total number of"): whatever came before is no final result.
_TRUNCATED = re.compile(r"(?:\b(?:of|the|a|an|is|are|to|and|or|for|with|in|on|by|be|we|get|gives|equals)|:)\s*+$", re.IGNORECASE)
_CHECK_INSIDE = re.compile(r"(?:[,;.]\s*+)?\b(?:as\s+a\s+check|to\s+check|to\s+verify|check(?:ing)?\s*+:|verification\s*+:)", re.IGNORECASE)
# A paragraph that checks the result restates the problem's numbers: "Check: 2(4) + 1 = 9".
_CHECK_PARAGRAPH = re.compile(r"\W*+(?:to\s+|let(?:'s|\s+us|\s+me)\s+)?(?:double[-\s]?)?(?:check(?:ing)?|verif(?:y|ication|ying)|sanity\s+check)\b", re.IGNORECASE)
# Where a phrase's sentence ends: a line break or a period before a space, not "i.e." or "e.g.".
_SENTENCE_AFTER_PHRASE = re.compile(r"\n|(?<!\bi\.e)(?<!\be\.g)(?<!\\)\.(?:\s|$)")
_SENTENCE_CHARS = 600
_READ_CHARS = 20_000  # the result is stated at the end: a longer answer section is read from its last 20,000 characters
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n")
# A sentence that restates its result after a verb: "The volume of the box is 120".
_RESULT_VERB = re.compile(r"\b(?:is|are|equals|was|were|be|gives|becomes)\b\s*+:?\s*+", re.IGNORECASE)
# What may stand between boxes (or math spans) stated together: "\\boxed{2}, \\boxed{3}", "$x=2$ or $x=3$",
# one per line or bullet, "\\text{ for part (a) and }"; not a sentence end or a blank line.
_JOIN = re.compile(
    rf"(?:[ \t,;$&、，；]|\n[ \t]*[-*]?|\*\*|\\quad|\\qquad|\\\(|\\\)|\\\[|\\\]|\\,|\(?[a-h]\)|\\text\{{[^{{}}\d]*\}}"
    rf"|\b[A-Za-z](?:_\{{?\w+\}}?)?\s*=|\b(?:and|or|und|oder|et|ou|y|o|e|и|или|và|hoặc)\b|和|或|{UNIT}(?:/{UNIT})?)*+",  # possessive:
    # linear on any gap; the first alternative that fits is kept, so "y =" (a name) comes before "y" (Spanish "and")
    re.IGNORECASE,
)
# Between two spans of one phrase: a restatement ("$\\frac{1}{2}\\cdot 2^3$, i.e. $4$": the last counts) ...
_RESTATED = re.compile(r"\s*+,?\s*+(?:i\.e\.?|that\s+is|which\s+is|or\s+equivalently|equivalently|=)\s*+,?\s*+", re.IGNORECASE)
# ... or a side remark ("$x = 7$, and indeed $7 > 2$": the first counts).
_REMARK = re.compile(r"\s*+[,;]\s*+(?:and|since|because|as|which|where|so\s+that)\b", re.IGNORECASE)
_EMPTY_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{(?:\s|\\[,;:! ]|\\quad|\\qquad|~|\\[hv]?phantom\{[^{}]*\})*+\}")
_CLOSING_DELIMITER = re.compile(r"[^$\n]{0,20}?(?:\$\$|\$|\\\)|\\\])|")
_BOX_LABEL = re.compile(r"([A-Za-z](?:_\{?\w+\}?)?)\s*+=\s*+(?:\$|\\\(|\\\[)?\s*+$")
_CLAUSE_BREAK = re.compile(r"(?<![\s,]),?\s*+\b(?:but|however|though|although|whereas)\b|;")
_PART_LABEL = re.compile(r"\(?[a-h]\)")
_BOLD_COMMAND = re.compile(r"\\(?:textbf|mathbf|bm|boldsymbol)\s*\{([^{}]*)\}")
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
# A value restated in a hypothetical ("if the boxes were distinguishable, the count would be 256") restates nothing.
_HYPOTHETICAL = re.compile(r"\b(?:if|would|were|suppose|supposing|instead|otherwise)\b", re.IGNORECASE)
# "..., which is about 4.67", "cioè circa 0,17": a rounded aside after the result, not a restatement of it.
_APPROXIMATELY = re.compile(
    r"(?<![\s,]),?\s*+(?:(?:which|that)\s+is\s+|i\.e\.\s*+|cioè\s+|c'est-à-dire\s+|d\.h\.\s*+|即\s*+)?"
    r"(?:about|approximately|roughly|around|circa|cerca\s+de|environ|etwa|ungefähr|aproximadamente|приблизительно|около|约|大约|≈|\\approx)"
    r"\s*+\$?\s*+[-+]?\d[\d.,]*\s*+\$?",
    re.IGNORECASE,
)
_UNIT_AFTER = re.compile(rf"\s*+({UNIT})(?![A-Za-z])", re.IGNORECASE)
_CHAT_TOKEN = re.compile(r"<\|[^|>]*\|>\w*")

# ISO 639-1 codes of languages that write a decimal comma (0,5) and group thousands with a dot or a space.
DECIMAL_COMMA = frozenset([
    "de", "fr", "es", "it", "pt", "ru", "uk", "be", "pl", "nl", "cs", "sk", "sl", "hr", "sr", "bs", "bg",
    "ro", "hu", "tr", "sv", "da", "no", "nb", "nn", "fi", "et", "lv", "lt", "is", "el", "id", "vi", "az",
    "kk", "ka", "uz", "mn",
])


@dataclass(frozen=True)
class Statement:
    """A stated result: its text, how it was found, and for several boxes stated together each box's content."""

    text: str
    found_by: str  # boxed | phrase | span | number
    start: int  # where it is in the answer; the last statement wins
    end: int
    parts: tuple[str, ...] = ()
    # a value restated after a box or phrase ("\\boxed{45}. In other words, ... is $44$"): it must agree
    restated: str | None = None
    # every box of the answer, in order, back to the last hedge or take-back between them: a reference
    # with several parts may be answered one box each ("(a) \\boxed{12} ... (b) \\boxed{8}")
    boxes: tuple[str, ...] = ()
    ordered: bool = False  # parts labelled (a), (b), ...: their order is the problem's


def find_answer(answer: str, fallback: bool = True) -> Statement | None:
    """The answer's stated result (see the module doc); with `fallback` False only boxes and phrases count."""
    answer = answer[-_READ_CHARS:]
    tags = _ANSWER_TAG.findall(answer)
    answer = tags[-1] if tags else answer  # R1-Zero's template: <answer> ... </answer> holds the result
    answer = _CODE.sub(lambda m: " " * len(m.group(0)), _CHAT_TOKEN.sub(" ", answer))  # a program's numbers state nothing
    answer = _EMPTY_BOX.sub(lambda m: " " * len(m.group(0)), answer)
    answer = _APPROXIMATELY.sub(lambda m: " " * len(m.group(0)), answer)
    boxes = _box_statements(answer)
    explicit = [*boxes, *_phrase_statements(answer)]
    bare = answer.strip()
    if not explicit and fallback and bare and "\n" not in bare and len(bare) <= 80 and not BOX_OPEN.search(bare) and _is_bare_math(bare):
        return Statement(strip_delimiters(bare), "span", answer.find(bare), answer.find(bare) + len(bare))  # the whole answer is math
    if not explicit:
        found = _last_candidate(answer, 0) if fallback else None
        return found if found is not None and _closed_after(answer, found.end) else None
    last = max(explicit, key=lambda s: s.start)
    last = replace(last, end=last.end + len(_CLOSING_DELIMITER.match(answer, last.end)[0]))  # past the box's own "$"
    if not _closed_after(answer, last.end):
        return None  # a later box never closes: the model stopped mid-statement
    if _REVOKED.search(_prose(answer[last.end :])) or (last.found_by == "boxed" and _hedged_box(answer, last)):
        return _last_candidate(answer, last.end) if fallback else None
    sentence_end = next((m.end() for m in _SENTENCE_END.finditer(answer, last.end)), len(answer))
    later = _last_candidate(answer, sentence_end) if fallback else None
    hypothetical = later is not None and _HYPOTHETICAL.search(_sentence_of(answer, later))
    restated = later.text if later is not None and not later.parts and not hypothetical and _is_value(later.text) else None
    unit = _UNIT_AFTER.match(answer, last.end) if fallback and last.found_by == "boxed" and not last.parts else None
    text = f"{last.text} {unit[1]}" if unit else last.text  # "$\\boxed{1.25}$ cents": the box's amount has a unit
    return replace(last, text=text, restated=restated, boxes=_trailing_boxes(answer, boxes))


def extract_final_answer(answer: str) -> str | None:
    """The text of the last box or answer phrase; None when the answer states neither."""
    statement = find_answer(answer, fallback=False)
    return statement.text if statement else None


def _is_bare_math(text: str) -> bool:
    """Whether an answer is nothing but math, unwrapped: "\\frac{6}{5}m", "x = 3" (no word but a unit or a
    one-letter name outside LaTeX commands; "So x = 3 + 4" is prose)."""
    words = re.sub(rf"\\[A-Za-z]+|(?<![A-Za-z]){UNIT}(?![A-Za-z])", " ", text, flags=re.IGNORECASE)
    return not re.search(r"[A-Za-z]{2}|[\u3040-\u9fff\uac00-\ud7af\u0400-\u04ff]", words)


def _sentence_of(answer: str, statement: Statement) -> str:
    start = max((m.end() for m in _SENTENCE_END.finditer(answer, 0, statement.start)), default=0)
    end = next((m.start() for m in _SENTENCE_END.finditer(answer, statement.end)), len(answer))
    return answer[start:end]


def _closed_after(answer: str, position: int) -> bool:
    """Whether every box opened after `position` closes."""
    after = answer[position:]
    closes = closing_braces(after)
    return all(m.end() - 1 in closes for m in BOX_OPEN.finditer(after))


def _hedged_box(answer: str, box: Statement) -> bool:
    """"The answer is likely \\boxed{24}, though it could be 25", "either \\boxed{15} or ... \\boxed{16}"; a
    clause before the box's own ("A quick guess gives 12, but ... there are \\boxed{14}") is another matter."""
    sentence_start = max((m.end() for m in _SENTENCE_END.finditer(answer, 0, box.start)), default=0)
    sentence_end = next((m.start() for m in _SENTENCE_END.finditer(answer, box.end)), len(answer))
    before = _CLAUSE_BREAK.split(answer[sentence_start : box.start])[-1]
    sentence = before + " " + answer[box.end : sentence_end]
    return bool(_BOX_HEDGE.search(_prose(BOX_OPEN.sub(" ", sentence))))


def _trailing_boxes(answer: str, boxes: list[Statement]) -> tuple[str, ...]:
    """The distinct contents of the answer's boxes, back from the last to the first hedge or take-back
    between two; each with its name where every one has one ("x = 3")."""
    kept: list[Statement] = []
    for box in reversed(boxes):
        if kept and (_REVOKED.search(_prose(answer[box.end : kept[0].start])) or _BOX_HEDGE.search(answer[box.end : kept[0].start])):
            break
        kept.insert(0, box)
    if any(box.parts for box in kept):
        return tuple(dict.fromkeys(part for box in kept for part in (box.parts or (box.text,))))
    return tuple(dict.fromkeys(text for _, _, text in _labelled(answer, [(b.start, b.end, b.text) for b in kept])))


def _labelled(answer: str, boxes: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """"y = \\boxed{3}, x = \\boxed{-2}": each box's content with its name, when every box has one."""
    labels = [_BOX_LABEL.search(answer, max(0, start - 24), start) for start, _, _ in boxes]
    if not all(labels):
        return boxes
    return [(start, end, f"{label[1]} = {content}") for (start, end, content), label in zip(boxes, labels)]  # type: ignore[index]


def _is_value(text: str) -> bool:
    """Whether a restated candidate is a value ("44", "$2 \\times 45 = 90$", "100 dollars") rather than a formula
    in variables ("\\binom{n}{k}"), which restates nothing comparable."""
    value = re.sub(r"\\[A-Za-z]+", " ", text.rpartition("=")[2])
    value = re.sub(rf"(?<![A-Za-z]){UNIT}", " ", value, flags=re.IGNORECASE)
    return bool(re.search(r"\d", value)) and not re.search(r"(?<![A-Za-z])[A-Za-z]{1,2}(?![A-Za-z])", value)


def closing_braces(text: str) -> dict[int, int]:
    """Position of each opening brace -> position of the brace closing it, in one pass (\\{ and \\} are
    literal); an opening brace that never closes is absent."""
    pairs, stack, i = {}, [], 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def plain_number(text: str, language: str = "en") -> str | None:
    """A number written in `language`'s convention as a plain decimal ("1,000" -> "1000" in English,
    "0,5" -> "0.5" in German); None when `text` is not one number. A comma that is neither a
    thousands group (English) nor a decimal comma (German, French, ...) stays unread: "3,5" in an
    English answer may be two solutions."""
    text = join_digit_groups(text.strip().rstrip(".。").strip().strip("$").strip().replace("−", "-"))
    decimal_comma = language.split("-")[0].lower() in DECIMAL_COMMA
    text = text.replace("{,}", "," if decimal_comma or not re.search(r"\{,\}\d{3}(?!\d)", text) else "")
    sign, digits = (text[0], text[1:]) if text.startswith(("+", "-")) else ("", text)
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
    boxes, closes = [], closing_braces(answer)
    for opening in BOX_OPEN.finditer(answer):
        close = closes.get(opening.end() - 1)
        if close is not None and answer[opening.end() : close].strip():
            boxes.append((opening.start(), close + 1, answer[opening.end() : close].strip()))
    runs: list[list[tuple[int, int, str]]] = []
    for box in boxes:
        if runs and _JOIN.fullmatch(answer[runs[-1][-1][1] : box[0]]):
            runs[-1].append(box)
        else:
            runs.append([box])
    statements = []
    for run in runs:
        if len(run) > 1:
            run = _labelled(answer, run)
        parts = tuple(dict.fromkeys(content for _, _, content in run))
        ordered = any(_PART_LABEL.search(answer[a[1] : b[0]]) for a, b in pairwise(run))
        statements.append(Statement(run[-1][2], "boxed", run[-1][0], run[-1][1], parts if len(parts) > 1 else (), ordered=ordered))
    return statements


def _phrase_statements(answer: str) -> list[Statement]:
    """The last answer phrase that states a result (only the last can win); a phrase whose result is
    boxed is the box's. A stated result ends its sentence within `_SENTENCE_CHARS`."""
    statements = []
    for pattern, needs_math in ((_PHRASE, False), (_RESULT_PHRASE, True)):
        for match in reversed(list(pattern.finditer(answer))):
            window = answer[match.end() : match.end() + _SENTENCE_CHARS]
            if window.startswith("\n"):  # "**Final Answers:**" then a list: the block below states it
                sentence = re.split(r"\n\s*\n", window.lstrip("\n"), maxsplit=1)[0]
            else:
                sentence = _SENTENCE_AFTER_PHRASE.split(window, maxsplit=1)[0]
            if BOX_OPEN.search(sentence) or (needs_math and not re.search(r"\d|\$|\\\(", sentence)):
                continue  # the box itself is the statement
            statement = _phrase_result(sentence, match.start(), match.end() + len(sentence))
            if statement is not None:
                statements.append(statement)
                break
    return statements


def _phrase_result(sentence: str, start: int, end: int) -> Statement | None:
    """What a phrase states: "**$\\\\frac{1}{2}$**." -> "\\\\frac{1}{2}"; "The volume of the box is 120" -> "120";
    "\\\\textbf{60} square meters" -> "60 square meters"; "$x=2$ or $x=3$" -> both; "Jane started 3 hours ago"
    -> "3 hours"; None when it points elsewhere or denies ("within \\\\boxed{}", "not 5"), or when prose
    between math spans ("$4$, not $3$", "$3$, but maybe $4$") leaves the result unclear."""
    stated = _BOLD_COMMAND.sub(r"\1", sentence).replace("**", "")
    ordered = bool(re.search(r"(?<![\w\\])\(?[a-h]\)\s", stated))
    stated = re.sub(r"(?m)^\s*[-*]\s+", "", stated).strip().rstrip("。．.，,;；").strip()
    stated = re.sub(r"(?<![\w\\])\(?[A-Ja-h]\)\s+(?=\S)", "", stated)  # "(B) 42", "(a) \\$45, (b) 15%": labels, then values
    spans = _spans(stated)
    if len(spans) > 1:
        gaps = [stated[a.end() : b.start()] for a, b in pairwise(spans)]
        if all(_JOIN.fullmatch(gap) for gap in gaps):
            parts = tuple(dict.fromkeys(_span_inner(m) for m in spans))
            return Statement(parts[-1], "phrase", start, end, parts if len(parts) > 1 else (), ordered=ordered)
        if all(_RESTATED.fullmatch(gap) for gap in gaps):
            return Statement(_span_inner(spans[-1]), "phrase", start, end)
        if _REMARK.match(stated[spans[0].end() :]) and not _HEDGE.search(_prose(stated)):
            return Statement(_span_inner(spans[0]), "phrase", start, end)
        return None
    rest = stated[spans[0].end() :] if spans else ""
    if spans and spans[0].start() == 0 and not re.search(r"\d", rest) and not _HEDGE.search(rest):
        return Statement(_span_inner(spans[0]), "phrase", start, end)  # "$x^2+1$ is the minimal polynomial"
    words = re.findall(r"(?<![\\\w])[A-Za-z]{2,}", _MATH_SPAN.sub(" ", stated))
    verbs = list(_RESULT_VERB.finditer(stated))
    if len(words) >= 3 and verbs:
        stated = stated[verbs[-1].end() :]
    stated = strip_delimiters(stated.strip().removesuffix(".").strip())
    if not stated or _NOT_A_RESULT.match(stated):
        return None
    unwrapped = _MATH_SPAN.sub(lambda m: _span_inner(m), stated)
    if re.fullmatch(r"[^A-Za-z]*(?:\\[A-Za-z]+[^A-Za-z]*)*", unwrapped) and re.search(r",\s", unwrapped):  # "24, 35, $\\sqrt{74}$"
        parts = tuple(part.strip() for part in re.split(r",\s+", unwrapped))
        return Statement(parts[-1], "phrase", start, end, parts, ordered=ordered)
    prose = re.findall(r"(?<![\\\w])[^\W\d_]{2,}", _MATH_SPAN.sub(" ", stated))
    cjk = re.search(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]{2}", stated)  # "每人分得 3,5 元": words without spaces
    if prose and (_spans(stated) or len(prose) >= 2 or cjk):  # still a sentence ("O volume é \(2{,}5\)", "Jane started 3 hours ago")
        inner = _last_candidate(stated, 0)
        if inner is not None:
            return Statement(inner.text, "phrase", start, end, inner.parts, ordered=inner.ordered)
        if re.search(r"\d|\$", stated):
            return None
    return Statement(stated, "phrase", start, end)


def _last_candidate(answer: str, after: int) -> Statement | None:
    """The last math span, amount or bold word of the last paragraph (after `after`) that holds one;
    None when that paragraph holds math that is no result (a condition, a formula) or when the
    candidate's sentence, or any prose after it, hedges or revokes it."""
    breaks = list(re.finditer(r"\n\s*\n", answer))
    paragraphs = zip([0] + [b.end() for b in breaks], [b.start() for b in breaks] + [len(answer)])
    for start, end in reversed(list(paragraphs)):
        start = max(start, after)
        if start >= end:
            continue
        paragraph = answer[start:end]
        if _CHECK_PARAGRAPH.match(paragraph):
            continue  # "Check: 2(4) + 1 = 9" restates the problem, not the result
        check = _CHECK_INSIDE.search(paragraph)
        if check and check.start() > 0:
            paragraph, end = paragraph[: check.start()], start + check.start()  # "...; as a check, (3, 0) and (0, 4)"
        candidates = _candidates(paragraph)
        if not candidates:
            if re.search(r"\d|\$|\\\(|\\\[", paragraph) or _TRUNCATED.search(paragraph):
                return None
            continue
        backwards = [candidates[-1]]  # with the spans (or numbers) listed together before it: "1, 2, 3, 4, 5"
        earlier = [c for c in candidates[:-1] if c[3] == backwards[0][3]]
        while earlier and _JOIN.fullmatch(paragraph[earlier[-1][1] : backwards[-1][0]]):
            backwards.append(earlier.pop())
        run = backwards[::-1]
        sentence_start = max((m.end() for m in _SENTENCE_END.finditer(paragraph, 0, run[0][0])), default=0)
        before = paragraph[sentence_start : run[0][0]]
        around = before + " " + answer[start + run[-1][1] :]
        if _HEDGE.search(_prose(around)) or re.search(r"\bbetween\b[^.]*\band\s*$", _prose(before)):  # "between 3 and 7"
            return None
        first, last = run[0], run[-1]
        found_by = "number" if last[3] == "bold" else last[3]
        parts = tuple(dict.fromkeys(c[2] for c in run))
        ordered = any(_PART_LABEL.search(paragraph[a[1] : b[0]]) for a, b in pairwise(run))
        return Statement(last[2], found_by, start + first[0], start + last[1], parts if len(parts) > 1 else (), ordered=ordered)
    return None


def _candidates(paragraph: str) -> list[tuple[int, int, str, str]]:
    """(start, end, text, kind) of every result-like piece of a paragraph, in order: math spans (not prose
    between two currency signs, not conditions), amounts outside spans that stand alone, bold words."""
    spans = _spans(paragraph)
    found = [
        (m.start(), m.end(), _span_inner(m), "span")
        for m in spans
        if not _CONDITION.search(paragraph[max(0, m.start() - 30) : m.start()])
    ]
    masked = _mask(paragraph, spans)
    unbolded = masked.replace("**", "  ")
    for m in _AMOUNT.finditer(unbolded):
        given = _GIVEN_BEFORE.search(masked, max(0, m.start() - 12), m.start()) or re.match(r"\s+of\b", masked[m.end() : m.end() + 8])
        if not _in_expression(unbolded, m) and not given:
            found.append((m.start(), m.end(), m.group(0).strip(), "number"))
    for m in _BOLD.finditer(masked):
        text = m.group(1).strip().rstrip(".")
        if text and not text.endswith(":") and len(text.split()) <= 4 and not _HEADING.fullmatch(text):
            found.append((m.start(), m.end(), text, "bold"))
    return sorted(found)


def _spans(text: str) -> list[re.Match[str]]:
    """Math spans with something in them; an inline `$...$` holding prose is text between two dollar
    amounts ("$1.50 each and 2 for $"), not math."""
    spans = []
    for m in _MATH_SPAN.finditer(text):
        inner = _span_inner(m)
        prose = re.findall(r"(?<![\\\w])[A-Za-z]{3,}", TEXT_COMMAND.sub(" ", inner))
        if re.search(r"[\w\\]", inner) and not (m.group(4) is not None and len(prose) >= 2):
            spans.append(m)
    return spans


def _prose(text: str) -> str:
    """`text` without its math: what hedges and revocations are looked for in."""
    return _mask(text, _spans(text))


def _mask(text: str, spans: list[re.Match[str]]) -> str:
    """`text` with every span (and any stray dollar sign) blanked, positions kept."""
    pieces, done = [], 0
    for m in spans:
        pieces += [text[done : m.start()], " " * (m.end() - m.start())]
        done = m.end()
    return ("".join(pieces) + text[done:]).replace("\\$", "  ").replace("$", " ")


def _in_expression(text: str, number: re.Match[str]) -> bool:
    """Whether a number outside math delimiters is part of a formula ("\\\\frac{3}{4}", "3 + 4", "2^10"),
    not a result of its own."""
    before = text[max(0, number.start() - 40) : number.start()].rstrip()[-1:]
    after = text[number.end() : number.end() + 40].lstrip()[:1]
    return before in tuple("+-*/^_{(\\×÷·") or after in tuple("+-*/^_{}\\×÷·=")


def _span_inner(match: re.Match[str]) -> str:
    """A span's math, without the sentence's punctuation written inside it ("$$y = 2x + 3.$$")."""
    return next(g for g in match.groups() if g is not None).strip().rstrip(".,;").strip()
