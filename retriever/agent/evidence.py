"""Evidence without a language model: title links, question coverage, chain ordering, refinement.

Multi-hop questions rest on a chain of documents: the question names one entity,
its document names the next (the bridge). :class:`Lexicon` holds two corpus-wide
tables built once per corpus: normalized document titles (to find which
documents a text *mentions*) and document frequencies (to weight question terms
by IDF). :func:`chain_order` orders a candidate pool so that the most likely
chain comes first: the pair ``(a, b)`` maximizing

    rank(a) + rank(b) + LINK * [a mentions b or b mentions a] + COVER * coverage(question | a ∪ b)

where ``rank(d) = 1 / (1 + best rank of d in any hop)`` and ``coverage`` is the
IDF-weighted share of the question's content words found in ``a`` or ``b``.
The weights were chosen on the hotpotqa-distractor *dev* split (never on test).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

from retriever.core.progress import progress
from retriever.core.text import STOPWORDS, words

if TYPE_CHECKING:
    from retriever.core.corpus import Corpus
    from retriever.core.types import Hit

LINK, COVER, QUESTION_MENTION = 3.0, 4.0, 0.3
ANCHORS = 5
MAX_TITLE_WORDS = 8
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_DISAMBIGUATION = re.compile(r"\s*\([^)]*\)\s*$")


def sentences(text: str) -> list[str]:
    """Split a passage into sentences (on ., ! or ? followed by a capital or digit)."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


class Lexicon:
    """Corpus-wide title and document-frequency tables, built in one pass over the corpus.

    Args:
        corpus: the engine's corpus.
    """

    def __init__(self, corpus: "Corpus"):
        self.titles: dict[str, set[str]] = {}
        self.df: Counter[str] = Counter()
        self.size = len(corpus)
        for batch in progress(corpus.iter_batches(), total=math.ceil(self.size / 8192),
                              desc="title and term tables", unit="batch"):
            for doc in batch:
                for key in {" ".join(words(doc.title)), " ".join(words(_DISAMBIGUATION.sub("", doc.title)))}:
                    if key:
                        self.titles.setdefault(key, set()).add(doc.doc_id)
                self.df.update(set(words(doc.title + " " + doc.text)))

    def idf(self, word: str) -> float:
        return math.log((self.size + 1) / (self.df.get(word, 0) + 1))

    def mentions(self, text: str) -> set[str]:
        """Ids of the documents whose title occurs in ``text`` (word n-grams up to 8 words)."""
        tokens, found = words(text), set()
        for start in range(len(tokens)):
            for end in range(start + 1, min(start + MAX_TITLE_WORDS, len(tokens)) + 1):
                ids = self.titles.get(" ".join(tokens[start:end]))
                if ids:
                    found |= ids
        return found

    def content_words(self, text: str) -> list[str]:
        """Distinct non-stopword words of ``text``, in order."""
        return list(dict.fromkeys(w for w in words(text) if w not in STOPWORDS))


@dataclass
class Candidate:
    """A document in the pool: its hit, best rank over the hops, how it got here, its words and mentions."""

    hit: "Hit"
    rank: int | None = None
    sources: list[str] = field(default_factory=list)
    words: frozenset[str] = frozenset()
    mentions: frozenset[str] = frozenset()

    @property
    def rank_score(self) -> float:
        return 1.0 / (1 + self.rank) if self.rank is not None else 0.0


