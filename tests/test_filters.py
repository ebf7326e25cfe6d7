"""Each filter on hand-made rows, both verdicts; scores stay apart from thresholds."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from datakit.errors import DatakitError
from datakit.filters import Filter, make_filter


def _rows(**columns: list[Any]) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "prompt_id": [f"p{i}" for i in range(n)],
        "sample_index": [0] * n,
        "completion": [""] * n,
        "reasoning": [""] * n,
        "answer": ["ok"] * n,
        "finish_reason": ["stop"] * n,
        "domain": ["math"] * n,
        "language": ["en"] * n,
        "completion_tokens": [10] * n,
        "verifier": ["math"] * n,
        "reference": ["1"] * n,
    }
    return pl.DataFrame({**base, **columns})


def _verdicts(f: Filter, rows: pl.DataFrame, context: dict[str, Any] | None = None) -> list[str | None]:
    f.setup(context or {})
    scores = f.score(rows)
    assert scores.height == rows.height and set(scores.columns) == set(f.scores)
    return f.keep(pl.concat([rows.select(f.columns()), scores], how="horizontal")).to_list()


def test_format() -> None:
    rows = _rows(
        completion=["<think>a</think>b", "<think>a", "<think>a</think>b", "<think>a</think>  "],
        answer=["b", "", "b", ""],
        finish_reason=["stop", "stop", "length", "stop"],
    )
    got = _verdicts(make_filter("format", {}, "t"), rows)
    assert got[0] is None
    assert got[1].startswith("no_think_block:")
    assert got[2] == "truncated: finish_reason=length"
    assert got[3].startswith("empty_answer: 0 characters")
    loose = _verdicts(make_filter("format", {"require_think": False}, "t"), _rows(completion=["just an answer"], answer=["just an answer"]))
    assert loose == [None]


def test_long_paragraph() -> None:
    rows = _rows(reasoning=["short one.\n\nanother short one.", "word " * 301, ""])
    assert _verdicts(make_filter("long_paragraph", {"max_words": 300}, "t"), rows) == [None, "long_paragraph: a paragraph of 301 words > 300", None]


def test_code_block_in_reasoning_only_outside_code_domains() -> None:
    fenced = "Let me try:\n```python\nprint(1)\n```\nSo it prints 1."
    rows = _rows(reasoning=[fenced, fenced, "no code here", "```\nunclosed"], domain=["math", "code", "math", "science"])
    got = _verdicts(make_filter("code_block", {}, "t"), rows)
    assert got[0] == "code_in_reasoning: 1 code block(s) in the chain of thought of a math prompt"
    assert got[1] is None and got[2] is None
    assert got[3].startswith("code_in_reasoning: 1 code block")


def test_repetition_catches_loops_not_prose() -> None:
    prose = "First we add twelve and seven to get nineteen, then we multiply by two which gives thirty eight as the total."
    loop = "Wait, let me check that again. " * 40
    got = _verdicts(make_filter("repetition", {"n": 5, "max_repetition": 0.3}, "t"), _rows(reasoning=[prose, loop], answer=["38", "?"]))
    assert got[0] is None and got[1].startswith("repetitive:")


def test_repetition_compiled_count_equals_the_set_of_tuples() -> None:
    import random

    from datakit.filters.text import _repeated_ngram_share_exact, repeated_ngram_shares

    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]  # every kind of whitespace str.split knows
    rng = random.Random(7)
    vocabulary = ["a", "b", "we", "check", "é", "naïve", "我们", "计算", "😀", "x\u200by", "\u00adsoft", "Wait,", "wait,", "\u2060"]
    texts = [
        "", "one", " \n ", "a b c d e", "a b c d e f", "x " * 50, "Wait, let me check that again. " * 40,
        "First we add twelve and seven to get nineteen, then we multiply by two.",
        "tab\tand\u00a0no-break\u2003em\x1cfile-sep\u3000ideographic spaces " * 7,
        "我们 来 计算 我们 来 计算 我们 来 计算 " * 5, "loop " * 3 + "then prose comes after the loop ends here " * 2,
        "".join(s + "w" for s in spaces) * 3,  # each whitespace character splits, once each and in runs
    ]
    texts += [  # random words over a small vocabulary (many repeats), random runs of any whitespace between them
        "".join(rng.choice(vocabulary) + "".join(rng.choices(spaces, k=rng.randint(1, 3))) for _ in range(rng.randint(0, 80)))
        for _ in range(300)
    ]
    for n in (1, 2, 3, 5, 10):
        got = repeated_ngram_shares(pl.Series(texts, dtype=pl.String), n)
        for text, share in zip(texts, got):
            words = text.split()
            assert share == (_repeated_ngram_share_exact(words, n) if len(words) >= n else 0.0), (n, text)


def test_longest_paragraph_counts_words_as_str_split_between_blank_lines() -> None:
    import random

    from datakit.filters.text import longest_paragraph_words

    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    rng = random.Random(11)
    pieces = ["word", "é", "我们", "😀", "x\u200by", "\n\n", "\n\n\n", "\n", *spaces]
    texts = ["", "one", "\n\n", "a b\n\nc d e\n\n\nf", "a\n\n\n\nb c", "\u3000a\u2028b\x1cc\n \nd"]
    texts += ["".join(rng.choices(pieces, k=rng.randint(0, 60))) for _ in range(400)]
    got = longest_paragraph_words(pl.Series(texts + [None], dtype=pl.String))
    assert got.tolist() == [max(len(p.split()) for p in text.split("\n\n")) for text in texts] + [0]


def test_repetition_counts_a_text_whose_hashes_collide_in_python(monkeypatch) -> None:
    """The compiled scan answers -1 for a text where two different n-grams share a hash; that text is
    then counted from its words."""
    from datakit.filters import text

    monkeypatch.setattr(text, "_repeated_ngram_shares", lambda data, offsets, n, shares, *work: shares.__setitem__(slice(None), [0.5, -1.0]))
    shares = text.repeated_ngram_shares(pl.Series(["any text", "a b a b a b"]), 2)
    assert shares.tolist() == [0.5, text._repeated_ngram_share_exact("a b a b a b".split(), 2)] == [0.5, 0.6]


def test_repetition_scores_rows_with_a_null_text_one_by_one() -> None:
    """A null chain of thought fails its own row (the stage's per-row fallback), not the batch."""
    from datakit.filters.text import repeated_ngram_shares

    with pytest.raises(ValueError, match="1 null text"):
        repeated_ngram_shares(pl.Series(["a b", None]), 1)


def test_language_consistency_masks_math_and_code() -> None:
    english = "First I add the two numbers. Then I check the result carefully. The sum is correct and I am confident."
    with_math = english + " We have $\\frac{a}{b} = \\sqrt{x^2 + y^2}$ and `x = foo(bar)`."
    mixed = english + " 然后我们需要计算这个问题的答案，我觉得应该是十九。我们再检查一遍这个结果是否正确。"
    f = make_filter("language", {"min_consistency": 0.9}, "t")
    got = _verdicts(f, _rows(reasoning=[english, with_math, mixed, ""]))
    assert got[0] is None and got[1] is None and got[3] is None  # empty chain of thought: nothing to judge
    assert got[2].startswith("language_mixing:") and "in en" in got[2]
    scores = f.score(_rows(reasoning=[english, mixed]))
    assert scores["language_consistency"][0] == 1.0 and scores["language_consistency"][1] < 0.9
    # a French target accepts French and rejects English
    french = "Je dois additionner les deux nombres. Ensuite je vérifie le résultat avec soin."
    got = _verdicts(f, _rows(reasoning=[french, english], language=["fr", "fr"]))
    assert got[0] is None and got[1].startswith("language_mixing")


def test_length_counts_tokens_with_the_generators_tokenizer(tiny_model: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    f = make_filter("length", {"max_reasoning_tokens": 20, "min_answer_tokens": 1}, "t")
    reasonings, answers = ["short", "word " * 50, "fine"], ["4", "4", ""]
    completions = [f"<think>\n{r}\n</think>\n\n{a}" for r, a in zip(reasonings, answers)]
    counts = [len(tok(c, add_special_tokens=False)["input_ids"]) for c in completions]
    # foreign traces (no completion_tokens): both parts tokenized
    foreign = _rows(reasoning=reasonings, answer=answers).drop("completion_tokens")
    got = _verdicts(f, foreign, {"model": tiny_model})
    assert got[0] is None
    assert got[1].startswith("too_long: ") and "reasoning tokens > 20" in got[1]
    assert got[2] == "too_short: 0 answer tokens < 1"
    # datakit samples: reasoning tokens derived from the generator's count, within a token or two
    ours = _rows(reasoning=reasonings, answer=answers, completion=completions, completion_tokens=counts)
    assert _verdicts(f, ours, {"model": tiny_model}) == got
    derived = f.score(ours)["reasoning_tokens"].to_list()
    direct = f.score(foreign)["reasoning_tokens"].to_list()
    assert all(abs(a - b) <= 2 for a, b in zip(derived, direct)), (derived, direct)
    with pytest.raises(DatakitError, match="needs `tokenizer:`"):
        make_filter("length", {}, "t").setup({})


def test_best_of_n_keeps_the_k_shortest_per_prompt() -> None:
    rows = pl.DataFrame({
        "prompt_id": ["a", "a", "a", "b"],
        "sample_index": [0, 1, 2, 0],
        "completion_tokens": [30, 10, 20, 99],
        "judge_score": [0.1, 0.9, 0.5, 0.3],
    })
    got = _verdicts(make_filter("best_of_n", {"k": 2}, "t"), rows)
    assert got == ["not_best_of_n: rank 3 by shortest, keeping 2 per prompt", None, None, None]
    by_score = _verdicts(make_filter("best_of_n", {"k": 1, "by": "judge_score"}, "t"), rows)
    assert by_score[1] is None and by_score[3] is None and by_score[0] and by_score[2]
    first = _verdicts(make_filter("best_of_n", {"k": 1, "by": "random", "seed": 1}, "t"), rows)
    again = _verdicts(make_filter("best_of_n", {"k": 1, "by": "random", "seed": 1}, "t"), rows)
    assert first == again and sum(v is None for v in first[:3]) == 1


def test_threshold_changes_re_decide_from_stored_scores() -> None:
    rows = _rows(reasoning=["word " * 150, "word " * 250])
    strict, loose = make_filter("long_paragraph", {"max_words": 100}, "t"), make_filter("long_paragraph", {"max_words": 200}, "t")
    scores = strict.score(rows)
    frame = pl.concat([rows.select(strict.columns()), scores], how="horizontal")
    assert strict.keep(frame).null_count() == 0
    assert loose.keep(frame).to_list()[0] is None and loose.keep(frame).to_list()[1] is not None


def test_unknown_filter_and_bad_parameters_are_named() -> None:
    with pytest.raises(DatakitError, match="chain.yaml filters\\[2\\]: unknown filter 'langauge'; known: .*language"):
        make_filter("langauge", {}, "chain.yaml filters[2]")
    with pytest.raises(DatakitError, match="max_wrods"):
        make_filter("long_paragraph", {"max_wrods": 3}, "chain.yaml filters[0]")


def test_correctness_by_verifier_keeps_verdicts_apart() -> None:
    import json

    from conftest import ROOT

    problems = [json.loads(line) for line in (ROOT / "data" / "demo" / "humaneval.jsonl").read_text().splitlines()[:2]]
    good = f"Here it is:\n```python\n{problems[0]['canonical_solution']}\n```"
    broken = "```python\ndef has_close_elements(numbers, threshold):\n    return None\n```"
    early_exit = "```python\nimport sys\nsys.exit(0)\n```"
    tests = json.dumps(problems[0]["tests"])  # the canonical code-test object, as ingest makes the reference
    rows = _rows(
        verifier=["math", "math", "math", "code", "code", "code", "code", "choice", "exact", "judge", "math"],
        answer=["\\boxed{\\frac{1}{2}}", "\\boxed{3}", "I don't know", good, broken, early_exit, "no code", "The answer is (B).", "Paris.", "x", "\\boxed{9^{9^{9^{9}}}}"],
        reference=["0.5", "2", "2", tests, tests, tests, tests, "B", "paris", "y", "84"],
        domain=["math", "math", "math", "code", "code", "code", "code", "science", "qa", "writing", "math"],
    )
    f = make_filter("correctness", {"timeout_s": 2, "code_case_cpu_s": 5}, "t")
    scores = f.score(rows)
    assert scores["correct_verdict"].to_list() == [
        "correct", "wrong", "no_answer", "correct", "wrong", "runtime_error", "no_answer", "correct", "correct", "unverified", "timeout",
    ]
    assert "failed to load: SystemExit" in scores["correct_detail"][5]
    verdicts = f.keep(pl.concat([rows.select(f.columns()), scores], how="horizontal")).to_list()
    assert [v is None for v in verdicts] == [True, False, False, True, False, False, False, True, True, False, False]
    assert verdicts[1] == "wrong: math: boxed 3, expected 2"
    assert verdicts[10].startswith("timeout: math: used more than 2 CPU seconds")
    assert verdicts[9].startswith("unverified: judge")
    judged = make_filter("correctness", {"unverified": "judge"}, "t")
    passed_on = judged.keep(pl.concat([rows.select(f.columns()), scores], how="horizontal")).to_list()
    assert passed_on[2] is None and passed_on[9] is None and passed_on[1] is not None  # undecided rows go on to the judge


def test_correctness_checks_each_distinct_answer_once_with_the_same_verdicts() -> None:
    # samples of a prompt often end in the same words: each distinct (verifier, answer, reference, language)
    # is checked once, and every row gets what its answer would get alone
    answers = ["\\boxed{3}", "The answer is \\boxed{2}.", "\\boxed{3}", "1,5", "1,5", "\\boxed{\\frac{4}{2}}", "The answer is \\boxed{2}."]
    languages = ["en", "en", "en", "en", "de", "en", "en"]
    references = ["2", "2", "2", "1.5", "1.5", "2", "2"]
    f = make_filter("correctness", {"timeout_s": 5}, "t")
    together = f.score(_rows(answer=answers, reference=references, language=languages))
    alone = pl.concat([f.score(_rows(answer=[a], reference=[r], language=[lang])) for a, r, lang in zip(answers, references, languages)])
    assert together.equals(alone)
    assert together["correct_verdict"].to_list()[:5] == ["wrong", "correct", "wrong", "wrong", "correct"]  # 1,5 is 15 in en, 1.5 in de
