"""The reranker protocol: one method that orders candidates and decides how many to pass on.

A reranker sits between retrieval and reading (in ``Engine.search(..., rerank=...)``
and in each hop of the agentic loop). It receives the query, the candidate hits
and a :class:`RerankContext` (the original question, the hop number, the evidence
already kept) and returns a list of hits: a reordered subset whose length is the
reranker's own decision.

Rerankers are named by spec strings, resolved by :func:`load_reranker`:
``top(k=5)`` keeps the first ``k`` unchanged; ``cross(path=DIR,k=5)`` orders by a
cross-encoder (:mod:`retriever.rerank.cross`); ``rl(path=DIR)`` is the policy trained
with reinforcement learning that chooses the order and how many to pass
(:mod:`retriever.rerank.rl`). Other kinds register in :data:`RERANKERS` as
``name -> "module:Class"``; each class declares its settings as a
:class:`~retriever.core.settings.Schema` (``schema``), checked before the class is
built, and takes the typed settings as keyword arguments.

Relevance is judged against the question a passage must help answer
(:func:`judged_text`): in a later hop of the loop the query is a sub-question
("who directed X?") that found the candidates, and a cross-encoder reading it
instead of the question drops the evidence of the earlier hops.

A reranker that sets the attribute ``wants_signals = True`` also receives, in
:attr:`RerankContext.signals`, each index's own ranking of the hop's query, as the
retrieval stage (:mod:`retriever.engine.stage`) already read it for fusion.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

from retriever.core.errors import SpecError
from retriever.core.settings import Schema, Setting, at_least
from retriever.core.specs import Spec, parse_spec
from retriever.engine.stage import Signals

if TYPE_CHECKING:
    from retriever.core.types import Hit

RERANKERS: dict[str, str] = {"top": "retriever.rerank.base:TopK", "cross": "retriever.rerank.cross:CrossReranker",
                             "rl": "retriever.rerank.rl:PolicyReranker"}


@dataclass(frozen=True)
class RerankContext:
    """What a reranker may know beyond the query: the question, the hop, evidence kept so far.

    Attributes:
        question: the user's question (the hop's query may differ).
        hop: 0 for the first retrieval, 1 for the next, ...
        kept: the evidence the previous hop passed on.
        signals: index name -> {doc id: (0-based rank, score)} of the hop's query in
            that index (filled only for rerankers with ``wants_signals``).
    """

    question: str = ""
    hop: int = 0
    kept: Sequence["Hit"] = field(default_factory=tuple)
    signals: Signals = field(default_factory=dict)


def judged_text(query: str, context: RerankContext | None) -> str:
    """What a passage's relevance is judged against: the context's question, else the query."""
    return context.question if context is not None and context.question else query


@runtime_checkable
class Reranker(Protocol):
    """Orders candidate hits and chooses how many to pass on."""

    def rerank(self, query: str, hits: Sequence["Hit"], context: RerankContext | None = None) -> list["Hit"]:
        """Return the hits to pass on, best first (any subset of ``hits``)."""
        ...


class TopK:
    """The static baseline: keep the first ``k`` hits in retrieval order."""

    schema = Schema("top", (Setting("k", int, 5, at_least(1), "how many hits to pass on"),))

    def __init__(self, k: int | str = 5):
        self.k = self.schema.parse({"k": k})["k"]

    def rerank(self, query: str, hits: Sequence["Hit"], context: RerankContext | None = None) -> list["Hit"]:
        return list(hits[: self.k])

    def __str__(self) -> str:
        return f"top(k={self.k})"


def wants_signals(reranker: Reranker) -> bool:
    """Whether ``reranker`` asked for per-index rankings in :attr:`RerankContext.signals`."""
    return bool(getattr(reranker, "wants_signals", False))


def reranker_settings(spec: str | Spec) -> tuple[type, dict[str, Any]]:
    """The reranker class a spec names and its typed, checked settings (nothing is loaded).

    Raises:
        SpecError: a malformed spec or an unknown reranker.
        SettingError: an unknown setting or a bad value, naming it.
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    if parsed.name not in RERANKERS:
        raise SpecError(f"unknown reranker {parsed.name!r}; known: {', '.join(sorted(RERANKERS))}")
    if parsed.args:
        raise SpecError(f"reranker spec {str(parsed)!r}: settings must be key=value")
    module, name = RERANKERS[parsed.name].split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls, cls.schema.parse(parsed.kwargs)


def load_reranker(spec: str | Spec | Reranker) -> Reranker:
    """A reranker from its spec string (``top(k=5)``), or ``spec`` itself if already one."""
    if isinstance(spec, Reranker) and not isinstance(spec, (str, Spec)):
        return spec
    cls, settings = reranker_settings(spec)
    return cls(**settings)
