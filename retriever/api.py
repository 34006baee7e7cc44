"""The engine as users see it: open or build, search (fused, reranked), add, ask.

:class:`Engine` composes the engine layer (a :class:`~retriever.engine.writer` for
every change and a lazy :class:`~retriever.engine.reader.Reader` for queries) with
rerankers and the agentic loop. Every write goes to new generation directories and
then replaces ``engine.json`` atomically; a crash at any point leaves the previous
state openable and intact.

Example:
    >>> engine = Engine.build("work/nfcorpus", "../shared/data/nfcorpus/corpus.jsonl",
    ...                       indexes=["bm25", "dense"])
    >>> for hit in engine.search("vitamin D and bone health", k=3, using="rrf(bm25,dense)"):
    ...     print(hit.doc_id, round(hit.score, 3), hit.title)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from indexes.base import Index
from retriever.core.corpus import Corpus
from retriever.core.types import Hit, Ranking
from retriever.engine import writer
from retriever.engine.reader import LazyIndexes, Reader, Using
from retriever.engine.stage import Retrieved, check_k
from retriever.engine.state import read_state
from retriever.fusion import Fusion
from retriever.rerank.base import RerankContext, Reranker, load_reranker, wants_signals

DEFAULT_INDEXES = ("bm25", "dense")
__all__ = ["Engine", "Hit"]


class Engine:
    """Search, fuse, rerank and extend a corpus's indexes. Open with :meth:`open` or :meth:`build`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.reader = Reader.open(self.path)

    @classmethod
    def open(cls, path: str | Path) -> "Engine":
        """Open an engine directory written by :meth:`build` (indexes open on first use)."""
        return cls(path)

    @classmethod
    def build(cls, path: str | Path, documents: str | Path | Iterable[Any] | Corpus,
              indexes: Sequence[str] = DEFAULT_INDEXES, overwrite: bool = False) -> "Engine":
        """Build a new engine: store the documents, then build each index spec.

        Args:
            path: the engine directory (created; must be empty unless ``overwrite``).
            documents: a BEIR ``corpus.jsonl`` (or a directory holding one), an
                open :class:`Corpus`, or an iterable of documents / BEIR records.
            indexes: index specs, e.g. ``["bm25", "dense(factory=HNSW32)"]``.
            overwrite: replace an existing engine at ``path`` (atomically).

        Raises:
            InputError: a malformed document, an empty or duplicate id (nothing is written).
        """
        writer.build(path, documents, indexes, overwrite)
        return cls(path)

    def build_indexes(self, indexes: Sequence[str], overwrite: bool = False) -> None:
        """Build more indexes over this engine's corpus (e.g. ``["sparse"]``)."""
        writer.build_indexes(self.path, indexes, overwrite)
        self.refresh()
        writer.collect(self.path)

    def add(self, documents: str | Path | Iterable[Any]) -> int:
        """Append documents to the corpus and to every index, atomically.

        Each index is extended without a full rebuild (Lucene append, FAISS add);
        if anything fails, the engine stays exactly as it was.

        Returns:
            The number of documents added.

        Raises:
            InputError: a malformed document, or an id that is empty or already present.
        """
        added = writer.add(self.path, documents)
        self.refresh()
        writer.collect(self.path)
        return added

    def refresh(self) -> bool:
        """Switch to the live generation if another write replaced it; True when it changed."""
        if read_state(self.path)["generation"] == self.reader.generation:
            return False
        old, self.reader = self.reader, Reader.open(self.path)
        old.close()
        return True

    @property
    def corpus(self) -> Corpus:
        return self.reader.corpus

    @property
    def indexes(self) -> LazyIndexes:
        """Index name -> :class:`Index`, each opened on first lookup."""
        return self.reader.indexes

    @property
    def names(self) -> list[str]:
        """Names of the indexes in this engine."""
        return self.reader.names

    @property
    def specs(self) -> dict[str, str]:
        """Index name -> the spec it was built from (canonical form)."""
        return self.reader.specs

    def index(self, name: str) -> Index:
        return self.reader.index(name)

    def resolve(self, using: Using | None) -> Fusion | str:
        """See :meth:`Reader.resolve`."""
        return self.reader.resolve(using)

    def retrieve(self, queries: Sequence[str], k: int = 10, using: Using | None = None, depth: int | None = None,
                 knobs: Mapping[str, Mapping[str, Any]] | None = None) -> list[Retrieved]:
        """The retrieval stage: fused ranking and each index's own ranking, per query."""
        return self.reader.retrieve(queries, k, using, depth, knobs)

    def rankings(self, queries: Sequence[str], k: int = 10, using: Using | None = None, depth: int | None = None,
                 knobs: Mapping[str, Mapping[str, Any]] | None = None) -> list[Ranking]:
        """Ranked ``(doc_id, score)`` lists for ``queries`` (no document text).

        Args:
            queries: query strings.
            k: results per query.
            using: see :meth:`Reader.resolve`.
            depth: how deep each index is read before fusion: ``max(k, depth)``, with ``depth``
                defaulting to :data:`retriever.engine.stage.DEFAULT_DEPTH` (100).
            knobs: per-index search knobs, e.g. ``{"dense": {"nprobe": 16}}``.
        """
        return self.reader.rankings(queries, k, using, depth, knobs)

    def hits(self, ranking: Ranking) -> list[Hit]:
        return self.reader.hits(ranking)

    def batch_search(self, queries: Sequence[str], k: int = 10, using: Using | None = None,
                     rerank: str | Reranker | None = None, candidates: int = 100, **kwargs: Any) -> list[list[Hit]]:
        """Search many queries at once; one list of :class:`Hit` per query.

        Args:
            queries: query strings.
            k: hits per query (at most; a reranker may pass on fewer).
            using: see :meth:`Reader.resolve`.
            rerank: a reranker or its spec (e.g. ``"top(k=5)"``); it sees the top
                ``candidates`` hits and decides their order and how many to keep.
            candidates: how many retrieved hits the reranker sees.
            **kwargs: ``depth`` and ``knobs``, as in :meth:`rankings`.
        """
        check_k(k)
        reranker = load_reranker(rerank) if rerank is not None else None
        seen = max(k, candidates) if reranker else k
        retrieved = self.reader.retrieve(queries, seen, using, **kwargs)
        hits = [self.reader.hits(r.ranking) for r in retrieved]
        if reranker:
            signals = wants_signals(reranker)
            hits = [reranker.rerank(query, found, RerankContext(question=query,
                                                                signals=r.signals(seen) if signals else {}))[:k]
                    for query, found, r in zip(queries, hits, retrieved)]
        return hits

    def search(self, query: str, k: int = 10, using: Using | None = None,
               rerank: str | Reranker | None = None, **kwargs: Any) -> list[Hit]:
        """Search one query; returns up to ``k`` :class:`Hit` objects, best first."""
        return self.batch_search([query], k, using, rerank, **kwargs)[0]

    def ask(self, question: str, llm: Any = None, cache: str | Path | None = None, **options: Any) -> Any:
        """Answer ``question`` with the multi-hop loop; returns ``Answer(text, citations, trace, passed)``.

        Args:
            question: the question.
            llm: a generator, a ``.gguf`` path, a model directory, an ``http(s)://`` endpoint or a
                backend spec (see :func:`retriever.generate.load_generator`); ``None``: no-LLM mode.
            cache: an LM-call cache file (JSONL) to reuse answers across runs.
            **options: :class:`retriever.agent.Agent` settings (``using``, ``rerank``, ``passages``,
                ``candidates``, ``budget``, ``refine_sentences``, ``reader``, ``choices``).
        """
        from retriever.agent import Agent
        from retriever.generate import open_generator

        return Agent(self.reader, open_generator(llm, cache), **options).ask(question)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
