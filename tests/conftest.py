"""Shared fixtures: real data from ../shared/data, small slices, engines built once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("RETRIEVER_QUIET", "1")

from eval.datasets import data_roots, load_dataset  # noqa: E402

SLICE_DOCS = 400


def _shared_data() -> Path:
    for root in data_roots():
        if (root / "nfcorpus" / "corpus.jsonl").is_file():
            return root
    pytest.exit("../shared/data with nfcorpus/ is required for the tests", returncode=2)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _shared_data()


@pytest.fixture(scope="session")
def nfcorpus():
    return load_dataset("nfcorpus")


@pytest.fixture(scope="session")
def nfcorpus_slice(tmp_path_factory, nfcorpus) -> Path:
    """A BEIR-layout slice of NFCorpus: the test queries' relevant documents first, up to SLICE_DOCS docs.

    Returns the slice's directory (corpus.jsonl, queries.jsonl, qrels/test.tsv).
    """
    queries, qrels = nfcorpus.split("test")
    chosen_queries = sorted(qrels)[:40]
    wanted = {d for q in chosen_queries for d in qrels[q]}
    docs = [doc for doc, _, _ in nfcorpus.documents()]
    picked = [d for d in docs if d.doc_id in wanted][: SLICE_DOCS // 2]
    picked += [d for d in docs if d.doc_id not in wanted][: SLICE_DOCS - len(picked)]
    keep = {d.doc_id for d in picked}
    out = tmp_path_factory.mktemp("nfcorpus-slice")
    with open(out / "corpus.jsonl", "w") as f:
        for doc in picked:
            f.write(json.dumps(doc.to_beir()) + "\n")
    with open(out / "queries.jsonl", "w") as f:
        for qid in chosen_queries:
            f.write(json.dumps({"_id": qid, "text": queries[qid].text}) + "\n")
    (out / "qrels").mkdir()
    with open(out / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid in chosen_queries:
            for doc_id, score in qrels[qid].items():
                if doc_id in keep:
                    f.write(f"{qid}\t{doc_id}\t{score}\n")
    return out


@pytest.fixture(scope="session")
def slice_engine(tmp_path_factory, nfcorpus_slice):
    """An engine with BM25 and exact dense (real MiniLM) over the NFCorpus slice; built once."""
    from retriever.engine import Engine

    return Engine.build(tmp_path_factory.mktemp("engines") / "slice", nfcorpus_slice / "corpus.jsonl",
                        indexes=["bm25", "dense"])
