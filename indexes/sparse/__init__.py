"""Inference-free learned sparse retrieval: a masked-LM document encoder, IDF-weighted queries,
a Lucene impact index (exact) or Seismic (approximate). Training lives in retriever.train.sparse."""

from indexes.sparse.index import SparseIndex

__all__ = ["SparseIndex"]
