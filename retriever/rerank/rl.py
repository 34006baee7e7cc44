"""The reranker trained with reinforcement learning: ``rl(path=DIR)``.

It reads each candidate with the cross-encoder the policy was trained with,
computes the features of :mod:`retriever.rerank.features` (including each index's
own ranking of the hop's query, which it asks for with ``wants_signals``), and
decodes the policy greedily: an ordering and where to stop, at most ``max_k``
documents (see :mod:`retriever.rerank.plackett`). Training:
:mod:`retriever.train.rerank.rl_train`.

Example:
    >>> agent = Agent(engine, generator, rerank="rl(path=work/models/rl-policy)")
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from retriever.core.errors import SettingError
from retriever.core.settings import Schema, Setting, at_least
from retriever.core.specs import Spec
from retriever.rerank.base import RerankContext, judged_text
from retriever.rerank.features import candidates
from retriever.rerank.policy import Policy
from retriever.rerank.scores import CrossScorer

if TYPE_CHECKING:
    from retriever.core.types import Hit


class PolicyReranker:
    """Orders candidates and decides how many to pass with a trained policy.

    Args:
        path: a policy directory (``retriever train reranker --rl`` writes one).
        max_k: pass at most this many (default and upper bound: the policy's own ``max_k``).
        batch_size: cross-encoder pairs per forward pass (a runtime knob).
        cache: a directory where cross-encoder scores are kept across runs (a runtime knob).
    """

    wants_signals = True
    schema = Schema("rl", (
        Setting("path", str, help="a policy directory"),
        Setting("max_k", int, None, at_least(1), "pass at most this many (at most the policy's max_k)",
                nullable=True),
        Setting("batch_size", int, 32, at_least(1), "cross-encoder pairs per forward pass"),
        Setting("cache", str, None, help="directory of cached cross-encoder scores", nullable=True),
    ))

    def __init__(self, path: str, max_k: int | str | None = None, batch_size: int | str = 32,
                 cache: str | None = None):
        s = self.schema.parse({"path": path, "max_k": max_k, "batch_size": batch_size, "cache": cache})
        self.path, self.max_k = s["path"], s["max_k"]
        self.policy = Policy.load(self.path)
        if self.max_k is not None and self.max_k > self.policy.config.max_k:
            raise SettingError("rl", "max_k", f"must be at most the policy's max_k ({self.policy.config.max_k}), "
                               f"got {self.max_k}")
        self.scorer = CrossScorer(self.policy.cross_encoder_path(self.path), batch_size=s["batch_size"],
                                  cache_dir=s["cache"])

    def rerank(self, query: str, hits: Sequence["Hit"], context: RerankContext | None = None) -> list["Hit"]:
        if not hits:
            return []
        context = context or RerankContext(question=query)
        logits = self.scorer.score(judged_text(query, context), [(h.title, h.text) for h in hits],
                                   [h.doc_id for h in hits])
        decision, scores = self.policy.decide(candidates(query, hits, context, logits, self.policy.config.indexes),
                                              self.max_k)
        return [replace(hits[i], score=float(scores[i])) for i in decision.order]

    def __str__(self) -> str:
        kwargs = {"path": self.path}
        if self.max_k is not None:
            kwargs["max_k"] = str(self.max_k)
        return str(Spec("rl", kwargs=kwargs))
