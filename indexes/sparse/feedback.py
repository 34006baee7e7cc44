"""Pseudo-relevance feedback for inference-free sparse queries: Rocchio over the stored document vectors.

A search with feedback runs twice. The first round's top ``docs`` documents are taken as relevant;
their stored vectors (learned weights, plus the lexical part when the index has one) are averaged,
each term's mean weight is multiplied by its IDF, and the ``terms`` heaviest terms are added to
the query::

    q'(t) = q(t) + weight * max_s q(s) * e(t) / max_s e(s),   e(t) = idf(t) * mean_d w_d(t)

(``q``: the query's IDF or learned weights; ``w_d``: a feedback document's weight of ``t``). The
second round searches with ``q'``. No model runs: the expansion reads only the index's own
vectors and IDF table. Feedback costs a second search with a longer query (``retriever eval
sparse --feedback`` measures both the quality and the latency).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from retriever.core.errors import InputError

KNOBS = ("prf_docs", "prf_terms", "prf_weight")


@dataclass(frozen=True)
class Feedback:
    """How a search feeds its first round back into the query (``docs=0``: no feedback)."""

    docs: int = 0
    terms: int = 30
    weight: float = 0.25

    @classmethod
    def of(cls, settings: Mapping[str, Any], knobs: Mapping[str, Any]) -> "Feedback":
        """The index's feedback settings, each overridden by a search knob of the same name."""
        pick = {name: knobs.get(name, settings.get(name)) for name in KNOBS}
        feedback = cls(**{name[4:]: value for name, value in pick.items() if value is not None})
        if feedback.docs < 0 or feedback.terms < 1 or feedback.weight < 0:
            raise InputError(f"feedback needs prf_docs >= 0, prf_terms >= 1 and prf_weight >= 0, got {feedback}")
        return feedback

    def expand(self, query: tuple[np.ndarray, np.ndarray], rows: sp.csr_matrix,
               idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``query`` (term ids, weights) with the feedback terms of ``rows`` (the first round's top
        documents' vectors) added; terms come back sorted. No rows or no query terms: unchanged."""
        terms, weights = query
        if rows.shape[0] == 0 or len(terms) == 0 or self.weight == 0:
            return query
        evidence = np.asarray(rows.mean(axis=0)).ravel() * idf
        count = min(self.terms, int((evidence > 0).sum()))
        if count == 0:
            return query
        top = np.argpartition(-evidence, count - 1)[:count]
        added = self.weight * float(weights.max()) * evidence[top] / float(evidence[top].max())
        expanded = np.zeros(len(idf), dtype=np.float64)
        expanded[terms] = weights
        expanded[top] += added
        out = np.flatnonzero(expanded)
        return out.astype(terms.dtype), expanded[out].astype(weights.dtype)
