"""The inference-free learned sparse index: encoder pooling, IDF queries, Lucene and Seismic backends,
training, bad input, and the proof that no model runs at query time.

Quality and speed on the full datasets are measured by ``retriever eval sparse`` and
``retriever bench`` (see the README section "Learned sparse index").
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from indexes.sparse.backends import QUERY_SCALE, SeismicBackend
from indexes.sparse.encoder import DEFAULT_MODEL, DocEncoder, resolve_sparse_model
from indexes.sparse.queries import (QUERY_WEIGHTS_FILE, QueryEncoder, VocabularyMismatchError, read_query_weights,
                                    vocabulary_checksum, write_query_weights)
from indexes.sparse.vectors import SparseVectors, quantize
from retriever.api import Engine
from retriever.core.errors import InputError, MissingResourceError, SpecError
from retriever.core.storage import file_table

MODEL = DEFAULT_MODEL
QUERIES = ["statins and breast cancer", "vitamin D and bone health", "fish oil and the heart",
           "gluten sensitivity", "sugar and diabetes", "green tea catechins", "breast cancer survival",
           "cholesterol lowering diet", "processed meat and colon cancer", "soy and prostate cancer"]


@pytest.fixture(scope="session")
def encoder():
    return DocEncoder.load(MODEL, max_length=128)


@pytest.fixture(scope="session")
def sparse_engine(tmp_path_factory, nfcorpus_slice):
    """BM25 and the sparse index (SPLADE-tiny, Lucene impacts) over the 400-document NFCorpus slice."""
    return Engine.build(tmp_path_factory.mktemp("sparse") / "slice", nfcorpus_slice / "corpus.jsonl",
                        indexes=["bm25", "sparse(max_length=128)"])


def test_pooling_matches_hand_computation(encoder, nfcorpus):
    docs = [doc for doc, _, _ in nfcorpus.documents()][:3]
    texts = [d.contents for d in docs]
    vectors = encoder.encode_document(texts, [d.doc_id for d in docs])
    batch = encoder.tokenize(texts)
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "keep"}
        logits = encoder.model(**inputs).logits  # the model's own MLM head, tokens x vocabulary
    for i in range(3):
        tokens = batch["input_ids"][i][batch["keep"][i]].tolist()
        assert encoder.tokenizer.cls_token_id not in tokens and encoder.tokenizer.sep_token_id not in tokens
        expected = torch.log1p(torch.relu(logits[i][batch["keep"][i]])).max(0).values.numpy()
        dense = np.zeros(encoder.vocab_size, dtype=np.float32)
        terms, weights = vectors.row(i)
        dense[terms] = weights
        np.testing.assert_allclose(dense, expected, atol=1e-5)
        assert batch["keep"][i].sum() == batch["attention_mask"][i].sum() - 2  # only [CLS] and [SEP] dropped
    assert vectors.ids == [d.doc_id for d in docs] and 30 < vectors.nnz_per_doc.mean() < 1000


def test_weights_of_a_column_subset_have_the_same_values_and_gradient(encoder, nfcorpus):
    texts = [doc.contents for doc, _, _ in list(nfcorpus.documents())[:2]]
    batch = encoder.tokenize(texts)
    with torch.no_grad():
        heaviest = encoder.weights(batch)[0].topk(3).indices
    terms = torch.cat([heaviest, torch.tensor(encoder.tokenizer.convert_tokens_to_ids(["the", "zebra"]))])
    results = []
    for subset in (False, True):
        encoder.model.zero_grad()
        weights = encoder.weights(batch, terms) if subset else encoder.weights(batch)[:, terms]
        (weights ** 2).sum().backward()
        results.append((weights.detach(), encoder.model.bert.embeddings.word_embeddings.weight.grad.clone()))
    encoder.model.zero_grad()
    assert (results[0][0][0, :3] > 0).all()
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_dev_evaluation_on_query_terms_equals_a_full_encoding(slice_engine, nfcorpus_slice):
    """Training's dev evaluation encodes only the dev queries' terms: same rankings as whole vectors."""
    from retriever.core.datasets import load_dataset
    from retriever.core.metrics import aggregate
    from indexes.sparse.backends import ExactBackend
    from retriever.train.sparse.evaluation import MEASURES, DevSet
    from indexes.sparse.index import encode_corpus

    short = DocEncoder.load(MODEL, max_length=64)
    dev = DevSet.build(short, slice_engine.corpus, load_dataset(str(nfcorpus_slice)).split("test"), max_length=64)
    restricted = dev.evaluate(short)
    full = encode_corpus(short, slice_engine.corpus.iter_batches(1000))
    rankings = ExactBackend(full).search([dev.query_encoder.encode_query(t) for t in dev.queries.values()], 100)
    expected = aggregate(dev.qrels, dict(zip(dev.queries, rankings)), MEASURES)
    assert restricted["nDCG@10"] == round(expected["nDCG@10"], 4) and restricted["R@100"] == round(expected["R@100"], 4)
    assert abs(restricted["nnz"] - full.nnz_per_doc.mean()) < 0.15 * full.nnz_per_doc.mean()


def test_dev_evaluation_with_a_lexical_part_scores_what_the_lexical_index_scores(slice_engine, nfcorpus_slice):
    """``train sparse --set lexical=b`` selects on learned + b x word-piece BM25: the index's ``lexical=b`` vectors."""
    from retriever.core.datasets import load_dataset
    from retriever.core.metrics import aggregate
    from indexes.sparse.backends import ExactBackend
    from retriever.train.sparse.evaluation import MEASURES, DevSet
    from indexes.sparse.index import _add_lexical, encode_corpus

    short = DocEncoder.load(MODEL, max_length=64)
    judged = load_dataset(str(nfcorpus_slice)).split("test")
    dev = DevSet.build(short, slice_engine.corpus, judged, max_length=64, lexical=2)
    full = encode_corpus(short, slice_engine.corpus.iter_batches(1000))
    mixed = _add_lexical(full, dev.query_encoder, [d.contents for d in slice_engine.corpus], {"lexical": 2})
    queries = [dev.query_encoder.encode_query(t) for t in dev.queries.values()]
    expected = aggregate(dev.qrels, dict(zip(dev.queries, ExactBackend(mixed).search(queries, 100))), MEASURES)
    learned = aggregate(dev.qrels, dict(zip(dev.queries, ExactBackend(full).search(queries, 100))), MEASURES)
    restricted = dev.evaluate(short)
    assert restricted["nDCG@10"] == round(expected["nDCG@10"], 4) != round(learned["nDCG@10"], 4)
    assert dev.lexical.shape == (len(slice_engine.corpus), short.vocab_size)


