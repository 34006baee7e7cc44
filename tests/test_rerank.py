"""Rerankers: Plackett–Luce with STOP, the policy and its training, the cross-encoder, specs, evaluations.

The cross-encoder here is a tiny random BERT (real MiniLM tokenizer) so the tests run
in minutes; the same code paths run with the fine-tuned MiniLM in the commands of the
README's Reranking section (`retriever train reranker [--rl]`, `retriever eval beir
... --rerank`, `retriever eval rerank`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json

import numpy as np
import pytest
import torch

from retriever.core.errors import InputError, MissingResourceError, SpecError
from retriever.rerank.base import RerankContext, load_reranker
from retriever.rerank.features import STOP_FEATURES, Candidates, item_feature_names
from retriever.rerank.plackett import log_prob, sample
from retriever.rerank.policy import Policy, PolicyConfig


@pytest.fixture(scope="module")
def tiny_cross(tmp_path_factory):
    """A 2-layer, 32-wide BERT cross-encoder with the real MiniLM tokenizer, saved in CrossEncoder layout."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from retriever.core.models import resolve_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-cross"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hotpot_full_engine(tmp_path_factory, hotpot):
    """BM25 over the whole real hotpotqa-distractor corpus (10,785 paragraphs): training mines dev questions.

    (conftest's ``hotpot_engine`` holds only the documents of 40 test questions.)
    """
    from retriever.api import Engine

    return Engine.build(tmp_path_factory.mktemp("engines") / "hotpot", hotpot.documents(), indexes=["bm25"])


def _random_candidates(n: int, rng: np.random.Generator, indexes=("bm25",)) -> Candidates:
    items = rng.normal(size=(n, len(item_feature_names(indexes)))).astype(np.float32)
    covers = rng.random((n, 3)) < 0.5
    links = rng.random((n, n)) < 0.3
    links = (links | links.T) & ~np.eye(n, dtype=bool)
    return Candidates(items, covers, links, rng.normal(size=n).astype(np.float32), hop=1)


@pytest.mark.parametrize("min_k", [0, 1, 2])
def test_plackett_luce_with_stop_sums_to_one(min_k):
    rng = np.random.default_rng(min_k)
    n, max_k = 4, 3
    candidates = _random_candidates(n, rng)
    policy = Policy(PolicyConfig("unused", ("bm25",), hidden=8, max_k=max_k, min_k=min_k))
    scores = policy.item_scores(torch.from_numpy(candidates.items))
    total, decisions = 0.0, 0
    for k in range(max_k + 1):
        for order in itertools.permutations(range(n), k):
            rows = np.stack([candidates.stop_features(list(order[:t]), max_k) for t in range(k + 1)])
            p = log_prob(scores, policy.stop_scores(torch.from_numpy(rows)), list(order), max_k, min_k).exp().item()
            if k < min_k:
                assert p == 0.0
            total += p
            decisions += 1
    assert decisions == 1 + 4 + 12 + 24
    assert total == pytest.approx(1.0, abs=1e-5)


def test_sampling_frequencies_match_log_prob():
    rng = np.random.default_rng(3)
    candidates = _random_candidates(3, rng)
    policy = Policy(PolicyConfig("unused", ("bm25",), hidden=0, max_k=2, min_k=1))
    counts: dict[tuple, int] = {}
    for _ in range(4000):
        decision, _ = policy.decide(candidates, rng=rng)
        counts[tuple(decision.order)] = counts.get(tuple(decision.order), 0) + 1
    scores = policy.item_scores(torch.from_numpy(candidates.items))
    for order, count in counts.items():
        rows = np.stack([candidates.stop_features(list(order[:t]), 2) for t in range(len(order) + 1)])
        p = log_prob(scores, policy.stop_scores(torch.from_numpy(rows)), list(order), 2, 1).exp().item()
        assert abs(count / 4000 - p) < 0.03


