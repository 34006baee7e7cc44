"""``retriever train reranker``: mine groups from (dataset, split, engine) sources, then fine-tune.

A source is ``DATASET:SPLIT:ENGINE_DIR``, e.g. ``nfcorpus:train:work/nfcorpus`` or
``hotpotqa-distractor:dev:work/hotpotqa``; the engine must index the dataset's corpus.

Example:
    >>> train_cross_reranker(["nfcorpus:train:work/nfcorpus", "hotpotqa-distractor:dev:work/hotpotqa"],
    ...                      "work/models/cross-minilm", CrossTrainSettings(max_steps=700))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from retriever.core.errors import InputError
from retriever.core.settings import from_strings
from retriever.train.rerank.cross_data import mine_groups
from retriever.train.rerank.cross_train import SCHEMA as CROSS_SCHEMA, CrossTrainSettings, train_cross_encoder

DEFAULT_SOURCES = ("nfcorpus:train:work/nfcorpus", "hotpotqa-distractor:dev:work/hotpotqa")
DEFAULT_RL_SOURCE = "hotpotqa-distractor:dev:work/hotpotqa"


def train_reranker(out: str | Path, rl: bool = False, sources: Sequence[str] = (), cross: str | Path | None = None,
                   overrides: Mapping[str, str] | None = None, data_dir: str | None = None,
                   overwrite: bool = False, llm: str | None = None, lm_cache: str | Path | None = None,
                   llm_settings: Mapping[str, Any] | None = None) -> dict:
    """What ``retriever train reranker [--rl]`` runs: the cross-encoder, or the RL policy over it.

    Args:
        out: the directory to write (a cross-encoder, or a policy).
        rl: train the policy (:func:`retriever.train.rerank.rl_train.train_policy`) instead of the cross-encoder.
        sources: ``DATASET:SPLIT:ENGINE_DIR`` training sources (defaults: :data:`DEFAULT_SOURCES`,
            or :data:`DEFAULT_RL_SOURCE` with ``rl``).
        cross: with ``rl``: the cross-encoder directory.
        overrides: ``KEY=VALUE`` settings (:class:`CrossTrainSettings`, or ``RLSettings`` with ``rl``).
        data_dir: a data root to look in first.
        overwrite: replace ``out`` if it exists.
        llm: with ``rl``: the reader of the reader-F1 reward (with ``reader_f1 > 0`` in ``overrides``).
        lm_cache: with ``llm``: the LM-call cache file (default ``<out>.train/lm-cache.jsonl``).
        llm_settings: with ``llm``: backend settings, e.g. ``{"threads": 1}``.

    Raises:
        InputError: ``rl`` without ``cross`` or with several sources; ``llm`` without ``rl``.
        SettingError: an unknown setting or a bad value (checked before any work starts).
    """
    overrides = overrides or {}
    if llm is not None and not rl:
        raise InputError("--llm (the reader of the reader-F1 reward) only applies with --rl")
    if not rl:
        return train_cross_reranker(sources or DEFAULT_SOURCES, out,
                                    from_strings(CrossTrainSettings, CROSS_SCHEMA, overrides), data_dir, overwrite)
    from retriever.train.rerank.rl_train import SCHEMA as RL_SCHEMA, RLSettings, train_policy

    if cross is None or len(sources) > 1:
        raise InputError("--rl needs --cross DIR (the cross-encoder) and at most one --source")
    dataset, split, engine_dir = parse_source(sources[0] if sources else DEFAULT_RL_SOURCE)
    settings = from_strings(RLSettings, RL_SCHEMA, overrides)
    return train_policy(engine_dir, dataset, split, cross, out, settings, data_dir, overwrite, llm, lm_cache,
                        dict(llm_settings or {}))


def parse_source(text: str) -> tuple[str, str, Path]:
    """``DATASET:SPLIT:ENGINE_DIR`` -> (dataset, split, engine directory)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise InputError(f"training source {text!r}: expected DATASET:SPLIT:ENGINE_DIR, "
                         "e.g. nfcorpus:train:work/nfcorpus")
    return parts[0], parts[1], Path(parts[2])


def train_cross_reranker(sources: Sequence[str], out: str | Path, settings: CrossTrainSettings = CrossTrainSettings(),
                         data_dir: str | None = None, overwrite: bool = False) -> dict:
    """Mine training groups from every source and train a cross-encoder into ``out``.

    Args:
        sources: ``DATASET:SPLIT:ENGINE_DIR`` strings (never a test split).
        out: the model directory to write.
        settings: data and optimisation settings.
        data_dir: a data root to look in first.
        overwrite: replace ``out`` if it exists.

    Returns:
        The training summary (also in ``<out>/training.json``).
    """
    from retriever.core.datasets import load_dataset
    from retriever.api import Engine

    groups = []
    for dataset_name, split, engine_dir in map(parse_source, sources):
        with Engine.open(engine_dir) as engine:
            groups += mine_groups(engine, load_dataset(dataset_name, data_dir=data_dir), split,
                                  negatives=settings.negatives, positives=settings.positives, depth=settings.depth,
                                  using=settings.using, seed=settings.seed)
    summary = train_cross_encoder(groups, out, settings, overwrite=overwrite)
    return {key: value for key, value in summary.items() if key != "history"}
