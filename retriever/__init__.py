"""retriever: learned sparse, dense and generative indexes over one corpus, fused,
reranked and composed by an agentic multi-hop loop; evaluated on BEIR.

Example:
    >>> from retriever import Engine
    >>> engine = Engine.open("work/nfcorpus")
    >>> engine.search("statins and breast cancer", k=5, using="rrf(bm25,dense)")
"""

from retriever.core import __version__

__all__ = ["Engine", "Hit", "Corpus", "Document"]


def __getattr__(name: str):
    """Import the public classes on first use, so ``import retriever`` stays cheap."""
    if name in ("Engine", "Hit"):
        from retriever import api

        return getattr(api, name)
    if name in ("Corpus", "Document"):
        from retriever.core import corpus

        return getattr(corpus, name)
    raise AttributeError(f"module 'retriever' has no attribute {name!r}")