@pytest.mark.parametrize("bias,expected", [(-50.0, 4), (50.0, 1)])
def test_stop_decision_respects_max_and_min_k(bias, expected):
    rng = np.random.default_rng(0)
    policy = Policy(PolicyConfig("unused", ("bm25",), hidden=0, max_k=4, min_k=1))
    with torch.no_grad():
        policy.stop.weight.zero_()
        policy.stop.bias.fill_(bias)
    for n in (2, 9, 30):
        candidates = _random_candidates(n, rng)
        greedy, _ = policy.decide(candidates)
        sampled = [policy.decide(candidates, rng=rng)[0] for _ in range(20)]
        assert len(greedy.order) == min(expected, n)
        assert all(len(d.order) <= 4 and len(set(d.order)) == len(d.order) for d in sampled)
        assert len(policy.decide(candidates, max_k=2)[0].order) <= 2


def test_policy_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    policy = Policy(PolicyConfig("../cross", ("bm25", "dense"), hidden=8, max_k=5))
    candidates = _random_candidates(12, rng, ("bm25", "dense"))
    policy.set_normalization(candidates.items, np.stack([candidates.stop_features([], 5)] * 3))
    policy.save(tmp_path / "policy")
    loaded = Policy.load(tmp_path / "policy")
    assert loaded.config == policy.config
    assert json.loads((tmp_path / "policy" / "policy.json").read_text())["item_features"][-1] == "dense_score"
    before, after = policy.decide(candidates), loaded.decide(candidates)
    assert before[0].order == after[0].order
    np.testing.assert_allclose(before[1], after[1], rtol=1e-6)
    assert loaded.cross_encoder_path(tmp_path / "policy") == (tmp_path / "cross").resolve()


def test_spec_parsing_and_clear_errors(tmp_path, tiny_cross):
    reranker = load_reranker(f"cross(path={tiny_cross},k=3)")
    assert str(reranker) == f"cross(path={tiny_cross},k=3)"
    assert str(load_reranker(str(reranker))) == str(reranker)
    assert str(load_reranker(f"cross(path={tiny_cross},k=100,mix=0.3)")) == f"cross(path={tiny_cross},k=100,mix=0.3)"
    with pytest.raises(MissingResourceError, match=str(tmp_path / "missing")):
        load_reranker(f"cross(path={tmp_path / 'missing'})")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingResourceError, match="model.safetensors"):
        load_reranker(f"cross(path={tmp_path / 'empty'})")
    with pytest.raises(MissingResourceError, match="policy.json"):
        load_reranker(f"rl(path={tmp_path / 'missing'})")
    with pytest.raises(SpecError, match="cross: setting 'k' must be at least 1"):
        load_reranker(f"cross(path={tiny_cross},k=0)")
    with pytest.raises(SpecError, match="cross: unknown setting 'depth'"):
        load_reranker(f"cross(path={tiny_cross},depth=3)")
    with pytest.raises(SpecError, match="unknown reranker"):
        load_reranker("monot5(k=3)")


def test_cross_encoder_judges_passages_against_the_question(tiny_cross):
    from retriever.core.types import Hit

    question = "Which country is the director of Kiss and Tell from?"
    hits = [Hit(f"d{i}", 0.0, title, text) for i, (title, text) in enumerate([
        ("Kiss and Tell (1945 film)", "Kiss and Tell is a 1945 comedy film directed by Richard Wallace."),
        ("Richard Wallace (director)", "Richard Wallace was an American film director."),
        ("Tell Me Why", "Tell Me Why is a song."), ("Country music", "Country is a genre of music.")])]
    reranker = load_reranker(f"cross(path={tiny_cross},k=4)")
    by_question = [(h.doc_id, h.score) for h in reranker.rerank(question, hits)]
    later_hop = reranker.rerank("Richard Wallace nationality", hits, RerankContext(question=question, hop=1))
    assert [(h.doc_id, h.score) for h in later_hop] == by_question
    assert reranker.scores("Richard Wallace nationality", hits).tolist() != reranker.scores(question, hits).tolist()