def test_pruning_keeps_the_heaviest_terms(nfcorpus):
    pruned = DocEncoder.load(MODEL, max_length=64, top_k=20, threshold=0.5)
    full = DocEncoder.load(MODEL, max_length=64)
    text = next(iter(nfcorpus.documents()))[0].contents
    terms, weights = pruned.encode_document([text]).row(0)
    all_terms, all_weights = full.encode_document([text]).row(0)
    assert len(terms) == 20 and weights.min() >= 0.5
    assert set(terms) == set(all_terms[np.argsort(-all_weights)[:20]])


def test_idf_weighting_by_hand(encoder):
    tokenizer = encoder.tokenizer.backend_tokenizer
    docs = ["cancer risk and diet", "cancer cells", "green tea"]
    queries = QueryEncoder.count(tokenizer, docs, encoder.special_ids)
    cancer, tea, unseen = (encoder.tokenizer.convert_tokens_to_ids(t) for t in ("cancer", "tea", "zebra"))
    assert (queries.doc_count, queries.df[cancer], queries.df[tea], queries.df[unseen]) == (3, 2, 1, 0)
    assert math.isclose(queries.idf[cancer], math.log(1 + (3 - 2 + 0.5) / (2 + 0.5)), rel_tol=1e-6)
    terms, weights = queries.encode_query("Cancer cancer TEA")  # lower-cased, repeated tokens counted once
    assert sorted(terms.tolist()) == sorted([cancer, tea])
    np.testing.assert_allclose(weights, queries.idf[terms])
    assert queries.encode_query("[CLS] [SEP]")[0].size == 0  # special tokens are never query terms
    more = queries.extended(["green tea and cancer"])
    assert (more.doc_count, more.df[cancer], more.df[tea]) == (4, 3, 2)


def test_query_term_pruning_and_factors(encoder):
    docs = ["cancer risk and diet", "cancer cells", "green tea", "tea and diet"]
    queries = QueryEncoder.count(encoder.tokenizer.backend_tokenizer, docs, encoder.special_ids)
    cancer, tea, the = (encoder.tokenizer.convert_tokens_to_ids(t) for t in ("cancer", "tea", "the"))
    full_terms, full_weights = queries.encode_query("the cancer tea")
    assert sorted(full_terms.tolist()) == sorted([cancer, tea, the])
    floor = float(queries.idf[cancer]) + 1e-3  # "the" (df 0) weighs most, then cancer and tea (df 2)
    assert queries.with_options(min_weight=floor).encode_query("the cancer tea")[0].tolist() == [the]
    assert queries.with_options(max_terms=1).encode_query("the cancer tea")[0].tolist() == [the]
    factors = np.ones(queries.vocab_size, dtype=np.float32)
    factors[[cancer, the]] = [3.0, 0.0]  # a zero factor removes the term
    terms, weights = queries.with_options(factors).encode_query("the cancer tea")
    assert sorted(terms.tolist()) == sorted([cancer, tea])
    np.testing.assert_allclose(weights, queries.idf[terms] * factors[terms])


