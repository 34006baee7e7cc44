"""Settings of the generative index: typed, validated, with defaults, persisted in the manifest.

Spec values arrive as strings (``generative(ids=atomic,epochs=20)``) and manifests
hold typed JSON values; :func:`parse_settings` accepts both. Settings whose name
starts with ``add_``, plus ``replay`` and ``sam_rho``, govern continual indexing
(``engine.add``) and may be changed on an existing index with
:meth:`GenerativeIndex.with_continual`.
"""

from __future__ import annotations

from typing import Any, Mapping

from retriever.core.errors import SpecError
from retriever.core.models import DEFAULT_DENSE_MODEL

# name -> (type, default, meaning)
SETTINGS: dict[str, tuple[type, Any, str]] = {
    "ids": (str, "semantic", "document ids: 'semantic' (hierarchical k-means) or 'atomic' (one token each)"),
    "branching": (int, 10, "clusters per tree node (semantic ids)"),
    "leaf_size": (int, 100, "most documents under one leaf (semantic ids)"),
    "encoder": (str, DEFAULT_DENSE_MODEL, "the frozen sentence-transformers query/document encoder"),
    "max_seq_length": (int, 256, "encoder input length in tokens"),
    "d_model": (int, 256, "decoder width"),
    "layers": (int, 2, "decoder layers"),
    "heads": (int, 4, "decoder attention heads"),
    "ff_dim": (int, 1024, "decoder feed-forward width"),
    "memory_slots": (int, 4, "memory vectors the query vector is mapped to"),
    "dropout": (float, 0.1, "decoder dropout"),
    "input_dropout": (float, 0.1, "dropout on the query vector"),
    "keys": (str, "tree", "edge keys: 'tree' (start from the id tree's centroids and document vectors) or 'none'"),
    "key_scale": (float, 10.0, "initial scale of the query-key scores"),
    "key_lr": (float, 0.1, "learning rate of the edge keys, relative to lr"),
    "spans": (int, 3, "random spans per document"),
    "span_words": (int, 32, "words per span and in the leading passage"),
    "pseudo_queries": (int, 5, "keyword pseudo-queries per document"),
    "queries": (str, "", "real training queries 'dataset:split' (e.g. nfcorpus:train); '' for none"),
    "epochs": (int, 8, "training epochs (0: the untrained model, edge keys only)"),
    "batch_size": (int, 256, "examples per step"),
    "lr": (float, 1e-3, "peak learning rate"),
    "seed": (int, 0, "seed for ids, examples, initialisation and shuffling"),
    "add_epochs": (int, 10, "training epochs when documents are added"),
    "add_lr": (float, 5e-4, "peak learning rate when documents are added"),
    "replay": (float, 1.0, "replayed old pseudo-queries per new example when documents are added"),
    "sam_rho": (float, 0.0, "SAM radius when documents are added (0: plain AdamW)"),
}
CONTINUAL = ("add_epochs", "add_lr", "replay", "sam_rho")
ID_KINDS = ("semantic", "atomic")
KEY_KINDS = ("tree", "none")
_POSITIVE = ("branching", "leaf_size", "max_seq_length", "d_model", "layers", "heads", "ff_dim", "memory_slots",
             "span_words", "batch_size", "lr", "add_lr")


def parse_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """All settings, typed and checked, with defaults for those not given.

    Raises:
        SpecError: an unknown name, a value of the wrong type, or one out of range.
    """
    unknown = set(given) - set(SETTINGS)
    if unknown:
        raise SpecError(f"unknown generative setting(s): {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(SETTINGS)}")
    settings = {}
    for name, (kind, default, _) in SETTINGS.items():
        value = given.get(name, default)
        try:
            settings[name] = kind(value) if kind is not int else int(str(value))
        except ValueError:
            raise SpecError(f"generative setting {name}={value!r} is not a {kind.__name__}") from None
    bad = [n for n in _POSITIVE if settings[n] <= 0]
    bad += [n for n in ("spans", "pseudo_queries", "epochs", "add_epochs", "replay", "sam_rho", "seed", "key_scale",
                        "key_lr") if settings[n] < 0]
    bad += [n for n in ("dropout", "input_dropout") if not 0 <= settings[n] < 1]
    if settings["branching"] < 2:
        bad.append("branching")
    if settings["ids"] not in ID_KINDS:
        raise SpecError(f"generative setting ids={settings['ids']!r}: choose one of {', '.join(ID_KINDS)}")
    if settings["keys"] not in KEY_KINDS:
        raise SpecError(f"generative setting keys={settings['keys']!r}: choose one of {', '.join(KEY_KINDS)}")
    if settings["d_model"] % settings["heads"]:
        bad.append("heads (must divide d_model)")
    if bad:
        raise SpecError(f"generative setting(s) out of range: " + ", ".join(f"{n}={settings.get(n.split()[0])!r}"
                                                                            for n in bad))
    return settings
