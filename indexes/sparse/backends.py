"""Where sparse document vectors are searched: a Lucene impact index (exact) or Seismic (approximate).

Both answer the same call, ``search(queries, k)`` with queries given as
``(term ids, float weights)``, and return ``(doc_id, score)`` lists whose scores
approximate the float dot product ``sum_t q(t) * w_d(t)``.

- **Lucene** (Anserini ``JsonVectorCollection --impact --pretokenized``): document
  weights are stored as integer impacts ``round(w * scale)`` (``scale`` = 100 by
  default, so 0.01 is the resolution and weights below 0.005 are dropped); query
  weights are sent as ``round(q * QUERY_SCALE)``. Lucene's score is an exact
  integer dot product, divided back by ``scale * QUERY_SCALE``. Terms are the
  vocabulary ids written as decimal strings.
- **Seismic** (``pyseismic-lsr``): float weights, clustered and summarized
  posting lists; search knobs ``query_cut`` (query terms used, heaviest first) and
  ``heap_factor`` trade recall for speed. Stored in Seismic's own binary format
  and rebuilt from the float vectors when documents are added.
- **Exact**: brute-force dot products over the stored float vectors (SciPy), the
  reference both are checked against.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from indexes.bm25 import index_documents
from indexes.jvm import helper_class, java_class, lucene_search, open_lucene_reader
from indexes.sparse.vectors import SparseVectors, quantize, top_k_dot
from retriever.core.errors import SpecError
from retriever.core.storage import link_tree
from retriever.core.types import Ranking

Query = tuple[np.ndarray, np.ndarray]
QUERY_SCALE = 100
LUCENE_DIR = "lucene"
SEISMIC_STEM = "seismic"
# Anserini skips a document whose vector is empty (an empty document, or one whose weights all
# round to 0); it is indexed with this one term instead, which no query has (query terms are
# vocabulary ids in decimal), so it is counted and matches nothing.
EMPTY_TERM = "_empty"
ID_PAGE = 100_000  # stored ids read per JVM call when an impact index is opened
ANSERINI_FIELD = "contents"  # the field Anserini indexes a JsonVectorCollection's vector into
SEISMIC_BUILD = {"n_postings": 3500, "centroid_fraction": 0.1, "summary_energy": 0.6, "doc_cut": 15}
SEISMIC_SEARCH = {"query_cut": 20, "heap_factor": 0.7}


class ExactBackend:
    """Brute-force scoring over the float vectors (the ground truth)."""

    def __init__(self, vectors: SparseVectors):
        self.vectors, self._matrix = vectors, vectors.matrix().tocsc()

    def search(self, queries: Sequence[Query], k: int, **knobs: Any) -> list[Ranking]:
        _reject(knobs, ())
        out = []
        for terms, weights in queries:
            rows, scores = top_k_dot(self._matrix, terms, weights, k)
            out.append([(self.vectors.ids[r], float(s)) for r, s in zip(rows, scores)])
        return out

    def close(self) -> None:
        """Nothing to release."""


class LuceneBackend:
    """A Lucene impact index, searched with Lucene's own top-k collector.

    Each query is Lucene's ``sum of impact x term`` boolean query, and
    ``IndexSearcher.search(query, k)`` keeps only the top k, so Lucene skips blocks
    whose maximum impact cannot enter them (block-max pruning). With the compiled helper
    (:mod:`indexes.java_helpers`) a query is one JNI call, terms and impacts in and hits
    out as int arrays; without it the query is a ``term^impact`` string parsed in Java
    and the hits come back as ``ScoreDoc`` objects (about 2x the time, the same results).
    Anserini's ``SimpleImpactSearcher`` sorts every match by (score, id) instead, which
    pruned nothing: 2-4x BM25's p50 here. The order stays Anserini's: score, then
    document id; a search that would cut a group of tied scores asks for more hits, so
    ``search(q, 3)`` is always the first 3 of ``search(q, 10)``.
    """

    def __init__(self, directory: Path, settings: dict[str, Any]):
        self.scale = float(settings["scale"]) * QUERY_SCALE
        self._directory, self._reader = open_lucene_reader(directory / LUCENE_DIR)
        self._searcher = java_class("org.apache.lucene.search.IndexSearcher")(
            self._reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self._searcher.setSimilarity(java_class("io.anserini.search.similarity.ImpactSimilarity")())
        self._parsers = threading.local()  # a QueryParser is not thread-safe; the searcher is
        self._helper = helper_class("ImpactTopK")
        self._ids: list[str] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def build(directory: Path, vectors: SparseVectors, settings: dict[str, Any], append: bool = False) -> None:
        """Index ``vectors`` into ``directory/lucene`` (appending to the segments already there)."""
        index_documents(directory / LUCENE_DIR, _impact_rows(vectors, float(settings["scale"])),
                        directory / "_input", append=append,
                        extra_args=["-collection", "JsonVectorCollection", "-impact", "-pretokenized"])

    @classmethod
    def extend(cls, old: Path, new: Path, vectors: SparseVectors, added: SparseVectors, settings: dict) -> None:
        link_tree(old / LUCENE_DIR, new / LUCENE_DIR, exclude=("write.lock",))
        cls.build(new, added, settings, append=True)

    def search(self, queries: Sequence[Query], k: int, **knobs: Any) -> list[Ranking]:
        """One query after another: Python threads gained nothing here (the pyjnius calls serialize), and
        each would stay attached to the JVM after it ends."""
        _reject(knobs, ())
        return [self._search_one(query, k) for query in queries]

    def _search_one(self, query: Query, k: int) -> Ranking:
        terms, impacts = _positive_impacts(query)
        if not terms or k < 1:
            return []
        top = self._top_by_helper if self._helper is not None else self._top_by_parser
        ids, wanted = self._doc_ids(), k + 1
        while True:  # widen until no document tied with the k-th is left out, then order ties by id
            hits = [(ids[doc], score) for doc, score in top(terms, impacts, wanted)]
            if len(hits) < wanted or hits[-1][1] < hits[k - 1][1]:
                break
            wanted *= 2
        hits.sort(key=lambda hit: (-hit[1], hit[0]))
        return [(doc_id, float(score) / self.scale) for doc_id, score in hits[:k]]

    def _top_by_helper(self, terms: list[int], impacts: list[int], n: int) -> list[tuple[int, float]]:
        """Lucene's top n as (doc number, score): one call to the compiled helper."""
        packed = np.asarray(lucene_search(lambda: self._helper.search(self._searcher, ANSERINI_FIELD, terms, impacts, n),
                                          " ".join(map(str, terms))), dtype=np.int32)
        return list(zip(packed[0::2].tolist(), packed[1::2].view(np.float32).tolist()))

    def _top_by_parser(self, terms: list[int], impacts: list[int], n: int) -> list[tuple[int, float]]:
        """The same through pyjnius alone: a ``term^impact`` string parsed in Java, ``ScoreDoc`` objects back."""
        text = " ".join(f"{term}^{impact}" for term, impact in zip(terms, impacts))
        parsed = lucene_search(lambda: self._parser().parse(text), text)
        top = lucene_search(lambda: self._searcher.search(parsed, n), text)
        return [(hit.doc, hit.score) for hit in top.scoreDocs]

    def _doc_ids(self) -> list[str]:
        """Document id by Lucene doc number, read once (loading stored ids per hit was half the search time),
        in pages of :data:`ID_PAGE` so that the JVM never holds every stored document at once."""
        with self._lock:
            if self._ids is None:
                every = java_class("org.apache.lucene.search.MatchAllDocsQuery")()
                ids, after = [""] * self._reader.maxDoc(), None
                while True:
                    page = (self._searcher.search(every, ID_PAGE) if after is None
                            else self._searcher.searchAfter(after, every, ID_PAGE))
                    found = java_class("io.anserini.search.ScoredDocs").fromTopDocs(page, self._searcher)
                    numbers = found.lucene_docids
                    for number, doc_id in zip(numbers, found.docids):
                        ids[number] = doc_id
                    if len(numbers) < ID_PAGE:
                        break
                    after = java_class("org.apache.lucene.search.ScoreDoc")(numbers[-1], found.scores[-1])
                self._ids = ids
            return self._ids

    def _parser(self) -> Any:
        if not hasattr(self._parsers, "parser"):
            self._parsers.parser = java_class("org.apache.lucene.queryparser.classic.QueryParser")(
                ANSERINI_FIELD, java_class("org.apache.lucene.analysis.core.WhitespaceAnalyzer")())
        return self._parsers.parser

    def close(self) -> None:
        self._reader.close()
        self._directory.close()


