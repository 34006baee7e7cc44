"""The generative (DSI-style) index: semantic ids, an id decoder, trie-constrained beam search, DSI++ adds."""

from indexes.generative.index import GenerativeIndex

__all__ = ["GenerativeIndex"]
