"""The inference-free learned sparse index: documents encoded once, queries only tokenized.

Files of an index directory (no pickle)::

    manifest.json        kind, settings, document count, corpus checksum, build time
    vectors.arrow        the float document vectors (CSR; see indexes.sparse.vectors)
    tokenizer.json       the encoder's tokenizer      df.arrow / terms.json   the IDF table
    lucene/              the Lucene impact index      (backend=lucene, the default)
    seismic.index.seismic  the Seismic index          (backend=seismic)

Settings (persisted): ``model`` (a masked-LM directory; default
``../shared/models/splade-tiny-msmarco``), ``max_length`` (256), ``top_k`` (0: keep
every term), ``threshold`` (0), ``backend`` (``lucene`` | ``seismic``), ``scale``
(Lucene impact quantization, 100), ``runtime`` (``torch``, ``torch-bf16``, ``onnx``, ``onnx-int8``: see
indexes.onnx), and for Seismic ``n_postings``,
``centroid_fraction``, ``summary_energy``, ``doc_cut``; query side: ``query_weights``
(``idf``, or ``learned``: the factor table trained with the model, copied from its
directory), ``min_weight`` and ``max_terms`` (query-term pruning, see
:mod:`indexes.sparse.queries`), ``prf_docs``, ``prf_terms`` and ``prf_weight`` (pseudo-relevance
feedback, see :mod:`indexes.sparse.feedback`), all also accepted as search knobs. Search knobs:
``query_cut`` and ``heap_factor`` (Seismic), ``exact=True`` (brute force over the float vectors).

Example:
    >>> engine = Engine.build("work/nf", "nfcorpus/corpus.jsonl", indexes=["bm25", "sparse"])
    >>> engine.search("statins and breast cancer", using="sparse", k=5)
    >>> engine.build_indexes(["fast=sparse(backend=seismic)"])
    >>> engine.rankings(["statins"], 10, using="sparse", knobs={"sparse": {"prf_docs": 3}})
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import scipy.sparse as sp
from tokenizers import Tokenizer

from indexes.base import Index
from indexes.bm25 import add_segments
from indexes.bf16 import RUNTIME as BF16
from indexes.onnx import RUNTIMES
from indexes.sparse.backends import BACKENDS, LUCENE_DIR, SEISMIC_BUILD, ExactBackend, Query, backend_class
from indexes.sparse.encoder import DEFAULT_MODEL, DocEncoder, load_tokenizer, resolve_sparse_model
from indexes.sparse.feedback import KNOBS as FEEDBACK_KNOBS, Feedback
from indexes.sparse.lexical import count_pieces, lexical_vectors, mean_length, with_lexical
from indexes.sparse.queries import QueryEncoder, VocabularyMismatchError, plain_tokenizer, read_query_weights
from indexes.sparse.vectors import SparseVectors
from retriever.core.corpus import Corpus, Document
from retriever.core.settings import OMIT, Schema, Setting, above, at_least, one_of, within
from retriever.core.storage import link_tree
from retriever.core.types import Ranking

VECTORS_FILE = "vectors.arrow"
ENCODE_CHUNK = 256  # documents per encode call (sorted by length inside it); shards are whole chunks
SCHEMA = Schema("sparse", (
    Setting("model", str, DEFAULT_MODEL, help="masked-LM directory of the document encoder"),
    Setting("max_length", int, 256, at_least(3), "document length in tokens"),
    Setting("top_k", int, 0, at_least(0), "keep the top_k terms per document (0: all)"),
    Setting("threshold", float, 0.0, help="drop term weights at or below this"),
    Setting("backend", str, "lucene", one_of(*BACKENDS), "lucene (impact index) or seismic"),
    Setting("scale", float, 100.0, above(0), "Lucene impact quantization"),
    Setting("query_weights", str, "idf", one_of("idf", "learned"),
            "query-term weights: idf, or learned (idf x the factor table saved with the model)"),
    Setting("min_weight", float, 0.0, at_least(0), "query-term pruning: drop query terms weighing less"),
    Setting("max_terms", int, 0, at_least(0), "query-term pruning: keep the max_terms heaviest terms (0: all)"),
    Setting("runtime", str, "torch", one_of(*RUNTIMES),
            "document encoder runtime: torch, torch-bf16, onnx or onnx-int8"),
    Setting("lexical", float, 0.0, at_least(0),
            "add this x BM25 saturation of the document's own word pieces (indexes.sparse.lexical; 0: learned only)"),
    Setting("lexical_avgdl", float, OMIT, above(0),
            "reference length of the lexical part, in word pieces (default: the corpus mean at the first build)"),
    Setting("prf_docs", int, OMIT, at_least(0),
            "pseudo-relevance feedback: expand each query from its first prf_docs hits (unset or 0: off)"),
    Setting("prf_terms", int, OMIT, at_least(1), f"feedback: terms added to each query (unset: {Feedback.terms})"),
    Setting("prf_weight", float, OMIT, at_least(0),
            f"feedback: weight of the added terms, x the query's heaviest (unset: {Feedback.weight})"),
    # Seismic build settings (filled in with SEISMIC_BUILD when backend=seismic)
    Setting("n_postings", int, OMIT, at_least(1), "Seismic: postings kept per term"),
    Setting("centroid_fraction", float, OMIT, within(0, 1), "Seismic: centroids per posting list, as a share"),
    Setting("summary_energy", float, OMIT, within(0, 1), "Seismic: energy kept in block summaries"),
    Setting("doc_cut", int, OMIT, at_least(1), "Seismic: terms per document used in clustering"),
))


class SparseIndex(Index):
    """Inference-free learned sparse retrieval over a Lucene impact index or Seismic."""

    kind = "sparse"
    schema = SCHEMA
    combine = "merge"  # vectors concatenated, document frequencies summed, Lucene impact shards addIndexes'd
    shard_block = ENCODE_CHUNK
    shard_independent_scores = True  # query weights come from the merged (global) IDF table
    uses_accelerator = True
    pinned_settings = ("lexical_avgdl",)  # fixed at the first build: adds and their shards reuse it
    feedback_knobs = FEEDBACK_KNOBS

    def __init__(self, directory: Path, manifest: dict):
        super().__init__(directory, manifest)
        self.queries = QueryEncoder.read(self.directory, self.settings.get("min_weight", 0.0),
                                         self.settings.get("max_terms", 0))
        if self.queries.vocab_size != int(self.settings["vocab_size"]):
            raise VocabularyMismatchError(f"{self.directory}: the IDF table covers {self.queries.vocab_size} terms "
                                          f"but the vectors {self.settings['vocab_size']}")
        self._backend = backend_class(self.settings["backend"])(self.directory, self.settings)
        self._vectors: SparseVectors | None = None
        self._exact: ExactBackend | None = None
        self._rows: tuple[sp.csr_matrix, dict[str, int]] | None = None

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The schema's checks; the Seismic build settings default to ``SEISMIC_BUILD`` with that backend."""
        checked = SCHEMA.parse(settings)
        if checked["backend"] == "seismic":
            checked = {**checked, **{k: v for k, v in SEISMIC_BUILD.items() if k not in checked}}
        return checked

    @classmethod
    def write(cls, directory: Path, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        persisted = dict(settings)
        encoder = load_encoder(persisted)
        started = time.perf_counter()
        vectors = encode_corpus(encoder, corpus.iter_batches(ENCODE_CHUNK))
        seconds = time.perf_counter() - started
        queries = QueryEncoder.count(_copy(encoder.tokenizer.backend_tokenizer),
                                     (d.contents for d in corpus), encoder.special_ids)
        if persisted["lexical"] > 0:
            vectors = _add_lexical(vectors, queries, _texts(corpus), persisted)
        if persisted["query_weights"] == "learned":
            factors = read_query_weights(Path(resolve_sparse_model(persisted["model"])), encoder.vocabulary_checksum)
            queries = queries.with_options(factors)
        persisted.update(vocab_size=encoder.vocab_size, vocab_sha256=encoder.vocabulary_checksum,
                         encode_docs_per_s=round(len(vectors) / seconds, 2))
        _write_all(directory, vectors, queries, persisted)
        backend_class(persisted["backend"]).build(directory, vectors, persisted)
        return persisted

    def write_extended(self, directory: Path, docs: Sequence[Document]) -> dict[str, Any]:
        encoder = load_encoder(self.settings)
        if encoder.vocabulary_checksum != self.settings["vocab_sha256"]:
            raise VocabularyMismatchError(
                f"the model at {self.settings['model']!r} does not have the vocabulary {self.directory} was built "
                "with; rebuild the index (retriever index build --overwrite) to use it")
        added = encode_corpus(encoder, [list(docs[i:i + ENCODE_CHUNK]) for i in range(0, len(docs), ENCODE_CHUNK)])
        persisted = dict(self.settings)
        if persisted.get("lexical", 0) > 0:
            added = _add_lexical(added, self.queries, [d.contents for d in docs], persisted)
        vectors = self.vectors.concat(added)
        _write_all(directory, vectors, self.queries.extended(d.contents for d in docs), persisted)
        backend_class(persisted["backend"]).extend(self.directory, directory, vectors, added, persisted)
        return persisted

    @classmethod
    def shard_settings(cls, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        """With a lexical part, the whole corpus's reference length (only the tokenizer is loaded), as in a
        one-piece build."""
        checked = cls.check_settings(settings)
        if checked["lexical"] == 0 or "lexical_avgdl" in checked:
            return settings
        tokenizer = load_tokenizer(checked["model"])
        avgdl = mean_length(plain_tokenizer(tokenizer.backend_tokenizer), _texts(corpus),
                            sorted(set(tokenizer.all_special_ids)))
        return {**settings, "lexical_avgdl": avgdl}

    @classmethod
    def merge_shards(cls, directory: Path, shards: Sequence[Index], settings: dict[str, Any],
                     base: Index | None = None) -> dict[str, Any]:
        added = SparseVectors.stack([shard.vectors for shard in shards])
        df = sum(shard.queries.df for shard in shards)
        count = sum(shard.queries.doc_count for shard in shards)
        first = shards[0].queries
        if base is not None:
            vectors, persisted = base.vectors.concat(added), dict(base.settings)
            queries = QueryEncoder(base.queries.tokenizer, base.queries.df + df, base.queries.doc_count + count,
                                   base.queries.special_ids)
        else:
            vectors, queries = added, QueryEncoder(first.tokenizer, df, count, first.special_ids)
            persisted = dict(shards[0].settings)
            persisted["encode_docs_per_s"] = round(sum(s.settings["encode_docs_per_s"] for s in shards), 2)
        _write_all(directory, vectors, queries, persisted)
        if persisted["backend"] == "lucene":
            if base is not None:
                link_tree(base.directory / LUCENE_DIR, directory / LUCENE_DIR, exclude=("write.lock",))
            add_segments(directory / LUCENE_DIR, [shard.directory / LUCENE_DIR for shard in shards])
        else:
            backend_class(persisted["backend"]).build(directory, vectors, persisted)
        return persisted

    @property
    def vectors(self) -> SparseVectors:
        """The float document vectors, read on first use (by exact search, feedback or an extension)."""
        if self._vectors is None:
            self._vectors = SparseVectors.read(self.directory / VECTORS_FILE, self.queries.vocab_size)
        return self._vectors

    def _exact_backend(self) -> ExactBackend:
        if self._exact is None:
            self._exact = ExactBackend(self.vectors)
        return self._exact

    def encode_queries(self, queries: Sequence[str], min_weight: float | None = None,
                       max_terms: int | None = None) -> list[Query]:
        """``(term ids, weights)`` for each query: tokenizer and weight tables only, no model.

        ``min_weight`` / ``max_terms`` override the index's query-term pruning for this call.
        """
        encoder = self.queries
        if min_weight is not None or max_terms is not None:
            encoder = encoder.with_options(encoder.factors, encoder.min_weight if min_weight is None else min_weight,
                                           encoder.max_terms if max_terms is None else max_terms)
        return [encoder.encode_query(q) for q in queries]

    def search(self, queries: Sequence[str], k: int = 10, exact: bool = False, min_weight: float | None = None,
               max_terms: int | None = None, **knobs: Any) -> list[Ranking]:
        return self.search_in_rounds(self.encode_queries(queries, min_weight, max_terms), k, knobs,
                                     lambda prepared, n, rest: self.search_prepared(prepared, n, exact, **rest))

    def feedback_docs(self, knobs: dict[str, Any]) -> int:
        return Feedback.of(self.settings, knobs).docs

    def apply_feedback(self, prepared: Sequence[Query], first: Sequence[Ranking],
                       knobs: dict[str, Any]) -> list[Query]:
        """Each query expanded from the stored vectors of its first-round hits (Rocchio, no model)."""
        feedback = Feedback.of(self.settings, knobs)
        matrix, row_of = self._vector_rows()
        return [feedback.expand(query, matrix[[row_of[doc_id] for doc_id, _ in hits]], self.queries.idf)
                for query, hits in zip(prepared, first)]

    def _vector_rows(self) -> tuple[sp.csr_matrix, dict[str, int]]:
        """The float vectors as CSR rows and each document id's row, read on first use."""
        if self._rows is None:
            self._rows = (self.vectors.matrix(), {doc_id: i for i, doc_id in enumerate(self.vectors.ids)})
        return self._rows

    def prepare_queries(self, queries: Sequence[str]) -> list[Query]:
        return self.encode_queries(queries)

    def search_prepared(self, prepared: Sequence[Query], k: int = 10, exact: bool = False,
                        **knobs: Any) -> list[Ranking]:
        """One round of search with queries already encoded (by this index or, in a fan-out, by the merged
        one); feedback is applied by :meth:`search` or the fan-out around it."""
        backend = self._exact_backend() if exact else self._backend
        return backend.search(prepared, k, **knobs)

    def benchmark_extras(self, queries: Sequence[str], k: int = 10) -> dict[str, float]:
        """Figures ``retriever bench`` reports next to speed: recall@k of the backend against
        brute force over the float vectors, encoding throughput, non-zeros per document."""
        found, exact = self.search(queries, k), self.search(queries, k, exact=True)
        recall = [len({d for d, _ in f} & {d for d, _ in e}) / len(e) for f, e in zip(found, exact) if e]
        return {f"recall@{k} vs exact": round(sum(recall) / max(len(recall), 1), 4),
                "encode docs/s": self.settings.get("encode_docs_per_s"), "non-zeros/doc": self.settings.get("avg_nnz")}

    def close(self) -> None:
        self._backend.close()


def load_encoder(settings: dict[str, Any]) -> DocEncoder:
    """The document encoder the settings name (used at build and add time only)."""
    if settings.get("runtime", "torch") not in ("torch", BF16):
        from indexes.sparse.onnx import OnnxDocEncoder

        return OnnxDocEncoder.load_onnx(settings["model"], settings["runtime"], max_length=settings["max_length"],
                                        top_k=settings["top_k"], threshold=settings["threshold"])
    return DocEncoder.load(settings["model"], max_length=settings["max_length"], top_k=settings["top_k"],
                           threshold=settings["threshold"], bf16=settings.get("runtime") == BF16)


def encode_corpus(encoder: DocEncoder, batches, terms=None) -> SparseVectors:
    """Encode batches of documents (title + text) into one set of vectors (restricted to ``terms`` if given)."""
    parts = [encoder.encode_document([d.contents for d in batch], [d.doc_id for d in batch], terms=terms)
             for batch in batches]
    return SparseVectors.stack(parts)


def _texts(corpus: Corpus) -> list[str]:
    return [d.contents for d in corpus]


def _add_lexical(vectors: SparseVectors, queries: QueryEncoder, texts: Sequence[str],
                 settings: dict[str, Any]) -> SparseVectors:
    """The learned vectors plus ``lexical`` x the word-piece BM25 part of the same documents.

    The reference length is ``settings["lexical_avgdl"]``, set here from ``texts`` on a first build.
    """
    counts = count_pieces(queries.tokenizer, texts, queries.special_ids)
    avgdl = settings.setdefault("lexical_avgdl", counts.mean_length)
    return with_lexical(vectors, lexical_vectors(counts, vectors.ids, vectors.dim, avgdl), settings["lexical"])


def _write_all(directory: Path, vectors: SparseVectors, queries: QueryEncoder, settings: dict[str, Any]) -> None:
    vectors.write(directory / VECTORS_FILE)
    queries.write(directory)
    settings["avg_nnz"] = round(float(vectors.nnz_per_doc.mean()), 2) if len(vectors) else 0.0


def _copy(tokenizer: Tokenizer) -> Tokenizer:
    return Tokenizer.from_str(tokenizer.to_str())
