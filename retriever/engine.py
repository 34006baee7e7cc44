"""The engine: one corpus and any number of named indexes in one directory.

Layout of an engine directory::

    engine.json          which generation of the corpus and of each index is live
    corpus-<gen>/        the corpus store (see retriever.corpus)
    <name>-<gen>/        one directory per named index (see indexes.base)

Every write (build, add) creates new generation directories next to the live
ones and then replaces ``engine.json`` atomically; directories it no longer
names are removed afterwards. A crash at any point leaves the previous state
openable and intact.

Example:
    >>> engine = Engine.build("work/nfcorpus", "../shared/data/nfcorpus/corpus.jsonl",
    ...                       indexes=["bm25", "dense"])
    >>> for hit in engine.search("vitamin D and bone health", k=3, using="rrf(bm25,dense)"):
    ...     print(hit.doc_id, round(hit.score, 3), hit.title)
"""

from __future__ import annotations

import fcntl
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from indexes.base import Index, Ranking, build_index, canonical_spec, extend_index, open_index, parse_index_spec
from retriever.corpus import Corpus, Document, located_documents, read_beir_corpus
from retriever.errors import IndexFormatError, InputError, SpecError
from retriever.fusion import Fusion
from retriever.progress import progress
from retriever.rerank.base import RerankContext, Reranker, index_signals, load_reranker, wants_signals
from retriever.storage import TMP_PREFIX, read_json, write_json_atomic

STATE = "engine.json"
FORMAT_VERSION = 1
DEFAULT_INDEXES = ("bm25", "dense")
Using = str | Sequence[str]


@dataclass(frozen=True)
class Hit:
    """One search result: the document id, its score, and the document's title and text."""

    doc_id: str
    score: float
    title: str
    text: str


