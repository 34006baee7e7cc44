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

from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

from indexes.sparse.vectors import SparseVectors

K1, B = 0.9, 0.4  # Anserini's BM25 defaults
_CHUNK = 512


def _token_ids(tokenizer: Tokenizer, texts: Sequence[str], special: np.ndarray) -> Iterable[np.ndarray]:
    for start in range(0, len(texts), _CHUNK):
        for encoding in tokenizer.encode_batch(list(texts[start:start + _CHUNK]), add_special_tokens=False):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            yield ids[~special[ids]] if len(ids) else ids


def mean_length(tokenizer: Tokenizer, texts: Sequence[str], special_ids: Sequence[int]) -> float:
    """Average document length in (non-special) word pieces."""
    special = _special_mask(tokenizer, special_ids)
    lengths = [len(ids) for ids in _token_ids(tokenizer, texts, special)]
    return float(np.mean(lengths)) if lengths else 1.0


def lexical_vectors(tokenizer: Tokenizer, ids: Sequence[str], texts: Sequence[str], special_ids: Sequence[int],
                    avgdl: float) -> SparseVectors:
    """BM25 term saturation of every word piece of each text (rows in the order of ``ids``)."""
    special = _special_mask(tokenizer, special_ids)
    rows = []
    for pieces in _token_ids(tokenizer, texts, special):
        terms, tf = np.unique(pieces, return_counts=True)
        norm = K1 * (1 - B + B * len(pieces) / max(avgdl, 1e-9))
        rows.append((terms, tf * (K1 + 1) / (tf + norm)))
    return SparseVectors.from_rows(ids, rows, tokenizer.get_vocab_size(with_added_tokens=True))


def with_lexical(learned: SparseVectors, lexical: SparseVectors, beta: float) -> SparseVectors:
    """``learned + beta * lexical``, row by row (same documents, same vocabulary)."""
    summed = (learned.matrix() + beta * lexical.matrix()).tocsr()
    summed.sort_indices()
    return SparseVectors(list(learned.ids), summed.indptr.astype(np.int64), summed.indices.astype(np.int32),
                         summed.data.astype(np.float32), learned.dim)


def _special_mask(tokenizer: Tokenizer, special_ids: Sequence[int]) -> np.ndarray:
    mask = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=bool)
    mask[list(special_ids)] = True
    return mask
