"""Topics in, TREC runs out: the files a batch search reads and writes.

Topics come from a TSV file (``qid<TAB>text`` per line), a BEIR ``queries.jsonl``,
or a dataset split (``DATASET[:SPLIT]``, e.g. ``scifact:test``: the split's queries,
i.e. those with qrels; ``DATASET`` alone: every query). Runs are TREC run files,
``qid Q0 docid rank score tag``, which ``ir_measures``, ``trec_eval`` and pyserini read.

Example:
    >>> topics = read_topics("scifact:test")
    >>> write_run("runs/scifact-bm25.trec", {"1": [("31715818", 12.3)]}, "bm25")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

from retriever.core.corpus import read_jsonl
from retriever.core.datasets import load_dataset
from retriever.core.errors import InputError
from retriever.core.types import Ranking


def read_topics(spec: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """Query id -> text from a topics file or a ``DATASET[:SPLIT]`` (see the module docstring).

    Raises:
        InputError: a malformed line, an empty or duplicate id, or a file with no topics.
        MissingResourceError: a dataset that is not found.
    """
    path = Path(spec)
    if path.is_file():
        topics = _read_jsonl_topics(path) if path.suffix == ".jsonl" else _read_tsv_topics(path)
        if not topics:
            raise InputError("no topics in file", str(path))
        return topics
    name, _, split = spec.partition(":")
    dataset = load_dataset(name, data_dir=data_dir)
    if not split:
        return {qid: q.text for qid, q in dataset.queries.items()}
    queries, _ = dataset.split(split)
    return {qid: q.text for qid, q in queries.items()}


def _read_tsv_topics(path: Path) -> dict[str, str]:
    topics: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            qid, tab, text = line.rstrip("\r\n").partition("\t")
            if not tab or not qid.strip() or not text.strip():
                raise InputError("expected 'query id<TAB>text'", str(path), number)
            if qid in topics:
                raise InputError(f"duplicate query id {qid!r}", str(path), number)
            topics[qid] = text
    return topics


def _read_jsonl_topics(path: Path) -> dict[str, str]:
    topics: dict[str, str] = {}
    for number, record in read_jsonl(path):
        qid = record.get("_id") if isinstance(record, dict) else None
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(qid, str) or not qid.strip() or not isinstance(text, str):
            raise InputError("expected a BEIR query {\"_id\": ..., \"text\": ...}", str(path), number)
        if qid in topics:
            raise InputError(f"duplicate query id {qid!r}", str(path), number)
        topics[qid] = text
    return topics


def write_run(path: str | Path, run: Mapping[str, Sequence[tuple[str, float]]], tag: str) -> Path:
    """Write a TREC run file: ``qid Q0 docid rank score tag`` (the tag made safe for one column)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = slug(tag)
    with open(path, "w", encoding="utf-8") as f:
        for qid, ranking in run.items():
            for rank, (doc_id, score) in enumerate(ranking, start=1):
                f.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    return path


def read_run(path: str | Path) -> dict[str, Ranking]:
    """Read a TREC run file back into query id -> ranking (file order)."""
    run: dict[str, list[tuple[str, float]]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise InputError(f"expected 6 fields 'qid Q0 docid rank score tag', got {len(fields)}",
                                 str(path), number)
            run.setdefault(fields[0], []).append((fields[2], float(fields[4])))
    return run


def slug(text: str) -> str:
    """``text`` reduced to characters safe in a file name and a run tag."""
    return re.sub(r"[^A-Za-z0-9_.^-]+", "_", text).strip("_")
