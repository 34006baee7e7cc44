"""Document identifiers for the generative index: semantic (hierarchical k-means) or atomic.

A **semantic** id is a path through a tree built by recursive k-means over dense
document embeddings (as in DSI): a cluster with more than ``leaf_size`` documents
is split into ``branching`` clusters; a cluster with at most ``leaf_size``
documents is a leaf whose documents get the slots ``0..n-1`` (in corpus order).
Similar documents share id prefixes, so a decoder can learn the tree top-down.
An **atomic** id is one token per document (its row).

Each id element is a token ``(level, value)``; the vocabulary maps those pairs to
token numbers in order of first use, so extending the corpus only appends tokens.

Example:
    >>> tree = DocTree.build(vectors, branching=10, leaf_size=100, seed=0)
    >>> tree.paths[0]
    (3, 7, 12)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from retriever.core.errors import IndexFormatError, InputError

IDS_FILE = "ids.arrow"
TOKENS_FILE = "tokens.arrow"
CLUSTERS_FILE = "clusters.arrow"
KMEANS_ITERATIONS = 30

Path_ = tuple[int, ...]


def kmeans(vectors: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding; returns (labels, centroids).

    Deterministic for a given ``rng`` state. Empty clusters are dropped, so fewer
    than ``k`` centroids may come back (labels are renumbered 0..k'-1 by first centroid).
    """
    n = len(vectors)
    k = min(k, n)
    sq = np.einsum("ij,ij->i", vectors, vectors)
    centroids = [vectors[rng.integers(n)]]
    closest = np.maximum(sq - 2 * vectors @ centroids[0] + centroids[0] @ centroids[0], 0)
    for _ in range(1, k):
        total = closest.sum()
        pick = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
        centroids.append(vectors[pick])
        closest = np.minimum(closest, np.maximum(sq - 2 * vectors @ vectors[pick] + vectors[pick] @ vectors[pick], 0))
    centers = np.stack(centroids)
    labels = np.full(n, -1)
    for _ in range(KMEANS_ITERATIONS):
        distances = sq[:, None] - 2 * vectors @ centers.T + np.einsum("ij,ij->i", centers, centers)[None, :]
        new_labels = distances.argmin(axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for c in range(len(centers)):
            members = vectors[labels == c]
            if len(members):
                centers[c] = members.mean(axis=0)
    used = np.unique(labels)
    remap = np.full(len(centers), -1)
    remap[used] = np.arange(len(used))
    return remap[labels], centers[used]


@dataclass
class DocTree:
    """Document id paths plus, for semantic ids, the centroids of every internal node.

    Attributes:
        paths: one id path per document row.
        centroids: internal node prefix -> ``[children, dim]`` centroid matrix (empty for atomic ids).
    """

    paths: list[Path_]
    centroids: dict[Path_, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, vectors: np.ndarray, branching: int, leaf_size: int, seed: int) -> "DocTree":
        """Semantic ids by recursive k-means over ``vectors`` (one row per document).

        Raises:
            InputError: no vectors, or a branching factor / leaf size below 2 / 1.
        """
        if len(vectors) == 0:
            raise InputError("cannot assign ids to an empty corpus")
        if branching < 2 or leaf_size < 1:
            raise InputError(f"branching must be >= 2 and leaf_size >= 1 (got {branching}, {leaf_size})")
        vectors = np.asarray(vectors, dtype=np.float64)
        rng = np.random.default_rng(seed)
        tree = cls([()] * len(vectors))
        stack: list[tuple[Path_, np.ndarray]] = [((), np.arange(len(vectors)))]
        while stack:
            prefix, rows = stack.pop()
            if len(rows) <= leaf_size:
                for slot, row in enumerate(rows):
                    tree.paths[row] = prefix + (slot,)
                continue
            labels, centers = kmeans(vectors[rows], branching, rng)
            if len(centers) < 2:  # identical vectors: split them evenly, in row order
                parts = min(branching, len(rows))
                labels = np.arange(len(rows)) * parts // len(rows)
                centers = np.stack([vectors[rows[labels == c]].mean(axis=0) for c in range(parts)])
            tree.centroids[prefix] = centers.astype(np.float32)
            for c in reversed(range(len(centers))):
                stack.append((prefix + (c,), rows[labels == c]))
        return tree

    @classmethod
    def atomic(cls, count: int) -> "DocTree":
        """Atomic ids: document row ``i`` gets the one-token id ``(i,)``."""
        if count == 0:
            raise InputError("cannot assign ids to an empty corpus")
        return cls([(i,) for i in range(count)])

    @property
    def semantic(self) -> bool:
        return bool(self.centroids)

    def place(self, vectors: np.ndarray) -> list[Path_]:
        """Append documents: descend to the nearest leaf (semantic) or take the next row (atomic).

        Existing paths never change; each new document gets the next free slot of its leaf.
        """
        if not self.semantic:
            start = len(self.paths)
            new = [(start + i,) for i in range(len(vectors))]
            self.paths.extend(new)
            return new
        used: dict[Path_, int] = {}
        for path in self.paths:
            used[path[:-1]] = max(used.get(path[:-1], 0), path[-1] + 1)
        new = []
        for vector in np.asarray(vectors, dtype=np.float32):
            prefix: Path_ = ()
            while prefix in self.centroids:
                centers = self.centroids[prefix]
                prefix = prefix + (int(((centers - vector) ** 2).sum(axis=1).argmin()),)
            slot = used.get(prefix, 0)
            used[prefix] = slot + 1
            new.append(prefix + (slot,))
        self.paths.extend(new)
        return new

    def write(self, directory: Path, doc_ids: Sequence[str]) -> None:
        """Write ``ids.arrow`` (doc id, path) and ``clusters.arrow`` (prefix, child, centroid)."""
        check_unique(doc_ids)
        if len(doc_ids) != len(self.paths):
            raise IndexFormatError(f"{len(doc_ids)} document ids for {len(self.paths)} id paths")
        _write_arrow(directory / IDS_FILE, pa.table({
            "_id": pa.array(list(doc_ids), pa.string()),
            "path": pa.array([list(p) for p in self.paths], pa.list_(pa.int32()))}))
        prefixes, children, rows = [], [], []
        for prefix, centers in self.centroids.items():
            for child, center in enumerate(centers):
                prefixes.append(list(prefix))
                children.append(child)
                rows.append(center)
        dim = len(rows[0]) if rows else 0
        flat = np.asarray(rows, dtype=np.float32).reshape(-1)
        _write_arrow(directory / CLUSTERS_FILE, pa.table({
            "prefix": pa.array(prefixes, pa.list_(pa.int32())),
            "child": pa.array(children, pa.int32()),
            "centroid": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), max(dim, 1))
            if rows else pa.array([], pa.list_(pa.float32(), 1))}))

    @classmethod
    def read(cls, directory: Path) -> tuple["DocTree", list[str]]:
        """Read what :meth:`write` wrote; returns the tree and the document ids by row."""
        ids = _read_arrow(directory / IDS_FILE)
        tree = cls([tuple(p) for p in ids.column("path").to_pylist()])
        clusters = _read_arrow(directory / CLUSTERS_FILE)
        grouped: dict[Path_, list[tuple[int, np.ndarray]]] = {}
        if clusters.num_rows:
            centers = np.asarray(clusters.column("centroid").combine_chunks().flatten(), dtype=np.float32)
            centers = centers.reshape(clusters.num_rows, -1)
            for prefix, child, center in zip(clusters.column("prefix").to_pylist(),
                                             clusters.column("child").to_pylist(), centers):
                grouped.setdefault(tuple(prefix), []).append((child, center))
        tree.centroids = {p: np.stack([c for _, c in sorted(kids, key=lambda x: x[0])]) for p, kids in grouped.items()}
        return tree, ids.column("_id").to_pylist()


