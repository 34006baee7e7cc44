"""Lucene BM25: Anserini's published NFCorpus figure, append == rebuild."""

import pytest

from retriever.core.metrics import aggregate
from indexes.base import build_index, extend_index, open_index
from retriever.core.corpus import Corpus


@pytest.fixture(scope="module")
def nfcorpus_bm25(tmp_path_factory, nfcorpus):
    root = tmp_path_factory.mktemp("bm25")
    corpus = Corpus.create(root / "corpus", nfcorpus.documents())
    return corpus, build_index("bm25", corpus, root / "bm25")


def test_reproduces_anserini_nfcorpus(nfcorpus, nfcorpus_bm25):
    _, index = nfcorpus_bm25
    queries, qrels = nfcorpus.split("test")
    rankings = index.search([q.text for q in queries.values()], 100)
    metrics = aggregate(qrels, dict(zip(queries, rankings)))
    assert metrics["nDCG@10"] == pytest.approx(0.3218, abs=0.003)
    assert index.manifest["settings"] == {"k1": 0.9, "b": 0.4}
    assert index.manifest["doc_count"] == 3633


def test_single_and_batch_search_agree(nfcorpus_bm25):
    _, index = nfcorpus_bm25
    queries = ["vitamin d deficiency", "breast cancer statins", "green tea"]
    batch = index.search(queries, 5)
    assert [index.search([q], 5)[0] for q in queries] == batch
    assert all(len(r) == 5 and r[0][1] >= r[-1][1] for r in batch)


def test_append_equals_rebuild(tmp_path, nfcorpus):
    docs = [doc for doc, _, _ in nfcorpus.documents()][:300]
    base = Corpus.create(tmp_path / "c1", docs[:250])
    full = Corpus.create(tmp_path / "call", docs)
    grown_corpus = base.extend(tmp_path / "c2", docs[250:])
    index = build_index("bm25", base, tmp_path / "i1")
    grown = extend_index(index, docs[250:], grown_corpus, tmp_path / "i2")
    rebuilt = build_index("bm25", full, tmp_path / "i3")
    queries = ["cholesterol", "cancer risk diet", "fish oil omega-3"]
    for a, b in zip(grown.search(queries, 20), rebuilt.search(queries, 20)):
        assert [d for d, _ in a] == [d for d, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-5)
    assert open_index(tmp_path / "i1").search(queries, 20) == index.search(queries, 20)  # old version intact
    assert grown.manifest["corpus_checksum"] == grown_corpus.checksum
    assert grown.manifest["doc_count"] == 300


def test_rm3_expands_queries_from_stored_document_vectors(tmp_path, nfcorpus, nfcorpus_bm25):
    """`bm25(rm3_docs=N)`: Anserini's RM3 over a Lucene index that stores document vectors; an add
    keeps storing them, so the grown index answers as a rebuild."""
    docs = [doc for doc, _, _ in nfcorpus.documents()][:300]
    base = Corpus.create(tmp_path / "c1", docs[:250])
    index = build_index("bm25", base, tmp_path / "rm3", {"rm3_docs": 5})
    assert index.settings == {"k1": 0.9, "b": 0.4, "rm3_docs": 5, "rm3_terms": 10, "rm3_weight": 0.5}
    plain = build_index("bm25", base, tmp_path / "plain")
    queries = ["vitamin d deficiency", "breast cancer statins", "green tea"]
    expanded = index.search(queries, 20)
    assert [index.search([q], 20)[0] for q in queries] == expanded  # batches expand too
    for with_rm3, without in zip(expanded, plain.search(queries, 20)):
        assert with_rm3 and [d for d, _ in with_rm3] != [d for d, _ in without]
    grown = extend_index(index, docs[250:], base.extend(tmp_path / "c2", docs[250:]), tmp_path / "rm3-grown")
    rebuilt = build_index("bm25", Corpus.create(tmp_path / "call", docs), tmp_path / "rm3-all", {"rm3_docs": 5})
    for a, b in zip(grown.search(queries, 20), rebuilt.search(queries, 20)):
        assert [d for d, _ in a] == [d for d, _ in b]
