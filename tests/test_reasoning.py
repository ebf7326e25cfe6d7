import pytest

from datakit.reasoning import ends_with_open_think, join_reasoning, split_completion


@pytest.mark.parametrize(
    "text, prefilled, expected",
    [
        ("<think>\nadd 2 and 2\n</think>\n\nThe answer is 4.", False, ("add 2 and 2", "The answer is 4.")),
        # the template opened the block: the completion starts inside it
        ("add 2 and 2\n</think>\n\n**4**", True, ("add 2 and 2", "**4**")),
        # no think block at all: everything is the answer
        ("The answer is 4.", False, ("", "The answer is 4.")),
        # opened, never closed (truncated or malformed): everything is reasoning, no answer
        ("<think>\nadd 2 and 2, then", False, ("add 2 and 2, then", "")),
        ("add 2 and 2, then", True, ("add 2 and 2, then", "")),
        # an empty think block, as R1's non-reasoning data has
        ("<think>\n\n</think>\n\nHello!", False, ("", "Hello!")),
        # only the first closing tag ends the reasoning
        ("<think>a</think>b</think>c", False, ("a", "b</think>c")),
    ],
)
def test_split_completion(text: str, prefilled: bool, expected: tuple[str, str]) -> None:
    assert split_completion(text, prefilled) == expected


def test_join_reasoning_round_trips_through_split() -> None:
    text = join_reasoning("step one\nstep two", "It is 4.")
    assert text.startswith("<think>\n")
    assert split_completion(text) == ("step one\nstep two", "It is 4.")
    assert join_reasoning(None, "plain") == "plain"


def test_open_think_detection() -> None:
    assert ends_with_open_think("<|im_start|>assistant\n<think>\n")
    assert not ends_with_open_think("<|im_start|>assistant\n")