@dataclass
class Vocabulary:
    """Token numbers for ``(level, value)`` id elements, in order of first use."""

    pairs: list[tuple[int, int]]

    @classmethod
    def for_paths(cls, paths: Sequence[Path_]) -> "Vocabulary":
        vocab = cls([])
        vocab.extend(paths)
        return vocab

    def __len__(self) -> int:
        return len(self.pairs)

    def extend(self, paths: Sequence[Path_]) -> None:
        """Add the tokens ``paths`` use that are not in the vocabulary yet (appended, sorted)."""
        known = set(self.pairs)
        new = sorted({(level, value) for path in paths for level, value in enumerate(path)} - known)
        self.pairs.extend(new)

    def encode(self, paths: Sequence[Path_]) -> list[tuple[int, ...]]:
        """Token sequences for id paths."""
        index = {pair: token for token, pair in enumerate(self.pairs)}
        return [tuple(index[(level, value)] for level, value in enumerate(path)) for path in paths]

    def write(self, directory: Path) -> None:
        _write_arrow(directory / TOKENS_FILE, pa.table({
            "level": pa.array([p[0] for p in self.pairs], pa.int32()),
            "value": pa.array([p[1] for p in self.pairs], pa.int32())}))

    @classmethod
    def read(cls, directory: Path) -> "Vocabulary":
        table = _read_arrow(directory / TOKENS_FILE)
        return cls(list(zip(table.column("level").to_pylist(), table.column("value").to_pylist())))


def check_unique(doc_ids: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the first repeated document id."""
    seen: set[str] = set()
    for position, doc_id in enumerate(doc_ids, start=1):
        if doc_id in seen:
            raise InputError(f"duplicate document id {doc_id!r} (position {position})")
        seen.add(doc_id)


def _write_arrow(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_arrow(path: Path) -> pa.Table:
    if not path.is_file():
        raise IndexFormatError(f"{path} is missing: the generative index is incomplete")
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
