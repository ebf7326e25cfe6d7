"""Prompted chains of thought for non-reasoning prompts, as DeepSeek-R1 built its non-reasoning data.

R1 (section 2.3.3) had DeepSeek-V3 write a chain of thought before answering writing, factual QA and
translation prompts, and gave simple queries such as "hello" none. A sample run with `cot.mode:
prompted` decides per prompt, before sampling, how its think block is made (`think_mode`):

- `native`: sent as it is; the teacher's own output is split (reasoning prompts, reasoning teachers,
  and every prompt when the mode is off);
- `prompted`: a non-reasoning prompt sent with a versioned template asking for `<think>…</think>`
  before the answer; the output is normalised by `datakit.reasoning.split_prompted`;
- `empty`: a simple query (a greeting, thanks, one line of small talk) sent without the template;
  the mix gives it an empty think block.

The prompt stored in `messages` is never the templated one: the student learns to answer the user's
own request, not the instruction that made the teacher show its thinking.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from datakit.errors import DatakitError

THINK_MODES = ("native", "prompted", "empty")
MODES = ("off", "prompted")
PLACEHOLDER = "{prompt}"
# A template's text never changes under its version: a new wording is a new version, so a manifest's
# name and version say exactly what the teacher was asked.
TEMPLATES = {
    ("think-tags", "v1"): (
        "{prompt}\n\n"
        "(Before you respond, reason about the request step by step inside <think> and </think>. "
        "After </think>, write your response. Use the language the response should be in for both.)"
    ),
}
# Bumped whenever the simple-query rules below change what they accept.
SIMPLE_QUERY_RULES = "v1"


@dataclass
class CotConfig:
    """A sample run's `cot:` section: whether non-reasoning prompts ask the teacher for a chain of thought."""

    mode: str = "off"  # off | prompted
    template: str = "think-tags"  # a built-in template's name ...
    version: str = "v1"  # ... and version (both recorded in the manifest)
    # Your own template instead of the built-in one: the request goes where {prompt} stands. It is
    # recorded as template "recipe", version "sha256-" + the first 12 hex digits of its hash.
    text: str = ""
    # Greetings, thanks and one-line small talk get no chain of thought (R1: "hello"); false: every
    # non-reasoning prompt is templated.
    empty_think_for_simple: bool = True


