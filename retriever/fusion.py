"""Fusion of ranked lists from several indexes: reciprocal-rank and normalized-score.

A fusion spec names the method, the indexes (optionally weighted with ``^``) and
parameters:

- ``rrf(bm25,dense)``: reciprocal-rank fusion, ``score = sum_i w_i / (k + rank_i)``,
  k=60 by default (``rrf(bm25,dense,k=20)``).
- ``norm(bm25^0.3,dense^0.7)``: each list's scores min-max normalized per query
  (``method=zscore`` for z-scores), then a weighted sum; a document missing from
  a list contributes that list's minimum (0 after min-max).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from retriever.core.errors import SpecError
from retriever.core.settings import Schema, Setting, at_least, one_of
from retriever.core.specs import Spec, parse_spec
from retriever.core.types import Ranking

METHODS = ("rrf", "norm")
SCHEMAS = {
    "rrf": Schema("rrf", (Setting("k", int, 60, at_least(1), "rank offset: score = w / (k + rank)"),)),
    "norm": Schema("norm", (Setting("method", str, "minmax", one_of("minmax", "zscore"),
                                    "per-list score normalization"),)),
}
WEIGHT = Setting("weight", float, 1.0, help="an index's weight, written name^weight")


@dataclass(frozen=True)
class Fusion:
    """A parsed fusion spec: method, index names, their weights and parameters."""

    method: str
    names: tuple[str, ...]
    weights: tuple[float, ...]
    k: int = 60
    normalization: str = "minmax"

    @classmethod
    def parse(cls, spec: str | Spec) -> "Fusion":
        """Parse ``rrf(a,b,k=60)`` or ``norm(a^0.3,b^0.7,method=zscore)``."""
        parsed = parse_spec(spec) if isinstance(spec, str) else spec
        if parsed.name not in METHODS or parsed.label:
            raise SpecError(f"fusion spec {str(parsed)!r}: method must be one of {', '.join(METHODS)}")
        if not parsed.args:
            raise SpecError(f"fusion spec {str(parsed)!r} names no index")
        names, weights = [], []
        for arg in parsed.args:
            name, _, weight = arg.partition("^")
            weights.append(replace(WEIGHT, name=f"weight of {name}").convert(weight, parsed.name) if weight else 1.0)
            names.append(name)
        if len(set(names)) != len(names):
            raise SpecError(f"fusion spec {str(parsed)!r} names an index twice")
        settings = SCHEMAS[parsed.name].parse(parsed.kwargs)
        return cls(parsed.name, tuple(names), tuple(weights), settings.get("k", 60),
                   settings.get("method", "minmax"))

    def __str__(self) -> str:
        args = tuple(n if w == 1.0 else f"{n}^{w:g}" for n, w in zip(self.names, self.weights))
        kwargs = {"rrf": {"k": str(self.k)} if self.k != 60 else {},
                  "norm": {"method": self.normalization} if self.normalization != "minmax" else {}}[self.method]
        return str(Spec(self.method, args, kwargs))

    def fuse(self, rankings: Mapping[str, Ranking], k: int | None = None) -> Ranking:
        """Fuse one query's rankings (index name -> ranking) into one, best first."""
        lists = [rankings[name] for name in self.names]
        if self.method == "rrf":
            return reciprocal_rank_fusion(lists, self.weights, self.k, depth=k)
        return normalized_score_fusion(lists, self.weights, self.normalization, depth=k)


def first_stage_problem(using: str) -> str | None:
    """What is wrong with a first-stage setting (an index name, ``hybrid`` or a fusion spec), or None.

    Index names are checked against an engine only when it is searched.
    """
    if "(" not in using:
        return None if using.strip() else "must name an index, hybrid or a fusion spec"
    try:
        Fusion.parse(using)
    except SpecError as e:
        return f"must be a valid fusion spec ({e})"
    return None


def reciprocal_rank_fusion(rankings: Sequence[Ranking], weights: Sequence[float] | None = None,
                           k: int = 60, depth: int | None = None) -> Ranking:
    """Fuse by ``sum_i w_i / (k + rank_i)`` with 1-based ranks (Cormack et al., 2009)."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = defaultdict(float)
    for ranking, weight in zip(rankings, weights):
        for rank, (doc_id, _) in enumerate(ranking, start=1):
            fused[doc_id] += weight / (k + rank)
    return _top(fused, depth)


def normalized_score_fusion(rankings: Sequence[Ranking], weights: Sequence[float] | None = None,
                            method: str = "minmax", depth: int | None = None) -> Ranking:
    """Fuse by a weighted sum of per-list normalized scores (missing = the list's minimum)."""
    weights = weights or [1.0] * len(rankings)
    normalized = [_normalize(ranking, method) for ranking in rankings]
    docs = {doc_id for scores in normalized for doc_id in scores}
    fused = {doc_id: 0.0 for doc_id in docs}
    for scores, weight in zip(normalized, weights):
        floor = min(scores.values()) if scores else 0.0
        for doc_id in docs:
            fused[doc_id] += weight * scores.get(doc_id, floor)
    return _top(fused, depth)


def _normalize(ranking: Ranking, method: str) -> dict[str, float]:
    if not ranking:
        return {}
    scores = np.array([s for _, s in ranking], dtype=np.float64)
    if method == "zscore":
        spread = scores.std()
        scores = (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)
    else:
        spread = scores.max() - scores.min()
        scores = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    return {doc_id: float(s) for (doc_id, _), s in zip(ranking, scores)}


def _top(scores: dict[str, float], depth: int | None) -> Ranking:
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:depth] if depth else ranked
