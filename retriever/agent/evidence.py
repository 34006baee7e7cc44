"""Evidence without a language model: title links, question coverage, chain ordering, refinement.

Multi-hop questions rest on chains of documents: the question names one entity,
its document names the next (the bridge), and so on for as many hops as the
question chains relations; a comparison question needs one chain per compared
entity. :class:`Lexicon` holds two corpus-wide tables built once per corpus:
normalized document titles (to find which documents a text *mentions*) and
document frequencies (to weight question terms by IDF).

:meth:`Pool.chains` finds the evidence chains of a pool. A question that is one
chain starts from the pair ``(a, b)`` maximizing

    rank(a) + rank(b) + LINK * [a mentions b or b mentions a] + COVER * coverage(question | a ∪ b)
        + RELATE * [the sentence linking them states a relation of the question] + TOPIC * [a or b is the topic]

where ``rank(d) = 1 / (1 + best rank of d in any retrieval)``, ``coverage`` is
the IDF-weighted share of the question's content words found in the documents and
the topic is the longest title the question names;
a compared entity's chain starts from the document titled with its name. A chain
then grows, one document at a time, by the best linked document (one that mentions
or is mentioned by a chain document, preferably mentioned by it) that adds at least
``EXTEND_GAIN`` coverage or is named in a sentence stating one of the question's
relations ("directed by" for "director", "son of" for "father": :func:`stems`,
:data:`RELATION_STEMS`), up to the question's expected hops
(:mod:`retriever.agent.plan`); a question that is one chain may take ``SPARE``
more, each mentioned by the chain in such a sentence (room for a second guess).
:meth:`Pool.covered` is the no-LLM stop rule: every chain is linked and covers its
part of the question. The weights were chosen
on the *dev* splits of hotpotqa-distractor, musique and 2wikimultihopqa (never on test).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

from retriever.core.progress import progress
from retriever.core.text import STOPWORDS, word_spans, words

if TYPE_CHECKING:
    from retriever.agent.plan import Plan
    from retriever.core.corpus import Corpus
    from retriever.core.types import Hit

LINK, COVER, QUESTION_MENTION, RELATE, FORWARD, TOPIC = 3.0, 4.0, 0.3, 1.0, 1.0, 1.0
EXTEND_GAIN = 0.1
SPARE = 2  # a question's chain may hold two documents more than its expected hops: room for other bridge guesses
STEM = 5
# How a relation the question names shows in the sentence that links two documents (stems of STEM letters):
# "X's father" is told in X's document as "son of Y"; "the director of F" as "directed by Y".
RELATION_STEMS = {
    **dict.fromkeys(("father", "mother", "parent", "paren", "grand", "grandfather", "grandmother", "paternal",
                     "maternal", "child", "son", "daughter", "sibling", "brother", "sister", "uncle", "aunt"),
                    ("son", "daugh", "child", "father", "mothe", "paren", "born", "broth", "siste")),
    **dict.fromkeys(("husband", "wife", "spouse", "married", "law"), ("marri", "wife", "husba", "spous", "widow")),
}
ANCHORS = 8
# A title whose rarest word is in more than this share of the corpus ("United States", "Force", "Father") is too
# common to link documents (chosen on the dev splits of MuSiQue, 2Wiki and HotpotQA: 0.01-0.1 tried)
COMMON_TITLE_SHARE = 0.05
MAX_TITLE_WORDS = 8
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_DISAMBIGUATION = re.compile(r"\s*\([^)]*\)\s*$")
_COPY = re.compile(r"\s*\(\d+\)\s*$")  # "Zhejiang (2)": another paragraph of "Zhejiang" (titles made unique)


def _title_key(text: str) -> str:
    """A title's words without a leading article ("The Boy Turns Man" and "Boy Turns Man" meet)."""
    tokens = words(text)
    return " ".join(tokens[1:] if tokens[:1] in (["the"], ["a"], ["an"]) and len(tokens) > 1 else tokens)


