"""What the policy knows about each candidate, and about the set it has passed so far.

Item features (one row per candidate; why each is there):

* ``ce``, ``ce_gap``, ``ce_rank``: the cross-encoder's logit, its distance to the
  list's best, and 1 / (1 + its rank by that logit): relevance read jointly with the query.
* ``input_rank``: 1 / (1 + position in the list the caller gave): the first stage's
  order (in the loop: the chain-first pool order).
* ``retrieval``: the hit's score over the list's best: how sure the first stage was.
* ``<index>_rank``, ``<index>_score`` per index (e.g. ``bm25``, ``dense``): 1 / (1 +
  rank) and min-max score in that index's own ranking of the hop's query (0 when
  absent): lexical and semantic evidence that fusion blurs.
* ``question_overlap``, ``query_overlap``: the share of the question's (and the hop
  query's) content words the document contains.
* ``title_in_question``: the question names the document (multi-hop questions name
  their first entity).
* ``kept``, ``kept_link``: already passed on by the previous hop; linked by a title
  mention to evidence already kept (the next document of a chain).
* ``top_link``: linked by a title mention to the cross-encoder's best candidate.

Stop features (recomputed after each pick, from the set passed so far):
``bias``, ``passed`` (picks / max k), ``coverage`` (share of the question's content
words the set covers), ``linked_pair`` (the set holds two documents that mention
each other: a complete bridge chain), ``next_ce`` (sigmoid of the best remaining
cross-encoder logit: is anything good left?), ``hop``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from retriever.core.text import STOPWORDS, words
from retriever.rerank.base import RerankContext

if TYPE_CHECKING:
    from retriever.core.types import Hit

BASE_ITEM_FEATURES = ("ce", "ce_gap", "ce_rank", "input_rank", "retrieval", "question_overlap", "query_overlap",
                      "title_in_question", "kept", "kept_link", "top_link")
STOP_FEATURES = ("bias", "passed", "coverage", "linked_pair", "next_ce", "hop")
_PARENTHESIS = re.compile(r"\s*\([^)]*\)\s*$")


def item_feature_names(indexes: Sequence[str]) -> tuple[str, ...]:
    """Item feature names for a policy that reads the rankings of ``indexes``."""
    return BASE_ITEM_FEATURES + tuple(f"{name}_{part}" for name in indexes for part in ("rank", "score"))


@dataclass
class Candidates:
    """One reranking decision's inputs as arrays.

    Attributes:
        items: ``[n, features]`` item features.
        covers: ``[n, words]`` which of the question's content words each candidate contains.
        links: ``[n, n]`` candidates that mention each other by title.
        ce: ``[n]`` cross-encoder logits.
        hop: the hop number.
    """

    items: np.ndarray
    covers: np.ndarray
    links: np.ndarray
    ce: np.ndarray
    hop: int

    def __len__(self) -> int:
        return len(self.ce)

    def stop_features(self, chosen: Sequence[int], max_k: int) -> np.ndarray:
        """The stop features once ``chosen`` (candidate indices, in order) have been passed."""
        picked = np.zeros(len(self), dtype=bool)
        picked[list(chosen)] = True
        coverage = float(self.covers[picked].any(axis=0).mean()) if self.covers.shape[1] and picked.any() else 0.0
        linked = bool(self.links[np.ix_(picked, picked)].any())
        rest = self.ce[~picked]
        next_ce = float(1.0 / (1.0 + np.exp(-rest.max()))) if len(rest) else 0.0
        return np.array([1.0, len(chosen) / max_k, coverage, float(linked), next_ce, float(self.hop)],
                        dtype=np.float32)


def candidates(query: str, hits: Sequence["Hit"], context: RerankContext, ce: np.ndarray,
               indexes: Sequence[str]) -> Candidates:
    """The feature arrays of ``hits`` for ``query`` (see the module docstring)."""
    n = len(hits)
    ce = np.asarray(ce, dtype=np.float32)
    texts = [_normal(h.title + " " + h.text) for h in hits]
    titles = [_normal(_PARENTHESIS.sub("", h.title)) for h in hits]
    question = context.question or query
    question_words = _content(question)
    query_words = _content(query)
    doc_words = [set(t.split()) for t in texts]
    covers = np.array([[w in d for w in question_words] for d in doc_words], dtype=bool).reshape(n, len(question_words))
    mention = np.array([[i != j and _mentions(titles[i], texts[j]) for j in range(n)] for i in range(n)],
                       dtype=bool).reshape(n, n)
    links = mention | mention.T
    kept_ids = {h.doc_id for h in context.kept}
    kept_texts = [_normal(h.title + " " + h.text) for h in context.kept]
    kept_titles = [_normal(_PARENTHESIS.sub("", h.title)) for h in context.kept]
    order = np.argsort(-ce, kind="stable")
    ce_rank = np.empty(n, dtype=np.float32)
    ce_rank[order] = 1.0 / (1.0 + np.arange(n))
    top = int(order[0]) if n else 0
    scores = np.array([h.score for h in hits], dtype=np.float32)
    best = float(scores.max()) if n else 0.0
    normal_question = f" {_normal(question)} "
    per_index = _index_features(hits, context, indexes)
    rows = []
    for i, hit in enumerate(hits):
        kept_link = any(_mentions(titles[i], t) or _mentions(k, texts[i]) for t, k in zip(kept_texts, kept_titles))
        partner = int(order[1]) if i == top and n > 1 else top
        rows.append([
            ce[i], ce[i] - ce[top], ce_rank[i], 1.0 / (1.0 + i), scores[i] / best if best > 0 else 0.0,
            _share(question_words, doc_words[i]), _share(query_words, doc_words[i]),
            float(bool(titles[i]) and f" {titles[i]} " in normal_question), float(hit.doc_id in kept_ids),
            float(kept_link), float(partner != i and bool(links[i, partner])),
            *per_index[i]])
    items = np.array(rows, dtype=np.float32).reshape(n, len(item_feature_names(indexes)))
    return Candidates(items, covers, links, ce, context.hop)


def _index_features(hits: Sequence["Hit"], context: RerankContext, indexes: Sequence[str]) -> np.ndarray:
    """``[n, 2 * len(indexes)]``: per index, 1 / (1 + rank) and the min-max score over the found candidates."""
    out = np.zeros((len(hits), 2 * len(indexes)), dtype=np.float32)
    for column, name in enumerate(indexes):
        ranking = context.signals.get(name, {})
        found = [(i, *ranking[h.doc_id]) for i, h in enumerate(hits) if h.doc_id in ranking]
        if not found:
            continue
        low, high = min(s for _, _, s in found), max(s for _, _, s in found)
        for i, rank, score in found:
            out[i, 2 * column] = 1.0 / (1.0 + rank)
            out[i, 2 * column + 1] = (score - low) / (high - low) if high > low else 1.0
    return out


def _normal(text: str) -> str:
    return " ".join(words(text))


def _content(text: str) -> list[str]:
    return list(dict.fromkeys(w for w in words(text) if w not in STOPWORDS))


def _share(wanted: list[str], found: set[str]) -> float:
    return sum(w in found for w in wanted) / len(wanted) if wanted else 0.0


def _mentions(title: str, text: str) -> bool:
    """Whether the normalized ``title`` occurs as whole words in the normalized ``text``."""
    return bool(title) and f" {title} " in f" {text} "
