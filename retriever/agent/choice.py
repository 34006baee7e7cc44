"""A choice question is answered by one of the entities it names.

"Who was born first, A or B?", "Which film came out earlier, A or B?", "Which film has the director
who died later, A or B?": :func:`choose` first compares the dates the passages state (a small solver,
as ReWOO's workers are tools: each compared entity's own passage, or the passage of the person it
names for "the director"), and answers with the entity whose date comes first or last. Where the dates
do not settle it, a reply that names neither entity (a reader that followed each film to its director
often replies with the director) is mapped to the entity whose own passage mentions the reply; when no
passage or both do, the reply stands. No model runs: it reads the question's plan
(:func:`~retriever.agent.plan.plan`) and the passages the reader was shown.
"""

from __future__ import annotations

import re
from typing import Sequence

from retriever.agent.dates import Date, first_date, life_dates
from retriever.agent.plan import asks_yes_no, plan
from retriever.core.metrics import normalize_answer

_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*$")
_RELATION = re.compile(r"\b(?:director|directors|composer|author|producer|performer|creator|founder|writer)\b", re.I)
_LATER = re.compile(r"\b(?:later|last|latest|younger|youngest|recently|recent|newer|newest)\b", re.I)
_EARLIER = re.compile(r"\b(?:first|earlier|earliest|older|oldest|sooner|before)\b", re.I)
_BIRTH = re.compile(r"\b(?:born|birth|older|oldest|younger|youngest)\b", re.I)
_DEATH = re.compile(r"\b(?:died|death|dead)\b", re.I)
_LIFESPAN = re.compile(r"\blived longer\b", re.I)


def choose(question: str, passages: Sequence[tuple[str, str]], answer: str) -> str:
    """The compared entity of ``question`` that the passages' dates or ``answer`` point to, when
    ``question`` asks to choose between named entities; else ``answer``."""
    parts = plan(question).parts
    if len(parts) < 2 or asks_yes_no(question):
        return answer
    pages = [_page(part, passages) for part in parts]
    solved = _by_dates(question, parts, pages, passages)
    if solved is not None:
        return solved
    said = normalize_answer(answer)
    names = [normalize_answer(part) for part in parts]
    if not said or any(said in name or name in said for name in names):
        return answer
    owners = {part for part, page in zip(parts, pages) if page and f" {said} " in f" {normalize_answer(page[1])} "}
    return owners.pop() if len(owners) == 1 else answer


def _page(part: str, passages: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The passage titled ``part`` (a title's "(film)" qualifier aside)."""
    name = normalize_answer(part)
    return next(((t, x) for t, x in passages if normalize_answer(_QUALIFIER.sub("", t)) == name), None)


def _by_dates(question: str, parts: Sequence[str], pages: Sequence[tuple[str, str] | None],
              passages: Sequence[tuple[str, str]]) -> str | None:
    """The part whose date comes first (or last, or lived longest), when every part's date is stated and
    they differ at the precision both give."""
    later = bool(_LATER.search(question))
    if not later and not _EARLIER.search(question) and not _LIFESPAN.search(question):
        return None
    bridged = bool(_RELATION.search(question)) and not question.lower().startswith("who")
    keys = []
    for page in pages:
        text = _subject(page, passages) if bridged else (page[1] if page else None)
        key = _date_key(question, text, bridged)
        if key is None:
            return None
        keys.append(key)
    if _LIFESPAN.search(question):
        best = max(keys)
    else:
        if not _comparable(keys):
            return None
        best = max(keys) if later else min(keys)
    return parts[keys.index(best)] if keys.count(best) == 1 else None


def _subject(page: tuple[str, str] | None, passages: Sequence[tuple[str, str]]) -> str | None:
    """The text of the first passage the ``page`` names (the film's director), not the page itself."""
    if page is None:
        return None
    named = [(page[1].find(_QUALIFIER.sub("", t)), x) for t, x in passages if (t, x) != page]
    named = [(at, text) for at, text in named if at >= 0]
    return min(named, key=lambda pair: pair[0])[1] if named else None


def _date_key(question: str, text: str | None, person: bool) -> "Date | int | None":
    """The date the question compares in ``text``: birth, death, lifespan in days, or the first date."""
    if text is None:
        return None
    if _LIFESPAN.search(question):
        born, died = life_dates(text)
        return (died[0] - born[0]) if born and died else None
    if _DEATH.search(question):
        return life_dates(text)[1]
    if _BIRTH.search(question) or person or question.lower().startswith("who"):
        return life_dates(text)[0]
    return first_date(text)


def _comparable(keys: list) -> bool:
    """Dates that differ in a field both give (a bare year cannot order two dates of the same year)."""
    (y1, m1, d1), (y2, m2, d2) = keys[0], keys[1]
    if y1 != y2:
        return True
    if not (m1 and m2) or m1 != m2:
        return bool(m1 and m2)
    return bool(d1 and d2) and d1 != d2