def test_cross_encoder_training_resumes_and_round_trips(tmp_path, tiny_cross, hotpot_full_engine, hotpot,
                                                        monkeypatch):
    from retriever.train.rerank import cross_train
    from retriever.train.rerank.cross_data import mine_groups
    from retriever.train.rerank.cross_train import CrossTrainSettings, train_cross_encoder
    from retriever.rerank.scores import load_cross_encoder, passage

    small = dataclasses.replace(hotpot, qrels={"tiny": dict(list(hotpot.split("dev")[1].items())[:3])})
    groups = mine_groups(hotpot_full_engine, small, "tiny", negatives=3, positives=2, depth=10, using="bm25")
    queries, qrels = small.split("tiny")
    pools = {}
    for qid in qrels:
        top = [d for d, _ in hotpot_full_engine.rankings([queries[qid].text], k=10, using="bm25")[0]]
        docs = {d.doc_id: d for d in hotpot_full_engine.corpus.get_many(top)}
        pools[queries[qid].text] = {passage(docs[d].title, docs[d].text) for d in top if qrels[qid].get(d, 0) > 0}
    assert len(groups) == sum(min(2, len(pool)) for pool in pools.values()) > 0
    assert all(len(g.negatives) == 3 and g.positive in pools[g.query] for g in groups)
    with pytest.raises(InputError, match="never trained on a test split"):
        mine_groups(hotpot_full_engine, hotpot, "test", using="bm25")
    settings = CrossTrainSettings(base=str(tiny_cross), negatives=3, groups_per_step=2, epochs=10, max_steps=4,
                                  checkpoint_every=1, max_length=64)
    whole = train_cross_encoder(groups, tmp_path / "whole", settings)

    def killed_after_step_2(directory, **state):
        save_checkpoint(directory, **state)
        if state["meta"]["step"] == 2:
            raise KeyboardInterrupt

    save_checkpoint = cross_train.save_checkpoint
    monkeypatch.setattr(cross_train, "save_checkpoint", killed_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        train_cross_encoder(groups, tmp_path / "resumed", settings)
    monkeypatch.undo()
    assert not (tmp_path / "resumed").exists()
    resumed = train_cross_encoder(groups, tmp_path / "resumed", settings)  # resumes from step 2
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in whole["history"]], abs=1e-4)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training.json", "loss.png"):
        assert (tmp_path / "whole" / name).is_file()
    pairs = [(groups[0].query, groups[0].positive), (groups[0].query, groups[0].negatives[0])]
    a = load_cross_encoder(tmp_path / "whole").predict(pairs)
    b = load_cross_encoder(tmp_path / "resumed").predict(pairs)
    np.testing.assert_allclose(a, b, atol=1e-4)
    hits = hotpot_full_engine.search(groups[0].query, k=3, using="bm25",
                                     rerank=f"cross(path={tmp_path / 'whole'},k=3)")
    assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score


@pytest.fixture(scope="module")
def trained_policy(tmp_path_factory, hotpot_full_engine, tiny_cross):
    from retriever.train.rerank.rl_train import RLSettings, train_policy

    out = tmp_path_factory.mktemp("policies") / "rl"
    settings = RLSettings(using="bm25", candidates=12, limit=40, bc_epochs=3, rl_epochs=8, batch=16, group=8,
                          lr=0.02, hidden=8, max_k=4, seed=3)
    summary = train_policy(hotpot_full_engine.path, "hotpotqa-distractor", "dev", tiny_cross, out, settings)
    return out, summary


def test_short_rl_run_increases_reward_over_warm_start(trained_policy):
    out, summary = trained_policy
    history = json.loads((out / "policy.json").read_text())["training"]["history"]
    warm = next(h for h in history if h["phase"] == "bc" and h["epoch"] == 3)
    rl = [h for h in history if h["phase"] == "rl"]
    assert rl[-1]["train_reward"] > warm["train_reward"]
    assert rl[-1]["sampled_reward"] > rl[0]["sampled_reward"]
    assert summary["questions"] == 40 and summary["episodes"] > 40
    assert (out / "reward.png").is_file() and (out / "k.png").is_file()


