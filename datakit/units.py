"""Units of measure in short answers: "120 cm", "2 hours 30 minutes", "\\$4.50", "90^\\circ".

A math answer and its reference are compared as quantities when both carry a unit this table knows:
1.2 m is 120 cm, 450 cents is \\$4.50, and 120 m is not 120 cm. Where only one side carries a unit it
is decoration, as math-verify treats it ("20 dollars" is 20).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

# unit -> (dimension, size in the dimension's base unit); plurals and spellings listed once each
_TABLE: dict[str, tuple[str, float]] = {}
for _names, _dimension, _size in (
    ("mm millimeter millimeters millimetre millimetres", "length", 1e-3),
    ("cm centimeter centimeters centimetre centimetres centímetro centímetros centimètre centimètres Zentimeter", "length", 1e-2),
    ("m meter meters metre metres metro metros metri mètre mètres", "length", 1.0),
    ("km kilometer kilometers kilometre kilometres kilómetro kilómetros quilômetro quilômetros kilomètre kilomètres Kilometer", "length", 1e3),
    ("inch inches", "length", 0.0254),  # not "in": "12 in total"
    ("ft foot feet", "length", 0.3048),
    ("yd yard yards", "length", 0.9144),
    ("mi mile miles", "length", 1609.344),
    ("s sec secs second seconds segundo segundos seconde secondes Sekunde Sekunden", "time", 1.0),
    ("min mins minute minutes minuto minutos minuti Minute Minuten", "time", 60.0),
    ("h hr hrs hour hours hora horas heure heures Stunde Stunden ora ore", "time", 3600.0),
    ("day days", "time", 86400.0),
    ("week weeks", "time", 604800.0),
    ("mg milligram milligrams", "mass", 1e-3),
    ("g gram grams gramo gramos grama gramas gramme grammes Gramm grammi", "mass", 1.0),
    ("kg kilogram kilograms kilogramo kilogramos quilograma quilogramas kilogramme kilogrammes Kilogramm chilogrammi", "mass", 1e3),
    ("lb lbs pound pounds", "mass", 453.59237),
    ("oz ounce ounces", "mass", 28.349523125),
    ("ml milliliter milliliters millilitre millilitres", "volume", 1e-3),
    ("l liter liters litre litres litro litros litri", "volume", 1.0),
    ("cent cents", "money", 0.01),
    ("dollar dollars", "money", 1.0),
    ("° degree degrees", "angle", math.pi / 180),
    ("rad radian radians", "angle", 1.0),
):
    for _name in _names.split():
        _TABLE[_name.lower()] = (_dimension, _size)

UNIT = r"(?:square\s+|cubic\s+|sq\.?\s+)?(?:" + "|".join(sorted((re.escape(u) for u in _TABLE), key=len, reverse=True)) + r")(?:\^?[23]|²|³)?(?![A-Za-z])"
_NUMBER = r"(?<![\d.])[-+]?\d++(?:\.\d++)?"  # from a number's start, never backing into it: linear on 10^4 digits
_TERM = re.compile(rf"({_NUMBER})\s*+({UNIT}(?:\s*/\s*{UNIT})?)", re.IGNORECASE)
_CLEAN = re.compile(r"\\(?:text|mathrm|textrm|mbox|operatorname)\s*\{([^{}]*)\}|\\[,;:! ]|~|\$|\\\$|\{|\}")


def join_digit_groups(text: str) -> str:
    """"1 000", "1\\,000", "12\u202f500" -> "1000", "12500": a space between digit groups is a thousands separator
    in every language."""
    return re.sub(r"(?<=\d)(?:\\,|\\ |\\;|~|[ \u00a0\u202f\u2009])(?=\d{3}(?!\d))", "", text)


class Quantity(NamedTuple):
    value: float  # in the dimension's base unit
    dimension: str  # length, time, ..., length^2
    terms: int  # "2 hours 30 minutes" is 2
    first_unit: float  # the size of its first term's unit, to read it in that unit (3.5 hours)


def quantity(text: str) -> Quantity | None:
    """The amount `text` states when it is nothing but amounts with units of one dimension ("2 hours 30
    minutes", "5 cm^2", "\\$4.50", "90^\\circ"); None otherwise."""
    text = text.replace("^\\circ", "°").replace("^{\\circ}", "°").replace("\\circ", "°")
    dollars = re.fullmatch(r"\s*\\?\$\s*(\d+(?:\.\d+)?)\s*", text.replace("\\$", "$", 1))
    if dollars:
        return Quantity(float(dollars[1]), "money", 1, 1.0)
    text = _CLEAN.sub(lambda m: m.group(1) or " ", join_digit_groups(text)).replace(",", "").strip().rstrip(".")
    terms = list(_TERM.finditer(text))
    if not terms or not _covers(text, terms):
        return None
    total, dimensions, sizes = 0.0, set(), []
    for term in terms:
        value, unit = float(term[1]), term[2]
        dimension, size, power = _unit(unit)
        dimensions.add((dimension, power))
        sizes.append(size**power)
        total += value * size**power
    if len(dimensions) != 1:
        return None
    dimension, power = dimensions.pop()
    return Quantity(total, dimension if power == 1 else f"{dimension}^{power}", len(terms), sizes[0])


def _covers(text: str, terms: list[re.Match[str]]) -> bool:
    """Whether the amounts are all of `text` (spaces and "and" between them aside)."""
    rest = text
    for term in reversed(terms):
        rest = rest[: term.start()] + " " + rest[term.end() :]
    return not re.sub(r"\band\b", " ", rest).strip()


def _unit(unit: str) -> tuple[str, float, int]:
    """(dimension, size, power) of "cm", "square feet", "m^2", "km²", "km/h"."""
    if "/" in unit:
        (top, top_size, top_power), (bottom, bottom_size, bottom_power) = (_unit(u.strip()) for u in unit.split("/", 1))
        return f"{top}^{top_power}/{bottom}^{bottom_power}", top_size**top_power / bottom_size**bottom_power, 1
    unit = unit.lower()
    power = 2 if re.match(r"square|sq", unit) or re.search(r"(\^?2|²)$", unit) else 3 if unit.startswith("cubic") or re.search(r"(\^?3|³)$", unit) else 1
    name = re.sub(r"^(?:square|cubic|sq\.?)\s+|(?:\^?[23]|²|³)$", "", unit).strip()
    dimension, size = _TABLE[name]
    return dimension, size, power
