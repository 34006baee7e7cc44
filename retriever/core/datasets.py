"""Where evaluation data lives, BEIR layout in and out, and multi-hop distractor files -> BEIR layout.

A dataset name resolves against data roots in this order: ``--data-dir``, the
``RETRIEVER_DATA`` environment variable, then ``../shared/data`` (relative to the
working directory, then to this checkout). BEIR's official zip is downloaded only
when asked (``--download``).

Multi-hop sets stored in HotpotQA's distractor format (``id, question, answer,
type, supporting_facts{title, sent_id}, context{title, sentences}``, optionally
``answer_aliases``) become BEIR-shaped datasets with :func:`distractor_to_beir`:
corpus = the union of the context paragraphs pooled over all questions (id =
title), queries = the questions (answer, aliases, type, hop count and supporting
facts in ``metadata``), qrels = the supporting titles. Three are known by name
(:data:`DISTRACTOR_SETS`): ``hotpotqa-distractor`` (HotpotQA dev), ``musique``
(MuSiQue-Ans dev, titles made unique across the file) and ``2wikimultihopqa``;
any other file in the format loads with :func:`distractor_to_beir` directly.

Splits are deterministic. ``hotpotqa-distractor``: question ids sorted, shuffled
with ``random.Random(SPLIT_SEED)``, the first ``TEST_SIZE`` form ``test`` and the
rest ``dev``. Every other set: ``all`` (every question), and ``dev`` / ``test``
halves drawn the same way within each question type, so both halves keep the
type (or hop-count) mix; tune on ``dev``, report ``test`` (or ``all`` when nothing
was tuned on the set).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from retriever.core.corpus import Document, document_from_record, read_beir_corpus, read_jsonl
from retriever.core.errors import InputError, MissingResourceError
from retriever.core.storage import staging_dir

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
HOTPOT = "hotpotqa-distractor"
SPLIT_SEED = 2026
TEST_SIZE = 600
# name -> (folder under a data root, file pattern): multi-hop sets in the distractor format
DISTRACTOR_SETS = {HOTPOT: ("hotpotqa", "hotpot_dev_distractor*.jsonl"),
                   "musique": ("musique", "musique_ans_dev*.jsonl"),
                   "2wikimultihopqa": ("2wikimultihopqa", "2wiki_dev*.jsonl")}
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Query:
    """A query: id, text and free-form metadata (e.g. a gold answer)."""

    query_id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> list[str]:
        """The gold answer and its ``answer_aliases`` (empty when the query has no answer)."""
        if "answer" not in self.metadata:
            return []
        return [str(self.metadata["answer"]), *(str(a) for a in self.metadata.get("answer_aliases") or [])]


@dataclass
class Dataset:
    """A dataset in BEIR shape: documents, queries and qrels per split."""

    name: str
    source: str
    queries: dict[str, Query]
    qrels: dict[str, Qrels]
    _documents: list[Document] | None = None
    _corpus_file: Path | None = None

    def documents(self) -> Iterator[tuple[Document, str | None, int | None]]:
        """Validated ``(document, file, line)`` triples, as the corpus store takes them."""
        if self._corpus_file is not None:
            yield from read_beir_corpus(self._corpus_file)
        else:
            for position, doc in enumerate(self._documents or [], start=1):
                yield doc, self.source, position

    @property
    def splits(self) -> list[str]:
        return sorted(self.qrels)

    def split(self, name: str) -> tuple[dict[str, Query], Qrels]:
        """Queries that have qrels in split ``name``, and those qrels."""
        if name not in self.qrels:
            raise InputError(f"dataset {self.name!r} has no split {name!r}; it has {', '.join(self.splits)}")
        qrels = self.qrels[name]
        missing = [qid for qid in qrels if qid not in self.queries]
        if missing:
            raise InputError(f"{len(missing)} query id(s) in the {name} qrels have no query text, e.g. {missing[0]!r}",
                             self.source)
        return {qid: self.queries[qid] for qid in sorted(qrels)}, qrels


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Data roots in resolution order (see the module docstring)."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get("RETRIEVER_DATA"):
        roots.append(Path(os.environ["RETRIEVER_DATA"]))
    roots += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]
    return list(dict.fromkeys(r.resolve() for r in roots))


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False) -> Dataset:
    """Load a dataset by name (or by a directory path) in BEIR layout.

    Args:
        name: ``nfcorpus``, a name in :data:`DISTRACTOR_SETS` (``hotpotqa-distractor``, ``musique``,
            ``2wikimultihopqa``), any BEIR name, a directory, or an ir_datasets id such as
            ``beir/scifact/test`` (offline: see :mod:`retriever.core.irds`).
        data_dir: a data root to look in first.
        download: fetch BEIR's official zip when the dataset is not on disk.

    Raises:
        MissingResourceError: not found (the message lists the places looked in).
    """
    if Path(name).is_dir():
        return load_beir(Path(name))
    roots = data_roots(data_dir)
    for root in roots:
        if (root / name / "corpus.jsonl").is_file():
            return load_beir(root / name, name)
    if name in DISTRACTOR_SETS:
        folder, pattern = DISTRACTOR_SETS[name]
        for root in roots:
            found = sorted((root / folder).glob(pattern))
            if found:
                return distractor_to_beir(found[0], name)
    looked = "; ".join(str(r / name) for r in roots)
    if download:
        return load_beir(_download_beir(name, roots[0]), name)
    if "/" in name:
        from retriever.core.irds import read_ir_dataset

        found = read_ir_dataset(name)
        return Dataset(found.name, found.source, {qid: Query(qid, text) for qid, text in found.queries.items()},
                       {found.split: found.qrels}, _documents=found.documents)
    raise MissingResourceError(f"dataset {name!r} not found; looked in: {looked}. Pass --data-dir, set "
                               f"RETRIEVER_DATA, or fetch BEIR's official zip once with 'retriever index build "
                               f"ENGINE_DIR --dataset {name} --download'.")


def load_beir(directory: Path, name: str | None = None) -> Dataset:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/*.tsv`` from a BEIR directory."""
    directory = Path(directory)
    queries = {}
    path = directory / "queries.jsonl"
    for number, record in read_jsonl(path):
        query = _query_from_record(record, str(path), number)
        if query.query_id in queries:
            raise InputError(f"duplicate query id {query.query_id!r}", str(path), number)
        queries[query.query_id] = query
    qrels = {p.stem: read_qrels(p) for p in sorted((directory / "qrels").glob("*.tsv"))}
    return Dataset(name or directory.name, str(directory), queries, qrels, _corpus_file=directory / "corpus.jsonl")


