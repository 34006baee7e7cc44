"""Datasets by ir_datasets id (e.g. ``beir/scifact/test``), strictly offline.

Used by :func:`retriever.core.datasets.load_dataset` for a name with a ``/`` that is
neither a directory nor a dataset under a data root. The ``ir_datasets`` package is
optional (``pip install 'retriever[irds]'``) and must already hold the dataset's files
under its home (``$IR_DATASETS_HOME``, default ``~/.ir_datasets``): any download it
would start is refused with a :class:`MissingResourceError` naming the URL.

The qrels become one split named after the id's last part when that is ``train``,
``dev``, ``validation`` or ``test`` (``beir/scifact/test`` -> split ``test``), else ``test``.

Example:
    >>> found = read_ir_dataset("beir/scifact/test")
    >>> found.split, len(found.queries)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from retriever.core.corpus import Document, document_from_record
from retriever.core.errors import MissingResourceError

SPLITS = ("train", "dev", "validation", "test")


@dataclass(frozen=True)
class IrDataset:
    """What an ir_datasets id holds: documents, query id -> text, and the qrels of one split."""

    name: str
    source: str
    documents: list[Document]
    queries: dict[str, str]
    split: str
    qrels: dict[str, dict[str, int]]


def read_ir_dataset(dataset_id: str) -> IrDataset:
    """Read an ir_datasets id from disk (see the module docstring).

    Raises:
        MissingResourceError: ir_datasets is not installed, the id is unknown, or its files are not on disk.
    """
    try:
        import ir_datasets
    except ImportError:
        raise MissingResourceError(f"{dataset_id!r} looks like an ir_datasets id, but ir_datasets is not installed "
                                   f"(pip install 'retriever[irds]'; its files must already be on disk)") from None
    try:
        source = ir_datasets.load(dataset_id)
    except KeyError:
        raise MissingResourceError(f"dataset {dataset_id!r} not found: not a directory, not under a data root, "
                                   f"and not an ir_datasets id") from None
    if not (source.has_docs() and source.has_queries() and source.has_qrels()):
        raise MissingResourceError(f"ir_datasets {dataset_id!r} lacks documents, queries or qrels")
    origin = f"ir_datasets:{dataset_id}"
    with _offline(dataset_id, ir_datasets.util.home_path()):
        documents = [document_from_record({"_id": d.doc_id, "title": getattr(d, "title", "") or "",
                                           "text": _text(d)}, origin, n)
                     for n, d in enumerate(source.docs_iter(), start=1)]
        queries = {q.query_id: _text(q) for q in source.queries_iter()}
        qrels: dict[str, dict[str, int]] = {}
        for qrel in source.qrels_iter():
            qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    last = dataset_id.rstrip("/").rsplit("/", 1)[-1]
    split = last if last in SPLITS else "test"
    return IrDataset(dataset_id.replace("/", "-"), origin, documents, queries, split, qrels)


def _text(record: Any) -> str:
    text = getattr(record, "text", None)
    return text if isinstance(text, str) else record.default_text()


@contextmanager
def _offline(dataset_id: str, home: Any) -> Iterator[None]:
    """Refuse every download ir_datasets would start inside the block."""
    from ir_datasets.util import download

    original = download.RequestsDownload.stream

    def refuse(self: Any) -> Any:
        raise MissingResourceError(f"ir_datasets {dataset_id!r} is not on disk under {home} (it would download "
                                   f"{self.url}); nothing is downloaded at run time: fetch it beforehand, or use "
                                   f"a BEIR directory with --dataset")

    download.RequestsDownload.stream = refuse
    try:
        yield
    except RuntimeError as e:
        refused = [err for _, err in (e.args[1] if len(e.args) > 1 else []) if isinstance(err, MissingResourceError)]
        if refused:
            raise refused[0] from None
        raise
    finally:
        download.RequestsDownload.stream = original
