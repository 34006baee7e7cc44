"""The corpus store: documents (id, title, text) in memory-mapped Arrow files.

A corpus directory holds ``manifest.json`` and one or more write-once Arrow IPC
parts. Adding documents writes a new directory that hard-links the old parts and
adds one part, so nothing already written is ever modified.

Example:
    >>> corpus = Corpus.create("work/corpus", read_beir_corpus("nfcorpus/corpus.jsonl"))
    >>> corpus["MED-10"].title
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa

from retriever.core.errors import IndexFormatError, InputError
from retriever.core.storage import check_sizes, file_sha256, link_tree, read_manifest, staging_dir, write_manifest

FORMAT_VERSION = 1
SCHEMA = pa.schema(
    [("_id", pa.string()), ("title", pa.string()), ("text", pa.string()), ("metadata", pa.string())]
)
_BATCH_ROWS = 8192
# Lucene refuses a term longer than this many UTF-8 bytes (and Anserini then silently skips the
# document and every one after it), so longer ids are rejected when the corpus is read.
MAX_ID_BYTES = 32766
# Parts whose bytes were checked in this process: (device, inode, size, mtime, sha256). A part is
# hard-linked into later generations, so it is hashed once, not once per generation.
_VERIFIED: set[tuple[int, int, int, int, str]] = set()


@dataclass(frozen=True)
class Document:
    """One document: a unique id, a title (may be empty) and a text."""

    doc_id: str
    title: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def contents(self) -> str:
        """Title and text joined, as lexical and dense encoders read them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text

    def to_beir(self) -> dict:
        """The BEIR ``corpus.jsonl`` row for this document."""
        row = {"_id": self.doc_id, "title": self.title, "text": self.text}
        if self.metadata:
            row["metadata"] = dict(self.metadata)
        return row


def document_from_record(record: Any, path: str | None = None, line: int | None = None) -> Document:
    """Validate one BEIR-style record (``_id``, ``title``?, ``text``) into a :class:`Document`.

    Raises:
        InputError: naming ``path`` and ``line`` when the record is not an object,
            has no or an empty ``_id``, or a field of the wrong type.
    """
    if isinstance(record, Document):
        record = record.to_beir()
    if not isinstance(record, Mapping):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", path, line)
    doc_id = record.get("_id")
    if doc_id is None:
        raise InputError("missing '_id'", path, line)
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str):
        raise InputError(f"'_id' must be a string, got {type(doc_id).__name__}", path, line)
    if not doc_id.strip():
        raise InputError("empty '_id'", path, line)
    id_bytes = len(doc_id.encode("utf-8", "surrogatepass"))
    if id_bytes > MAX_ID_BYTES:
        raise InputError(f"'_id' is {id_bytes} bytes long; ids may have at most {MAX_ID_BYTES} bytes "
                         f"(Lucene's term limit)", path, line)
    title = record.get("title") or ""
    text = record.get("text")
    if text is None:
        raise InputError(f"document {doc_id!r} has no 'text'", path, line)
    if not isinstance(title, str) or not isinstance(text, str):
        raise InputError(f"document {doc_id!r}: 'title' and 'text' must be strings", path, line)
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"document {doc_id!r}: 'metadata' must be an object", path, line)
    for name, value in (("_id", doc_id), ("title", title), ("text", text)):
        _check_unicode(value, name, doc_id, path, line)
    return Document(doc_id, title, text, dict(metadata))