def test_rl_run_can_start_from_a_trained_policy(tmp_path, trained_policy, hotpot_full_engine, tiny_cross):
    from retriever.train.rerank.rl_train import RLSettings, train_policy

    out, summary = trained_policy
    start = RLSettings(**{**json.loads((out / "policy.json").read_text())["training"]["settings"],
                          "bc_epochs": 0, "rl_epochs": 1, "init": str(out)})
    tuned = train_policy(hotpot_full_engine.path, "hotpotqa-distractor", "dev", tiny_cross, tmp_path / "tuned", start)
    history = json.loads((tmp_path / "tuned" / "policy.json").read_text())["training"]["history"]
    assert history[0]["train_reward"] == summary["final"]["train_reward"]  # the same greedy policy to begin with
    assert [h["phase"] for h in history] == ["start", "rl"] and tuned["final"]["epoch"] == 1
    with pytest.raises(InputError, match="hidden: 8 vs 4"):
        train_policy(hotpot_full_engine.path, "hotpotqa-distractor", "dev", tiny_cross, tmp_path / "other",
                     dataclasses.replace(start, hidden=4))


def test_policy_reranker_in_search_and_in_the_loop(trained_policy, hotpot_full_engine, hotpot):
    from retriever.agent import Agent

    out, _ = trained_policy
    spec = f"rl(path={out},max_k=3)"
    question = next(iter(hotpot.split("test")[0].values())).text
    hits = hotpot_full_engine.search(question, k=10, using="bm25", rerank=spec, candidates=12)
    assert 1 <= len(hits) <= 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    captured = []
    reranker = load_reranker(spec)
    original = reranker.rerank

    def spy(query, found, context=None):
        captured.append(context)
        return original(query, found, context)

    reranker.rerank = spy
    answer = Agent(hotpot_full_engine, None, using="bm25", rerank=reranker, candidates=12).ask(question)
    assert 1 <= len(answer.trace.evidence) <= 3
    assert captured and all(isinstance(c, RerankContext) and "bm25" in c.signals for c in captured)
    assert answer.trace.config["rerank"] == spec


def test_rescore_orders_each_hops_hits_before_the_chains_are_built(tiny_cross, hotpot_full_engine, hotpot):
    from retriever.agent import Agent, Budget

    question = next(iter(hotpot.split("test")[0].values())).text
    spec = f"cross(path={tiny_cross},k=5)"
    agent = Agent(hotpot_full_engine, None, using="bm25", candidates=12, rescore=spec, budget=Budget(max_hops=2))
    trace = agent.ask(question).trace
    retrieved = hotpot_full_engine.search(question, k=12, using="bm25")
    first = [h.doc_id for h in load_reranker(spec).rerank(question, retrieved)]
    assert trace.hops[0].retrieved == [*first, *(h.doc_id for h in retrieved if h.doc_id not in first)]
    assert trace.hops[0].retrieved[:5] != [h.doc_id for h in retrieved[:5]]  # the random encoder does re-order
    assert trace.config["rescore"] == spec
    plain = Agent(hotpot_full_engine, None, using="bm25", candidates=12, budget=Budget(max_hops=2)).ask(question)
    assert plain.trace.hops[0].retrieved == [h.doc_id for h in retrieved]
    assert plain.trace.config["rescore"] is None


def test_selection_evaluation_writes_tables(tmp_path, trained_policy, hotpot_full_engine, hotpot):
    from eval.multihop import stratified_sample
    from eval.rerank import evaluate_selection

    out, _ = trained_policy
    report = evaluate_selection(hotpot_full_engine, hotpot, "test", ["top(k=3)", f"rl(path={out})"], using="bm25",
                                candidates=12, limit=4, out_dir=tmp_path)
    assert set(report["results"]) == {"plain | top(k=3)", f"plain | rl(path={out})", "loop | top(k=3)",
                                      f"loop | rl(path={out})"}
    assert report["results"]["plain | top(k=3)"]["passed"] == 3.0
    queries, qrels = hotpot.split("test")
    sample = stratified_sample(list(queries.values()), 4)
    for query, row in zip(sample, report["per_question"]["plain | top(k=3)"], strict=True):
        top = [d for d, _ in hotpot_full_engine.rankings([query.text], k=3, using="bm25")[0]]
        gold = {d for d, s in qrels[query.query_id].items() if s > 0}
        assert (row["query_id"], row["passed_ids"]) == (query.query_id, top)
        assert row["both_gold_passed"] == float(gold <= set(top))
    for name, values in report["results"].items():
        rows = report["per_question"][name]
        assert values["both_gold_passed"] == pytest.approx(sum(r["both_gold_passed"] for r in rows) / len(rows))
    assert (tmp_path / "hotpotqa-distractor-test-selection.md").read_text().count("\n| ") == 5