def _named(text: str, tokens: list[str]):
    """``named(start, end)``: whether a token span reads as a name in ``text``.

    It must start, after a leading article, with a capital or a digit (else it is a common word:
    "home game" is not the film "Home"); a one-word span must not be part of a longer name, i.e.
    have a capitalized word right before or after it with only spaces between ("Bobby" in "Bobby
    Dodd Stadium" is not the film "Bobby"; "Maseru, Lesotho" still names "Maseru").
    """
    found = word_spans(text)
    if len(found) != len(tokens):  # lower-casing changed the tokens: no case to read
        return lambda start, end: True

    def capital(i: int) -> bool:
        return not found[i].group()[:1].islower()

    def joined(i: int, j: int) -> bool:  # tokens i and j = i + 1 are separated by spaces only
        return text[found[i].end():found[j].start()].isspace()

    def named(start: int, end: int) -> bool:
        first = start + 1 if tokens[start] in ("the", "a", "an") and end - start > 1 else start
        if not capital(first):
            return False
        if end - start > 1:
            return True
        before = start > 0 and capital(start - 1) and joined(start - 1, start)
        after = end < len(found) and capital(end) and joined(start, end)
        return not (before or after)
    return named


def stems(tokens: Iterable[str]) -> frozenset[str]:
    """The first ``STEM`` letters of each non-stopword ("directed", "director" -> "direc")."""
    return frozenset(w[:STEM] for w in tokens if w not in STOPWORDS)


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
                    if key and not set(key.split()) <= STOPWORDS:  # "It", "The One": too common to be a link
                        self.titles.setdefault(key, set()).add(doc.doc_id)
                self.df.update(set(words(doc.title + " " + doc.text)))
        common = COMMON_TITLE_SHARE * self.size
        self.titles = {key: ids for key, ids in self.titles.items()  # keep titles with a rare enough word
                       if min(self.df.get(w, 0) for w in key.split()) <= common}

    def idf(self, word: str) -> float:
        return math.log((self.size + 1) / (self.df.get(word, 0) + 1))

    def mentions(self, text: str) -> set[str]:
        """Ids of the documents whose title occurs in ``text`` (word n-grams up to 8 words)."""
        return set().union(*(self.titles[key] for key in self.mention_keys(text)))

    def mention_keys(self, text: str) -> list[str]:
        """The normalized titles that occur in ``text`` as names, in order: a span whose first word
        (after a leading article) is lower-case in ``text`` is a common word, not a title ("home game"
        is not the film "Home", "the club" not "Club (magazine)")."""
        tokens, found = words(text), []
        named = _named(text, tokens)
        for start in range(len(tokens)):
            for end in range(start + 1, min(start + MAX_TITLE_WORDS, len(tokens)) + 1):
                key = " ".join(tokens[start:end])
                if key in self.titles and named(start, end):
                    found.append(key)
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
    contexts: dict[str, frozenset[str]] = field(default_factory=dict)  # mentioned id -> stems of its sentences

    @property
    def rank_score(self) -> float:
        return 1.0 / (1 + self.rank) if self.rank is not None else 0.0


