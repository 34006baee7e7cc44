"""Settings of the generative index: typed, validated, with defaults, persisted in the manifest.

Spec values arrive as strings (``generative(ids=atomic,epochs=20)``) and manifests
hold typed JSON values; :data:`SCHEMA` parses both. Settings whose name starts with
``add_``, plus ``replay`` and ``sam_rho``, govern continual indexing (``engine.add``)
and may be changed on an existing index with :meth:`GenerativeIndex.with_continual`.
"""

from __future__ import annotations

from typing import Any, Mapping

from retriever.core.models import DEFAULT_DENSE_MODEL
from retriever.core.settings import Schema, Setting, above, at_least, one_of, within

CONTINUAL = ("add_epochs", "add_lr", "replay", "sam_rho")
ID_KINDS = ("semantic", "atomic")
KEY_KINDS = ("tree", "none")


def _query_source(value: str) -> str | None:
    name, _, split = value.rpartition(":")
    if value and (not name or not split):
        return "must be 'dataset:split' (e.g. nfcorpus:train) or empty"
    if value and split == "test":
        return "must not name a test split (refusing to train on a test split)"
    return None


def _heads_divide_width(settings: Mapping[str, Any]) -> tuple[str, str] | None:
    if settings["d_model"] % settings["heads"]:
        return "heads", f"must divide d_model ({settings['d_model']}), got {settings['heads']}"
    return None


SCHEMA = Schema("generative", (
    Setting("ids", str, "semantic", one_of(*ID_KINDS),
            "document ids: 'semantic' (hierarchical k-means) or 'atomic' (one token each)"),
    Setting("branching", int, 10, at_least(2), "clusters per tree node (semantic ids)"),
    Setting("leaf_size", int, 100, at_least(1), "most documents under one leaf (semantic ids)"),
    Setting("encoder", str, DEFAULT_DENSE_MODEL, help="the frozen sentence-transformers query/document encoder"),
    Setting("max_seq_length", int, 256, at_least(1), "encoder input length in tokens"),
    Setting("d_model", int, 256, at_least(1), "decoder width"),
    Setting("layers", int, 2, at_least(1), "decoder layers"),
    Setting("heads", int, 4, at_least(1), "decoder attention heads"),
    Setting("ff_dim", int, 1024, at_least(1), "decoder feed-forward width"),
    Setting("memory_slots", int, 4, at_least(1), "memory vectors the query vector is mapped to"),
    Setting("dropout", float, 0.1, within(0, 1, high_open=True), "decoder dropout"),
    Setting("input_dropout", float, 0.1, within(0, 1, high_open=True), "dropout on the query vector"),
    Setting("keys", str, "tree", one_of(*KEY_KINDS),
            "edge keys: 'tree' (start from the id tree's centroids and document vectors) or 'none'"),
    Setting("key_scale", float, 10.0, at_least(0), "initial scale of the query-key scores"),
    Setting("key_lr", float, 0.1, at_least(0), "learning rate of the edge keys, relative to lr"),
    Setting("spans", int, 3, at_least(0), "random spans per document"),
    Setting("span_words", int, 32, at_least(1), "words per span and in the leading passage"),
    Setting("pseudo_queries", int, 5, at_least(0), "keyword pseudo-queries per document"),
    Setting("queries", str, "", _query_source, "real training queries 'dataset:split' (e.g. nfcorpus:train); '' for none"),
    Setting("epochs", int, 8, at_least(0), "training epochs (0: the untrained model, edge keys only)"),
    Setting("batch_size", int, 256, at_least(1), "examples per step"),
    Setting("lr", float, 1e-3, above(0), "peak learning rate"),
    Setting("seed", int, 0, at_least(0), "seed for ids, examples, initialisation and shuffling"),
    Setting("add_epochs", int, 10, at_least(0), "training epochs when documents are added"),
    Setting("add_lr", float, 5e-4, above(0), "peak learning rate when documents are added"),
    Setting("replay", float, 1.0, at_least(0), "replayed old pseudo-queries per new example when documents are added"),
    Setting("sam_rho", float, 0.0, at_least(0), "SAM radius when documents are added (0: plain AdamW)"),
), rules=(_heads_divide_width,))
