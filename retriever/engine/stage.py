"""The retrieval stage: every index a query needs is searched once; fused ranking plus each index's own.

Everything that retrieves (``Engine.search``, the agentic loop, reranked evaluation, the RL
episodes) goes through :func:`retrieve`, so an index is never searched twice for one query and
rerankers read each index's ranking (their signals) from what fusion already had.

One depth rule holds everywhere (the API, ``retriever search``, ``retriever eval beir``,
``retriever eval check``): under fusion each index is read to ``max(k, depth)`` hits, where
``depth`` defaults to :data:`DEFAULT_DEPTH` (100) and every caller can override it (``depth=``
in the API, ``--depth`` on the command line). A single index is read to ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from indexes.base import Index
from retriever.core.errors import SpecError
from retriever.core.types import Ranking
from retriever.fusion import Fusion

DEFAULT_DEPTH = 100
"""Per-index depth before fusion when the caller gives none (see the module docstring)."""
Signals = Mapping[str, Mapping[str, tuple[int, float]]]


@dataclass(frozen=True)
class Retrieved:
    """One query's result: the ranking to use and each searched index's own ranking.

    Attributes:
        ranking: the top ``k`` (fused when several indexes were searched).
        per_index: index name -> that index's ranking (read to ``depth`` under fusion).
    """

    ranking: Ranking
    per_index: Mapping[str, Ranking]

    def signals(self, depth: int | None = None) -> Signals:
        """Index name -> {doc id: (0-based rank, score)} over each index's top ``depth``."""
        return {name: {doc_id: (rank, float(score)) for rank, (doc_id, score) in enumerate(run[:depth])}
                for name, run in self.per_index.items()}


def check_k(k: object) -> None:
    """Raise :class:`SpecError` unless ``k`` (hits wanted) is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpecError(f"k must be a positive whole number of hits, got {k!r}")


def retrieve(index: Callable[[str], Index], target: Fusion | str, queries: Sequence[str], k: int,
             depth: int | None = None, knobs: Mapping[str, Mapping[str, Any]] | None = None) -> list[Retrieved]:
    """Search ``queries`` with ``target`` (an index name or a fusion), each index once.

    Args:
        index: opens an index by name (a reader's lazy lookup).
        target: an index name, or a :class:`Fusion` over several.
        queries: query strings.
        k: results per query (at least 1).
        depth: how deep each index is read before fusion (default ``max(k, DEFAULT_DEPTH)``).
        knobs: per-index search knobs, e.g. ``{"dense": {"nprobe": 16}}``.

    Raises:
        SpecError: ``k`` or ``depth`` is not a positive integer, or a query is not a string.
    """
    check_k(k)
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise SpecError(f"depth must be a positive whole number, got {depth!r}")
    knobs = knobs or {}
    queries = list(queries)
    bad = [q for q in queries if not isinstance(q, str)]
    if bad:
        raise SpecError(f"a query must be a string, got {type(bad[0]).__name__}")
    if isinstance(target, str):
        runs = index(target).search(queries, k, **knobs.get(target, {}))
        return [Retrieved(run, {target: run}) for run in runs]
    depth = max(k, depth or DEFAULT_DEPTH)
    per_index = {name: index(name).search(queries, depth, **knobs.get(name, {})) for name in target.names}
    out = []
    for i in range(len(queries)):
        runs = {name: found[i] for name, found in per_index.items()}
        out.append(Retrieved(target.fuse(runs, k), runs))
    return out
