"""The lexical part of a sparse document vector: BM25's term saturation over word pieces.

With the index setting ``lexical=beta`` (> 0) each document's vector is its learned weights
plus ``beta`` times, for every word piece the document contains (whole text, no truncation),

    tf (K1 + 1) / (tf + K1 (1 - B + B dl / avgdl))

(``tf``: count in the document, ``dl``: its length in word pieces, ``avgdl``: the reference
length). Queries are unchanged (IDF or learned factors over the same word pieces), so a score
is the learned score plus ``beta`` x BM25 over word pieces: one index, no model at query time.
``avgdl`` is the corpus mean at the first build, persisted as ``lexical_avgdl`` and reused by
every later add and shard, so a document's weights never depend on when it was indexed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

from indexes.sparse.vectors import SparseVectors

K1, B = 0.9, 0.4  # Anserini's BM25 defaults
_CHUNK = 512


@dataclass
class PieceCounts:
    """Each document's distinct word pieces with their counts, and its length in word pieces."""

    rows: list[tuple[np.ndarray, np.ndarray]]
    lengths: np.ndarray

    @property
    def mean_length(self) -> float:
        return _mean(self.lengths)


def count_pieces(tokenizer: Tokenizer, texts: Sequence[str], special_ids: Sequence[int]) -> PieceCounts:
    """Word-piece counts of every text (whole text, special tokens left out), in one tokenization pass."""
    rows, lengths = [], []
    for pieces in _token_ids(tokenizer, texts, special_ids):
        rows.append(np.unique(pieces, return_counts=True))
        lengths.append(len(pieces))
    return PieceCounts(rows, np.asarray(lengths, dtype=np.int64))


def mean_length(tokenizer: Tokenizer, texts: Sequence[str], special_ids: Sequence[int]) -> float:
    """Average document length in (non-special) word pieces, without keeping the counts."""
    return _mean(np.fromiter((len(p) for p in _token_ids(tokenizer, texts, special_ids)), dtype=np.int64))


def lexical_vectors(counts: PieceCounts, ids: Sequence[str], dim: int, avgdl: float) -> SparseVectors:
    """BM25 term saturation of every word piece of each counted document (rows in the order of ``ids``)."""
    rows = []
    for (terms, tf), length in zip(counts.rows, counts.lengths):
        norm = K1 * (1 - B + B * length / max(avgdl, 1e-9))
        rows.append((terms, tf * (K1 + 1) / (tf + norm)))
    return SparseVectors.from_rows(ids, rows, dim)


def with_lexical(learned: SparseVectors, lexical: SparseVectors, beta: float) -> SparseVectors:
    """``learned + beta * lexical``, row by row (same documents, same vocabulary)."""
    return SparseVectors.from_matrix(learned.ids, learned.matrix() + beta * lexical.matrix())


def _token_ids(tokenizer: Tokenizer, texts: Sequence[str], special_ids: Sequence[int]) -> Iterable[np.ndarray]:
    special = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=bool)
    special[list(special_ids)] = True
    for start in range(0, len(texts), _CHUNK):
        for encoding in tokenizer.encode_batch(list(texts[start:start + _CHUNK]), add_special_tokens=False):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            yield ids[~special[ids]] if len(ids) else ids


def _mean(lengths: np.ndarray) -> float:
    return float(lengths.mean()) if len(lengths) else 1.0