class SeismicBackend:
    """A Seismic index (approximate, float weights)."""

    def __init__(self, directory: Path, settings: dict[str, Any]):
        import seismic

        self._seismic = seismic
        with _quiet_stdout():
            self._index = seismic.SeismicIndex.load(str(directory / f"{SEISMIC_STEM}.index.seismic"))

    @staticmethod
    def build(directory: Path, vectors: SparseVectors, settings: dict[str, Any]) -> None:
        """Build the Seismic index of ``vectors`` and save it in ``directory``."""
        import seismic

        dataset = seismic.SeismicDataset(dim=vectors.dim)
        dataset.add_documents_by_id(vectors.ids, vectors.terms.astype(np.int64), vectors.weights,
                                    vectors.indptr.astype(np.int64))
        with _quiet_stdout():
            index = seismic.SeismicIndex.build_from_dataset(
                dataset, n_postings=int(settings["n_postings"]), centroid_fraction=float(settings["centroid_fraction"]),
                summary_energy=float(settings["summary_energy"]), doc_cut=int(settings["doc_cut"]), num_threads=1)
            index.save(str(directory / SEISMIC_STEM))

    @classmethod
    def extend(cls, old: Path, new: Path, vectors: SparseVectors, added: SparseVectors, settings: dict) -> None:
        cls.build(new, vectors, settings)

    def search(self, queries: Sequence[Query], k: int, query_cut: int | None = None,
               heap_factor: float | None = None, **knobs: Any) -> list[Ranking]:
        _reject(knobs, ("query_cut", "heap_factor"))
        cut = int(query_cut or SEISMIC_SEARCH["query_cut"])
        heap = float(heap_factor or SEISMIC_SEARCH["heap_factor"])
        string = self._seismic.get_seismic_string()
        out = []
        for terms, weights in queries:
            if len(terms) == 0:
                out.append([])
                continue
            hits = self._index.search("q", np.array([str(t) for t in terms.tolist()], dtype=string),
                                      np.asarray(weights, dtype=np.float32), k, cut, heap)
            out.append([(doc_id, float(score)) for _, score, doc_id in hits])
        return out

    def close(self) -> None:
        self._index = None


