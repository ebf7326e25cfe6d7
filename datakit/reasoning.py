"""Split a completion into its chain of thought and its final answer.

R1-style models write `<think>reasoning</think>answer`. Templates may pre-fill the opening tag
(then the completion starts inside the block), a model may never close the block, and a truncated
completion stops anywhere; each case gets a definite split.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def split_completion(text: str, prefilled_think: bool = False) -> tuple[str, str]:
    """Return `(reasoning, answer)`; reasoning is "" when there is no think block, answer is "" when
    the block never closed (everything generated was reasoning)."""
    head, closed, tail = text.partition(THINK_CLOSE)
    if closed:
        return _strip_open_tag(head), tail.strip()
    if THINK_OPEN in text:
        return text.split(THINK_OPEN, 1)[1].strip(), ""
    if prefilled_think:
        return text.strip(), ""
    return "", text.strip()


# What chat models write when asked for <think> tags: the tags, other names for them (<thinking>,
# <reasoning>), a slash the wrong way or spaced (<\think>, </ think>), any case.
_TAG_NAME = r"(?:think|thinking|thoughts?|reasoning)"
_OPEN_TAG = re.compile(rf"<\s*{_TAG_NAME}\s*>", re.IGNORECASE)
_CLOSE_TAG = re.compile(rf"<\s*[/\\]\s*{_TAG_NAME}\s*>", re.IGNORECASE)
# Headings on a line of their own or before a colon, plain, bold or markdown: "Thought:", "**Reasoning:**",
# "### Answer", "答案：".
_HEADING = r"^[ \t]*(?:#{{1,6}}[ \t]*)?(?:\*\*|__)?[ \t]*(?:{words})[ \t]*(?:\*\*|__)?[ \t]*(?:[:：](?:\*\*|__)?|(?=\n))"
_REASONING_HEADING = re.compile(
    _HEADING.format(words=r"thoughts?|thinking|reasoning|chain of thought|step-by-step reasoning|思考过程|思考|推理过程|推理"),
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER_HEADING = re.compile(
    _HEADING.format(words=r"final answer|answer|final response|response|最终答案|答案|回答|回复"), re.IGNORECASE | re.MULTILINE
)
_ANSWER_TAGS = re.compile(r"\A<answer>(.*)</answer>\Z", re.IGNORECASE | re.DOTALL)


def split_prompted(text: str) -> tuple[str, str]:
    """Return `(reasoning, answer)` from a chat model asked to think in `<think>` tags before answering.

    Takes the tags as asked (and their usual variants); a block closed by a second opening tag; an
    unclosed block that an "Answer:" heading ends; or a text that opens with a "Thought:"/"Reasoning:"
    heading and goes on to an "Answer:" one. Reasoning is "" when the model wrote none (the format
    filter rejects a prompted row without it); answer is "" when the reasoning never ended. A leading
    "Answer:" label or <answer> tags around the answer are the format's, not the answer's: dropped.
    """
    opened = _OPEN_TAG.search(text)
    closed = _CLOSE_TAG.search(text, opened.end() if opened else 0)
    if closed:
        return text[opened.end() if opened else 0 : closed.start()].strip(), _bare_answer(text[closed.end() :])
    if opened:
        body = text[opened.end() :]
        again = _OPEN_TAG.search(body)  # "<think> … <think> answer": the model closed with the opening tag
        if again:
            return body[: again.start()].strip(), _bare_answer(body[again.end() :])
        return _split_at_answer_heading(body)
    first = _REASONING_HEADING.match(text.lstrip())
    if first:
        return _split_at_answer_heading(text.lstrip()[first.end() :])
    return "", _bare_answer(text)


def _split_at_answer_heading(body: str) -> tuple[str, str]:
    heading = _ANSWER_HEADING.search(body)
    if heading is None or not body[: heading.start()].strip():
        return body.strip(), ""
    return body[: heading.start()].strip(), body[heading.end() :].strip()


def _bare_answer(answer: str) -> str:
    answer = answer.strip()
    heading = _ANSWER_HEADING.match(answer)
    if heading:
        answer = answer[heading.end() :].strip()
    tagged = _ANSWER_TAGS.match(answer)
    return tagged.group(1).strip() if tagged else answer


def join_reasoning(reasoning: str | None, answer: str) -> str:
    """Rebuild the raw completion from a server that returns reasoning separately (reasoning_content)."""
    if reasoning is None:
        return answer
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.lstrip()}"


def ends_with_open_think(prompt_text: str) -> bool:
    """True when the rendered prompt already opened the think block for the model."""
    return prompt_text.rstrip().endswith(THINK_OPEN)


def _strip_open_tag(head: str) -> str:
    head = head.strip()
    return head[len(THINK_OPEN) :].strip() if head.startswith(THINK_OPEN) else head
