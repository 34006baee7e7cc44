"""Training queries and batches for the sparse encoder: pseudo-queries or qrels, teacher targets.

Two data regimes:

- **label-free** (domain adaptation on any corpus): pseudo-queries drawn from the
  corpus's own documents, a title (when it has 3 to 20 words) or a random span of
  4 to 12 words of the text; their targets come from the teacher ensemble only.
- **supervised**: the queries of a qrels split (e.g. NFCorpus ``train``); targets are
  the teacher ensemble plus ``label_weight`` times the graded relevance.

A batch samples queries; for each, documents from its teacher candidate pool (the
best one, a labeled relevant one when there are labels, the rest at random from
the pool). Every query is then scored against *every* document of the batch, so
the other queries' documents act as in-batch negatives with soft teacher labels
(NFCorpus queries have ~40 relevant documents: a hard 0/1 negative would often be wrong).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import numpy as np

from retriever.train.sparse.teachers import TeacherScores
from retriever.core.corpus import Corpus
from retriever.core.errors import InputError

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class TrainQuery:
    """A training query and its graded relevance labels (corpus row -> grade; empty when label-free)."""

    text: str
    labels: dict[int, float] = field(default_factory=dict)


@dataclass
class Batch:
    """Queries, the corpus rows to encode, and teacher targets (queries x rows)."""

    queries: list[int]
    rows: np.ndarray
    targets: np.ndarray


def pseudo_queries(corpus: Corpus, count: int, seed: int = 0) -> list[TrainQuery]:
    """``count`` pseudo-queries drawn from random documents of ``corpus`` (deterministic for a seed)."""
    rng = random.Random(seed)
    picks = [rng.randrange(len(corpus)) for _ in range(count)]
    out = []
    for doc in corpus.rows(picks):
        title_words = doc.title.split()
        if 3 <= len(title_words) <= 20 and rng.random() < 0.5:
            out.append(TrainQuery(doc.title))
            continue
        sentences = [s for s in _SENTENCE.split(doc.text) if len(s.split()) >= 4] or [doc.contents]
        words = rng.choice(sentences).split()
        length = rng.randint(4, 12)
        start = rng.randrange(max(len(words) - length, 0) + 1)
        out.append(TrainQuery(" ".join(words[start:start + length])))
    return out


def labeled_queries(queries: dict, qrels: dict[str, dict[str, int]], corpus: Corpus) -> list[TrainQuery]:
    """Queries of a qrels split with their positive grades mapped to corpus rows."""
    out = []
    for qid, judged in qrels.items():
        labels = {corpus.row_of(d): float(g) for d, g in judged.items() if g > 0 and d in corpus}
        if labels:
            out.append(TrainQuery(queries[qid].text, labels))
    if not out:
        raise InputError("no training query has a relevant document in the corpus")
    return out


def sample_batch(queries: list[TrainQuery], scores: TeacherScores, rng: random.Random, n_queries: int,
                 docs_per_query: int, pool: int, label_weight: float) -> Batch:
    """One batch: queries, the union of their sampled documents, and the teacher target matrix."""
    picked = rng.sample(range(len(queries)), min(n_queries, len(queries)))
    rows: list[int] = []
    for q in picked:
        candidates = scores.candidates(q, pool).tolist()
        chosen = candidates[:1]
        if queries[q].labels:
            chosen.append(rng.choice(sorted(queries[q].labels)))
        rest = [c for c in candidates[1:] if c not in chosen]
        chosen += rng.sample(rest, min(max(docs_per_query - len(chosen), 0), len(rest)))
        rows += chosen
    unique = np.array(list(dict.fromkeys(rows)), dtype=np.int64)
    targets = np.stack([scores.score(q, unique) for q in picked])
    for i, q in enumerate(picked):
        if queries[q].labels and label_weight:
            top = max(queries[q].labels.values())
            targets[i] += label_weight * np.array([queries[q].labels.get(int(r), 0.0) / top for r in unique])
    return Batch(picked, unique, targets.astype(np.float32))