class Pool:
    """Every document retrieved so far for one question, with the signals that order it."""

    def __init__(self, question: str, lexicon: Lexicon):
        self.lexicon = lexicon
        self.question_words = lexicon.content_words(question)
        self.question_weight = sum(lexicon.idf(w) for w in self.question_words) or 1.0
        self.question_mentions = lexicon.mentions(question)
        self.candidates: dict[str, Candidate] = {}

    def add(self, hits: Iterable["Hit"], source: str, ranked: bool = True) -> list[str]:
        """Add hits (ranked best first unless ``ranked`` is False); returns the ids that were new."""
        new = []
        for rank, hit in enumerate(hits):
            candidate = self.candidates.get(hit.doc_id)
            if candidate is None:
                candidate = self.candidates[hit.doc_id] = Candidate(
                    hit, words=frozenset(words(hit.title + " " + hit.text)),
                    mentions=frozenset(self.lexicon.mentions(hit.text) - {hit.doc_id}))
                new.append(hit.doc_id)
            if ranked and (candidate.rank is None or rank < candidate.rank):
                candidate.rank = rank
            if source not in candidate.sources:
                candidate.sources.append(source)
        return new

    def linked(self, a: str, b: str) -> bool:
        return b in self.candidates[a].mentions or a in self.candidates[b].mentions

    def coverage(self, ids: Sequence[str]) -> float:
        """IDF-weighted share of the question's content words found in the given documents."""
        found = set().union(*(self.candidates[i].words for i in ids)) if ids else set()
        return sum(self.lexicon.idf(w) for w in self.question_words if w in found) / self.question_weight

    def pair_score(self, a: str, b: str) -> float:
        ca, cb = self.candidates[a], self.candidates[b]
        return ca.rank_score + cb.rank_score + LINK * self.linked(a, b) + COVER * self.coverage([a, b])

    def single_score(self, doc_id: str) -> float:
        return self.candidates[doc_id].rank_score + QUESTION_MENTION * (doc_id in self.question_mentions)

    def anchors(self) -> list[str]:
        """The best-ranked documents and those the question names: where a chain may start."""
        ranked = sorted((c for c in self.candidates.values() if c.rank is not None), key=lambda c: c.rank)
        return list(dict.fromkeys([c.hit.doc_id for c in ranked[:ANCHORS]]
                                  + [d for d in self.question_mentions if d in self.candidates]))

    def chain(self) -> tuple[str, ...]:
        """The best pair (bridge document first when one mentions the other), or the single best document."""
        ids = list(self.candidates)
        best, score = (), -math.inf
        for a in self.anchors():
            for b in ids:
                if b != a:
                    s = self.pair_score(a, b)
                    if s > score:
                        best, score = (a, b), s
        if not best:
            return tuple(ids[:1])
        a, b = best
        return (b, a) if a in self.candidates[b].mentions and b not in self.candidates[a].mentions else (a, b)

    def ordered(self) -> list["Hit"]:
        """Every candidate, the best chain first, then by rank and question mention."""
        chain = self.chain()
        rest = sorted((d for d in self.candidates if d not in chain), key=lambda d: -self.single_score(d))
        return [self.candidates[d].hit for d in (*chain, *rest)]

    def bridge_titles(self, kept: Sequence["Hit"], limit: int = 2) -> list[str]:
        """Titles of pooled documents the kept evidence mentions and the question does not name."""
        question = set(self.question_words)
        titles: list[str] = []
        for hit in kept:
            for doc_id in sorted(self.candidates[hit.doc_id].mentions & self.candidates.keys()):
                title = _DISAMBIGUATION.sub("", self.candidates[doc_id].hit.title)
                if title and not set(words(title)) <= question and title not in titles:
                    titles.append(title)
        return titles[:limit]

    def salient_terms(self, kept: Sequence["Hit"], limit: int = 5) -> list[str]:
        """The highest-IDF words of the kept evidence that the question lacks."""
        question = set(self.question_words)
        counts = Counter(w for hit in kept for w in words(hit.title + " " + hit.text)
                         if w not in STOPWORDS and w not in question and not w.isdigit() and len(w) > 2)
        return sorted(counts, key=lambda w: (-counts[w] * self.lexicon.idf(w), w))[:limit]


def refine(pool: Pool, kept: Sequence["Hit"], max_sentences: int = 4) -> list[list[str]]:
    """The useful sentences of each kept passage.

    A sentence is kept when it is the passage's first (it names the subject), shares a
    content word with the question, or names another kept document; at most
    ``max_sentences`` per passage, in their original order.
    """
    question = set(pool.question_words)
    titles = [set(words(_DISAMBIGUATION.sub("", hit.title))) for hit in kept]
    out = []
    for index, hit in enumerate(kept):
        chosen = []
        for position, sentence in enumerate(sentences(hit.text)):
            tokens = set(words(sentence))
            links = any(t and t <= tokens for j, t in enumerate(titles) if j != index)
            if position == 0 or tokens & question or links:
                chosen.append(sentence)
        out.append(chosen[:max_sentences] or sentences(hit.text)[:1] or [hit.text])
    return out
