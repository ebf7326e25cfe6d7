"""Which languages datakit can judge, and by which script: plain tables, apart from the language
filter's compiled patterns, so that checking a row's `language` code (the reader, ingest, the mix)
does not pay for building them."""

from __future__ import annotations

import re

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


def base_language(language: str | None) -> str:
    """'zh-Hans' -> 'zh', 'EN_us' -> 'en'; '' for None."""
    return re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower() if language else ""
