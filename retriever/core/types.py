"""The result types every layer shares: a ranking and a hit."""

from __future__ import annotations

from dataclasses import dataclass

Ranking = list[tuple[str, float]]
"""Ranked ``(doc_id, score)`` pairs, best first: the one result shape of every index kind."""


@dataclass(frozen=True)
class Hit:
    """One search result: the document id, its score, and the document's title and text."""

    doc_id: str
    score: float
    title: str
    text: str