class Engine:
    """Search, fuse and extend a corpus's indexes. Open with :meth:`open` or :meth:`build`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._state = _read_state(self.path)
        self.corpus = Corpus.open(self.path / self._state["corpus"])
        self.indexes: dict[str, Index] = {}
        for name, directory in self._state["indexes"].items():
            index = open_index(self.path / directory)
            if index.manifest.get("corpus_checksum") != self.corpus.checksum:
                raise IndexFormatError(f"{self.path / directory}: index {name!r} was built for another corpus")
            self.indexes[name] = index

    @classmethod
    def open(cls, path: str | Path) -> "Engine":
        """Open an engine directory written by :meth:`build`."""
        return cls(Path(path))

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
        path = Path(path)
        specs = [parse_index_spec(spec) for spec in indexes]
        if len({name for name, _, _ in specs}) != len(specs):
            raise SpecError(f"two indexes share a name in {list(indexes)}")
        path.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if (path / STATE).exists() and not overwrite:
                raise FileExistsError(f"{path} already holds an engine; pass overwrite=True (--overwrite) to replace it")
            if not (path / STATE).exists():
                _clear_crashed_build(path)
            previous = _read_state(path) if (path / STATE).exists() else None
            if previous:
                _collect_garbage(path, previous)
            generation = previous["generation"] + 1 if previous else 1
            state = {"format_version": FORMAT_VERSION, "generation": generation,
                     "corpus": f"corpus-{generation}", "indexes": {}, "specs": {}}
            with _rollback(path, previous):
                corpus = _store_documents(path / state["corpus"], documents)
                for name, kind, settings in progress(specs, desc="building indexes", unit="index"):
                    built = build_index(kind, corpus, path / f"{name}-{generation}", settings)
                    state["indexes"][name] = built.directory.name
                    state["specs"][name] = canonical_spec(name, kind, settings)
                    built.close()
                write_json_atomic(path / STATE, state)
            _collect_garbage(path, state)
        return cls(path)

    def build_indexes(self, indexes: Sequence[str], overwrite: bool = False) -> None:
        """Build more indexes over this engine's corpus (e.g. ``["sparse"]``)."""
        specs = [parse_index_spec(spec) for spec in indexes]
        with _locked(self.path):
            state = _read_state(self.path)
            _collect_garbage(self.path, state)
            generation = state["generation"] + 1
            clashes = [name for name, _, _ in specs if name in state["indexes"]]
            if clashes and not overwrite:
                raise FileExistsError(f"{self.path} already has an index named {clashes[0]!r}; pass overwrite=True")
            new_state = {**state, "generation": generation, "indexes": dict(state["indexes"]),
                         "specs": dict(state.get("specs", {}))}
            with _rollback(self.path, state):
                for name, kind, settings in specs:
                    built = build_index(kind, self.corpus, self.path / f"{name}-{generation}", settings)
                    new_state["indexes"][name] = built.directory.name
                    new_state["specs"][name] = canonical_spec(name, kind, settings)
                    built.close()
                write_json_atomic(self.path / STATE, new_state)
            _collect_garbage(self.path, new_state)
        self._reload()

    @property
    def specs(self) -> dict[str, str]:
        """Index name -> the spec it was built from (canonical form)."""
        return dict(self._state.get("specs", {}))

    @property
    def names(self) -> list[str]:
        """Names of the indexes in this engine."""
        return list(self.indexes)

    def resolve(self, using: Using | None) -> Fusion | str:
        """Turn ``using`` into an index name or a :class:`Fusion`.

        ``using`` may be an index name, ``"hybrid"`` (RRF over every index), a
        fusion spec (``"norm(bm25,dense)"``) or a list of names (fused with RRF).
        """
        if using is None:
            using = self.names[0] if len(self.names) == 1 else "hybrid"
        if not isinstance(using, str):
            fusion = Fusion("rrf", tuple(using), (1.0,) * len(using))
        elif using == "hybrid":
            fusion = Fusion("rrf", tuple(self.names), (1.0,) * len(self.names))
        elif "(" in using:
            fusion = Fusion.parse(using)
        else:
            fusion = None
        names = fusion.names if fusion else (using,)
        missing = [n for n in names if n not in self.indexes]
        if missing:
            raise SpecError(f"no index named {', '.join(map(repr, missing))} in {self.path}; it has {', '.join(self.names)}")
        return fusion if fusion and len(fusion.names) > 1 else names[0]

    def rankings(self, queries: Sequence[str], k: int = 10, using: Using | None = None,
                 depth: int | None = None, knobs: Mapping[str, Mapping[str, Any]] | None = None) -> list[Ranking]:
        """Ranked ``(doc_id, score)`` lists for ``queries`` (no document text).

        Args:
            queries: query strings.
            k: results per query.
            using: see :meth:`resolve`.
            depth: how deep each index is read before fusion (default ``max(k, 100)``).
            knobs: per-index search knobs, e.g. ``{"dense": {"nprobe": 16}}``.
        """
        knobs = knobs or {}
        target = self.resolve(using)
        if isinstance(target, str):
            return self.indexes[target].search(list(queries), k, **knobs.get(target, {}))
        depth = max(k, depth or 100)
        per_index = {name: self.indexes[name].search(list(queries), depth, **knobs.get(name, {}))
                     for name in target.names}
        return [target.fuse({name: runs[i] for name, runs in per_index.items()}, k)
                for i in range(len(queries))]

    def batch_search(self, queries: Sequence[str], k: int = 10, using: Using | None = None,
                     rerank: str | Reranker | None = None, candidates: int = 100, **kwargs: Any) -> list[list[Hit]]:
        """Search many queries at once; one list of :class:`Hit` per query.

        Args:
            queries: query strings.
            k: hits per query (at most; a reranker may pass on fewer).
            using: see :meth:`resolve`.
            rerank: a reranker or its spec (e.g. ``"top(k=5)"``); it sees the top
                ``candidates`` hits and decides their order and how many to keep.
            candidates: how many retrieved hits the reranker sees.
            **kwargs: ``depth`` and ``knobs``, as in :meth:`rankings`.
        """
        reranker = load_reranker(rerank) if rerank is not None else None
        rankings = self.rankings(queries, max(k, candidates) if reranker else k, using, **kwargs)
        hits = [self._hits(ranking) for ranking in rankings]
        if reranker:
            signals = (index_signals(self, queries, using, max(k, candidates)) if wants_signals(reranker)
                       else [{}] * len(queries))
            hits = [reranker.rerank(query, found, RerankContext(question=query, signals=signal))[:k]
                    for query, found, signal in zip(queries, hits, signals)]
        return hits

    def search(self, query: str, k: int = 10, using: Using | None = None,
               rerank: str | Reranker | None = None, **kwargs: Any) -> list[Hit]:
        """Search one query; returns up to ``k`` :class:`Hit` objects, best first."""
        return self.batch_search([query], k, using, rerank, **kwargs)[0]

    def ask(self, question: str, llm: Any = None, cache: str | Path | None = None, **options: Any) -> Any:
        """Answer ``question`` with the multi-hop loop; returns ``Answer(text, citations, trace)``.

        Args:
            question: the question.
            llm: a generator, a ``.gguf`` path, a model directory, an ``http(s)://`` endpoint or a
                backend spec (see :func:`retriever.generate.load_generator`); ``None``: no-LLM mode.
            cache: an LM-call cache file (JSONL) to reuse answers across runs.
            **options: :class:`retriever.agent.Agent` settings (``using``, ``rerank``, ``passages``,
                ``candidates``, ``budget``, ``refine_sentences``).
        """
        from retriever.agent import Agent
        from retriever.generate import open_generator

        return Agent(self, open_generator(llm, cache), **options).ask(question)

    def add(self, documents: str | Path | Iterable[Any]) -> int:
        """Append documents to the corpus and to every index, atomically.

        Each index is extended without a full rebuild (Lucene append, FAISS add);
        if anything fails, the engine stays exactly as it was.

        Returns:
            The number of documents added.

        Raises:
            InputError: a malformed document, or an id that is empty or already present.
        """
        located = list(_documents(documents))
        docs = [doc for doc, _, _ in located]
        with _locked(self.path):
            state = _read_state(self.path)
            if state != self._state:
                raise IndexFormatError(f"{self.path} changed since it was opened; open it again")
            _collect_garbage(self.path, state)
            generation = state["generation"] + 1
            new_state = {**state, "generation": generation, "corpus": f"corpus-{generation}", "indexes": {}}
            with _rollback(self.path, state):
                corpus = self.corpus.extend(self.path / new_state["corpus"], located)
                for name, index in progress(self.indexes.items(), desc="adding to indexes", unit="index"):
                    extended = extend_index(index, docs, corpus, self.path / f"{name}-{generation}")
                    new_state["indexes"][name] = extended.directory.name
                    extended.close()
                write_json_atomic(self.path / STATE, new_state)
            _collect_garbage(self.path, new_state)
        self._reload()
        return len(docs)

    def close(self) -> None:
        for index in self.indexes.values():
            index.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hits(self, ranking: Ranking) -> list[Hit]:
        docs = self.corpus.get_many([doc_id for doc_id, _ in ranking])
        return [Hit(doc.doc_id, score, doc.title, doc.text) for doc, (_, score) in zip(docs, ranking)]

    def _reload(self) -> None:
        self.close()
        self.__init__(self.path)


