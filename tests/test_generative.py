"""Generative index: ids, trie-constrained decoding vs brute force, save/load, continual adds, resume, errors.

Tiny decoders and short trainings keep this fast; the same code paths run with the
real settings in ``retriever eval generative`` and ``retriever eval continual``.
"""

import os

import numpy as np
import pytest
import torch

from indexes.base import build_index, open_index
from indexes.generative import train as train_module
from indexes.generative.decode import beam_search, sequence_logprobs
from indexes.generative.docids import DocTree, Vocabulary, check_unique
from indexes.generative.model import DecoderConfig, IdDecoder
from indexes.generative.settings import SCHEMA
from indexes.generative.train import Targets, TrainSettings, train_decoder
from indexes.generative.trie import IdTrie
from retriever.core.corpus import Corpus, document_from_record
from retriever.api import Engine
from retriever.core.errors import InputError, SpecError

TINY = ("generative(branching=3,leaf_size=6,d_model=32,heads=2,ff_dim=64,layers=1,memory_slots=2,"
        "spans=1,pseudo_queries=2,max_seq_length=64,epochs=4,batch_size=32,add_epochs=2,lr=0.003)")
QUERIES = ["statins and breast cancer", "vitamin D bone density", "red meat and colon cancer risk"]


def clustered_vectors(n=300, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(7, dim))
    return (centers[rng.integers(7, size=n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


def tiny_model(vocab, depth, seed=0, keys=None):
    """A tiny decoder; ``keys=(node_keys, doc_keys)`` gives it edge keys (random head kept, so both terms count)."""
    torch.manual_seed(seed)
    nodes, docs = (len(keys[0]), len(keys[1])) if keys else (0, 0)
    model = IdDecoder(DecoderConfig(input_dim=16, vocab_size=vocab, max_depth=depth, d_model=16, heads=2,
                                    ff_dim=32, layers=1, memory_slots=2, key_nodes=nodes, key_docs=docs, key_scale=2.0))
    if keys:
        with torch.no_grad():
            model.node_keys.copy_(keys[0])
            model.doc_keys.copy_(keys[1])
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    previous = os.environ.get("RETRIEVER_CHECKPOINTS")
    os.environ["RETRIEVER_CHECKPOINTS"] = str(tmp_path_factory.mktemp("checkpoints"))
    yield
    if previous is None:
        del os.environ["RETRIEVER_CHECKPOINTS"]
    else:
        os.environ["RETRIEVER_CHECKPOINTS"] = previous


@pytest.fixture(scope="module")
def slice_docs(nfcorpus_slice):
    corpus = [document_from_record(__import__("json").loads(line))
              for line in open(nfcorpus_slice / "corpus.jsonl", encoding="utf-8")]
    return corpus[:48]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, slice_docs, checkpoints):
    """BM25 and a tiny generative index over 40 real NFCorpus documents (real MiniLM encoder); built once."""
    return Engine.build(tmp_path_factory.mktemp("gen") / "engine", slice_docs[:40], indexes=["bm25", TINY])


def test_semantic_ids_unique_stable_and_bounded():
    vectors = clustered_vectors()
    first = DocTree.build(vectors, branching=4, leaf_size=10, seed=7)
    again = DocTree.build(vectors, branching=4, leaf_size=10, seed=7)
    assert first.paths == again.paths and len(set(first.paths)) == len(vectors)
    leaves: dict = {}
    for path in first.paths:
        leaves.setdefault(path[:-1], []).append(path[-1])
    assert all(sorted(slots) == list(range(len(slots))) and len(slots) <= 10 for slots in leaves.values())
    assert max(map(len, first.paths)) >= 3  # 300 documents under leaves of 10 need a deep tree
    IdTrie(Vocabulary.for_paths(first.paths).encode(first.paths), 10_000)  # prefix-free
    same = DocTree.build(np.ones((25, 4), np.float32), branching=3, leaf_size=4, seed=0)
    assert len(set(same.paths)) == 25  # identical vectors still get distinct ids
    assert DocTree.atomic(5).paths == [(0,), (1,), (2,), (3,), (4,)]


def test_place_keeps_old_ids_and_gives_unique_new_ones():
    vectors = clustered_vectors()
    tree = DocTree.build(vectors[:250], branching=4, leaf_size=10, seed=0)
    old = list(tree.paths)
    new = tree.place(vectors[250:])
    assert tree.paths[:250] == old and len(set(tree.paths)) == 300 and len(new) == 50
    assert all(path[:-1] in {p[:-1] for p in old} for path in new)  # placed into existing leaves


@pytest.mark.parametrize("kind,keyed", [("semantic", False), ("atomic", False), ("semantic", True), ("atomic", True)])
def test_beam_search_valid_and_exact_against_brute_force(kind, keyed):
    vectors = clustered_vectors(n=60)
    tree = DocTree.build(vectors, 3, 5, seed=1) if kind == "semantic" else DocTree.atomic(60)
    vocab = Vocabulary.for_paths(tree.paths)
    sequences = vocab.encode(tree.paths)
    trie = IdTrie(sequences, len(vocab))
    keys = (torch.randn(len(trie), 16), torch.from_numpy(vectors)) if keyed else None
    model = tiny_model(len(vocab), trie.max_depth, keys=keys)
    targets = Targets.for_sequences(sequences, trie)
    queries = torch.from_numpy(clustered_vectors(n=5, seed=3))
    with torch.no_grad():
        brute = torch.stack([sequence_logprobs(model, q[None].expand(60, -1), targets.tokens,
                                               targets.nodes, targets.lengths, trie) for q in queries])
    assert torch.allclose(brute.exp().sum(dim=1), torch.ones(5), atol=1e-4)  # a distribution over valid ids
    exhaustive = beam_search(model, queries, trie, k=60, beam=60)
    narrow = beam_search(model, queries, trie, k=10, beam=3)
    as_wide_as_k = beam_search(model, queries, trie, k=10, beam=10)
    for q in range(5):
        rows = [r for r, _ in exhaustive[q]]
        assert sorted(rows) == list(range(60))
        assert rows[0] == int(brute[q].argmax())
        assert [s for _, s in exhaustive[q]] == pytest.approx(sorted(brute[q].tolist(), reverse=True), abs=1e-4)
        assert all(0 <= r < 60 and s == pytest.approx(float(brute[q, r]), abs=1e-4) for r, s in narrow[q])
        assert 3 <= len({r for r, _ in narrow[q]}) == len(narrow[q]) <= 10  # each kept prefix completes
        assert len({r for r, _ in as_wide_as_k[q]}) == 10 and as_wide_as_k[q][0][0] == rows[0]


@pytest.mark.parametrize("kind", ["semantic", "atomic"])
def test_tree_keys_make_the_untrained_model_rank_like_the_id_tree(kind):
    """Edge keys start as centroids (biased by the log of the node's document count) and document vectors:
    with the head zeroed, atomic ids give exactly the dense ranking and semantic ids the per-level softmax."""
    from indexes.generative.index import _new_model

    vectors = clustered_vectors(n=60)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tree = DocTree.build(vectors, 3, 5, seed=1) if kind == "semantic" else DocTree.atomic(60)
    vocab = Vocabulary.for_paths(tree.paths)
    settings = SCHEMA.parse({"d_model": 16, "heads": 2, "ff_dim": 32, "layers": 1, "memory_slots": 2})
    model = _new_model(settings, tree, vocab, vectors).eval()
    trie = IdTrie(vocab.encode(tree.paths), len(vocab))
    found = beam_search(model, torch.from_numpy(vectors), trie, k=60, beam=60)
    if kind == "atomic":  # one softmax over all documents: exactly the dense ranking
        dense = np.argsort(-(vectors @ vectors.T), axis=1, kind="stable")
        assert [[r for r, _ in ranking] for ranking in found] == dense.tolist()
        return
    # semantic: each level is a softmax over the children's keys (centroids, then document vectors)
    row = 7
    path, expected, query = tree.paths[row], 0.0, vectors[0]
    for depth in range(len(path) - 1):  # children: centroid score plus log of the child's document count
        sizes = [sum(p[:depth + 1] == path[:depth] + (c,) for p in tree.paths)
                 for c in range(len(tree.centroids[path[:depth]]))]
        logits = 10.0 * tree.centroids[path[:depth]] @ query + np.log(sizes)
        expected += torch.log_softmax(torch.from_numpy(logits), 0)[path[depth]]
    leaf = [r for r, p in enumerate(tree.paths) if p[:-1] == path[:-1]]
    expected += torch.log_softmax(torch.from_numpy(10.0 * vectors[leaf] @ query), 0)[leaf.index(row)]
    assert dict(found[0])[row] == pytest.approx(float(expected), abs=1e-4)


def test_untrained_atomic_index_is_the_dense_ranking(tmp_path, slice_docs, checkpoints):
    """``epochs=0`` keeps the initial model: with atomic ids each document's own text finds it first."""
    corpus = Corpus.create(tmp_path / "corpus", slice_docs[:8])
    index = build_index("generative", corpus, tmp_path / "g0", {
        "ids": "atomic", "epochs": "0", "d_model": "16", "heads": "2", "ff_dim": "32", "layers": "1",
        "spans": "0", "pseudo_queries": "0", "max_seq_length": "64"})
    rankings = index.search([doc.contents for doc in slice_docs[:8]], k=8)
    assert [r[0][0] for r in rankings] == [doc.doc_id for doc in slice_docs[:8]]
    runs = __import__("json").loads((index.directory / "training.json").read_text())["runs"]
    assert runs[0]["epochs"] == 0 and runs[0]["history"] == []


def test_trie_rejects_duplicate_and_prefix_ids():
    with pytest.raises(InputError, match="not unique"):
        IdTrie([(0, 1), (0, 1)], 4)
    with pytest.raises(InputError, match="not unique"):
        IdTrie([(0, 1), (0,)], 4)
    with pytest.raises(InputError, match="extends"):
        IdTrie([(0,), (0, 1)], 4)


def test_training_resumes_to_identical_weights(tmp_path, monkeypatch):
    vectors = torch.from_numpy(clustered_vectors(n=80))
    tree = DocTree.build(vectors.numpy()[:40], 3, 5, seed=0)
    vocab = Vocabulary.for_paths(tree.paths)
    trie = IdTrie(vocab.encode(tree.paths), len(vocab))
    targets = Targets.for_sequences(vocab.encode(tree.paths), trie)
    text_of, row_of = np.arange(80), np.arange(80) % 40
    settings = TrainSettings(epochs=3, batch_size=16, lr=3e-3, seed=5)

    def trained(checkpoint):
        model = tiny_model(len(vocab), trie.max_depth)
        history = train_decoder(model, vectors, text_of, row_of, targets, trie, settings, checkpoint)
        return model, history

    reference, full_history = trained(None)
    real_save = train_module.save_checkpoint

    def crash_after_first_epoch(directory, **state):
        real_save(directory, **state)
        if state["meta"]["epochs_done"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        trained(tmp_path / "ckpt")
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed, history = trained(tmp_path / "ckpt")
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in full_history])
    assert full_history[-1]["loss"] < full_history[0]["loss"]


def test_index_search_round_trip_and_files(engine):
    index = engine.indexes["generative"]
    rankings = index.search(QUERIES, k=15)
    ids = set(engine.corpus.ids)
    for ranking in rankings:
        assert len(ranking) == 15 and len({d for d, _ in ranking}) == 15 and {d for d, _ in ranking} <= ids
        scores = [s for _, s in ranking]
        assert scores == sorted(scores, reverse=True) and scores[0] <= 0.0
    brute = index.id_logprobs(QUERIES)
    assert [r[0][0] for r in rankings] == [index.doc_ids[int(i)] for i in brute.argmax(axis=1)]
    reopened = open_index(index.directory)
    assert reopened.search(QUERIES, k=15) == rankings
    names = {p.name for p in index.directory.iterdir()}
    assert {"model.safetensors", "model.json", "ids.arrow", "loss.png", "training.json", "manifest.json"} <= names
    assert not any(name.endswith(".pkl") or name.endswith(".pt") for name in names)
    assert engine.search("statins", k=3, using="generative")[0].doc_id in ids
    fused = engine.rankings(QUERIES, k=40, using="rrf(bm25,generative)")
    assert all(len(r) == 40 and {d for d, _ in r} == ids for r in fused)  # generative reaches every document


def test_add_keeps_old_ids_and_indexes_new_documents(engine, slice_docs):
    before = engine.indexes["generative"]
    old_paths = {doc_id: before.id_of(doc_id) for doc_id in before.doc_ids}
    added = engine.add(slice_docs[40:48])
    after = engine.indexes["generative"]
    assert added == 8 and after.doc_count == 48 and after.doc_ids[:40] == before.doc_ids
    assert all(after.id_of(doc_id) == path for doc_id, path in old_paths.items())
    assert len({after.id_of(d) for d in after.doc_ids}) == 48
    ranking = after.search([slice_docs[45].title], k=48)[0]
    assert {d for d, _ in ranking} == set(after.doc_ids)  # every old and new id is reachable
    assert after.model.config.key_docs == 48 and open_index(after.directory).search(QUERIES, k=5) == \
        after.search(QUERIES, k=5)  # the new documents got keys, saved with the model
    runs = __import__("json").loads((after.directory / "training.json").read_text())["runs"]
    assert [r["task"] for r in runs] == ["build", "add"] and runs[1]["examples"]["pseudo"] > 0
    with pytest.raises(InputError, match="already indexed"):
        after.write_extended(after.directory.parent / "never", [slice_docs[0]])


def test_bad_input_and_settings(tmp_path, slice_docs, checkpoints):
    with pytest.raises(InputError, match="empty corpus"):
        DocTree.build(np.zeros((0, 8), np.float32), 4, 10, seed=0)
    with pytest.raises(InputError, match="duplicate document id 'a'"):
        check_unique(["a", "b", "a"])
    corpus = Corpus.create(tmp_path / "corpus", slice_docs[:5])
    with pytest.raises(SpecError, match="generative: unknown setting 'colour'"):
        build_index("generative", corpus, tmp_path / "x", {"colour": "red"})
    with pytest.raises(SpecError, match="setting 'ids' must be one of semantic, atomic"):
        build_index("generative", corpus, tmp_path / "y", {"ids": "random"})
    with pytest.raises(SpecError, match="setting 'keys'"):
        build_index("generative", corpus, tmp_path / "y", {"keys": "random"})
    with pytest.raises(SpecError, match="refusing to train on a test split"):
        build_index("generative", corpus, tmp_path / "z", {"queries": "nfcorpus:test"})
    with pytest.raises(InputError, match="empty"):
        Engine.build(tmp_path / "empty", [], indexes=[TINY])
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z"))
