"""The writer: every change to an engine directory is one transaction.

A transaction takes the writer lock, reads the live state, hands out new generation
directories (recording each in ``.journal.json`` before it is created), and on success
replaces ``engine.json`` atomically. On any failure it removes what it created and the
previous state stays live and intact; after a crash, the next write removes what the
journal lists. ``build``, ``build_indexes`` and ``add`` are each one transaction.

Directories the new state no longer names are recorded as ``retired`` in ``engine.json``
and removed only when no reader holds a lease on a generation that used them (see
:class:`retriever.engine.state.Lease`); otherwise a later write (or :func:`collect`)
removes them. Nothing else in the engine directory is ever touched: a user's folder, a
symlink, a file.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from indexes.base import Index, build_index, canonical_spec, extend_index, open_index, parse_index_spec
from retriever.core.corpus import Corpus, Document, located_documents, read_beir_corpus
from retriever.core.errors import IndexFormatError, SpecError
from retriever.core.progress import progress
from retriever.core.storage import TMP_PREFIX, read_json, write_json_atomic
from retriever.engine.state import (FORMAT_VERSION, JOURNAL, LOCK, READERS, STATE, drop_leases, generation_dir,
                                    generation_of, live_dirs, locked, read_state, readers_of, write_state)

Documents = str | Path | Iterable[Any]
IndexBuilder = Callable[["Transaction", str, str, dict[str, Any], Corpus], Index]


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
             "specs": dict(previous.get("specs", {})), "retired": dict(previous.get("retired", {}))}
            if previous else
            {"format_version": FORMAT_VERSION, "generation": generation, "corpus": "", "indexes": {}, "specs": {},
             "retired": {}})
        self.created: list[str] = []

    def directory(self, name: str) -> Path:
        """This transaction's new directory for ``name`` (an index name, or ``corpus``), journaled."""
        directory = generation_dir(name, self.state["generation"])
        if directory not in self.created:
            self.created.append(directory)
            write_json_atomic(self.path / JOURNAL, {"generation": self.state["generation"], "dirs": self.created})
        return self.path / directory

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
        _recover(path)
        exists = (path / STATE).exists()
        if create and exists and not overwrite:
            raise FileExistsError(f"{path} already holds an engine; pass overwrite=True (--overwrite) to replace it")
        if not exists:
            if not create:
                read_state(path)  # raises: not an engine directory
            _refuse_foreign(path)
        previous = read_state(path) if exists else None
        tx = Transaction(path, previous)
        try:
            yield tx
            if previous:
                for directory in live_dirs(previous) - live_dirs(tx.state):
                    tx.state["retired"][directory] = previous["generation"]
            write_state(path, tx.state)
        except BaseException:
            _remove_created(path, tx.created)
            (path / JOURNAL).unlink(missing_ok=True)
            raise
        (path / JOURNAL).unlink(missing_ok=True)
        _collect(path, tx.state)


def collect(path: str | Path) -> bool:
    """Remove retired directories no reader uses any more; False when a writer is busy (nothing done)."""
    try:
        with locked(Path(path)):
            _collect(Path(path), read_state(Path(path)))
    except IndexFormatError:
        return False
    return True


def build(path: str | Path, documents: Documents | Corpus, indexes: Sequence[str], overwrite: bool = False,
          builder: "IndexBuilder | None" = None) -> None:
    """Build a new engine: store the documents, then build each index spec (one transaction).

    ``builder`` builds one index into the transaction (default: in this process; the Ray
    sharded build passes its own).
    """
    specs = parse_specs(indexes)
    builder = builder or build_here
    with transaction(Path(path), create=True, overwrite=overwrite) as tx:
        tx.state.update(indexes={}, specs={})
        corpus = tx.store_corpus(documents)
        for name, kind, settings in progress(specs, desc="building indexes", unit="index"):
            tx.put_index(name, builder(tx, name, kind, settings, corpus), canonical_spec(name, kind, settings))