@dataclass(frozen=True)
class CotTemplate:
    name: str
    version: str
    text: str

    def apply(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The chat sent to the teacher: the last user turn placed into the template."""
        last = messages[-1]
        return [*messages[:-1], {"role": last["role"], "content": self.text.replace(PLACEHOLDER, last["content"].strip())}]


def resolve_template(config: CotConfig) -> CotTemplate:
    """The template a run uses, with the name and version the manifest records."""
    if config.text:
        if config.text.count(PLACEHOLDER) != 1:
            raise DatakitError(f"cot.text: must hold {PLACEHOLDER} exactly once (where the request goes), found {config.text.count(PLACEHOLDER)}")
        return CotTemplate("recipe", "sha256-" + hashlib.sha256(config.text.encode()).hexdigest()[:12], config.text)
    text = TEMPLATES.get((config.template, config.version))
    if text is None:
        known = ", ".join(f"{name} {version}" for name, version in TEMPLATES)
        raise DatakitError(f"cot: unknown template {config.template!r} version {config.version!r}; built in: {known} (or give your own as cot.text)")
    return CotTemplate(config.template, config.version, text)


def check_cot(config: CotConfig, prefill_think: bool) -> None:
    """Refuse settings that cannot mean what they say, before any prompt is read."""
    if config.mode not in MODES:
        raise DatakitError(f"cot.mode: must be one of {', '.join(MODES)}, got {config.mode!r}")
    if config.mode == "prompted" and prefill_think:
        raise DatakitError(
            "cot.mode prompted asks a chat model (R1: DeepSeek-V3) to write a chain of thought, but prefill_think opens "
            "the think block of a reasoning model, which reasons anyway: a reasoning teacher needs cot.mode off"
        )
    resolve_template(config)


def describe(config: CotConfig) -> dict[str, object]:
    """What a manifest records: the mode, and when prompted, the template's name, version and text."""
    if config.mode == "off":
        return {"mode": "off"}
    template = resolve_template(config)
    return {
        "mode": config.mode,
        "template": template.name,
        "version": template.version,
        "text": template.text,
        "empty_think_for_simple": config.empty_think_for_simple,
        "simple_query_rules": SIMPLE_QUERY_RULES,
    }


def think_mode(messages: list[dict[str, str]], kind: str, config: CotConfig) -> str:
    """How this prompt's think block is made (see the module docstring)."""
    if config.mode == "off" or kind != "non_reasoning":
        return "native"
    if config.empty_think_for_simple and is_simple_query(messages[-1]["content"]):
        return "empty"
    return "prompted"


def teacher_messages(messages: list[dict[str, str]], mode: str, template: CotTemplate | None) -> list[dict[str, str]]:
    """What the teacher is sent for a prompt of this think mode."""
    return template.apply(messages) if mode == "prompted" and template is not None else messages


# --- simple queries ---------------------------------------------------------------------------------
#
# A query is simple when it is nothing but greetings, thanks, farewells, "how are you" and the words
# that go with them ("there", "so much", "again"), in any order: one unknown word ("hi, what is 2+2?",
# "hello world in Rust?", "thanks to whom did Rome fall?") makes it a real request. Phrases are written
# as they look after `_normalise` (lower case, no accents or apostrophes).

SMALL_TALK = {
    "en": """hi | hello | hey | heya | hiya | howdy | yo | greetings | good morning | good afternoon | good evening |
        good night | morning | evening | thanks | thank you | thx | ty | many thanks | much appreciated | appreciate it |
        cheers | how are you | how are you doing | how r u | how is it going | hows it going | how do you do |
        how have you been | hows your day | how is your day | how is your day going | whats up | sup | wassup |
        nice to meet you | good to see you | bye | bye bye | goodbye | see you | see you later | take care | ok | okay |
        cool | great | nice | awesome | im fine | im good | i am fine | i am good | fine | and you | you too""",
    "zh": """你好 | 您好 | 你好啊 | 嗨 | 哈喽 | 哈啰 | 早上好 | 下午好 | 晚上好 | 早安 | 晚安 | 谢谢 | 谢谢你 | 谢谢您 | 多谢 | 非常感谢 |
        感谢 | 你好吗 | 最近怎么样 | 最近好吗 | 再见 | 拜拜 | 好的 | 在吗""",
    "ja": "こんにちは | こんばんは | おはよう | おはようございます | ありがとう | ありがとうございます | どうも | お元気ですか | 元気ですか | さようなら",
    "ko": "안녕 | 안녕하세요 | 감사합니다 | 고마워 | 고마워요 | 고맙습니다 | 잘 지내요 | 잘 지내세요",
    "fr": "bonjour | bonsoir | salut | coucou | merci | merci beaucoup | ca va | comment ca va | comment allez vous | au revoir",
    "es": "hola | buenos dias | buenas tardes | buenas noches | gracias | muchas gracias | que tal | como estas | como esta | adios",
    "de": "hallo | guten morgen | guten tag | guten abend | danke | danke schon | danke sehr | vielen dank | wie gehts | wie geht es dir | tschuss | servus | moin",
    "pt": "ola | oi | bom dia | boa tarde | boa noite | obrigado | obrigada | muito obrigado | muito obrigada | tudo bem | como vai",
    "it": "ciao | buongiorno | buonasera | grazie | grazie mille | come stai | arrivederci",
    "ru": "привет | здравствуйте | добрый день | доброе утро | добрый вечер | спасибо | большое спасибо | как дела | пока",
}
# Words that only ever ride along with a greeting or thanks ("hi there", "thanks so much", "hello again").
ALONG = "there | friend | buddy | pal | mate | everyone | everybody | all | guys | folks | again | so much | very much | a lot | today | bot | assistant"
MAX_SIMPLE_CHARS = 80


def _normalise(text: str) -> str:
    """Case, accents, apostrophes and punctuation out of the way, words separated by one space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).replace("'", "")
    return " ".join(re.sub(r"[^\w]+|_", " ", plain).split())


def _phrases() -> list[str]:
    listed = [*SMALL_TALK.values(), ALONG]
    phrases = {_normalise(p) for block in listed for p in block.split("|")}
    return sorted(phrases - {""}, key=len, reverse=True)  # longest first: "thank you" before "thank"


# A Latin phrase must end its word ("hi there", not "history"); scripts without spaces run on ("你好谢谢").
_SIMPLE = re.compile(r"(?:(?:" + "|".join(map(re.escape, _phrases())) + r")(?![a-z0-9]) ?)+")


def is_simple_query(text: str) -> bool:
    """True for greetings, thanks and one-line small talk ("hi there!", "谢谢", "how are you?"), which
    get an empty think block; False for anything that asks for something."""
    words = _normalise(text)
    return bool(words) and len(words) <= MAX_SIMPLE_CHARS and _SIMPLE.fullmatch(words) is not None
