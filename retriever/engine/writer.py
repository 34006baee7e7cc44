"""The writer: every change to an engine directory is one transaction.

A transaction takes the writer lock, reads the live state, hands out new generation
directories, and on success replaces ``engine.json`` atomically and removes the
directories the new state no longer names. On any failure it removes what it created
and the previous state stays live and intact. ``build``, ``build_indexes`` and ``add``
are each one transaction.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from indexes.base import Index, build_index, canonical_spec, extend_index, open_index, parse_index_spec
from retriever.core.corpus import Corpus, Document, located_documents, read_beir_corpus
from retriever.core.errors import SpecError
from retriever.core.progress import progress
from retriever.core.storage import MANIFEST, TMP_PREFIX
from retriever.engine.state import (FORMAT_VERSION, LOCK, STATE, generation_dir, live_dirs, locked, read_state,
                                    write_state)

Documents = str | Path | Iterable[Any]


class Transaction:
    """One write in progress: the previous state (None for a new engine) and the next one.

    Attributes:
        previous: the live state when the transaction began (None: no engine yet).
        state: the state that becomes live when the transaction commits.
    """

    def __init__(self, path: Path, previous: dict[str, Any] | None):
        self.path, self.previous = path, previous
        generation = previous["generation"] + 1 if previous else 1
        self.state: dict[str, Any] = (
            {**previous, "generation": generation, "indexes": dict(previous["indexes"]),
             "specs": dict(previous.get("specs", {}))} if previous else
            {"format_version": FORMAT_VERSION, "generation": generation, "corpus": "", "indexes": {}, "specs": {}})

    def directory(self, name: str) -> Path:
        """This transaction's new directory for ``name`` (an index name, or ``corpus``)."""
        return self.path / generation_dir(name, self.state["generation"])

    @property
    def corpus_dir(self) -> Path:
        """The corpus directory the new state will name."""
        return self.path / self.state["corpus"]

    def store_corpus(self, documents: Documents | Corpus) -> Corpus:
        """Write ``documents`` as this generation's corpus."""
        corpus = _store_documents(self.directory("corpus"), documents)
        self.state["corpus"] = corpus.directory.name
        return corpus

    def extend_corpus(self, corpus: Corpus, located: Sequence[tuple[Document, str | None, int | None]]) -> Corpus:
        """Write ``corpus`` plus the new documents as this generation's corpus."""
        extended = corpus.extend(self.directory("corpus"), located)
        self.state["corpus"] = extended.directory.name
        return extended

    def put_index(self, name: str, index: Index, spec: str | None = None) -> None:
        """Make ``index`` (written into :meth:`directory`) the live index ``name``."""
        self.state["indexes"][name] = index.directory.name
        if spec is not None:
            self.state["specs"][name] = spec
        index.close()


@contextmanager
def transaction(path: Path, create: bool = False, overwrite: bool = False) -> Iterator[Transaction]:
    """Run one write on the engine directory ``path``.

    Args:
        path: the engine directory.
        create: a new engine is being built (the directory may not hold one unless ``overwrite``).
        overwrite: with ``create``, replace an existing engine (atomically).

    Raises:
        FileExistsError: ``create`` on an existing engine without ``overwrite``, or on a
            non-empty directory that is not an engine.
        IndexFormatError: another process holds the writer lock, or the state is unreadable.
    """
    path = Path(path)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    with locked(path):
        exists = (path / STATE).exists()
        if create and exists and not overwrite:
            raise FileExistsError(f"{path} already holds an engine; pass overwrite=True (--overwrite) to replace it")
        if not exists:
            if not create:
                read_state(path)  # raises: not an engine directory
            _clear_crashed_build(path)
        previous = read_state(path) if exists else None
        if previous:
            _collect_garbage(path, previous)
        tx = Transaction(path, previous)
        try:
            yield tx
            write_state(path, tx.state)
        except BaseException:
            if previous is None:
                _clear_crashed_build(path)
            else:
                _collect_garbage(path, previous)
            raise
        _collect_garbage(path, tx.state)