def read_qrels(path: Path) -> Qrels:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``) into ``{qid: {docid: score}}``."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if number == 1 and fields[0] == "query-id":
                continue
            if not line.strip():
                continue
            if len(fields) != 3:
                raise InputError(f"expected 3 tab-separated fields, got {len(fields)}", str(path), number)
            try:
                qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
            except ValueError:
                raise InputError(f"score {fields[2]!r} is not an integer", str(path), number) from None
    return qrels


def _query_from_record(record: Any, path: str, line: int) -> Query:
    if not isinstance(record, dict):
        raise InputError("expected a JSON object", path, line)
    query_id, text = record.get("_id"), record.get("text")
    if not isinstance(query_id, str) or not query_id.strip():
        raise InputError("missing or empty '_id'", path, line)
    if not isinstance(text, str):
        raise InputError(f"query {query_id!r} has no 'text'", path, line)
    return Query(query_id, text, record.get("metadata") or {})


def hotpot_file(data_dir: str | Path) -> Path:
    """The one HotpotQA distractor file (``*distractor*.json[l]``) in ``data_dir`` or ``data_dir/hotpotqa``.

    Only ``data_dir`` is searched (no other data root), so the file a user named is the one read.

    Raises:
        MissingResourceError: no such file there, or several.
    """
    root = Path(data_dir)
    found = sorted({p for folder in (root, root / "hotpotqa") for pattern in ("*distractor*.jsonl", "*distractor*.json")
                    for p in folder.glob(pattern) if p.is_file()})
    if len(found) != 1:
        what = f"several ({', '.join(p.name for p in found)}): keep one" if found else "none"
        raise MissingResourceError(f"looked for one HotpotQA distractor file (*distractor*.jsonl, JSON lines) in "
                                   f"{root} and {root / 'hotpotqa'}; found {what}")
    return found[0]


def distractor_to_beir(path: Path, name: str) -> Dataset:
    """Convert a multi-hop file in HotpotQA's distractor format into a BEIR-shaped :class:`Dataset`.

    Args:
        path: the JSONL file (one question per line).
        name: the dataset's name; ``hotpotqa-distractor`` keeps its historical split and its
            sentence joining (HotpotQA's sentences carry their own leading spaces).

    Raises:
        InputError: a record not in the format, a duplicate question id, a supporting title
            missing from the question's context, or a title naming two different paragraphs.
    """
    path = Path(path)
    documents: dict[str, Document] = {}
    queries: dict[str, Query] = {}
    qrels: Qrels = {}
    for number, record in read_jsonl(path):
        try:
            qid, question, context = record["id"], record["question"], record["context"]
            titles, paragraphs = context["title"], context["sentences"]
            support = record["supporting_facts"]
            support_titles, sent_ids = support["title"], support["sent_id"]
        except (KeyError, TypeError) as e:
            raise InputError(f"not a HotpotQA distractor record (missing {e})", str(path), number) from None
        if qid in queries:
            raise InputError(f"duplicate question id {qid!r}", str(path), number)
        missing = [t for t in support_titles if t not in titles]
        if missing:
            raise InputError(f"supporting title {missing[0]!r} is not in the question's context", str(path), number)
        for title, paragraph in zip(titles, paragraphs):
            text = "".join(paragraph) if name == HOTPOT else _join_sentences(paragraph)
            known = documents.get(title)
            if known is None:
                documents[title] = document_from_record({"_id": title, "title": title, "text": text}, str(path), number)
            elif name != HOTPOT and known.text != text:
                raise InputError(f"title {title!r} names two different paragraphs; titles must be document ids",
                                 str(path), number)
        hop_titles = list(dict.fromkeys(support_titles))
        queries[qid] = Query(qid, question, {
            "answer": record.get("answer", ""), "answer_aliases": list(record.get("answer_aliases") or []),
            "type": record.get("type", ""), "level": record.get("level", ""), "hops": len(hop_titles),
            "supporting_facts": [[t, s] for t, s in zip(support_titles, sent_ids)]})
        qrels[qid] = {title: 1 for title in hop_titles}
    return Dataset(name, str(path), queries, _splits(name, queries, qrels), _documents=list(documents.values()))


