"""The heterogeneous teacher ensemble for distillation: a dense and a sparse teacher, normalized and summed.

Each teacher scores a query against the corpus; its scores are min-max normalized
per query over its own top ``depth`` documents (so every teacher maps to [0, 1] on
that query, whatever its scale), then the normalized scores are summed with
weights. Teachers:

- ``bm25``: a Lucene BM25 index of the engine (scores of documents beyond its top
  ``depth`` count as 0 after normalization);
- ``dense``: a dense index of the engine (all-MiniLM-L6-v2 by default), exact cosine
  for any pair from the stored embeddings;
- ``splade``: the sparse encoder used *siamese* (queries encoded by the model too),
  against the document vectors of one of the engine's sparse indexes.

Which engine index each teacher reads is a setting (``indexes``: teacher -> index
name; by default the index named like the teacher, ``sparse`` for ``splade``).

Example:
    >>> ensemble = TeacherEnsemble(engine, {"bm25": 1.0, "dense": 1.0})
    >>> scores = ensemble.prepare({"q1": "statins and breast cancer"})
    >>> scores.candidates(0, 50)      # rows of the top 50 by the ensemble
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import faiss
import numpy as np

from indexes.dense import IDS_FILE, read_ids
from retriever.api import Engine
from retriever.core.errors import SpecError
from retriever.core.progress import progress

TEACHERS = ("bm25", "dense", "splade")
KINDS = {"bm25": "bm25", "dense": "dense", "splade": "sparse"}  # teacher -> the index kind it reads
DEFAULT_INDEXES = {"bm25": "bm25", "dense": "dense", "splade": "sparse"}  # teacher -> default index name
_BATCH = 256


@dataclass
class TeacherScores:
    """Normalized ensemble scores of a set of queries against the corpus rows of an engine."""

    weights: dict[str, float]
    lexical: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # per query: rows, norm scores
    query_vectors: dict[str, np.ndarray] = field(default_factory=dict)  # teacher -> queries x dim (or CSR)
    doc_vectors: dict[str, object] = field(default_factory=dict)  # teacher -> docs x dim (or CSR)
    ranges: dict[str, np.ndarray] = field(default_factory=dict)  # teacher -> queries x (min, max)
    pools: list[np.ndarray] = field(default_factory=list)  # per query: candidate rows, best first

    def score(self, query: int, rows: np.ndarray) -> np.ndarray:
        """Ensemble score of ``query`` against corpus ``rows`` (float32)."""
        rows = np.asarray(rows, dtype=np.int64)
        total = np.zeros(len(rows), dtype=np.float32)
        for name, weight in self.weights.items():
            if name == "bm25":  # a teacher kind (see TEACHERS), not an index name
                have, values = self.lexical[query]
                where = np.searchsorted(have, rows).clip(0, max(len(have) - 1, 0))
                hit = have[where] == rows if len(have) else np.zeros(len(rows), bool)
                total += weight * np.where(hit, values[where] if len(have) else 0.0, 0.0).astype(np.float32)
            else:
                raw = _dot(self.query_vectors[name], query, self.doc_vectors[name], rows)
                low, high = self.ranges[name][query]
                total += weight * np.clip((raw - low) / max(high - low, 1e-6), 0.0, None).astype(np.float32)
        return total

    def candidates(self, query: int, n: int) -> np.ndarray:
        """The ``n`` best corpus rows for ``query`` by the ensemble, best first."""
        return self.pools[query][:n]


class TeacherEnsemble:
    """Builds :class:`TeacherScores` from an engine's indexes.

    Args:
        engine: an engine with the teachers' indexes.
        weights: teacher -> weight, e.g. ``{"bm25": 1, "dense": 1}``.
        depth: how deep each teacher's ranking is read (normalization range, candidate pool).
        indexes: teacher -> the engine index it reads (of the teacher's kind); teachers not
            named read :data:`DEFAULT_INDEXES`.

    Raises:
        SpecError: an unknown teacher, or an index that is missing or of another kind.
    """

    def __init__(self, engine: Engine, weights: Mapping[str, float], depth: int = 200,
                 indexes: Mapping[str, str] | None = None):
        unknown = set(weights) - set(TEACHERS)
        if unknown or not weights:
            raise SpecError(f"teachers must be among {', '.join(TEACHERS)}; got {', '.join(weights) or 'none'}")
        self.indexes = {teacher: {**DEFAULT_INDEXES, **(indexes or {})}[teacher] for teacher in weights}
        missing = [n for n in self.indexes.values() if n not in engine.indexes]
        if missing:
            raise SpecError(f"the teacher ensemble needs the engine index(es) {', '.join(missing)} in {engine.path}")
        for teacher, name in self.indexes.items():
            if engine.indexes[name].kind != KINDS[teacher]:
                raise SpecError(f"the {teacher} teacher reads a {KINDS[teacher]} index; {name!r} in {engine.path} "
                                f"is a {engine.indexes[name].kind} index")
        self.engine, self.weights, self.depth = engine, dict(weights), depth
        self.row_of = {doc_id: row for row, doc_id in enumerate(engine.corpus.ids)}

    def prepare(self, queries: Sequence[str]) -> TeacherScores:
        """Run every teacher on ``queries`` and keep what is needed to score any (query, row) pair."""
        scores = TeacherScores(self.weights)
        if "bm25" in self.weights:
            scores.lexical = self._bm25(queries)
        tops: list[list[np.ndarray]] = [[rows] for rows, _ in scores.lexical] or [[] for _ in queries]
        for name in (n for n in self.weights if n != "bm25"):
            query_vectors, doc_vectors = self._vectors(name, queries)
            scores.query_vectors[name], scores.doc_vectors[name] = query_vectors, doc_vectors
            scores.ranges[name] = np.zeros((len(queries), 2), dtype=np.float32)
            for start in range(0, len(queries), _BATCH):
                block = _scores(query_vectors[start:start + _BATCH], doc_vectors)
                depth = min(self.depth, block.shape[1])
                top = np.argpartition(-block, depth - 1, axis=1)[:, :depth]
                values = np.take_along_axis(block, top, axis=1)
                scores.ranges[name][start:start + len(block)] = np.stack([values.min(1), values.max(1)], axis=1)
                for offset, rows in enumerate(top):
                    tops[start + offset].append(rows)
        for q in progress(range(len(queries)), desc="teacher candidate pools", unit="query"):
            rows = np.unique(np.concatenate(tops[q])).astype(np.int64)
            ensemble = scores.score(q, rows)
            scores.pools.append(rows[np.lexsort((rows, -ensemble))][:self.depth])
        return scores

    def _bm25(self, queries: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        index = self.engine.indexes[self.indexes["bm25"]]
        for start in progress(range(0, len(queries), _BATCH), desc="bm25 teacher", unit="batch"):
            for ranking in index.search(list(queries[start:start + _BATCH]), self.depth):
                rows = np.array([self.row_of[d] for d, _ in ranking], dtype=np.int64)
                values = np.array([s for _, s in ranking], dtype=np.float32)
                if len(values):
                    values = (values - values.min()) / max(float(values.max() - values.min()), 1e-6)
                order = np.argsort(rows)
                out.append((rows[order], values[order]))
        return out

    def _vectors(self, name: str, queries: Sequence[str]):
        """Query vectors and document vectors (in corpus row order) of a vector teacher."""
        index = self.engine.indexes[self.indexes[name]]
        if name == "dense":
            ids = read_ids(index.directory / IDS_FILE)
            docs = _dense_documents(index, ids, self.engine.corpus)
            query_vectors = index.encode_queries(list(queries))
        else:
            from indexes.sparse.index import load_encoder

            ids, docs = index.vectors.ids, index.vectors.matrix()
            query_vectors = load_encoder(index.settings).encode_document(list(queries)).matrix()
        return query_vectors, docs[np.argsort([self.row_of[d] for d in ids])]


def _dense_documents(index, ids: list[str], corpus) -> np.ndarray:
    """The dense index's document embeddings, in its own order (re-encoded if FAISS cannot return them)."""
    from indexes.dense import CHUNK, FAISS_FILE, encode_documents, load_encoder

    try:
        stored = faiss.read_index(str(index.directory / FAISS_FILE))
        return stored.reconstruct_n(0, stored.ntotal)
    except RuntimeError:  # compressed indexes (PQ) do not keep the vectors
        vectors = encode_documents(load_encoder(index.settings), corpus.iter_batches(CHUNK), len(corpus),
                                   index.settings.get("document_prefix", ""))
        order = {doc_id: row for row, doc_id in enumerate(corpus.ids)}
        return vectors[[order[d] for d in ids]]


def _scores(queries, docs) -> np.ndarray:
    """Scores of a block of queries against every document (dense arrays or SciPy sparse matrices)."""
    block = queries @ docs.T
    return np.asarray(block.todense() if hasattr(block, "todense") else block, dtype=np.float32)


def _dot(queries, query: int, docs, rows: np.ndarray) -> np.ndarray:
    """Scores of query ``query`` against document ``rows``, dense or sparse."""
    return _scores(queries[query:query + 1], docs[rows])[0]