def test_selection_evaluation_reads_each_passed_set_and_pairs_with_a_baseline(tmp_path, hotpot_full_engine, hotpot,
                                                                              tiny_causal_lm):
    from eval.rerank import evaluate_selection, markdown
    from eval.significance import paired_bootstrap
    from retriever.agent import Agent
    from retriever.core.metrics import best_f1
    from retriever.generate import load_generator

    run = functools.partial(evaluate_selection, hotpot_full_engine, hotpot, "test", ["top(k=3)", "top(k=1)"],
                            using="bm25", candidates=8, modes=("plain",), limit=3, out_dir=tmp_path,
                            llm=str(tiny_causal_lm), llm_settings={"threads": 1})
    with pytest.raises(InputError, match="baseline"):
        run(baseline="top(k=5)")
    report = run(baseline="top(k=3)")
    queries, _ = hotpot.split("test")
    reader = Agent(hotpot_full_engine, load_generator(str(tiny_causal_lm), threads=1), using="bm25")
    for name in ("plain | top(k=3)", "plain | top(k=1)"):
        rows = report["per_question"][name]
        assert len(rows) == 3 and report["results"][name]["f1"] == pytest.approx(sum(r["f1"] for r in rows) / 3)
        for row in rows:
            query = queries[row["query_id"]]
            read, _ = reader.read(query.text, hotpot_full_engine.hits([(d, 0.0) for d in row["passed_ids"]]))
            assert row["prediction"] == read and row["f1"] == best_f1(read, query.answers)
    base, other = report["per_question"]["plain | top(k=3)"], report["per_question"]["plain | top(k=1)"]
    paired = report["paired"]["plain | top(k=1)"]
    assert set(report["paired"]) == {"plain | top(k=1)"} and paired["questions"] == 3
    assert paired["f1"] == dataclasses.asdict(paired_bootstrap([r["f1"] for r in other], [r["f1"] for r in base]))
    assert "| plain | `top(k=1)` | 3 |" in markdown(report)
    lines = (tmp_path / "lm-cache.jsonl").read_text().count("\n")
    again = run(baseline="top(k=3)")["per_question"]  # a rerun reads every passed set from the cache
    assert [r["prediction"] for r in again["plain | top(k=1)"]] == [r["prediction"] for r in other]
    assert (tmp_path / "lm-cache.jsonl").read_text().count("\n") == lines


def _reader_episode(engine, query, qrels, k: int = 6):
    """A real episode: the first ``k`` BM25 hits of a HotpotQA test question, with gold flags and answers."""
    from retriever.train.rerank.episodes import Call, Episode

    hits = engine.hits(engine.retrieve([query.text], k=k, using="bm25")[0].ranking)
    gold = {d for d, s in qrels.items() if s > 0}
    call = Call(query.query_id, query.text, query.text, 0, "plain", [h.doc_id for h in hits], [h.score for h in hits])
    answer = query.answers[0].lower()
    return Episode(call, _random_candidates(len(hits), np.random.default_rng(0)),
                   np.array([h.doc_id in gold for h in hits]),
                   np.array([answer in (h.title + " " + h.text).lower() for h in hits]), len(gold), True, hits,
                   query.answers)