def _documents(documents: str | Path | Iterable[Any]) -> Iterator[tuple[Document, str | None, int | None]]:
    if isinstance(documents, (str, Path)):
        path = Path(documents)
        return read_beir_corpus(path / "corpus.jsonl" if path.is_dir() else path)
    return located_documents(documents)


def _store_documents(directory: Path, documents: str | Path | Iterable[Any] | Corpus) -> Corpus:
    if isinstance(documents, Corpus):
        return Corpus.create(directory, documents, source=documents.manifest.get("source", ""))
    source = str(Path(documents).resolve()) if isinstance(documents, (str, Path)) else ""
    return Corpus.create(directory, _documents(documents), source=source)


def _read_state(path: Path) -> dict:
    if not (path / STATE).exists():
        raise IndexFormatError(f"{path} is not an engine directory (no {STATE}); build one with "
                               f"`retriever index build {path} --dataset NAME` or Engine.build()")
    state = read_json(path / STATE)
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise IndexFormatError(f"{path / STATE} is newer than this retriever reads; upgrade retriever")
    return state


def _collect_garbage(path: Path, state: dict) -> None:
    """Remove directories the live state does not name (old generations, crashed temporaries)."""
    live = {state["corpus"], *state["indexes"].values(), STATE, ".lock"}
    for entry in path.iterdir():
        if entry.name not in live and (entry.is_dir() or entry.name.startswith(TMP_PREFIX)):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


@contextmanager
def _rollback(path: Path, state: dict | None) -> Iterator[None]:
    """On failure, remove whatever the write created; ``state`` (None: no engine yet) stays live."""
    try:
        yield
    except BaseException:
        if state is None:
            _clear_crashed_build(path)
        else:
            _collect_garbage(path, state)
        raise


def _clear_crashed_build(path: Path) -> None:
    """Remove what a build killed before writing ``engine.json`` left; refuse foreign files."""
    ours = [e for e in path.iterdir() if e.name == ".lock" or e.name.startswith(TMP_PREFIX)
            or (e / "manifest.json").exists()]
    foreign = [e.name for e in path.iterdir() if e not in ours]
    if foreign:
        raise FileExistsError(f"{path} is not empty and holds no engine ({', '.join(sorted(foreign)[:3])}...); "
                              "choose an empty directory")
    for entry in ours:
        if entry.name != ".lock":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path/.lock`` so two writers never interleave."""
    with open(path / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexFormatError(f"{path} is being written by another process") from None
        yield
