"""Training the rerankers: the cross-encoder and the RL policy."""
