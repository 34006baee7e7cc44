"""Training code (sparse document encoder, cross-encoder reranker, RL policy).

Serving code (indexes, engine, rerankers, the agent) never imports this package.
"""