def build_indexes(path: str | Path, indexes: Sequence[str], overwrite: bool = False,
                  builder: "IndexBuilder | None" = None) -> None:
    """Build more indexes over an engine's corpus (one transaction); ``builder`` as in :func:`build`."""
    specs = parse_specs(indexes)
    builder = builder or build_here
    with transaction(Path(path)) as tx:
        clashes = [name for name, _, _ in specs if name in tx.state["indexes"]]
        if clashes and not overwrite:
            raise FileExistsError(f"{path} already has an index named {clashes[0]!r}; pass overwrite=True")
        corpus = Corpus.open(tx.corpus_dir)
        for name, kind, settings in specs:
            tx.put_index(name, builder(tx, name, kind, settings, corpus), canonical_spec(name, kind, settings))


def build_here(tx: Transaction, name: str, kind: str, settings: dict[str, Any], corpus: Corpus) -> Index:
    """Build one index of ``tx`` in this process."""
    return build_index(kind, corpus, tx.directory(name), settings)


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


def parse_specs(indexes: Sequence[str]) -> list[tuple[str, str, dict[str, str]]]:
    """Parse and check index specs (settings included) before any work; names must be unique."""
    specs = [parse_index_spec(spec) for spec in indexes]
    if len({name for name, _, _ in specs}) != len(specs):
        raise SpecError(f"two indexes share a name in {list(indexes)}")
    return specs


def _store_documents(directory: Path, documents: Documents | Corpus) -> Corpus:
    if isinstance(documents, Corpus):
        return Corpus.create(directory, documents, source=documents.manifest.get("source", ""))
    source = str(Path(documents).resolve()) if isinstance(documents, (str, Path)) else ""
    return Corpus.create(directory, read_documents(documents), source=source)


def _collect(path: Path, state: dict) -> None:
    """Remove each retired directory once no reader holds a generation that used it (under the writer lock)."""
    retired = dict(state.get("retired", {}))
    for directory, last in list(retired.items()):
        first = generation_of(directory)
        if first is not None and readers_of(path, first, int(last)):
            continue
        entry = path / directory
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        del retired[directory]
    if retired != state.get("retired", {}):
        write_state(path, {**state, "retired": retired})
    drop_leases(path, below=state["generation"])


def _recover(path: Path) -> None:
    """Remove what a write that crashed left: the directories its journal lists, their staging copies."""
    journal = path / JOURNAL
    if journal.exists():
        try:
            recorded = read_json(journal)
            names = [d for d in recorded.get("dirs", []) if isinstance(d, str) and generation_of(d) is not None]
        except (IndexFormatError, AttributeError):
            names = []
        _remove_created(path, names)
    for entry in path.iterdir():
        if entry.name.startswith((f"{TMP_PREFIX}{STATE}-", f"{TMP_PREFIX}{JOURNAL}-")) and entry.is_file():
            entry.unlink()
    journal.unlink(missing_ok=True)


def _remove_created(path: Path, names: Sequence[str]) -> None:
    """Remove the generation directories ``names`` (and their staging copies); never a symlink."""
    live = live_dirs(read_state(path)) if (path / STATE).exists() else set()
    for entry in path.iterdir():
        for name in names:
            if name in live:
                continue
            if entry.name == name or entry.name.startswith(f"{TMP_PREFIX}{name}-"):
                if entry.is_symlink() or not entry.is_dir():
                    continue
                shutil.rmtree(entry)


def _refuse_foreign(path: Path) -> None:
    """A directory without ``engine.json`` may hold only the writer's own files; else refuse to build there."""
    foreign = [e.name for e in path.iterdir() if e.name not in (LOCK, JOURNAL, READERS)]
    if foreign:
        raise FileExistsError(f"{path} is not empty and holds no engine ({', '.join(sorted(foreign)[:3])}"
                              f"{'...' if len(foreign) > 3 else ''}); choose an empty directory")