def test_quantization_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 3, 1000).astype(np.float32)
    impacts = quantize(weights, 100)
    assert impacts.dtype == np.int32 and np.abs(impacts / 100 - weights).max() <= 0.005 + 1e-6
    assert quantize(np.array([0.004, 0.006]), 100).tolist() == [0, 1]
    rows = [(rng.choice(50, 5, replace=False), rng.uniform(0.1, 2, 5)) for _ in range(4)] + [(np.zeros(0), np.zeros(0))]
    vectors = SparseVectors.from_rows(["a", "b", "c", "d", "e"], rows, 50)
    vectors.write(tmp_path / "v.arrow")
    back = SparseVectors.read(tmp_path / "v.arrow", 50)
    assert back.ids == vectors.ids and np.array_equal(back.indptr, vectors.indptr)
    assert (back.matrix() != vectors.matrix()).nnz == 0


def test_lucene_top_k_is_exact_up_to_quantization(sparse_engine):
    index = sparse_engine.indexes["sparse"]
    scale = index.settings["scale"]
    vectors = index.vectors
    impacts = vectors.matrix().copy()
    impacts.data = quantize(impacts.data, scale).astype(np.float64)
    row_of = {d: i for i, d in enumerate(vectors.ids)}
    lucene_runs = index.search(QUERIES, 10)
    exact_runs = index.search(QUERIES, 10, exact=True)
    for query, lucene, exact in zip(QUERIES, lucene_runs, exact_runs):
        terms, weights = index.queries.encode_query(query)
        integer = impacts[:, terms] @ quantize(weights, QUERY_SCALE)
        assert lucene, query
        for doc_id, score in lucene:  # Lucene computes the integer dot product exactly
            assert score * scale * QUERY_SCALE == pytest.approx(integer[row_of[doc_id]], abs=1e-3)
        best = np.sort(integer)[::-1][:10] / (scale * QUERY_SCALE)
        np.testing.assert_allclose([s for _, s in lucene], best, atol=1e-6)
        bound = 0.5 / scale * weights.sum() + 0.5 / QUERY_SCALE * 3 * len(terms)
        floats = dict(exact)
        for doc_id, score in lucene:
            if doc_id in floats:
                assert abs(score - floats[doc_id]) <= bound
        assert len({d for d, _ in lucene} & set(floats)) >= 8
        assert lucene == sorted(lucene, key=lambda hit: (-hit[1], hit[0]))  # ties in id order, as Anserini's
    assert [index.search([query], 10)[0] for query in QUERIES] == lucene_runs  # a batch answers as single queries
    for query in QUERIES + ["cancer", "diet", "vitamin", "heart", "milk"]:  # one-term queries tie often
        for k in (1, 2, 3, 5):
            assert index.search([query], k)[0] == index.search([query], 20)[0][:k], (query, k)


def test_tied_scores_are_cut_in_id_order(tmp_path):
    """Six equal documents indexed in reverse id order: Lucene's doc numbers run f..a, the ranking a..f."""
    docs = [{"_id": doc_id, "title": "", "text": "green tea catechins"} for doc_id in "fedcba"]
    docs += [{"_id": "x", "title": "", "text": "fish oil and the heart"}]
    index = Engine.build(tmp_path / "ties", docs, indexes=["sparse(max_length=32)"]).index("sparse")
    top = index.search(["green tea"], 6)[0]
    assert [d for d, _ in top] == list("abcdef") and len({s for _, s in top}) == 1
    for k in (1, 2, 3):
        assert index.search(["green tea"], k)[0] == top[:k]


def test_doc_ids_read_in_pages_equal_one_read(sparse_engine, monkeypatch):
    import indexes.sparse.backends as backends

    expected = sparse_engine.index("sparse").search(QUERIES, 10)
    monkeypatch.setattr(backends, "ID_PAGE", 7)  # 400 documents: 58 pages, the last one short
    paged = backends.LuceneBackend(sparse_engine.index("sparse").directory, sparse_engine.index("sparse").settings)
    try:
        assert paged._doc_ids() == sparse_engine.index("sparse")._backend._doc_ids()
        assert paged.search(sparse_engine.index("sparse").encode_queries(QUERIES), 10) == expected
    finally:
        paged.close()


