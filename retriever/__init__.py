"""retriever: learned sparse, dense and generative indexes over one corpus, fused,
reranked and composed by an agentic multi-hop loop; evaluated on BEIR."""

__version__ = "0.1.0"
