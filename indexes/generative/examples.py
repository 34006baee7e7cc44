"""Training examples for the generative index: texts that should generate a document's id.

Per document (DSI's "indexing" task): the whole document, its title, its leading
passage, random word spans, and pseudo-queries. No query generator model exists
offline, so pseudo-queries are cheap keyword queries: a few of the document's
highest tf-idf terms, sampled in proportion to their weight and kept in document
order ("statin breast cancer recurrence"), which is the shape of short search
queries. Real queries with relevance judgements (``dataset:split``, e.g.
``nfcorpus:train``) add the retrieval task; a test split is refused.

Every example is a pair (text, document row); texts are deduplicated so a query
relevant to many documents is encoded once.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa

from retriever.core.corpus import Document
from retriever.core.errors import IndexFormatError, SpecError
from retriever.core.progress import progress

SOURCES = ("document", "title", "lead", "span", "pseudo", "query")
TERMS_FILE = "terms.arrow"
_WORD = re.compile(r"[a-z][a-z0-9\-]{2,}")
STOPWORDS = frozenset("""
about above after again against all also among and any are around because been before being below
between both but can could did does doing down during each either else ever every few for from further
had has have having her here hers herself him himself his how however into its itself just like many
may might more most much must near neither nor not now off once only other ought our ours ourselves out
over own per rather same shall she should since some such than that the their theirs them themselves
then there therefore these they this those though through thus too under until upon use used using very
was were what when where whether which while who whom whose why will with within without would yet you
your yours yourself yourselves
""".split())


@dataclass(frozen=True)
class ViewSettings:
    """How many examples of each kind a document yields."""

    spans: int = 3
    span_words: int = 32
    pseudo_queries: int = 5
    query_terms: tuple[int, int] = (2, 6)
    seed: int = 0


@dataclass
class Examples:
    """Training pairs: ``texts[text_of[i]]`` should generate the id of document ``row_of[i]``."""

    texts: list[str]
    text_of: np.ndarray
    row_of: np.ndarray
    source: np.ndarray

    @classmethod
    def empty(cls) -> "Examples":
        return cls([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.row_of)

    def __add__(self, other: "Examples") -> "Examples":
        return Examples(self.texts + other.texts, np.concatenate([self.text_of, other.text_of + len(self.texts)]),
                        np.concatenate([self.row_of, other.row_of]), np.concatenate([self.source, other.source]))

    def counts(self) -> dict[str, int]:
        """Number of pairs per source kind."""
        return {name: int((self.source == code).sum()) for code, name in enumerate(SOURCES)
                if (self.source == code).any()}


class TermStats:
    """Document frequencies of words, for choosing pseudo-query terms by tf-idf."""

    def __init__(self, df: Counter | None = None, docs: int = 0):
        self.df = df or Counter()
        self.docs = docs

    def add(self, docs: Sequence[Document]) -> None:
        for doc in docs:
            self.df.update(set(words(doc.contents)))
        self.docs += len(docs)

    def idf(self, term: str) -> float:
        return math.log((self.docs + 1) / (self.df.get(term, 0) + 0.5))

    def write(self, directory: Path) -> None:
        terms = sorted(self.df)
        table = pa.table({"term": pa.array(terms, pa.string()), "df": pa.array([self.df[t] for t in terms], pa.int64())},
                         metadata={"docs": str(self.docs)})
        with pa.OSFile(str(directory / TERMS_FILE), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)

    @classmethod
    def read(cls, directory: Path) -> "TermStats":
        if not (directory / TERMS_FILE).is_file():
            raise IndexFormatError(f"{directory / TERMS_FILE} is missing: the generative index is incomplete")
        table = pa.ipc.open_file(pa.memory_map(str(directory / TERMS_FILE))).read_all()
        df = Counter(dict(zip(table.column("term").to_pylist(), table.column("df").to_pylist())))
        return cls(df, int(table.schema.metadata[b"docs"]))


def words(text: str) -> list[str]:
    """Lower-cased content words (3+ characters, no stopwords)."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def pseudo_queries(text: str, stats: TermStats, rng: np.random.Generator, count: int,
                   terms: tuple[int, int] = (2, 6), pool: int = 20) -> list[str]:
    """Up to ``count`` distinct keyword queries from ``text``'s top tf-idf terms (see the module docstring)."""
    tokens = words(text)
    if not tokens:
        return []
    tf = Counter(tokens)
    first = {}
    for position, token in enumerate(tokens):
        first.setdefault(token, position)
    top = sorted(tf, key=lambda t: (-tf[t] * stats.idf(t), first[t]))[:pool]
    weights = np.array([tf[t] * max(stats.idf(t), 1e-3) for t in top])
    queries: list[str] = []
    for _ in range(count):
        size = int(rng.integers(min(terms[0], len(top)), min(terms[1], len(top)) + 1))
        picked = rng.choice(len(top), size=size, replace=False, p=weights / weights.sum())
        query = " ".join(sorted((top[i] for i in picked), key=first.__getitem__))
        if query not in queries:
            queries.append(query)
    return queries