def test_the_compiled_helper_and_pyjnius_alone_return_the_same_hits(sparse_engine):
    """The two routes to Lucene's top k (one JNI call through the compiled helper; a parsed string and
    ScoreDoc objects without it) answer every query alike, ties included. CI compiles the helper."""
    from indexes.sparse.backends import _positive_impacts

    backend = sparse_engine.index("sparse")._backend
    if backend._helper is None:
        pytest.skip("the Lucene helpers are not compiled here (no javac): python -m indexes.jvm")
    for query in sparse_engine.index("sparse").encode_queries(QUERIES + ["cancer", "diet", "vitamin"]):
        kept, positive = _positive_impacts(query)
        for n in (1, 11, 50):
            by_helper = backend._top_by_helper(kept, positive, n)
            assert by_helper == backend._top_by_parser(kept, positive, n) and len(by_helper) == n


def test_helpers_older_than_their_sources_are_not_used(tmp_path, monkeypatch):
    import indexes.java_helpers as helpers

    source = tmp_path / "java" / "Probe.java"
    source.parent.mkdir()
    source.write_text("package retriever.lucene;\npublic final class Probe {}\n")
    monkeypatch.setattr(helpers, "SOURCES", source.parent)
    monkeypatch.setattr(helpers, "CLASSES", source.parent / "classes")
    assert helpers.compiled_classes() is None  # never compiled
    if shutil.which("javac") is None:
        with pytest.raises(MissingResourceError, match="javac"):
            helpers.compile_helpers(tmp_path)
        return
    assert helpers.compile_helpers(tmp_path) == source.parent / "classes"
    assert helpers.compiled_classes() == source.parent / "classes"
    compiled = source.parent / "classes" / "retriever" / "lucene" / "Probe.class"
    later = compiled.stat().st_mtime + 10
    os.utime(source, (later, later))  # the source edited after its compilation
    assert helpers.compiled_classes() is None
    source.write_text("this is not java")
    with pytest.raises(RuntimeError, match="javac failed"):
        helpers.compile_helpers(tmp_path)
    assert compiled.exists()  # a failed compilation leaves the previous classes in place