def _join_sentences(sentences: list[str]) -> str:
    """A paragraph from its sentences, with a space between two that do not carry one."""
    text = ""
    for sentence in sentences:
        if text and not text[-1].isspace() and not sentence[:1].isspace():
            text += " "
        text += sentence
    return text


def _splits(name: str, queries: dict[str, Query], qrels: Qrels) -> dict[str, Qrels]:
    """The fixed splits (see the module docstring)."""
    if name == HOTPOT:
        ids = sorted(queries)
        random.Random(SPLIT_SEED).shuffle(ids)
        test = set(ids[:TEST_SIZE])
        return {"test": {q: qrels[q] for q in sorted(test)}, "dev": {q: qrels[q] for q in sorted(set(ids) - test)}}
    dev = _drawn_by_type(queries, lambda size: size // 2, SPLIT_SEED)
    return {"all": {q: qrels[q] for q in sorted(queries)}, "dev": {q: qrels[q] for q in sorted(dev)},
            "test": {q: qrels[q] for q in sorted(set(queries) - dev)}}


def hold_out(dataset: Dataset, split: str, share: float, seed: int) -> Dataset:
    """``dataset`` with ``split`` also cut in two, by question type: ``<split>-fit`` and ``<split>-held``.

    Within each type (sorted), the split's sorted question ids are shuffled with one
    ``random.Random(seed)`` and the first ``round(share x n)`` are held out: a model is
    trained on ``-fit`` and its settings chosen on ``-held``, never on questions it saw.

    Raises:
        InputError: an unknown split, or a share outside (0, 1).
    """
    queries, qrels = dataset.split(split)
    if not 0 < share < 1:
        raise InputError(f"--hold-out share must be between 0 and 1 (exclusive), got {share}")
    held = _drawn_by_type(queries, lambda size: round(share * size), seed)
    cut = {f"{split}-fit": {q: qrels[q] for q in sorted(set(qrels) - held)},
           f"{split}-held": {q: qrels[q] for q in sorted(held)}}
    return replace(dataset, qrels={**dataset.qrels, **cut})


def _drawn_by_type(queries: dict[str, Query], count: Callable[[int], int], seed: int) -> set[str]:
    """Question ids drawn within each type: the types in sorted order, each type's sorted ids shuffled
    with one ``random.Random(seed)``, and the first ``count(size of the type)`` of each kept."""
    by_type: dict[str, list[str]] = {}
    for qid in sorted(queries):
        by_type.setdefault(str(queries[qid].metadata.get("type", "")), []).append(qid)
    drawn: set[str] = set()
    rng = random.Random(seed)
    for kind in sorted(by_type):
        ids = by_type[kind]
        rng.shuffle(ids)
        drawn.update(ids[:count(len(ids))])
    return drawn


def write_beir(dataset: Dataset, directory: Path) -> Path:
    """Write ``dataset`` to ``directory`` in BEIR layout (atomically)."""
    with staging_dir(Path(directory)) as tmp:
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
            for doc, _, _ in dataset.documents():
                f.write(json.dumps(doc.to_beir(), ensure_ascii=False) + "\n")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            for query in dataset.queries.values():
                row = {"_id": query.query_id, "text": query.text, "metadata": query.metadata}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        (tmp / "qrels").mkdir()
        for split, qrels in dataset.qrels.items():
            with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
                f.write("query-id\tcorpus-id\tscore\n")
                for qid, docs in qrels.items():
                    for doc_id, score in docs.items():
                        f.write(f"{qid}\t{doc_id}\t{score}\n")
    return Path(directory)


def _download_beir(name: str, root: Path) -> Path:
    """Download and unpack BEIR's official zip for ``name`` into ``root`` (explicit opt-in only)."""
    url = BEIR_URL.format(name=name)
    target = root / name
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f".{name}.zip.part"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as e:
        archive.unlink(missing_ok=True)
        raise MissingResourceError(f"could not download {url}: {e}. Offline? Put the dataset in BEIR "
                                   f"layout under {target} instead.") from None
    with staging_dir(target) as tmp, zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp)
        inner = tmp / name
        if inner.is_dir():
            for entry in inner.iterdir():
                entry.rename(tmp / entry.name)
            inner.rmdir()
    archive.unlink()
    return target
