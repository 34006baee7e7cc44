"""Dev-set tracking during training: nDCG@10 and sparsity of the re-encoded corpus.

The score of an inference-free query reads only the document weights of its own
terms, so the corpus is re-encoded on the union of the dev queries' terms alone:
the dev ranking is exactly the one of a full index built with the same encoder
(``max_length``), at a fraction of the cost of the whole-vocabulary MLM head
(~10x less on NFCorpus). The average number of non-zeros per document is
estimated from a fixed uniform sample of the other vocabulary entries.

For a cheap pilot (a large encoder on a shared CPU), ``limit`` keeps a fixed random
sample of the dev queries and ``pool`` re-ranks only the union of a first stage's
(BM25's) top ``pool`` documents of those queries instead of the whole corpus: the
figures are then re-ranking figures on that pool, comparable between encoders
evaluated with the same protocol, not with full-corpus ones.

With ``lexical`` = b > 0 the evaluated vectors are the learned weights plus b x the
word-piece BM25 part of :mod:`indexes.sparse.lexical` (the corpus mean length as the
reference), i.e. what an index built with ``lexical=b`` scores.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
from tokenizers import Tokenizer

from retriever.core.metrics import aggregate, parse_measures
from indexes.sparse.backends import ExactBackend
from indexes.sparse.encoder import DocEncoder
from indexes.sparse.index import ENCODE_CHUNK, encode_corpus
from indexes.sparse.lexical import count_pieces, lexical_vectors
from indexes.sparse.queries import QueryEncoder
from indexes.sparse.vectors import SparseVectors
from retriever.core.corpus import Corpus

MEASURES = parse_measures(["nDCG@10", "R@100"])


@dataclass
class DevSet:
    """The corpus, its IDF query encoder, and the dev queries and qrels (if the dataset has that split).

    ``max_length`` is the document length the evaluation encodes with (the index's,
    whatever length training uses); ``sample`` vocabulary entries besides the query
    terms are encoded to estimate non-zeros per document.
    """

    corpus: Corpus
    query_encoder: QueryEncoder
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    max_length: int = 256
    sample: int = 4096
    rows: list[int] | None = None  # the corpus rows re-ranked (None: the whole corpus)
    lexical: sp.csr_matrix | None = None  # corpus rows x vocabulary: b x the word-piece BM25 part (None: b = 0)

    @property
    def available(self) -> bool:
        return bool(self.qrels)

    @classmethod
    def build(cls, encoder: DocEncoder, corpus: Corpus, judged: tuple[dict, dict] | None, max_length: int = 256,
              limit: int = 0, pool: int = 0, first_stage: Callable[[list[str], int], list] | None = None,
              lexical: float = 0.0) -> "DevSet":
        """The dev set of ``judged`` (queries, qrels; None: no dev set); with ``limit`` / ``pool`` (and
        ``first_stage``) the reduced pilot protocol; ``lexical`` > 0 adds that much word-piece BM25."""
        tokenizer = Tokenizer.from_str(encoder.tokenizer.backend_tokenizer.to_str())
        query_encoder = QueryEncoder.count(tokenizer, (d.contents for d in corpus), encoder.special_ids)
        part = None
        if lexical > 0:
            counts = count_pieces(query_encoder.tokenizer, [d.contents for d in corpus], encoder.special_ids)
            part = lexical * lexical_vectors(counts, corpus.ids, query_encoder.vocab_size, counts.mean_length).matrix()
        if judged is None:
            return cls(corpus, query_encoder, max_length=max_length, lexical=part)
        queries, qrels = judged
        texts = {qid: queries[qid].text for qid in qrels if qid in queries}
        if limit and limit < len(texts):
            texts = {qid: texts[qid] for qid in sorted(random.Random(0).sample(sorted(texts), limit))}
            qrels = {qid: qrels[qid] for qid in texts}
        rows = None
        if pool and first_stage is not None:
            found = {doc_id for ranking in first_stage(list(texts.values()), pool) for doc_id, _ in ranking}
            rows = sorted(corpus.row_of(doc_id) for doc_id in found)
        return cls(corpus, query_encoder, texts, qrels, max_length, rows=rows, lexical=part)

    def evaluate(self, encoder: DocEncoder, factors: np.ndarray | None = None) -> dict[str, Any]:
        """Re-encode the corpus on the dev query terms and score the dev queries exactly (brute force).

        ``factors``: a learned query-term factor table (None: IDF query weights).
        """
        started = time.perf_counter()
        query_encoder = self.query_encoder.with_options(factors)
        queries = [query_encoder.encode_query(t) for t in self.queries.values()]
        query_terms = np.unique(np.concatenate([terms for terms, _ in queries] + [np.zeros(0, np.int32)]))
        others = np.setdiff1d(np.arange(self.query_encoder.vocab_size), [*query_terms, *self.query_encoder.special_ids])
        sample = np.random.default_rng(0).choice(others, min(self.sample, len(others)), replace=False)
        terms = np.union1d(query_terms, sample).astype(np.int64)
        reader = DocEncoder(encoder.model, encoder.tokenizer, self.max_length, encoder.top_k, encoder.threshold)
        batches = self.corpus.iter_batches(ENCODE_CHUNK) if self.rows is None else [self.corpus.rows(self.rows)]
        vectors = encode_corpus(reader, batches, terms)
        if self.lexical is not None:
            own = self.lexical[[self.corpus.row_of(doc_id) for doc_id in vectors.ids]]
            vectors = SparseVectors.from_matrix(vectors.ids, vectors.matrix() + own)
        rankings = ExactBackend(vectors).search(queries, 100)
        metrics = aggregate(self.qrels, dict(zip(self.queries, rankings)), MEASURES)
        matrix = vectors.matrix().tocsc()
        rescale = len(others) / max(len(sample), 1)
        nnz = matrix[:, query_terms].getnnz(1) + matrix[:, np.sort(sample)].getnnz(1) * rescale
        return {**{k: round(v, 4) for k, v in metrics.items()}, "nnz": round(float(nnz.mean()), 1),
                "seconds": round(time.perf_counter() - started, 1)}
