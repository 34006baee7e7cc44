"""BM25 over a Lucene inverted index, built and searched with Anserini.

Documents are indexed as ``title + " " + text`` with Anserini's default English
analyzer (Porter stemming, stopwords), as in Anserini's BEIR "flat" indexes;
k1=0.9, b=0.4 by default, which reproduces Anserini's published NFCorpus figure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from indexes.base import Index
from indexes.jvm import java_class, java_list, java_path, lucene_directory, lucene_search, open_lucene_reader
from retriever.core.corpus import Corpus, Document
from retriever.core.errors import IndexFormatError, SpecError
from retriever.core.settings import OMIT, Schema, Setting, at_least, within
from retriever.core.storage import link_tree
from retriever.core.types import Ranking

LUCENE_DIR = "lucene"
RM3 = {"rm3_terms": 10, "rm3_weight": 0.5}  # Anserini's RM3 defaults, filled in when rm3_docs is set
SCHEMA = Schema("bm25", (
    Setting("k1", float, 0.9, at_least(0), "term-frequency saturation"),
    Setting("b", float, 0.4, within(0, 1), "document-length normalization"),
    Setting("rm3_docs", int, OMIT, at_least(0),
            "RM3 expansion from the first rm3_docs hits (Anserini; unset or 0: off); stores doc vectors"),
    Setting("rm3_terms", int, OMIT, at_least(1), "RM3: expansion terms (default 10)"),
    Setting("rm3_weight", float, OMIT, within(0, 1), "RM3: weight of the original query (default 0.5)"),
))
# Anserini skips a document whose contents are blank; an empty document is legal input, so it
# is indexed with contents that the analyzer turns into no term at all (it matches no query).
EMPTY_CONTENTS = "."


class BM25Index(Index):
    """Lucene BM25. Settings: ``k1``, ``b``, and RM3 pseudo-relevance feedback (``rm3_docs`` > 0, with
    ``rm3_terms`` and ``rm3_weight``: the index then stores document vectors, which RM3 reads).
    Search knob: ``threads`` for batches."""

    kind = "bm25"
    schema = SCHEMA
    combine = "merge"  # Lucene addIndexes: the merged index equals a single-process build

    def __init__(self, directory: Path, manifest: dict):
        super().__init__(directory, manifest)
        self._searcher = java_class("io.anserini.search.SimpleSearcher")(java_path(self.directory / LUCENE_DIR))
        self._searcher.set_bm25(float(self.settings["k1"]), float(self.settings["b"]))
        if self.settings.get("rm3_docs"):
            self._searcher.set_rm3(int(self.settings["rm3_terms"]), int(self.settings["rm3_docs"]),
                                   float(self.settings["rm3_weight"]))

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The schema's checks; with ``rm3_docs`` the other RM3 settings default to :data:`RM3`."""
        checked = SCHEMA.parse(settings)
        return {**RM3, **checked} if checked.get("rm3_docs") else checked

    @classmethod
    def write(cls, directory: Path, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        index_documents(directory / LUCENE_DIR, _contents_rows(corpus), directory / "_input",
                        extra_args=_args(settings))
        return dict(settings)

    def write_extended(self, directory: Path, docs: Sequence[Document]) -> dict[str, Any]:
        link_tree(self.directory / LUCENE_DIR, directory / LUCENE_DIR, exclude=("write.lock",))
        rows = ({"id": d.doc_id, "contents": _contents(d)} for d in docs)
        index_documents(directory / LUCENE_DIR, rows, directory / "_input", append=True,
                        extra_args=_args(self.settings))
        return dict(self.settings)

    @classmethod
    def merge_shards(cls, directory: Path, shards: Sequence[Index], settings: dict[str, Any],
                     base: Index | None = None) -> dict[str, Any]:
        if base is not None:
            link_tree(base.directory / LUCENE_DIR, directory / LUCENE_DIR, exclude=("write.lock",))
        add_segments(directory / LUCENE_DIR, [shard.directory / LUCENE_DIR for shard in shards])
        return dict(base.settings if base is not None else shards[0].settings)

    def search(self, queries: Sequence[str], k: int = 10, threads: int | None = None, **knobs: Any) -> list[Ranking]:
        if knobs:
            raise SpecError(f"unknown bm25 search knob(s): {', '.join(sorted(knobs))}; known: threads")
        if len(queries) == 1:
            return [_ranking(lucene_search(lambda: self._searcher.search(queries[0], k), queries[0]))]
        qids = [str(i) for i in range(len(queries))]
        threads = threads or os.cpu_count() or 1
        found = lucene_search(lambda: self._searcher.batch_search(java_list(list(queries)), java_list(qids), k,
                                                                  threads), max(queries, key=len))
        return [_ranking(found.get(qid)) for qid in qids]

    def close(self) -> None:
        self._searcher.close()


def index_documents(index_dir: Path, rows, input_dir: Path, append: bool = False,
                    extra_args: Sequence[str] = ()) -> int:
    """Write ``rows`` (Anserini JSON documents) to ``input_dir`` and index them into ``index_dir``.

    With ``append``, the rows are indexed into a fresh segment set that is then
    added to the existing index in ``index_dir`` (Lucene ``addIndexes``: the
    segments are copied, nothing is re-analysed). ``input_dir`` is removed
    afterwards. Shared by the BM25 and the impact index. Returns the number of rows indexed.

    Anserini logs a failed document (or a failed write, e.g. a full disk) instead of
    raising, so the number of documents in the index is counted afterwards and any
    difference fails the write.

    Raises:
        IndexFormatError: Lucene holds another number of documents than was given.
    """
    if append:
        fresh = input_dir.with_name(input_dir.name + "_segments")
        try:
            added = index_documents(fresh, rows, input_dir, extra_args=extra_args)
            add_segments(index_dir, [fresh])  # checks the count: before + added
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        return added
    input_dir.mkdir(parents=True)
    count = 0
    with open(input_dir / "docs.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    args = ["-collection", "JsonCollection", "-input", java_path(input_dir), "-index", java_path(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(os.cpu_count() or 1),
            "-quiet", *extra_args]
    try:
        java_class("io.anserini.index.IndexCollection").main(args)
    finally:
        shutil.rmtree(input_dir, ignore_errors=True)
    _check_count(index_dir, count)
    return count


def lucene_doc_count(index_dir: Path) -> int:
    """The number of live documents in the Lucene index at ``index_dir``.

    Raises:
        IndexFormatError: there is no readable Lucene index there.
    """
    directory, reader = open_lucene_reader(index_dir)
    try:
        return int(reader.numDocs())
    finally:
        reader.close()
        directory.close()


def _check_count(index_dir: Path, expected: int) -> None:
    found = lucene_doc_count(index_dir)
    if found != expected:
        raise IndexFormatError(f"{index_dir}: Lucene indexed {found} of {expected} documents (see the Lucene "
                               f"log above: a full disk, or a document it could not index); nothing was written")


def add_segments(index_dir: Path, sources: Sequence[Path]) -> int:
    """Append the segments of the Lucene indexes in ``sources`` (in order) to the index in ``index_dir``.

    Lucene ``addIndexes`` copies the segments; nothing is re-analysed. ``index_dir`` is created
    when it holds no index yet (a sharded build merging its shards). Returns the number of
    documents added; the index must then hold the documents it had before plus those.

    Raises:
        IndexFormatError: a source is no readable Lucene index, or the merged index holds
            another number of documents than before + added.
    """
    index_dir = Path(index_dir)
    before = lucene_doc_count(index_dir) if index_dir.is_dir() and any(index_dir.iterdir()) else 0
    added = sum(lucene_doc_count(path) for path in sources)
    config = java_class("org.apache.lucene.index.IndexWriterConfig")()
    config.setOpenMode(java_class("org.apache.lucene.index.IndexWriterConfig$OpenMode").CREATE_OR_APPEND)
    index_dir.mkdir(parents=True, exist_ok=True)
    target = lucene_directory(index_dir)
    opened = [lucene_directory(path) for path in sources]
    writer = java_class("org.apache.lucene.index.IndexWriter")(target, config)
    try:
        from jnius import cast

        for source in opened:
            writer.addIndexes(cast("org.apache.lucene.store.Directory", source))
        writer.commit()
    finally:
        writer.close()
        for source in opened:
            source.close()
        target.close()
    _check_count(index_dir, before + added)
    return added


def _args(settings: dict[str, Any]) -> list[str]:
    """Extra indexing arguments: RM3 reads the feedback documents' stored term vectors."""
    return ["-storeDocvectors"] if settings.get("rm3_docs") else []


def _contents_rows(corpus: Corpus):
    for batch in corpus.iter_batches():
        for doc in batch:
            yield {"id": doc.doc_id, "contents": _contents(doc)}


def _contents(doc: Document) -> str:
    return doc.contents if doc.contents.strip() else EMPTY_CONTENTS


def _ranking(scored_docs) -> Ranking:
    return [(d.docid, float(d.score)) for d in (scored_docs or [])]
