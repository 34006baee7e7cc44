"""Rerankers: take a query's candidate hits and return the ones to pass on, in order."""

from retriever.rerank.base import RERANKERS, RerankContext, Reranker, TopK, load_reranker

__all__ = ["RERANKERS", "RerankContext", "Reranker", "TopK", "load_reranker"]
