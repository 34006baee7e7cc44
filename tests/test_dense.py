"""Dense FAISS with the real MiniLM: exact search equals brute force; ANN recall; add."""

import numpy as np
import pytest

from indexes.base import build_index, extend_index
from indexes.dense import DenseIndex
from retriever.core.errors import MissingResourceError, SpecError

QUERIES = ["statins and breast cancer", "vitamin D bone density", "red meat and colon cancer risk",
           "soy isoflavones", "arsenic in rice"]


def test_flat_equals_brute_force(slice_engine):
    index: DenseIndex = slice_engine.indexes["dense"]
    docs = list(slice_engine.corpus)
    doc_vectors = index.encoder.encode([d.contents for d in docs], normalize_embeddings=True)
    query_vectors = index.encode_queries(QUERIES)
    scores = query_vectors @ doc_vectors.T
    for ranking, row in zip(index.search(QUERIES, 10), scores):
        expected = [docs[i].doc_id for i in np.argsort(-row)[:10]]
        assert [d for d, _ in ranking] == expected
        assert [s for _, s in ranking] == pytest.approx(sorted(row, reverse=True)[:10], abs=1e-4)


@pytest.mark.slow
def test_hnsw_and_ivfpq_recall_against_flat(tmp_path, slice_engine):
    """HNSW and IVF-PQ against exact search on 400 documents (two more MiniLM encodings: over a minute).

    Covered by ``retriever index build work/nfcorpus --index "hnsw=dense(factory=HNSW32)" --index
    "ivfpq=dense(factory='IVF256,PQ16')"`` then ``retriever eval beir work/nfcorpus --dataset nfcorpus
    --using dense --using hnsw --using ivfpq`` (nDCG@10 and R@100 of each against Flat) and by
    ``retriever bench --dataset nfcorpus --systems "bm25;dense(factory=Flat);dense(factory=HNSW32)"``.
    """
    exact = slice_engine.indexes["dense"].search(QUERIES, 10)
    corpus = slice_engine.corpus
    hnsw = build_index("dense", corpus, tmp_path / "hnsw", {"factory": "HNSW32"})
    ivf = build_index("dense", corpus, tmp_path / "ivf", {"factory": "IVF8,PQ16"})

    def recall(rankings):
        return np.mean([len({d for d, _ in a} & {d for d, _ in b}) / 10 for a, b in zip(rankings, exact)])

    assert recall(hnsw.search(QUERIES, 10, ef_search=64)) >= 0.95
    assert recall(ivf.search(QUERIES, 10, nprobe=8)) >= 0.6
    assert ivf.settings["factory"] == "IVF8,PQ16" and hnsw.settings["dimension"] == 384


def test_add_finds_new_document(tmp_path, slice_engine):
    index = slice_engine.indexes["dense"]
    new = [{"_id": "NEW", "title": "Arsenic levels in brown rice", "text": "Rice contains inorganic arsenic."}]
    from retriever.core.corpus import document_from_record

    docs = [document_from_record(r) for r in new]
    grown = extend_index(index, docs, slice_engine.corpus.extend(tmp_path / "c2", docs), tmp_path / "d2")
    assert grown.search(["arsenic in rice"], 1)[0][0][0] == "NEW"
    assert grown.doc_count == index.doc_count + 1
    assert "NEW" not in [d for d, _ in index.search(["arsenic in rice"], 5)[0]]


def test_bad_settings_and_missing_model(tmp_path, slice_engine):
    with pytest.raises(SpecError, match="dense: unknown setting 'colour'"):
        build_index("dense", slice_engine.corpus, tmp_path / "x", {"colour": "red"})
    with pytest.raises(MissingResourceError, match="looked in"):
        build_index("dense", slice_engine.corpus, tmp_path / "y", {"model": "nobody/no-such-model"})
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