def _check_unicode(value: str, field_name: str, doc_id: str, path: str | None, line: int | None) -> None:
    """Reject a string that cannot be written as UTF-8 (a lone surrogate such as ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        shown = doc_id.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")[:80]
        raise InputError(f"document {shown!r}: {field_name!r} holds a lone surrogate "
                         f"{value[e.start]!r} at character {e.start}, which is not valid Unicode text",
                         path, line) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed object)`` for each non-blank line of a JSONL file.

    Raises:
        InputError: on bytes that are not UTF-8 or a line that is not JSON, naming
            the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", str(path))
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not UTF-8 (byte {e.start}): {e.reason}", str(path), number) from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"malformed JSON: {e.msg} (column {e.colno})", str(path), number) from None


def read_beir_corpus(path: Path) -> Iterator[tuple[Document, str, int]]:
    """Yield ``(document, file, line)`` from a BEIR ``corpus.jsonl``, validating every line."""
    for number, record in read_jsonl(path):
        yield document_from_record(record, str(path), number), str(path), number


def located_documents(docs: Iterable[Any]) -> Iterator[tuple[Document, str | None, int | None]]:
    """Validated ``(document, file, line)`` triples from documents, BEIR records, or such triples."""
    for position, item in enumerate(docs, start=1):
        if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], Document):
            yield item
        else:
            yield document_from_record(item, "<documents>", position), "<documents>", position


class Corpus:
    """A read-only, memory-mapped document store with an id <-> row mapping.

    Rows are numbered 0..N-1 in insertion order; every index refers to documents
    by their id, and row order is the order indexes were built in.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory, kind="corpus", max_version=FORMAT_VERSION)
        parts = self.manifest.get("parts")
        if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("file"), str)
                                                  for p in parts):
            raise IndexFormatError(f"{self.directory / 'manifest.json'}: 'parts' is missing or malformed")
        if not isinstance(self.manifest.get("checksum"), str):
            raise IndexFormatError(f"{self.directory / 'manifest.json'}: 'checksum' is missing")
        check_sizes(self.directory, self.manifest)
        tables = [self._read_part(part) for part in parts]
        self._table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        self._row_of: dict[str, int] | None = None

    def _read_part(self, part: dict) -> pa.Table:
        """One Arrow part, memory-mapped, after checking its bytes against the manifest's sha256.

        A part is write-once (hard-linked into later generations), so its hash is checked
        once per process; garbage written into a part is reported, never served.
        """
        path = self.directory / part["file"]
        expected = (self.manifest.get("files") or {}).get(part["file"], {}).get("sha256")
        try:
            stat = path.stat()
            key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, expected or "")
            if expected and key not in _VERIFIED:
                if file_sha256(path) != expected:
                    raise IndexFormatError(f"{path}: checksum mismatch: the corpus part is damaged; "
                                           f"rebuild the engine (check with `retriever index verify`)")
                _VERIFIED.add(key)
            return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        except (OSError, pa.ArrowException) as e:
            raise IndexFormatError(f"{path}: cannot read the corpus part ({e}); "
                                   f"check with `retriever index verify`") from None

    def verify(self) -> list[str]:
        """Problems found by recomputing each part's content digest (empty when intact)."""
        problems = []
        for part in self.manifest["parts"]:
            try:
                table = pa.ipc.open_file(pa.memory_map(str(self.directory / part["file"]))).read_all()
                table.validate(full=True)
            except (OSError, pa.ArrowException) as e:
                problems.append(f"{self.directory / part['file']}: unreadable ({e})")
                continue
            if _content_digest(table) != part.get("sha256"):
                problems.append(f"{self.directory / part['file']}: content checksum mismatch")
        return problems

    @classmethod
    def open(cls, directory: Path) -> "Corpus":
        """Open a corpus directory written by :meth:`create` or :meth:`extend`."""
        return cls(directory)

    @classmethod
    def create(cls, directory: Path, docs: Iterable[Any], source: str = "") -> "Corpus":
        """Validate ``docs`` and write them to a new corpus ``directory``, atomically.

        Args:
            directory: where the corpus goes; must not exist yet.
            docs: :class:`Document` objects, BEIR records, or triples from
                :func:`read_beir_corpus`.
            source: where the documents came from, kept in the manifest.

        Raises:
            InputError: on a malformed record or a duplicate id (naming both places);
                nothing is written.
        """
        with staging_dir(Path(directory)) as tmp:
            part = _write_part(tmp / "part-00000.arrow", located_documents(docs), seen={})
            if part["rows"] == 0:
                raise InputError("the corpus is empty", source or None)
            _write_corpus_manifest(tmp, [part], source)
        return cls(directory)

    def extend(self, directory: Path, docs: Iterable[Any]) -> "Corpus":
        """Write this corpus plus ``docs`` to a new ``directory``; this one is unchanged.

        Raises:
            InputError: when a new id is empty, malformed or already present.
        """
        seen = {doc_id: ("the corpus", None) for doc_id in self.ids}
        parts = list(self.manifest["parts"])
        with staging_dir(Path(directory)) as tmp:
            link_tree(self.directory, tmp, exclude=("manifest.json",))
            part = _write_part(tmp / f"part-{len(parts):05d}.arrow", located_documents(docs), seen)
            if part["rows"] == 0:
                raise InputError("no documents to add")
            _write_corpus_manifest(tmp, parts + [part], self.manifest.get("source", ""),
                                   (self.directory, self.manifest))
        return Corpus(directory)

    def view(self, start: int, stop: int) -> "Corpus":
        """Rows ``start..stop-1`` as a read-only corpus sharing this one's memory map (a shard).

        The view keeps the parent's manifest and checksum: it is a part of this corpus, not a corpus
        of its own, and is what one worker of a sharded build indexes.
        """
        view = object.__new__(Corpus)
        view.directory, view.manifest = self.directory, self.manifest
        view._table, view._row_of = self._table.slice(start, max(stop - start, 0)), None
        return view

    def __len__(self) -> int:
        return self._table.num_rows

    @property
    def checksum(self) -> str:
        """sha256 over the parts' contents; indexes record it to detect a mismatched corpus."""
        return self.manifest["checksum"]

    @property
    def ids(self) -> list[str]:
        """Document ids in row order."""
        return self._table.column("_id").to_pylist()

    def row_of(self, doc_id: str) -> int:
        """The row of ``doc_id``. Raises ``KeyError`` when it is not in the corpus."""
        if self._row_of is None:
            self._row_of = {doc_id: row for row, doc_id in enumerate(self.ids)}
        return self._row_of[doc_id]

    def __contains__(self, doc_id: object) -> bool:
        try:
            self.row_of(doc_id)  # type: ignore[arg-type]
        except KeyError:
            return False
        return True

    def __getitem__(self, doc_id: str) -> Document:
        return self.rows([self.row_of(doc_id)])[0]

    def get_many(self, doc_ids: Sequence[str]) -> list[Document]:
        """Documents for ``doc_ids``, in the given order."""
        return self.rows([self.row_of(doc_id) for doc_id in doc_ids])

    def rows(self, rows: Sequence[int]) -> list[Document]:
        """Documents at the given row numbers, in the given order."""
        taken = self._table.take(pa.array(rows, type=pa.int64())).to_pylist()
        return [_document(r) for r in taken]

    def __iter__(self) -> Iterator[Document]:
        for batch in self._table.to_batches(max_chunksize=_BATCH_ROWS):
            for r in batch.to_pylist():
                yield _document(r)

    def iter_batches(self, size: int = _BATCH_ROWS, start: int = 0) -> Iterator[list[Document]]:
        """Documents from row ``start`` on, in lists of at most ``size``."""
        for offset in range(start, len(self), size):
            yield [_document(r) for r in self._table.slice(offset, size).to_pylist()]


