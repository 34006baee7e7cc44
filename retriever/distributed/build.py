"""Sharded builds: the corpus split into shards, each index kind built per shard as Ray tasks, then merged.

Every entry point is one writer transaction (:func:`retriever.engine.writer.transaction`), so a
sharded build is exactly as crash-safe as a single-process one: the shards are written under a
temporary directory of the engine (removed by the transaction on failure, or by the next
writer after a crash), merged into the transaction's new index directory, and nothing is
visible until ``engine.json`` is replaced.

How each kind combines is declared by the kind (:attr:`indexes.base.Index.combine`): BM25 and
Lucene impact shards are merged with Lucene ``addIndexes`` (equal to a single-process build),
FAISS shards hold exact vectors that are added to one index (Flat equal to single-process;
IVF/PQ trained once on a sample), sparse document frequencies are summed; a kind that cannot
be merged (the generative index) is built whole by one worker.

Example:
    >>> build("work/nf", "nfcorpus/corpus.jsonl", ["bm25", "dense"], workers=2)
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

from indexes.base import Index, build_index, build_shard, index_class, merge_index, open_index, parse_index_spec
from retriever.core.corpus import Corpus
from retriever.core.progress import progress
from retriever.core.storage import TMP_PREFIX
from retriever.distributed.cluster import Cluster, connect, ray_module
from retriever.engine import writer
from retriever.engine.writer import Documents, IndexBuilder, Transaction, parse_specs, read_documents, transaction


def shard_ranges(start: int, stop: int, shards: int, block: int = 1) -> list[tuple[int, int]]:
    """Split rows ``start..stop-1`` into at most ``shards`` contiguous ranges of whole ``block``s.

    Boundaries fall on ``start + j * block`` so that each block of documents is encoded in the
    same batches as in a single-process build; empty ranges are dropped.
    """
    blocks = -(-(stop - start) // block)
    per_shard = -(-blocks // max(shards, 1))
    edges = [min(start + i * per_shard * block, stop) for i in range(shards + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def build(path: str | Path, documents: Documents | Corpus, indexes: Sequence[str], workers: int,
          address: str | None = None, overwrite: bool = False) -> None:
    """Build a new engine with each index sharded over ``workers`` Ray tasks (one transaction)."""
    parse_specs(indexes)  # settings are checked before Ray starts
    writer.build(path, documents, indexes, overwrite, _builder(connect(workers, address)))


def build_indexes(path: str | Path, indexes: Sequence[str], workers: int, address: str | None = None,
                  overwrite: bool = False) -> None:
    """Build more indexes over an engine's corpus, sharded (one transaction)."""
    parse_specs(indexes)
    writer.build_indexes(path, indexes, overwrite, _builder(connect(workers, address)))


def _builder(cluster: Cluster) -> IndexBuilder:
    """Builds one index of a transaction sharded over ``cluster``."""
    return lambda tx, name, kind, settings, corpus: _build(tx, cluster, name, kind, settings, corpus)


def add(path: str | Path, documents: Documents, workers: int, address: str | None = None) -> int:
    """Append documents to the corpus and every index, the new documents sharded (one transaction).

    Returns:
        The number of documents added.
    """
    located = list(read_documents(documents))
    cluster = connect(workers, address)
    with transaction(Path(path)) as tx:
        old = Corpus.open(tx.corpus_dir)
        old_count = len(old)
        corpus = tx.extend_corpus(old, located)
        for name, directory in progress(list(tx.previous["indexes"].items()), desc="adding to indexes", unit="index"):
            base = open_index(tx.path / directory)
            _, _, settings = parse_index_spec(tx.previous["specs"].get(name, base.kind))
            try:
                tx.put_index(name, _build(tx, cluster, name, base.kind, settings, corpus, base, old_count))
            finally:
                base.close()
    return len(located)


def _build(tx: Transaction, cluster: Cluster, name: str, kind: str, settings: dict[str, Any], corpus: Corpus,
           base: Index | None = None, start: int = 0) -> Index:
    """One index of the transaction (its scratch space is a temporary directory of the engine)."""
    return build_sharded(cluster, kind, settings, corpus, tx.directory(name), base, start)


def build_sharded(cluster: Cluster, kind: str, settings: dict[str, Any], corpus: Corpus, target: Path,
                  base: Index | None = None, start: int = 0) -> Index:
    """Build (or, with ``base``, extend by the rows from ``start``) one index into ``target`` on the cluster.

    A kind with ``combine="merge"`` is built as one shard per worker (Ray tasks) and merged on
    the driver; any other kind is built whole by one Ray task. Shards are written next to
    ``target`` under a temporary name and removed whatever happens.
    """
    ray = ray_module()
    cls = index_class(kind)
    options = cluster.resources(cls.uses_accelerator)
    if cls.combine != "merge":
        if base is None:
            ray.get(ray.remote(_whole).options(**options).remote(kind, str(corpus.directory), str(target), settings))
        else:
            ray.get(ray.remote(_extended).options(**options).remote(str(base.directory), str(corpus.directory),
                                                                    start, str(target)))
        return open_index(target)
    if base is None:
        settings = cls.shard_settings(corpus, settings)
    else:
        settings = {**settings, **{k: base.settings[k] for k in cls.pinned_settings if k in base.settings}}
    scratch = target.parent / f"{TMP_PREFIX}{target.name}-shards-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    try:
        ranges = shard_ranges(start, len(corpus), cluster.workers, cls.shard_block)
        dirs = [scratch / f"{i:05d}" for i in range(len(ranges))]
        task = ray.remote(_shard).options(**options)
        ray.get([task.remote(kind, str(corpus.directory), a, b, str(d), settings) for (a, b), d in zip(ranges, dirs)])
        return merge_index(kind, dirs, corpus, target, settings, base)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _shard(kind: str, corpus_dir: str, start: int, stop: int, directory: str, settings: dict[str, Any]) -> None:
    """Ray task: build the shard of rows ``start..stop-1``."""
    build_shard(kind, Corpus.open(Path(corpus_dir)).view(start, stop), Path(directory), settings)


def _whole(kind: str, corpus_dir: str, directory: str, settings: dict[str, Any]) -> None:
    """Ray task: build a whole index (a kind that is not merged from shards)."""
    build_index(kind, Corpus.open(Path(corpus_dir)), Path(directory), settings).close()


def _extended(base_dir: str, corpus_dir: str, start: int, directory: str) -> None:
    """Ray task: extend a whole index with the corpus rows from ``start`` on."""
    from indexes.base import extend_index

    corpus = Corpus.open(Path(corpus_dir))
    base = open_index(Path(base_dir))
    try:
        docs = [doc for batch in corpus.iter_batches(start=start) for doc in batch]
        extend_index(base, docs, corpus, Path(directory)).close()
    finally:
        base.close()
