"""Sparse document vectors in CSR layout: Arrow storage, quantization and brute-force scoring.

Row ``i`` of a :class:`SparseVectors` is document ``ids[i]``; its terms are
``terms[indptr[i]:indptr[i + 1]]`` (vocabulary ids, increasing) with the float
weights ``weights[indptr[i]:indptr[i + 1]]``. On disk it is one Arrow IPC file with
columns ``_id`` (string), ``terms`` (list<int32>) and ``weights`` (list<float32>);
Arrow's list layout *is* CSR, so reading it back copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from retriever.core.errors import IndexFormatError

SCHEMA = pa.schema([("_id", pa.string()), ("terms", pa.large_list(pa.int32())), ("weights", pa.large_list(pa.float32()))])


@dataclass
class SparseVectors:
    """Documents as rows of a sparse matrix over a vocabulary of ``dim`` terms."""

    ids: list[str]
    indptr: np.ndarray  # int64, len(ids) + 1
    terms: np.ndarray  # int32
    weights: np.ndarray  # float32
    dim: int

    @classmethod
    def from_rows(cls, ids: Sequence[str], rows: Sequence[tuple[np.ndarray, np.ndarray]], dim: int) -> "SparseVectors":
        """Build from one ``(terms, weights)`` pair per document (terms need not be sorted)."""
        lengths = np.array([len(t) for t, _ in rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        terms, weights = [], []
        for t, w in rows:
            order = np.argsort(t, kind="stable")
            terms.append(np.asarray(t, dtype=np.int32)[order])
            weights.append(np.asarray(w, dtype=np.float32)[order])
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
        return cls(list(ids), indptr, cat(terms, np.int32), cat(weights, np.float32), dim)

    @classmethod
    def from_matrix(cls, ids: Sequence[str], matrix: sp.spmatrix) -> "SparseVectors":
        """Build from a SciPy sparse matrix whose rows are ``ids`` (its width is the vocabulary size)."""
        csr = sp.csr_matrix(matrix, copy=True)
        csr.sort_indices()
        return cls(list(ids), csr.indptr.astype(np.int64), csr.indices.astype(np.int32), csr.data.astype(np.float32),
                   csr.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(terms, weights)`` of row ``i``."""
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.terms[lo:hi], self.weights[lo:hi]

    @property
    def nnz_per_doc(self) -> np.ndarray:
        return np.diff(self.indptr)

    def matrix(self) -> sp.csr_matrix:
        """A ``len(self) x dim`` SciPy CSR matrix of the float weights."""
        return sp.csr_matrix((self.weights, self.terms, self.indptr), shape=(len(self), self.dim))

    def concat(self, other: "SparseVectors") -> "SparseVectors":
        """These rows followed by ``other``'s (same vocabulary)."""
        return SparseVectors.stack([self, other])

    @classmethod
    def stack(cls, parts: Sequence["SparseVectors"]) -> "SparseVectors":
        """The rows of ``parts`` one after the other (same vocabulary), in one copy."""
        dims = {part.dim for part in parts}
        if len(dims) != 1:
            raise IndexFormatError(f"cannot stack vectors over different vocabularies ({sorted(dims)} terms)")
        offsets = np.cumsum([0] + [int(part.indptr[-1]) for part in parts[:-1]])
        indptr = np.concatenate([np.zeros(1, np.int64)] + [part.indptr[1:] + offset
                                                           for part, offset in zip(parts, offsets)])
        return cls([doc_id for part in parts for doc_id in part.ids], indptr.astype(np.int64),
                   np.concatenate([part.terms for part in parts]), np.concatenate([part.weights for part in parts]),
                   dims.pop())

    def write(self, path: Path) -> None:
        """Write the vectors as an Arrow IPC file."""
        offsets = pa.array(self.indptr, pa.int64())
        table = pa.table({"_id": pa.array(self.ids, pa.string()),
                          "terms": pa.LargeListArray.from_arrays(offsets, pa.array(self.terms, pa.int32())),
                          "weights": pa.LargeListArray.from_arrays(offsets, pa.array(self.weights, pa.float32()))},
                         schema=SCHEMA)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(table)

    @classmethod
    def read(cls, path: Path, dim: int) -> "SparseVectors":
        """Read vectors written by :meth:`write`."""
        try:
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all().combine_chunks()
        except (OSError, pa.ArrowInvalid) as e:
            raise IndexFormatError(f"{path}: cannot read sparse vectors ({e})") from None
        if table.schema != SCHEMA:
            raise IndexFormatError(f"{path}: unexpected columns {table.schema.names}")
        terms_col, weights_col = table.column("terms").chunk(0), table.column("weights").chunk(0)
        indptr = terms_col.offsets.to_numpy().astype(np.int64)
        return cls(table.column("_id").to_pylist(), indptr - indptr[0],
                   terms_col.flatten().to_numpy().astype(np.int32), weights_col.flatten().to_numpy(), dim)


def quantize(weights: np.ndarray, scale: float) -> np.ndarray:
    """Integer impacts ``round(weights * scale)`` (int32); a weight below ``0.5 / scale`` becomes 0."""
    return np.rint(np.asarray(weights, dtype=np.float64) * scale).astype(np.int32)


def top_k_dot(matrix: sp.csr_matrix, query_terms: np.ndarray, query_weights: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` rows of ``matrix`` by dot product with one sparse query: (rows, scores)."""
    if len(query_terms) == 0 or matrix.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = np.asarray(matrix[:, query_terms] @ query_weights.astype(np.float64)).ravel()
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((top, -scores[top]))]
    keep = scores[top] > 0
    return top[keep], scores[top][keep]
