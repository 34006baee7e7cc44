"""A reader: one generation of an engine directory, with indexes opened on first use.

Opening a reader takes a lease on the live generation (a shared lock the writer checks
before removing an old generation, so a reader may first touch an index long after
opening) and reads ``engine.json``; the corpus is memory-mapped when a
document is first needed and each index is opened when it is first searched, so a ``bm25``
query never loads the dense or sparse models (nor imports torch).

Example:
    >>> reader = Reader.open("work/nfcorpus")
    >>> [r.ranking[:3] for r in reader.retrieve(["vitamin D"], k=10, using="bm25")]
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from indexes.base import Index, open_index
from retriever.core.corpus import Corpus
from retriever.core.errors import IndexFormatError, SpecError
from retriever.core.storage import read_manifest
from retriever.core.types import Hit, Ranking
from retriever.engine.stage import Retrieved, retrieve
from retriever.engine.state import Lease
from retriever.fusion import Fusion

Using = str | Sequence[str]


class Reader:
    """Search one generation of an engine; everything is opened lazily and kept open.

    Thread-safe: concurrent first uses of an index open it once.
    """

    def __init__(self, path: Path, state: dict[str, Any], lease: Lease | None = None):
        self.path = Path(path)
        self.state = state
        self._lease = lease
        self._corpus: Corpus | None = None
        self._indexes: dict[str, Index] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> "Reader":
        """Open the live generation of the engine directory ``path`` (and hold a lease on it until :meth:`close`)."""
        lease = Lease(Path(path))
        return cls(Path(path), lease.state, lease)

    @property
    def generation(self) -> int:
        return int(self.state["generation"])

    @property
    def names(self) -> list[str]:
        """Names of the indexes in this generation."""
        return list(self.state["indexes"])

    @property
    def specs(self) -> dict[str, str]:
        """Index name -> the spec it was built from (canonical form)."""
        return dict(self.state.get("specs", {}))

    @property
    def corpus(self) -> Corpus:
        """The corpus store (memory-mapped on first use)."""
        if self._corpus is None:
            with self._lock:
                if self._corpus is None:
                    self._corpus = Corpus.open(self.path / self.state["corpus"])
        return self._corpus

    @property
    def indexes(self) -> "LazyIndexes":
        """Index name -> :class:`~indexes.base.Index`, each opened when first looked up."""
        return LazyIndexes(self)

    def index(self, name: str) -> Index:
        """The index called ``name``, opened on first use."""
        if name not in self.state["indexes"]:
            raise SpecError(f"no index named {name!r} in {self.path}; it has {', '.join(self.names)}")
        found = self._indexes.get(name)
        if found is None:
            with self._lock:
                found = self._indexes.get(name)
                if found is None:
                    found = open_index(self.path / self.state["indexes"][name])
                    if found.manifest.get("corpus_checksum") != self._corpus_checksum():
                        found.close()
                        raise IndexFormatError(f"{found.directory}: index {name!r} was built for another corpus")
                    self._indexes[name] = found
        return found

    def resolve(self, using: Using | None) -> Fusion | str:
        """Turn ``using`` into an index name or a :class:`Fusion`.

        ``using`` may be an index name, ``"hybrid"`` (RRF over every index), a
        fusion spec (``"norm(bm25,dense)"``) or a list of names (fused with RRF).
        """
        names = self.names
        if using is None:
            using = names[0] if len(names) == 1 else "hybrid"
        if not isinstance(using, str):
            fusion = Fusion("rrf", tuple(using), (1.0,) * len(using))
        elif using == "hybrid":
            fusion = Fusion("rrf", tuple(names), (1.0,) * len(names))
        elif "(" in using:
            fusion = Fusion.parse(using)
        else:
            fusion = None
        wanted = fusion.names if fusion else (using,)
        missing = [n for n in wanted if n not in self.state["indexes"]]
        if missing:
            raise SpecError(f"no index named {', '.join(map(repr, missing))} in {self.path}; it has {', '.join(names)}")
        return fusion if fusion and len(fusion.names) > 1 else wanted[0]

    def retrieve(self, queries: Sequence[str], k: int = 10, using: Using | None = None, depth: int | None = None,
                 knobs: Mapping[str, Mapping[str, Any]] | None = None) -> list[Retrieved]:
        """The retrieval stage (:func:`retriever.engine.stage.retrieve`) over this generation."""
        return retrieve(self.index, self.resolve(using), queries, k, depth, knobs)

    def rankings(self, queries: Sequence[str], k: int = 10, using: Using | None = None, depth: int | None = None,
                 knobs: Mapping[str, Mapping[str, Any]] | None = None) -> list[Ranking]:
        """Ranked ``(doc_id, score)`` lists for ``queries`` (no document text)."""
        return [r.ranking for r in self.retrieve(queries, k, using, depth, knobs)]

    def hits(self, ranking: Ranking) -> list[Hit]:
        """The :class:`Hit` (with title and text) of each ``(doc_id, score)`` of ``ranking``."""
        docs = self.corpus.get_many([doc_id for doc_id, _ in ranking])
        return [Hit(doc.doc_id, score, doc.title, doc.text) for doc, (_, score) in zip(docs, ranking)]

    def close(self) -> None:
        """Close every index opened so far and give the generation's lease back."""
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes.clear()
            self._corpus = None
            if self._lease is not None:
                self._lease.release()

    def _corpus_checksum(self) -> str | None:
        if self._corpus is not None:
            return self._corpus.checksum
        return read_manifest(self.path / self.state["corpus"], kind="corpus").get("checksum")


class LazyIndexes(Mapping[str, Index]):
    """A read-only mapping over a reader's indexes that opens each one on lookup."""

    def __init__(self, reader: Reader):
        self._reader = reader

    def __getitem__(self, name: str) -> Index:
        if name not in self._reader.state["indexes"]:
            raise KeyError(name)
        return self._reader.index(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._reader.names)

    def __len__(self) -> int:
        return len(self._reader.names)