def build(path: str | Path, documents: Documents | Corpus, indexes: Sequence[str], overwrite: bool = False) -> None:
    """Build a new engine: store the documents, then build each index spec (one transaction)."""
    specs = _parse_specs(indexes)
    with transaction(Path(path), create=True, overwrite=overwrite) as tx:
        tx.state.update(indexes={}, specs={})
        corpus = tx.store_corpus(documents)
        for name, kind, settings in progress(specs, desc="building indexes", unit="index"):
            tx.put_index(name, build_index(kind, corpus, tx.directory(name), settings),
                         canonical_spec(name, kind, settings))


def build_indexes(path: str | Path, indexes: Sequence[str], overwrite: bool = False) -> None:
    """Build more indexes over an engine's corpus (one transaction)."""
    specs = _parse_specs(indexes)
    with transaction(Path(path)) as tx:
        clashes = [name for name, _, _ in specs if name in tx.state["indexes"]]
        if clashes and not overwrite:
            raise FileExistsError(f"{path} already has an index named {clashes[0]!r}; pass overwrite=True")
        corpus = Corpus.open(tx.corpus_dir)
        for name, kind, settings in specs:
            tx.put_index(name, build_index(kind, corpus, tx.directory(name), settings),
                         canonical_spec(name, kind, settings))


def add(path: str | Path, documents: Documents) -> int:
    """Append documents to the corpus and to every index of the live generation (one transaction).

    Each index is extended without a full rebuild (Lucene append, FAISS add).

    Returns:
        The number of documents added.

    Raises:
        InputError: a malformed document, or an id that is empty or already present.
    """
    located = list(read_documents(documents))
    docs = [doc for doc, _, _ in located]
    with transaction(Path(path)) as tx:
        corpus = tx.extend_corpus(Corpus.open(tx.corpus_dir), located)
        for name, directory in progress(list(tx.previous["indexes"].items()), desc="adding to indexes", unit="index"):
            old = open_index(tx.path / directory)
            try:
                tx.put_index(name, extend_index(old, docs, corpus, tx.directory(name)))
            finally:
                old.close()
    return len(docs)


def read_documents(documents: Documents) -> Iterator[tuple[Document, str | None, int | None]]:
    """Validated ``(document, file, line)`` from a BEIR ``corpus.jsonl`` (or its directory) or records."""
    if isinstance(documents, (str, Path)):
        path = Path(documents)
        return read_beir_corpus(path / "corpus.jsonl" if path.is_dir() else path)
    return located_documents(documents)


def _parse_specs(indexes: Sequence[str]) -> list[tuple[str, str, dict[str, str]]]:
    specs = [parse_index_spec(spec) for spec in indexes]
    if len({name for name, _, _ in specs}) != len(specs):
        raise SpecError(f"two indexes share a name in {list(indexes)}")
    return specs


def _store_documents(directory: Path, documents: Documents | Corpus) -> Corpus:
    if isinstance(documents, Corpus):
        return Corpus.create(directory, documents, source=documents.manifest.get("source", ""))
    source = str(Path(documents).resolve()) if isinstance(documents, (str, Path)) else ""
    return Corpus.create(directory, read_documents(documents), source=source)


def _collect_garbage(path: Path, state: dict) -> None:
    """Remove directories the live state does not name (old generations, crashed temporaries)."""
    live = {*live_dirs(state), STATE, LOCK}
    for entry in path.iterdir():
        if entry.name not in live and (entry.is_dir() or entry.name.startswith(TMP_PREFIX)):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _clear_crashed_build(path: Path) -> None:
    """Remove what a build killed before writing ``engine.json`` left; refuse foreign files."""
    ours = [e for e in path.iterdir() if e.name == LOCK or e.name.startswith(TMP_PREFIX)
            or (e / MANIFEST).exists()]
    foreign = [e.name for e in path.iterdir() if e not in ours]
    if foreign:
        raise FileExistsError(f"{path} is not empty and holds no engine ({', '.join(sorted(foreign)[:3])}...); "
                              "choose an empty directory")
    for entry in ours:
        if entry.name != LOCK:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
