"""The supervised cross-encoder reranker: ``cross(path=DIR,k=5)``.

It reads each (query, candidate) pair with a cross-encoder fine-tuned from MiniLM
(see :mod:`retriever.train.rerank.cross_train`) and passes the ``k`` best. With
``mix=w`` the final score is ``(1 - w) * minmax(cross-encoder logit) + w *
minmax(retrieval score)`` over the candidate list, a convex combination with the
first stage (``w`` chosen on a dev split, never on test).

Example:
    >>> engine.search("statins and breast cancer", k=10, rerank="cross(path=work/models/cross-minilm,k=10)")
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from retriever.core.settings import Schema, Setting, at_least, within
from retriever.core.specs import Spec
from retriever.rerank.base import RerankContext, judged_text
from retriever.rerank.scores import CrossScorer

if TYPE_CHECKING:
    from retriever.core.types import Hit


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the list (all zeros when the values are equal)."""
    span = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


class CrossReranker:
    """Orders candidates by a cross-encoder's score and keeps the first ``k``.

    Args:
        path: a cross-encoder directory (``retriever train reranker`` writes one).
        k: how many hits to pass on.
        mix: weight of the min-max normalized retrieval score (0: cross-encoder only).
        batch_size: pairs per forward pass (a runtime knob).
        cache: a directory where scores are kept across runs (a runtime knob).
    """

    schema = Schema("cross", (
        Setting("path", str, help="a cross-encoder directory"),
        Setting("k", int, 5, at_least(1), "how many hits to pass on"),
        Setting("mix", float, 0.0, within(0, 1), "weight of the normalized retrieval score"),
        Setting("batch_size", int, 32, at_least(1), "pairs per forward pass"),
        Setting("cache", str, None, help="directory of cached scores", nullable=True),
    ))

    def __init__(self, path: str, k: int | str = 5, mix: float | str = 0.0, batch_size: int | str = 32,
                 cache: str | None = None):
        s = self.schema.parse({"path": path, "k": k, "mix": mix, "batch_size": batch_size, "cache": cache})
        self.path, self.k, self.mix, self.cache = s["path"], s["k"], s["mix"], s["cache"]
        self.scorer = CrossScorer(self.path, batch_size=s["batch_size"], cache_dir=self.cache)

    def scores(self, query: str, hits: Sequence["Hit"]) -> np.ndarray:
        """The final score of each hit (cross-encoder logit, or its mix with the retrieval score)."""
        logits = self.scorer.score(query, [(h.title, h.text) for h in hits], [h.doc_id for h in hits])
        if self.mix == 0.0:
            return logits
        first = np.array([h.score for h in hits], dtype=np.float32)
        return (1.0 - self.mix) * minmax(logits) + self.mix * minmax(first)

    def rerank(self, query: str, hits: Sequence["Hit"], context: RerankContext | None = None) -> list["Hit"]:
        if not hits:
            return []
        scores = self.scores(judged_text(query, context), hits)
        order = np.argsort(-scores, kind="stable")[: self.k]
        return [replace(hits[i], score=float(scores[i])) for i in order]

    def __str__(self) -> str:
        kwargs = {"path": self.path, "k": str(self.k)}
        if self.mix:
            kwargs["mix"] = f"{self.mix:g}"
        return str(Spec("cross", kwargs=kwargs))
