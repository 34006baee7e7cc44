"""Word-level text helpers shared by the agent's evidence code and the rerankers' features."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    "a an the of in on at to for by with from and or not is was were are be been being what which who whom "
    "whose when where how why that this these those as it its he she his her they their them than then both "
    "did does do has have had same also into about after before over under more most other one two".split())
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD.findall(text.lower())


def word_spans(text: str) -> list[re.Match]:
    """The word tokens of ``text`` as they are written (case and position kept), by the same rule as :func:`words`."""
    return list(_WORD.finditer(text))