BACKENDS = {"lucene": LuceneBackend, "seismic": SeismicBackend}


def backend_class(name: str):
    """The backend class for a ``backend=`` setting."""
    if name not in BACKENDS:
        raise SpecError(f"unknown sparse backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def _positive_impacts(query: Query) -> tuple[list[int], list[int]]:
    """The query's terms and integer impacts ``round(q * QUERY_SCALE)``, those that round to 0 left out."""
    terms, weights = query
    impacts = quantize(weights, QUERY_SCALE)
    keep = impacts > 0
    return terms[keep].tolist(), impacts[keep].tolist()


def _impact_rows(vectors: SparseVectors, scale: float):
    for i, doc_id in enumerate(vectors.ids):
        terms, weights = vectors.row(i)
        impacts = quantize(weights, scale)
        keep = impacts > 0
        vector = dict(zip(map(str, terms[keep].tolist()), impacts[keep].tolist()))
        yield {"id": doc_id, "contents": "", "vector": vector or {EMPTY_TERM: 1}}


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence what the Rust library prints on the process's stdout (build progress)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _reject(knobs: dict, known: tuple[str, ...]) -> None:
    if knobs:
        raise SpecError(f"unknown sparse search knob(s): {', '.join(sorted(knobs))}; "
                        f"known here: {', '.join(known + ('exact',))}")