def test_reader_f1_reward_reads_like_the_loop_and_is_cached(hotpot_engine, hotpot_slice, tiny_causal_lm, tmp_path):
    from retriever.agent import Agent, Budget
    from retriever.core.metrics import best_f1
    from retriever.train.rerank.reader_reward import open_reader
    from retriever.train.rerank.rl_train import RLSettings, cheap_reward, reward

    queries, qrels, _ = hotpot_slice
    query = queries[0]
    cache = tmp_path / "lm-cache.jsonl"
    reader = open_reader(hotpot_engine, str(tiny_causal_lm), cache, using="bm25", threads=1)
    episode = _reader_episode(hotpot_engine, query, qrels[query.query_id])
    order = [2, 0]
    plain = RLSettings(using="bm25")
    assert reward(episode, order, plain, reader) == cheap_reward(episode, order, plain)
    assert reader.reads == 0 and not cache.exists()  # reader_f1 = 0: the cheap reward, no LM call

    # the reader is the loop's: a one-hop loop's final reader call on its passed evidence is the same LM call
    generator = reader.agent.generator  # the reader's cached model: the loop's calls go into its cache
    loop = Agent(hotpot_engine, generator, using="bm25", passages=3, budget=Budget(max_hops=1)).ask(query.text)
    passed = [h for doc in loop.trace.evidence for h in hotpot_engine.hits([(doc.doc_id, 0.0)])]
    read, generations = reader.agent.read(query.text, passed)
    assert (read, [g.cached for g in generations]) == (loop.text, [True])

    weighted = RLSettings(using="bm25", reader_f1=0.7)
    predicted, _ = reader.agent.read(query.text, [episode.hits[i] for i in order])
    hits_before = reader.cache_hits
    scored = reward(episode, order, weighted, reader)
    assert scored == pytest.approx(cheap_reward(episode, order, weighted) + 0.7 * best_f1(predicted, query.answers))
    assert reader.cache_hits == hits_before + 1  # the same passed set was read above: answered from the cache
    aliased = dataclasses.replace(episode, answers=[*query.answers, predicted])  # an alias equal to the reading
    assert predicted.strip() and reward(episode, order, weighted, reader) < reward(aliased, order, weighted, reader)
    assert reward(aliased, order, weighted, reader) == pytest.approx(cheap_reward(episode, order, weighted) + 0.7)
    lines = cache.read_text().count("\n")
    reward(episode, order, weighted, reader)
    assert cache.read_text().count("\n") == lines  # a repeated call writes nothing
    reward(episode, order[::-1], weighted, reader)
    assert cache.read_text().count("\n") == lines + 1  # the order of the passages is part of what is read
    with pytest.raises(InputError, match="needs a reader"):
        reward(episode, order, weighted)


def test_rl_training_with_the_reader_f1_reward(tmp_path, hotpot_full_engine, tiny_cross, tiny_causal_lm):
    from retriever.core.errors import SettingError
    from retriever.train.rerank.rl_train import RLSettings, train_policy

    settings = RLSettings(using="bm25", candidates=8, limit=4, bc_epochs=1, rl_epochs=1, batch=8, group=2,
                          hidden=4, max_k=3, seed=3, reader_f1=1.0)
    with pytest.raises(SettingError, match="reader_f1"):
        RLSettings(reader_f1=-1)
    with pytest.raises(InputError, match="reader-F1"):
        train_policy(hotpot_full_engine.path, "hotpotqa-distractor", "dev", tiny_cross, tmp_path / "a", settings)
    with pytest.raises(InputError, match="reader-F1"):
        train_policy(hotpot_full_engine.path, "hotpotqa-distractor", "dev", tiny_cross, tmp_path / "a",
                     dataclasses.replace(settings, reader_f1=0.0), llm=str(tiny_causal_lm))
    first = train_policy(hotpot_full_engine.path, "hotpotqa-distractor", "dev", tiny_cross, tmp_path / "a", settings,
                         llm=str(tiny_causal_lm), llm_settings={"threads": 1})
    cache = tmp_path / "a.train" / "lm-cache.jsonl"
    assert cache.is_file() and first["reader"]["reads"] > first["reader"]["cache_hits"]
    assert {"train_f1", "holdout_f1", "train_total"} <= set(first["final"])
    history = json.loads((tmp_path / "a" / "policy.json").read_text())["training"]["history"]
    assert "train_f1" not in history[0] and "train_f1" in history[1]  # read at the end of cloning, not before
    again = train_policy(hotpot_full_engine.path, "hotpotqa-distractor", "dev", tiny_cross, tmp_path / "b", settings,
                         llm=str(tiny_causal_lm), lm_cache=cache, llm_settings={"threads": 1})
    assert again["reader"]["reads"] == again["reader"]["cache_hits"] == first["reader"]["reads"]
    assert again["final"] == first["final"]
