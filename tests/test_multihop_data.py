"""Multi-hop sets in HotpotQA's distractor format: MuSiQue, 2WikiMultiHopQA and any user file (real data)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from cli import main
from retriever.core.datasets import distractor_to_beir, hold_out, load_dataset
from retriever.core.errors import InputError


def test_musique_pools_one_corpus_with_unique_titles():
    data = load_dataset("musique")
    assert len(data.queries) == 626 and sum(1 for _ in data.documents()) == 8811
    hops = Counter(q.metadata["hops"] for q in data.queries.values())
    assert hops == {2: 526, 3: 64, 4: 36}
    query = data.queries["2hop__460946_294723"]
    assert query.metadata["answer"] == "Miquette Giraudy" and query.metadata["answer_aliases"] == []
    assert data.qrels["all"]["2hop__460946_294723"] == {"Green (Steve Hillage album)": 1, "Miquette Giraudy": 1}
    docs = {d.doc_id: d for d, _, _ in data.documents()}
    assert "Green (2)" in docs and docs["Green"].text != docs["Green (2)"].text
    # fixed halves, stratified by type: the 4-hop questions split evenly, and the split is the same every time
    test, dev = data.qrels["test"], data.qrels["dev"]
    assert not set(test) & set(dev) and len(test) + len(dev) == 626
    assert sum(data.queries[q].metadata["hops"] == 4 for q in dev) == 18
    assert load_dataset("musique").qrels["test"].keys() == test.keys()


def test_2wiki_joins_sentences_and_keeps_types():
    data = load_dataset("2wikimultihopqa")
    assert len(data.queries) == 1033 and sum(1 for _ in data.documents()) == 6561
    types = Counter(q.metadata["type"] for q in data.queries.values())
    assert types == {"compositional": 422, "bridge_comparison": 253, "comparison": 235, "inference": 123}
    docs = {d.doc_id: d for d, _, _ in data.documents()}
    assert "film director. In 1995 he graduated" in docs["Xawery Żuławski"].text  # sentences keep a space between
    assert all(len(data.qrels["all"][q]) == 4 for q, query in data.queries.items()
               if query.metadata["type"] == "bridge_comparison")


def test_any_file_in_the_format_and_the_command_names_it(tmp_path, data_root):
    lines = (data_root / "musique" / "musique_ans_dev_626.jsonl").read_text(encoding="utf-8").splitlines()
    mine = tmp_path / "my-questions.jsonl"
    mine.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "prepare", "mine", "--file", str(mine), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert f"read {mine}" in result.output and "5 questions" in result.output
    reloaded = load_dataset(str(tmp_path / "o"))
    assert len(reloaded.queries) == 5 and reloaded.queries["2hop__460946_294723"].metadata["hops"] == 2
    named = CliRunner().invoke(main, ["data", "prepare", "musique", "--out", str(tmp_path / "m")])
    assert named.exit_code == 0 and "musique_ans_dev_626.jsonl" in named.output and "626 questions" in named.output
    missing = CliRunner().invoke(main, ["data", "prepare", "x", "--file", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code != 0 and "nope.jsonl" in missing.output
    unknown = CliRunner().invoke(main, ["data", "prepare", "nosuchset"])
    assert unknown.exit_code != 0 and "--file" in unknown.output


def test_a_file_not_in_the_format_fails_with_its_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    record = {"id": "q1", "question": "?", "answer": "a", "context": {"title": ["A"], "sentences": [["x"]]},
              "supporting_facts": {"title": ["B"], "sent_id": [0]}}
    bad.write_text(json.dumps({"id": "q0"}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: not a HotpotQA distractor record"):
        distractor_to_beir(bad, "bad")
    bad.write_text(json.dumps(record) + "\n")
    with pytest.raises(InputError, match=r"supporting title 'B'"):
        distractor_to_beir(bad, "bad")


def test_held_out_part_of_a_split_keeps_the_type_mix_and_is_written(tmp_path, hotpot):
    cut = hold_out(hotpot, "dev", 0.3, seed=7)
    fit, held = cut.qrels["dev-fit"], cut.qrels["dev-held"]
    assert len(held) == 150 and not set(fit) & set(held) and {**fit, **held} == hotpot.qrels["dev"]
    kinds = {split: Counter(hotpot.queries[q].metadata["type"] for q in qrels) for split, qrels in
             (("dev", hotpot.qrels["dev"]), ("held", held))}
    assert all(abs(kinds["held"][k] - 0.3 * n) <= 0.5 for k, n in kinds["dev"].items())
    assert hold_out(hotpot, "dev", 0.3, seed=7).qrels["dev-held"] == held
    assert hold_out(hotpot, "dev", 0.3, seed=8).qrels["dev-held"] != held
    with pytest.raises(InputError, match="between 0 and 1"):
        hold_out(hotpot, "dev", 1.0, seed=7)
    out = tmp_path / "hp"
    result = CliRunner().invoke(main, ["data", "prepare", "hotpotqa", "--hold-out", "dev:0.3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert set(load_dataset(str(out)).split("dev-held")[1]) == set(held)
