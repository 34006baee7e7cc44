"""Dates as a passage states them: "(4 July 1903 – 21 June 2001)", "born April 6, 1973", "a 1959 film".

:func:`dates_in` finds every date in a text, in order, as ``(year, month, day)`` (0 where not given);
:func:`life_dates` reads a person's birth and death from the parenthesis after the name or from
"born ..." / "died ..." phrases; :func:`first_date` is the first date of a text (a film's or a book's year).
"""

from __future__ import annotations

import re

Date = tuple[int, int, int]

MONTHS = {name: i for i, name in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december)"
_PATTERNS = [  # most specific first; a span matched once is not read again by a later pattern
    ("dmy", re.compile(rf"\b(\d{{1,2}})\s+{_MONTH},?\s+(\d{{3,4}})\b", re.I)),
    ("mdy", re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}),?\s+(\d{{3,4}})\b", re.I)),
    ("my", re.compile(rf"\b{_MONTH},?\s+(\d{{3,4}})\b", re.I)),
    ("y", re.compile(r"(?<![\d,.])\b(1\d{3}|20\d{2})\b(?![\d,.]\d)")),
]
_PARENTHESIS = re.compile(r"\(([^()]*)\)")
_RANGE = re.compile(r"[–—-]|\bto\b")


def dates_in(text: str) -> list[tuple[int, Date]]:
    """Every date in ``text`` as ``(position, (year, month, day))``, in order."""
    found, taken = [], []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            groups = match.groups()
            if kind == "dmy":
                date = (int(groups[2]), MONTHS[groups[1].lower()], int(groups[0]))
            elif kind == "mdy":
                date = (int(groups[2]), MONTHS[groups[0].lower()], int(groups[1]))
            elif kind == "my":
                date = (int(groups[1]), MONTHS[groups[0].lower()], 0)
            else:
                date = (int(groups[0]), 0, 0)
            taken.append(match.span())
            found.append((match.start(), date))
    return sorted(found)


def first_date(text: str) -> Date | None:
    """The first date of ``text``."""
    found = dates_in(text)
    return found[0][1] if found else None


def life_dates(text: str) -> tuple[Date | None, Date | None]:
    """A person's (birth, death) from the first parenthesis that holds a date ("(born 6 April 1973)",
    "(4 July 1903 – 21 June 2001)"), else from "born ..." / "died ..." phrases; None where not stated."""
    for inside in _PARENTHESIS.findall(text[:400]):
        found = [date for _, date in dates_in(inside)]
        if not found:
            continue
        if _RANGE.search(inside) and len(found) >= 2:
            return found[0], found[-1]
        if re.search(r"\bdied\b|\bd\.", inside) and not re.search(r"\bborn\b|\bb\.", inside):
            return None, found[0]
        return found[0], None
    return _after("born", text), _after("died", text)


def _after(word: str, text: str) -> Date | None:
    """The first date within 60 characters after ``word``."""
    match = re.search(rf"\b{word}\b", text, re.I)
    if not match:
        return None
    found = dates_in(text[match.end():match.end() + 60])
    return found[0][1] if found else None
