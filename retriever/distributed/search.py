"""Fan-out search: shard-searcher actors, each query prepared once, sent to every shard, top-k merged.

A sharded build keeps each merged index's shards (``<index>/shards/NNNNN``). Searcher ``i`` is a
Ray actor that holds shard ``i`` of every index (opened on first use). A query is prepared once
by the merged index on the driver (:meth:`indexes.base.Index.prepare_queries`: the dense query
embedding, or the sparse query's terms weighted by the *global* IDF table) and every shard
scores it; the per-shard top-k lists are merged by score (ties by document id, as Anserini
breaks them). Dense and impact-sparse scores do not depend on the shard, so the merged
ranking equals the single index's.

BM25 scores depend on collection statistics (document frequencies, average length). By
default a BM25 index is therefore searched whole (the merged Lucene index, opened by one
searcher per query batch, round-robin over the searchers): exact. With
``local_statistics=True`` it is fanned out over its shards, each scoring with its own
statistics, which changes the ranking slightly (measured in the README's SCALING section).
Fusion and reranking run on the driver on top of the merged rankings, as in :class:`Engine`.

Example:
    >>> engine = DistributedEngine("work/nf-sharded", workers=2)
    >>> engine.search("statins and breast cancer", using="rrf(bm25,dense)", k=5)
"""

from __future__ import annotations

import heapq
import itertools
import os
from pathlib import Path
from typing import Any, Sequence

from indexes.base import Index, open_index
from retriever.api import Engine
from retriever.core.errors import IndexFormatError
from retriever.core.types import Ranking
from retriever.distributed.cluster import connect, ray_module
from retriever.engine.reader import Reader
from retriever.engine.state import read_state


class ShardSearcher:
    """Ray actor: shard ``i`` of each index (and, for whole-index search, merged indexes), opened lazily."""

    def __init__(self, directories: dict[str, str]):
        self._directories = directories
        self._open: dict[str, Index] = {}

    def search(self, name: str, prepared: Any, k: int, knobs: dict[str, Any]) -> list[Ranking]:
        if name not in self._open:
            self._open[name] = open_index(Path(self._directories[name]))
        return self._open[name].search_prepared(prepared, k, **knobs)

    def close(self) -> None:
        for index in self._open.values():
            index.close()
        self._open.clear()


def merge_rankings(runs: Sequence[Ranking], k: int) -> Ranking:
    """The top ``k`` of several shards' rankings: by score, ties by document id."""
    return heapq.nsmallest(k, (hit for run in runs for hit in run), key=lambda hit: (-hit[1], hit[0]))


class FanoutIndex:
    """One index of a sharded engine, searched through the searcher actors (quacks like an Index)."""

    def __init__(self, name: str, merged: Index, searchers: list, fan_out: bool, turn: "itertools.count"):
        self.name, self.merged, self.fan_out = name, merged, fan_out
        self._searchers, self._turn = searchers, turn

    @property
    def kind(self) -> str:
        return self.merged.kind

    @property
    def manifest(self) -> dict:
        return self.merged.manifest

    def search(self, queries: Sequence[str], k: int = 10, **knobs: Any) -> list[Ranking]:
        """One round over the shards, or two when the index feeds its first hits back into the queries
        (the expansion runs here, on the merged index, so it sees the same hits as a single index)."""
        return self.merged.search_in_rounds(self.merged.prepare_queries(list(queries)), k, knobs, self._round)

    def _round(self, prepared: Any, k: int, knobs: dict[str, Any]) -> list[Ranking]:
        ray = ray_module()
        shared = ray.put(prepared)
        if not self.fan_out:
            searcher = self._searchers[next(self._turn) % len(self._searchers)]
            return ray.get(searcher.search.remote(f"{self.name}@merged", shared, k, knobs))
        count = len(self.merged.shard_dirs)
        parts = ray.get([searcher.search.remote(self.name, shared, k, knobs)
                         for searcher in self._searchers[:count]])
        return [merge_rankings([part[i] for part in parts], k) for i in range(len(prepared))]

    def close(self) -> None:
        """The merged index is closed by the reader; the actors by the engine."""


class FanoutReader(Reader):
    """A :class:`Reader` whose indexes are :class:`FanoutIndex` objects over searcher actors."""

    def __init__(self, path: Path, state: dict[str, Any], local_statistics: bool = False):
        super().__init__(path, state)
        self.local_statistics = local_statistics
        self._fanout: dict[str, FanoutIndex] = {}
        self._turn = itertools.count()
        self.searchers = self._start_searchers()

    def _start_searchers(self) -> list:
        ray = ray_module()
        shards: dict[int, dict[str, str]] = {}
        for name, directory in self.state["indexes"].items():
            merged = super().index(name)
            if not merged.shard_dirs:
                raise IndexFormatError(f"index {name!r} of {self.path} has no shards (built without --workers or "
                                       "extended without them); rebuild it with --workers to search it fanned out")
            for i, shard in enumerate(merged.shard_dirs):
                shards.setdefault(i, {})[name] = str(shard)
        for held in shards.values():  # any searcher may serve a whole-index (BM25) search
            held.update({f"{name}@merged": str(self.path / d) for name, d in self.state["indexes"].items()})
        actor = ray.remote(ShardSearcher)
        return [actor.remote(shards[i]) for i in sorted(shards)]

    def index(self, name: str) -> FanoutIndex:  # type: ignore[override]
        if name not in self._fanout:
            merged = super().index(name)
            fan_out = merged.shard_independent_scores or self.local_statistics
            self._fanout[name] = FanoutIndex(name, merged, self.searchers, fan_out, self._turn)
        return self._fanout[name]

    def close(self) -> None:
        ray = ray_module()
        for searcher in self.searchers:
            ray.kill(searcher)
        self.searchers = []
        super().close()


class DistributedEngine(Engine):
    """An :class:`Engine` over a sharded engine directory whose searches fan out to Ray actors.

    Args:
        path: an engine directory built with ``workers`` (its indexes keep their shards).
        workers: CPUs of a local Ray cluster (ignored when joining one with ``address``).
        address: a Ray cluster address (default ``$RAY_ADDRESS``, else a local cluster).
        local_statistics: fan BM25 out over its shards too (each with its own statistics).
    """

    def __init__(self, path: str | Path, workers: int | None = None, address: str | None = None,
                 local_statistics: bool = False):
        connect(workers or os.cpu_count() or 1, address)
        self.path = Path(path)
        self.local_statistics = local_statistics
        self.reader = FanoutReader(self.path, read_state(self.path), local_statistics)

    def refresh(self) -> bool:
        if read_state(self.path) == self.reader.state:
            return False
        old, self.reader = self.reader, FanoutReader(self.path, read_state(self.path), self.local_statistics)
        old.close()
        return True