def test_a_fresh_process_can_search_the_impact_index_first(sparse_engine):
    """The impact index opens its own Lucene reader: with no BM25 search before it, the JVM must still
    start with Anserini on its class path."""
    code = ("import json, sys; from retriever.api import Engine; "
            "print(json.dumps(Engine.open(sys.argv[1]).index('sparse').search([sys.argv[2]], 3)[0]))")
    done = subprocess.run([sys.executable, "-c", code, str(sparse_engine.path), QUERIES[0]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = sparse_engine.index("sparse").search([QUERIES[0]], 3)[0]
    assert [tuple(hit) for hit in json.loads(done.stdout.strip().splitlines()[-1])] == expected


def test_seismic_recall_against_exact(tmp_path, sparse_engine):
    index = sparse_engine.indexes["sparse"]
    settings = {"n_postings": 3500, "centroid_fraction": 0.1, "summary_energy": 0.4, "doc_cut": 15}
    SeismicBackend.build(tmp_path, index.vectors, settings)
    seismic = SeismicBackend(tmp_path, settings)
    encoded = index.encode_queries(QUERIES)
    approximate = seismic.search(encoded, 10)
    exact = index.search(QUERIES, 10, exact=True)
    recall = np.mean([len({d for d, _ in a} & {d for d, _ in e}) / max(len(e), 1) for a, e in zip(approximate, exact)])
    assert recall >= 0.95
    for a, e in zip(approximate, exact):
        floats = dict(e)
        for doc_id, score in a:
            if doc_id in floats:
                assert score == pytest.approx(floats[doc_id], rel=1e-3)  # Seismic stores half-precision values


def test_add_encodes_new_documents_and_updates_idf(tmp_path, nfcorpus_slice):
    docs = [json.loads(line) for line in open(nfcorpus_slice / "corpus.jsonl")][:30]
    engine = Engine.build(tmp_path / "e", docs, indexes=["bm25", "sparse(max_length=64)",
                                                          "fast=sparse(max_length=64,backend=seismic)"])
    before = engine.indexes["sparse"].queries
    zebra = before.token_ids("zebra")[0]
    engine.add([{"_id": "new", "title": "Zebra stripes", "text": "Zebra stripes and biting flies in Africa."}])
    after = engine.indexes["sparse"].queries
    assert (after.doc_count, after.df[zebra]) == (31, before.df[zebra] + 1)
    for name in ("sparse", "fast"):
        assert engine.search("zebra stripes", k=1, using=name)[0].doc_id == "new"
        assert engine.indexes[name].settings["avg_nnz"] > 0
    assert engine.search("zebra stripes", k=3, using="rrf(bm25,sparse)")[0].doc_id == "new"
    assert len(engine.indexes["fast"].vectors) == 31


def test_lexical_part_is_word_piece_bm25_with_a_pinned_reference_length(tmp_path, nfcorpus_slice):
    """``sparse(lexical=b)``: learned weights + b x BM25 saturation of each word piece; adds reuse the build's avgdl."""
    from indexes.sparse.lexical import B, K1

    docs = [json.loads(line) for line in open(nfcorpus_slice / "corpus.jsonl")][:30]
    engine = Engine.build(tmp_path / "e", docs, indexes=["sparse(max_length=64)", "mixed=sparse(max_length=64,lexical=2)"])
    learned, mixed = engine.indexes["sparse"], engine.indexes["mixed"]
    new = {"_id": "new", "title": "Zebra stripes", "text": "Zebra stripes and biting flies in Africa."}
    tokenizer = learned.queries.tokenizer
    counts = [np.asarray(tokenizer.encode(d["title"] + " " + d["text"], add_special_tokens=False).ids)
              for d in [*docs, new]]
    avgdl = float(np.mean([len(c) for c in counts[:-1]]))
    assert mixed.settings["lexical_avgdl"] == pytest.approx(avgdl)

    def check_row(index, i):
        terms, weights = learned.vectors.row(i)
        expected = dict(zip(terms.tolist(), weights.tolist()))
        for term in set(counts[i].tolist()):
            tf = int((counts[i] == term).sum())
            saturation = tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(counts[i]) / avgdl))
            expected[term] = expected.get(term, 0.0) + 2 * saturation
        terms, weights = index.vectors.row(i)
        assert terms.tolist() == sorted(expected)
        np.testing.assert_allclose(weights, [expected[t] for t in terms.tolist()], rtol=1e-5)

    for i in (0, 7):
        check_row(mixed, i)
    # the sweep (choosing b on dev) scores exactly what the lexical index's float vectors score
    from eval.sparse import lexical_sweep
    from retriever.core.datasets import load_dataset
    from retriever.core.metrics import aggregate, parse_measures

    dataset = load_dataset(str(nfcorpus_slice))
    queries, qrels = dataset.split("test")
    swept = lexical_sweep(learned, engine.corpus, dataset, "test", [0, 2])
    for point, index in zip(swept, (learned, mixed)):
        rankings = index.search([queries[q].text for q in qrels], 100, exact=True)
        expected = aggregate(qrels, dict(zip(qrels, rankings)), parse_measures(["nDCG@10", "R@100"]))
        assert point["nDCG@10"] == round(expected["nDCG@10"], 4) and point["R@100"] == round(expected["R@100"], 4)
    assert swept[1]["nDCG@10"] > 0 and swept[1]["avg_nnz"] == round(float(mixed.vectors.nnz_per_doc.mean()), 1)
    with pytest.raises(InputError, match="already has a lexical part"):
        lexical_sweep(mixed, engine.corpus, dataset, "test", [1])
    query = "zebra stripes"
    engine.add([new])
    learned, mixed = engine.indexes["sparse"], engine.indexes["mixed"]
    assert mixed.settings["lexical_avgdl"] == pytest.approx(avgdl)  # pinned, though the corpus changed
    check_row(mixed, 30)  # the added document is weighted with the build's reference length
    assert engine.search(query, k=1, using="mixed")[0].doc_id == "new"
    exact = mixed.search([query], 5, exact=True)[0]
    assert [d for d, _ in mixed.search([query], 5)[0]] == [d for d, _ in exact]  # Lucene = exact (quantized)