def _document(row: dict) -> Document:
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    return Document(row["_id"], row["title"] or "", row["text"] or "", metadata)


def _content_digest(table: pa.Table) -> str:
    """The digest :func:`_write_part` computes, recomputed from a written part."""
    digest = hashlib.sha256()
    for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
        for row in batch.to_pylist():
            for name in SCHEMA.names:
                value = (row[name] or "").encode()
                digest.update(len(value).to_bytes(8, "little"))
                digest.update(value)
    return digest.hexdigest()


def _write_part(path: Path, docs: Iterable[tuple[Document, str | None, int | None]],
                seen: dict[str, tuple[str | None, int | None]]) -> dict:
    """Write one Arrow part, checking ids against ``seen`` (id -> where first seen)."""
    digest = hashlib.sha256()
    rows = 0
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:

        def flush() -> None:
            if columns["_id"]:
                writer.write_batch(pa.record_batch(columns, schema=SCHEMA))
                for values in columns.values():
                    values.clear()

        for doc, where, line in docs:
            if doc.doc_id in seen:
                first, first_line = seen[doc.doc_id]
                first_at = f"{first}:{first_line}" if first_line else first
                raise InputError(f"duplicate id {doc.doc_id!r} (first seen at {first_at})", where, line)
            seen[doc.doc_id] = (where, line)
            metadata = json.dumps(dict(doc.metadata), sort_keys=True) if doc.metadata else None
            for name, value in zip(SCHEMA.names, (doc.doc_id, doc.title, doc.text, metadata)):
                columns[name].append(value)
                digest.update(len((value or "").encode()).to_bytes(8, "little"))
                digest.update((value or "").encode())
            rows += 1
            if len(columns["_id"]) >= _BATCH_ROWS:
                flush()
        flush()
    return {"file": path.name, "rows": rows, "sha256": digest.hexdigest()}


def _write_corpus_manifest(directory: Path, parts: list[dict], source: str,
                           reuse: tuple[Path, dict] | None = None) -> None:
    checksum = hashlib.sha256("".join(p["sha256"] for p in parts).encode()).hexdigest()
    write_manifest(directory, "corpus", FORMAT_VERSION, reuse=reuse, doc_count=sum(p["rows"] for p in parts),
                   checksum=checksum, parts=parts, source=source)