def document_examples(docs: Sequence[Document], first_row: int, stats: TermStats, views: ViewSettings) -> Examples:
    """Views and pseudo-queries for ``docs`` (rows ``first_row``...); the first ``len(docs)`` texts are the documents.

    Each document's random choices come from a generator seeded by (seed, id), so
    its examples do not depend on which other documents are indexed with it.
    """
    texts = [doc.contents for doc in docs]
    pairs: list[tuple[int, int, int]] = [(i, first_row + i, 0) for i in range(len(docs))]
    for i, doc in enumerate(docs):
        rng = np.random.default_rng([views.seed, zlib.crc32(doc.doc_id.encode())])
        body = doc.text.split()
        chosen = []
        if doc.title.strip():
            chosen.append((doc.title, 1))
        if len(body) > views.span_words:
            chosen.append((" ".join(body[:views.span_words]), 2))
            for start in rng.integers(0, len(body) - views.span_words + 1, size=views.spans):
                chosen.append((" ".join(body[start:start + views.span_words]), 3))
        chosen += [(q, 4) for q in pseudo_queries(doc.contents, stats, rng, views.pseudo_queries, views.query_terms)]
        for text, source in chosen:
            pairs.append((len(texts), first_row + i, source))
            texts.append(text)
    arrays = np.array(pairs, dtype=np.int64).reshape(-1, 3)
    return Examples(texts, arrays[:, 0], arrays[:, 1], arrays[:, 2])


def query_examples(source: str, row_of: Mapping[str, int]) -> Examples:
    """Real queries judged relevant (score > 0) to indexed documents, from ``dataset:split``.

    Judgements of documents that are not indexed are skipped.

    Raises:
        SpecError: a malformed source or a ``test`` split (training on test queries is refused).
    """
    from retriever.core.datasets import load_dataset

    name, _, split = source.rpartition(":")
    if not name or not split:
        raise SpecError(f"queries={source!r}: expected 'dataset:split', e.g. 'nfcorpus:train'")
    if split == "test":
        raise SpecError(f"queries={source!r}: refusing to train on a test split")
    queries, qrels = load_dataset(name).split(split)
    texts, pairs = [], []
    for qid, judged in qrels.items():
        rows = [row_of[d] for d, score in judged.items() if score > 0 and d in row_of]
        if rows:
            pairs += [(len(texts), row) for row in rows]
            texts.append(queries[qid].text)
    arrays = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return Examples(texts, arrays[:, 0], arrays[:, 1], np.full(len(arrays), SOURCES.index("query")))


def encode_texts(encoder, texts: Sequence[str], desc: str, chunk: int = 1024) -> np.ndarray:
    """Normalized float32 embeddings of ``texts`` with a progress bar."""
    parts = []
    with progress(total=len(texts), desc=desc, unit="text") as bar:
        for start in range(0, len(texts), chunk):
            batch = list(texts[start:start + chunk])
            parts.append(encoder.encode(batch, batch_size=64, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False))
            bar.update(len(batch))
    dim = encoder.get_embedding_dimension()
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)