class Pool:
    """Every document retrieved so far for one question, with the signals that order it."""

    def __init__(self, question: str, lexicon: Lexicon):
        self.lexicon = lexicon
        self.question_words = lexicon.content_words(question)
        self.question_mentions = lexicon.mentions(question)
        keys = lexicon.mention_keys(question)
        longest = max((len(k.split()) for k in keys), default=0)
        # the topic: the documents of the longest title the question names, where its chain most likely starts
        self.topic = set().union(*(lexicon.titles[k] for k in keys if len(k.split()) == longest))
        self.candidates: dict[str, Candidate] = {}

    def add(self, hits: Iterable["Hit"], source: str, ranked: bool = True) -> list[str]:
        """Add hits (ranked best first unless ``ranked`` is False); returns the ids that were new."""
        new = []
        for rank, hit in enumerate(hits):
            candidate = self.candidates.get(hit.doc_id)
            if candidate is None:
                candidate = self.candidates[hit.doc_id] = Candidate(
                    hit, words=frozenset(words(hit.title + " " + hit.text)),
                    mentions=frozenset(self.lexicon.mentions(hit.text) - {hit.doc_id}),
                    contexts=self._contexts(hit))
                new.append(hit.doc_id)
            if ranked and (candidate.rank is None or rank < candidate.rank):
                candidate.rank = rank
            if source not in candidate.sources:
                candidate.sources.append(source)
        return new

    def _contexts(self, hit: "Hit") -> dict[str, frozenset[str]]:
        contexts: dict[str, frozenset[str]] = {}
        for sentence in sentences(hit.text):
            found = self.lexicon.mentions(sentence) - {hit.doc_id}
            if found:
                sentence_stems = stems(words(sentence))
                for doc_id in found:
                    contexts[doc_id] = contexts.get(doc_id, frozenset()) | sentence_stems
        return contexts

    def relates(self, a: str, b: str, target: Sequence[str]) -> bool:
        """Whether ``a`` mentions ``b`` in a sentence that names one of ``target``'s relations (other than
        the words of the two titles): the question's "director of F" read in F's "directed by B"."""
        context = self.candidates[a].contexts.get(b)
        if not context:
            return False
        titles = stems(words(self.candidates[a].hit.title + " " + self.candidates[b].hit.title))
        wanted = {w[:STEM] for w in target} | {r for w in target for r in RELATION_STEMS.get(w, ())}
        return bool((wanted - titles) & context)

    def linked(self, a: str, b: str) -> bool:
        return b in self.candidates[a].mentions or a in self.candidates[b].mentions

    def coverage(self, ids: Sequence[str], target: Sequence[str] | None = None) -> float:
        """IDF-weighted share of ``target`` (default: the question's content words) found in the documents."""
        target = self.question_words if target is None else target
        weight = sum(self.lexicon.idf(w) for w in target)
        found = set().union(*(self.candidates[i].words for i in ids)) if ids else set()
        return sum(self.lexicon.idf(w) for w in target if w in found) / weight if weight else 0.0

    def same_entity(self, a: str, b: str) -> bool:
        """Two paragraphs of one article ("Zhejiang", "Zhejiang (2)"): a chain needs a bridge to another entity."""
        return _COPY.sub("", self.candidates[a].hit.title) == _COPY.sub("", self.candidates[b].hit.title)

    def pair_score(self, a: str, b: str) -> float:
        ca, cb = self.candidates[a], self.candidates[b]
        relate = RELATE * (self.relates(a, b, self.question_words) or self.relates(b, a, self.question_words))
        topic = TOPIC * (a in self.topic or b in self.topic)
        return (ca.rank_score + cb.rank_score + LINK * self.linked(a, b) + COVER * self.coverage([a, b]) + relate
                + topic)

    def single_score(self, doc_id: str) -> float:
        return self.candidates[doc_id].rank_score + QUESTION_MENTION * (doc_id in self.question_mentions)

    def anchors(self) -> list[str]:
        """The best-ranked documents and those the question names: where a chain may start."""
        ranked = sorted((c for c in self.candidates.values() if c.rank is not None), key=lambda c: c.rank)
        return list(dict.fromkeys([c.hit.doc_id for c in ranked[:ANCHORS]]
                                  + [d for d in self.question_mentions if d in self.candidates]))

    def best_pair(self) -> tuple[str, ...]:
        """The best pair (bridge document first when one mentions the other), or the single best document."""
        ids = list(self.candidates)
        best, score = (), -math.inf
        for a in self.anchors():
            for b in ids:
                if b != a and not self.same_entity(a, b):
                    s = self.pair_score(a, b)
                    if s > score:
                        best, score = (a, b), s
        if not best:
            return tuple(ids[:1])
        a, b = best
        return (b, a) if a in self.candidates[b].mentions and b not in self.candidates[a].mentions else (a, b)

    def extend(self, chain: Sequence[str], target: Sequence[str], length: int,
               taken: Iterable[str] = (), spare: int = 0) -> tuple[str, ...]:
        """Grow ``chain`` by linked documents that each add at least ``EXTEND_GAIN`` coverage of ``target``
        or name one of its relations in the sentence that links them.

        Args:
            chain: the chain so far.
            target: the words the chain should cover.
            length: the expected chain length.
            taken: documents other chains already hold.
            spare: documents allowed beyond ``length``; each must be mentioned by the chain in a
                sentence that names one of the target's relations.
        """
        chain, used = list(chain), set(chain) | set(taken)
        covered = self.coverage(chain, target)
        while 0 < len(chain) < length + spare:
            strict = len(chain) >= length
            best, best_score, best_cover = None, -math.inf, covered
            for doc_id in sorted(self._neighbours(chain)):  # sorted: ties break the same way in every run
                if doc_id in used or any(self.same_entity(doc_id, c) for c in chain):
                    continue
                cover = self.coverage([*chain, doc_id], target)
                relate = any(self.relates(c, doc_id, target) or self.relates(doc_id, c, target) for c in chain)
                if (cover - covered < EXTEND_GAIN or strict) and not relate:
                    continue
                forward = any(doc_id in self.candidates[c].mentions for c in chain)
                if strict and not forward:
                    continue
                score = (self.candidates[doc_id].rank_score + COVER * (cover - covered) + RELATE * relate
                         + FORWARD * forward)
                if score > best_score:
                    best, best_score, best_cover = doc_id, score, cover
            if best is None:
                break
            chain.append(best)
            used.add(best)
            covered = best_cover
        return tuple(chain)

    def part_anchor(self, part: str, source: str) -> str | None:
        """The document for a compared entity: titled with its name, else the best hit of its own search."""
        key = _title_key(part)
        titled = [d for d, c in self.candidates.items()
                  if key and key in (_title_key(c.hit.title), _title_key(_DISAMBIGUATION.sub("", c.hit.title)))]
        searched = [d for d, c in self.candidates.items() if source in c.sources and c.rank is not None]
        pool = titled or searched
        if not pool:
            return None
        return min(pool, key=lambda d: (self.candidates[d].rank is None, self.candidates[d].rank or 0))

    def chains(self, plan: "Plan") -> list[tuple[str, ...]]:
        """The evidence chains: one per compared entity, or one for the whole question (see the module doc)."""
        if plan.comparison:
            chains: list[tuple[str, ...]] = []
            for index, part in enumerate(plan.parts):
                anchor = self.part_anchor(part, f"part{index}")
                if anchor is not None and all(anchor not in c for c in chains):
                    taken = {d for c in chains for d in c}
                    chains.append(self.extend([anchor], plan.predicate, plan.hops, taken))
            if len(chains) == len(plan.parts):
                return chains
        pair = self.best_pair()
        return [self.extend(pair, self.question_words, plan.hops, spare=SPARE)] if pair else []

    def covered(self, chains: Sequence[Sequence[str]], plan: "Plan", threshold: float) -> bool:
        """The no-LLM stop rule: every part of the question has a chain that :meth:`covers` it."""
        if not chains or (plan.comparison and len(chains) < len(plan.parts)):
            return False
        return all(self.covers(chain, plan, threshold) for chain in chains)

    def covers(self, chain: Sequence[str], plan: "Plan", threshold: float) -> bool:
        """Whether ``chain`` is linked (each document linked to one before it) and covers at least
        ``threshold`` of its words (the question's; the predicate's for a compared entity)."""
        if not chain or (not plan.comparison and len(chain) < 2):
            return False
        if not all(chain[i] in self._neighbours(chain[:i]) for i in range(1, len(chain))):
            return False
        target = plan.predicate if plan.comparison else self.question_words
        return not target or self.coverage(chain, target) >= threshold

    def uncovered(self, chains: Sequence[Sequence[str]], plan: "Plan") -> list[str]:
        """Question words no chain covers yet (the predicate's, for a comparison)."""
        target = plan.predicate if plan.comparison else self.question_words
        found = set().union(*(self.candidates[d].words for chain in chains for d in chain)) if chains else set()
        return [w for w in target if w not in found]

    def ordered(self, chains: Sequence[Sequence[str]]) -> list["Hit"]:
        """Every candidate: the chains first (their documents interleaved, chain by chain), then by rank and
        question mention."""
        first = list(dict.fromkeys(c[i] for i in range(max(map(len, chains), default=0)) for c in chains
                                   if i < len(c)))
        rest = sorted((d for d in self.candidates if d not in first), key=lambda d: -self.single_score(d))
        return [self.candidates[d].hit for d in (*first, *rest)]

    def _neighbours(self, chain: Sequence[str]) -> set[str]:
        """Pooled documents linked to any chain document (mentioned by it, or mentioning it)."""
        ids = set(chain)
        out = set().union(*(self.candidates[d].mentions for d in chain)) & self.candidates.keys()
        out |= {d for d, c in self.candidates.items() if c.mentions & ids}
        return out - ids

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
