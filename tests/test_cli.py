"""The CLI through click's CliRunner, on a slice of NFCorpus and on HotpotQA."""

import json

import pytest
from click.testing import CliRunner

from cli import main


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_build_search_add_eval(tmp_path, runner, nfcorpus_slice):
    engine = str(tmp_path / "engine")
    result = runner.invoke(main, ["index", "build", engine, "--dataset", str(nfcorpus_slice), "--kinds", "bm25"])
    assert result.exit_code == 0, result.output
    assert "400 documents; indexes: bm25" in result.output

    result = runner.invoke(main, ["search", engine, "statins breast cancer", "-k", "3", "--json"])
    hits = json.loads(result.output)
    assert result.exit_code == 0 and len(hits) == 3 and {"doc_id", "score", "title", "text"} <= set(hits[0])

    docs = tmp_path / "new.jsonl"
    docs.write_text('{"_id": "NEW-1", "title": "Arsenic", "text": "arsenic in brown rice"}\n')
    result = runner.invoke(main, ["index", "add", engine, str(docs)])
    assert result.exit_code == 0 and "401 in total" in result.output
    result = runner.invoke(main, ["index", "add", engine, str(docs)])
    assert result.exit_code == 1 and "new.jsonl:1: duplicate id 'NEW-1'" in result.output

    result = runner.invoke(main, ["index", "build", engine, "--index", "tuned=bm25(k1=1.2,b=0.75)"])
    assert result.exit_code == 0 and "indexes: bm25, tuned" in result.output

    out = tmp_path / "results"
    result = runner.invoke(main, ["eval", "beir", engine, "--dataset", str(nfcorpus_slice), "--using", "bm25",
                                  "--using", "rrf(bm25,tuned)", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["system"] for r in rows] == ["bm25", "rrf(bm25,tuned)"]
    assert 0.2 < rows[0]["metrics"]["nDCG@10"] <= 1.0
    written = json.loads((out / f"{nfcorpus_slice.name}-test.json").read_text())
    assert written["results"][0]["config"]["bm25"]["settings"] == {"k1": 0.9, "b": 0.4}
    assert (out / f"{nfcorpus_slice.name}-test.md").read_text().startswith("|")
    run_lines = (out / f"{nfcorpus_slice.name}-test-bm25.trec").read_text().splitlines()
    assert run_lines[0].split()[1] == "Q0" and run_lines[0].split()[3] == "1"

    info = json.loads(runner.invoke(main, ["index", "info", engine]).output)
    assert info["corpus"]["doc_count"] == 401 and info["indexes"]["bm25"]["kind"] == "bm25"


def test_errors_are_one_clean_line(tmp_path, runner):
    result = runner.invoke(main, ["search", str(tmp_path), "q"])
    assert result.exit_code == 1 and "not an engine directory" in result.output
    result = runner.invoke(main, ["index", "build", str(tmp_path / "e"), "--dataset", "no-such-dataset",
                                  "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "looked in" in result.output and "Traceback" not in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n')
    result = runner.invoke(main, ["index", "build", str(tmp_path / "e2"), "--corpus", str(bad), "--kinds", "bm25"])
    assert result.exit_code == 1 and "bad.jsonl:2: malformed JSON" in result.output
    assert not (tmp_path / "e2" / "engine.json").exists()
    for bad, says in (("prf_dogs=3", "--feedback takes prf_docs, prf_terms, prf_weight"),
                      ("prf_docs=three", "prf_docs")):
        result = runner.invoke(main, ["eval", "sparse", str(tmp_path / "e3"), "--dataset", "nfcorpus",
                                      "--feedback", bad])
        assert result.exit_code in (1, 2) and says in result.output and "Traceback" not in result.output, bad
    assert not (tmp_path / "e3").exists()  # refused before anything is built


def test_prepare_hotpotqa(tmp_path, runner):
    out = tmp_path / "hp"
    result = runner.invoke(main, ["data", "prepare", "hotpotqa", "--out", str(out)])
    assert result.exit_code == 0 and "1100 questions (dev 500, test 600)" in result.output
    assert sum(1 for _ in open(out / "corpus.jsonl")) == 10785
    assert open(out / "qrels" / "test.tsv").readline().strip() == "query-id\tcorpus-id\tscore"


def _commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_command_has_short_help_and_an_example(runner):
    commands = list(_commands(main))
    assert ("search",) in commands and ("eval", "beir") in commands and len(commands) >= 16
    for path in commands:
        result = runner.invoke(main, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example:" in result.output and f"retriever {' '.join(path)}" in result.output, path
    assert "the learned sparse document encoder and the rerankers" in runner.invoke(main, ["train", "-h"]).output
    beir = runner.invoke(main, ["eval", "beir", "-h"]).output
    assert "--download" not in beir and "RR@10" in beir and "MRR" not in beir


def test_key_value_parser():
    import click

    from retriever.commands.options import parse_pairs

    assert parse_pairs(["steps=600", "lr = 1e-4", "path=a=b"]) == {"steps": "600", "lr": "1e-4", "path": "a=b"}
    for bad in (["steps"], ["=3"], ["a=1", "a=2"]):
        with pytest.raises(click.UsageError):
            parse_pairs(bad)


def test_logging_flags_and_quiet(runner, monkeypatch):
    import logging
    import os

    monkeypatch.delenv("RETRIEVER_QUIET", raising=False)
    assert runner.invoke(main, ["-vv", "eval", "table"]).exit_code == 0
    assert logging.getLogger().level == logging.DEBUG
    assert runner.invoke(main, ["-q", "eval", "table"]).exit_code == 0
    assert logging.getLogger().level == logging.ERROR and os.environ["RETRIEVER_QUIET"] == "1"


def test_quiet_also_hushes_model_loading_bars():
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = ("from retriever.core.models import resolve_model; from sentence_transformers import SentenceTransformer; "
              "SentenceTransformer(resolve_model('all-MiniLM-L6-v2'), device='cpu')")
    root = Path(__file__).resolve().parents[1]
    runs = {}
    for quiet in ("1", "0"):
        env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}  # set by earlier tests
        env["RETRIEVER_QUIET"] = quiet
        runs[quiet] = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True)
    assert runs["1"].returncode == 0 and "Loading weights" not in runs["1"].stderr
    assert "Loading weights" in runs["0"].stderr  # the bar exists: quiet is what removed it