def test_no_model_runs_at_query_time(tmp_path, nfcorpus_slice, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(resolve_sparse_model(MODEL), model)
    tokenizer = DocEncoder.load(str(model)).tokenizer
    factors = np.ones(len(tokenizer), dtype=np.float32)
    breast, cancer = tokenizer.convert_tokens_to_ids(["breast", "cancer"])
    factors[[breast, cancer]] = [4.0, 0.0]  # a learned table: "cancer" dropped, "breast" weighs 4x its IDF
    write_query_weights(model, factors, vocabulary_checksum(tokenizer.backend_tokenizer))
    docs = [json.loads(line) for line in open(nfcorpus_slice / "corpus.jsonl")][:25]
    Engine.build(tmp_path / "e", docs, indexes=[f"sparse(model='{model}',max_length=64)",
                                                f"fast=sparse(model='{model}',max_length=64,backend=seismic)",
                                                f"learned=sparse(model='{model}',max_length=64,query_weights=learned)"])
    opened = Engine.open(tmp_path / "e")
    expected = opened.rankings(["statins and breast cancer"], k=5, using="sparse")
    learned = opened.rankings(["statins and breast cancer"], k=5, using="learned")
    idf, table = opened.indexes["sparse"].queries, opened.indexes["learned"].queries
    assert not (opened.indexes["sparse"].directory / QUERY_WEIGHTS_FILE).exists()
    np.testing.assert_array_equal(read_query_weights(opened.indexes["learned"].directory,
                                                     vocabulary_checksum(tokenizer.backend_tokenizer)), factors)
    terms, weights = table.encode_query("statins and breast cancer")
    assert cancer not in terms.tolist() and cancer in idf.encode_query("statins and breast cancer")[0].tolist()
    np.testing.assert_allclose(weights, idf.idf[terms] * factors[terms])
    shutil.rmtree(model)  # the model is gone: opening and searching must not need it

    def no_modules(*args, **kwargs):
        raise AssertionError("a torch module was created at query time")

    monkeypatch.setattr(torch.nn.Module, "__init__", no_modules)
    engine = Engine.open(tmp_path / "e")
    assert engine.rankings(["statins and breast cancer"], k=5, using="sparse") == expected
    assert engine.rankings(["statins and breast cancer"], k=5, using="learned") == learned != expected
    assert engine.search("statins and breast cancer", k=5, using="fast")
    monkeypatch.undo()
    with pytest.raises(MissingResourceError, match="not found"):
        engine.add([{"_id": "new", "text": "needs the encoder"}])


def test_bad_input(tmp_path, encoder):
    built = Engine.build(tmp_path / "e", [{"_id": "ok", "text": "statins"}, {"_id": "blank", "text": "  "}],
                         indexes=["sparse(max_length=32)"])  # an empty document is legal: an empty vector
    assert built.index("sparse").doc_count == 2
    assert [h.doc_id for h in built.search("statins", using="sparse")] == ["ok"]
    for spec, message in [("sparse(colour=red)", "sparse: unknown setting 'colour'"),
                          ("sparse(backend=faiss)", "setting 'backend' must be one of lucene, seismic"),
                          ("sparse(max_length=abc)", "setting 'max_length' must be an integer"),
                          ("sparse(query_weights=bm25)", "setting 'query_weights' must be one of idf, learned"),
                          ("sparse(min_weight=-1)", "setting 'min_weight' must be at least 0"),
                          ("sparse(max_terms=-2)", "setting 'max_terms' must be at least 0")]:
        with pytest.raises(SpecError, match=message):
            Engine.build(tmp_path / "f", [{"_id": "ok", "text": "statins"}], indexes=[spec])


def tiny_model_with_other_vocabulary(path: Path) -> Path:
    """A random 1-layer BertForMaskedLM over the first 2,000 tokens of the BERT vocabulary."""
    from transformers import BertConfig, BertForMaskedLM

    source = Path(resolve_sparse_model(MODEL))
    path.mkdir(parents=True)
    tokenizer = json.loads((source / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"] = {t: i for t, i in tokenizer["model"]["vocab"].items() if i < 2000}
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    shutil.copy(source / "tokenizer_config.json", path)
    config = BertConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(path)
    return path


def test_vocabulary_mismatch_is_a_clear_error(tmp_path, nfcorpus_slice):
    model = tmp_path / "model"
    shutil.copytree(resolve_sparse_model(MODEL), model)
    docs = [json.loads(line) for line in open(nfcorpus_slice / "corpus.jsonl")][:10]
    engine = Engine.build(tmp_path / "e", docs, indexes=[f"sparse(model='{model}',max_length=32)"])
    shutil.rmtree(model)
    tiny_model_with_other_vocabulary(model)
    with pytest.raises(VocabularyMismatchError, match="does not have the vocabulary"):
        engine.add([{"_id": "new", "text": "statins"}])
    directory = engine.indexes["sparse"].directory
    shutil.copy(model / "tokenizer.json", directory / "tokenizer.json")
    manifest = json.loads((directory / "manifest.json").read_text())  # a consistent index, another tokenizer
    (directory / "manifest.json").write_text(json.dumps({**manifest, "files": file_table(directory)}))
    reopened = Engine.open(tmp_path / "e")  # indexes open lazily: the check runs on first use
    with pytest.raises(VocabularyMismatchError, match="not the tokenizer this index was built with"):
        reopened.search("statins", using="sparse")


def test_short_training_run_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path, slice_engine, nfcorpus):
    """Label-free distillation on real NFCorpus documents, BM25 + MiniLM teachers (real models).

    Full runs: ``retriever train sparse`` (README, "Learned sparse index")."""
    from retriever.train.sparse.train import TrainSettings, train_sparse

    settings = TrainSettings(regime="label-free", pseudo_queries=6, queries_per_step=6, docs_per_query=4, pool=4,
                             steps=8, eval_every=4, max_length=64, lr=3e-4, warmup=0, reg_weight=1e-4,
                             reg_warmup=0, depth=20, dev_split="none", query_weights="learned", query_lr=0.05)
    report = train_sparse(slice_engine, nfcorpus, tmp_path / "run", settings)
    losses = [s["ranking"] for s in report["steps"]]  # the same six queries and documents at every step
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    trained = DocEncoder.load(str(tmp_path / "run" / "best"), max_length=64)
    assert trained.encode_document(["statins and breast cancer"]).nnz_per_doc[0] > 0
    factors = read_query_weights(tmp_path / "run" / "best", trained.vocabulary_checksum)  # learned jointly
    assert len(factors) == trained.vocab_size and 0 < (factors != 1).sum() < 200
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert all(0 < s["nnz"] for s in report["steps"])
    resumed = train_sparse(slice_engine, nfcorpus, tmp_path / "run", TrainSettings(**{**vars(settings), "steps": 10}))
    assert [s["step"] for s in resumed["steps"]] == list(range(1, 11))
    assert resumed["steps"][:8] == report["steps"]


def test_a_checkpoint_without_mlm_head_gets_a_tied_vocabulary_head():
    """all-MiniLM-L6-v2 is a BertModel: the head is created, tied to the word-piece embeddings, identity transform."""
    minilm = DocEncoder.load("all-MiniLM-L6-v2", max_length=64)
    head = minilm.model.cls.predictions
    assert minilm.model.get_output_embeddings().weight.data_ptr() == minilm.model.get_input_embeddings().weight.data_ptr()
    torch.testing.assert_close(head.transform.dense.weight, torch.eye(head.transform.dense.in_features))
    text = "Statin use and breast cancer survival: a nationwide cohort study from Finland."
    heaviest = [token for token, _ in minilm.decode(minilm.encode_document([text]).row(0), top=8)]
    assert {"breast", "cancer", "survival"} <= set(heaviest)
    assert 5 < minilm.encode_document([text]).nnz_per_doc[0] < 1000


def test_training_settings_from_strings():
    from retriever.train.sparse.train import TrainSettings

    settings = TrainSettings.from_options({"steps": "20", "eval_start": "false", "scale_lr": "0.05"})
    assert (settings.steps, settings.eval_start, settings.scale_lr) == (20, False, 0.05)
    with pytest.raises(SpecError, match="setting 'eval_start' must be true or false"):
        TrainSettings.from_options({"eval_start": "maybe"})
    with pytest.raises(SpecError, match="unknown setting 'learning_rate'"):
        TrainSettings.from_options({"learning_rate": "1e-4"})
    assert TrainSettings.from_options({"dev_pool": "100", "query_weights": "learned"}).dev_pool == 100
    with pytest.raises(SpecError, match="setting 'query_weights' must be one of idf, learned"):
        TrainSettings(query_weights="bm25")
    with pytest.raises(SpecError, match="setting 'dev_queries' must be at least 0"):
        TrainSettings(dev_queries=-1)
    with pytest.raises(SpecError, match="setting 'query_lr' must be greater than 0"):
        TrainSettings.from_options({"query_lr": "0"})


def test_dev_holdout_is_a_fixed_sample_left_out_of_training(nfcorpus_slice):
    """SciFact has no dev split: ``dev_holdout=N`` selects on N seeded training queries and never trains on them."""
    from retriever.core.datasets import load_dataset
    from retriever.train.sparse.train import TrainSettings, _training_and_dev

    dataset = load_dataset(str(nfcorpus_slice))
    (train_queries, train_qrels), (dev_queries, dev_qrels) = _training_and_dev(
        dataset, TrainSettings(split="test", dev_holdout=10))
    assert len(dev_qrels) == 10 and len(train_qrels) == len(dataset.split("test")[1]) - 10
    assert not set(train_qrels) & set(dev_qrels) and set(train_queries) == set(train_qrels)
    again = _training_and_dev(dataset, TrainSettings(split="test", dev_holdout=10))[1][1]
    assert list(again) == list(dev_qrels)  # the same questions on every (resumed) run
    assert _training_and_dev(dataset, TrainSettings(split="test"))[1] is None  # no dev split, no holdout
    with pytest.raises(SpecError, match="dev_holdout"):
        _training_and_dev(dataset, TrainSettings(split="test", dev_holdout=40))


def test_feedback_adds_the_first_hits_heaviest_terms_without_a_model(sparse_engine):
    """Rocchio by hand: the mean vector of the first round's top documents, times IDF, its heaviest
    terms added at prf_weight x the query's heaviest weight; the second round searches with it."""
    from indexes.sparse.feedback import Feedback

    index = sparse_engine.indexes["sparse"]
    matrix, row_of = index.vectors.matrix(), {d: i for i, d in enumerate(index.vectors.ids)}
    knobs = {"prf_docs": 3, "prf_terms": 5, "prf_weight": 0.5}
    for query in QUERIES[:4]:
        terms, weights = index.queries.encode_query(query)
        first = index.search([query], 3)[0]
        mean = np.asarray(matrix[[row_of[d] for d, _ in first]].todense()).mean(axis=0) * index.queries.idf
        top = np.argsort(-mean)[:5]
        want = dict(zip(terms.tolist(), weights.tolist()))
        for t in top:
            want[int(t)] = want.get(int(t), 0.0) + 0.5 * weights.max() * mean[t] / mean[top].max()
        [(got_terms, got_weights)] = index.apply_feedback([(terms, weights)], [first], knobs)
        assert got_terms.tolist() == sorted(want) and np.all(np.diff(got_terms) > 0)
        np.testing.assert_allclose(got_weights, [want[t] for t in sorted(want)], rtol=1e-5)
        expanded = index.search([query], 10, **knobs)[0]
        assert expanded == index.search_prepared([(got_terms, got_weights)], 10)[0]
        assert expanded != index.search([query], 10)[0]
        assert index.search([query], 10, prf_docs=3, prf_weight=0)[0] == index.search([query], 10)[0]
        exact = index.search([query], 10, exact=True, **knobs)[0]
        assert len({d for d, _ in expanded} & {d for d, _ in exact}) >= 8  # Lucene = exact up to quantization
    assert Feedback.of({"prf_docs": 3}, {"prf_docs": 0}).docs == 0  # a knob overrides the index setting
    assert index.feedback_docs({}) == 0  # off unless asked for
    with pytest.raises(InputError, match="prf_docs >= 0"):
        index.search(QUERIES[:1], 10, prf_docs=-1)
    empty = index.queries.encode_query("")
    assert Feedback(docs=3).expand(empty, matrix[[0, 1]], index.queries.idf) is empty


def test_eval_tables_pruning_cost_and_learned_specs(tmp_path, sparse_engine, nfcorpus_slice):
    from eval.sparse import cross_dataset, feedback_cost, pruning_cost, sparse_specs
    from retriever.core.datasets import load_dataset

    model = tmp_path / "run" / "best"
    model.mkdir(parents=True)
    assert sparse_specs({"sup": str(model)})["sup"] == f"sup=sparse(model='{model}')"
    (model / QUERY_WEIGHTS_FILE).write_bytes(b"")
    assert sparse_specs({"sup": str(model)})["sup"] == f"sup=sparse(model='{model}',query_weights=learned)"
    mixed = sparse_specs({"sup": str(model)}, "max_length=128", lexical=[1, 0.5])
    assert mixed["sparse-lex1"] == "sparse-lex1=sparse(max_length=128,lexical=1)"
    assert mixed["sup-lex0_5"] == f"sup-lex0_5=sparse(model='{model}',query_weights=learned,max_length=128,lexical=0.5)"
    assert len(mixed) == 6
    costs = pruning_cost(sparse_engine.indexes["sparse"], load_dataset(str(nfcorpus_slice)), "test", [0, 1e6],
                         baseline=sparse_engine.indexes["bm25"])
    assert costs[0]["nDCG@10"] > 0 and costs[0]["terms_per_query"] > 1
    assert {k: costs[1][k] for k in ("min_weight", "nDCG@10", "terms_per_query")} == \
        {"min_weight": 1e6, "nDCG@10": 0.0, "terms_per_query": 0.0}  # every term pruned
    assert all(c["p50_ms"] > 0 and c["p50_vs_bm25"] > 0 for c in costs)
    prf = feedback_cost(sparse_engine.indexes["sparse"], load_dataset(str(nfcorpus_slice)), "test",
                        [{"prf_docs": 3}], baseline=sparse_engine.indexes["bm25"])
    assert [c["knobs"] for c in prf] == [{"prf_docs": 0}, {"prf_docs": 3}]
    assert prf[0]["nDCG@10"] == costs[0]["nDCG@10"] and prf[1]["nDCG@10"] != prf[0]["nDCG@10"]
    assert all(c["p50_ms"] > 0 and c["p50_vs_bm25"] > 0 and 0 < c["R@100"] <= 1 for c in prf)
    for name, score in (("nfcorpus", 0.30), ("scifact", 0.70)):
        systems = [{"system": "bm25", "spec": "bm25", "nDCG@10": 0.32, "avg_nnz": None, "size_mb": 1.0},
                   {"system": "sup", "spec": "sup=sparse(...)", "nDCG@10": score, "avg_nnz": 250.0, "size_mb": 9.0,
                    "train_seconds": 600.0}]
        (tmp_path / f"{name}-test-sparse.json").write_text(json.dumps({"dataset": name, "split": "test",
                                                                         "systems": systems}))
    table = cross_dataset(tmp_path)
    assert "| nfcorpus (test) | `sup=sparse(...)` | 0.3000 | -0.0200 | 250.0 | 9.0 | 600 |" in table
    assert "| scifact (test) | `sup=sparse(...)` | 0.7000 | +0.3800 |" in table
