"""Split a completion into its chain of thought and its final answer.

R1-style models write `<think>reasoning</think>answer`. Templates may pre-fill the opening tag
(then the completion starts inside the block), a model may never close the block, and a truncated
completion stops anywhere; each case gets a definite split.
"""

from __future__ import annotations

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
