"""The evaluation workflow: topics -> TREC run, chosen metrics, per-query values, paired significance,
several datasets in one run; on the real NFCorpus slice (BM25 + MiniLM dense)."""

import json

import ir_measures
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from cli import main
from eval.runs import read_run, read_topics
from eval.significance import holm, paired_bootstrap, paired_t_test
from retriever.core.errors import InputError
from retriever.engine.stage import DEFAULT_DEPTH


def _qrels(directory):
    rows = [line.split("\t") for line in (directory / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    return [ir_measures.Qrel(q, d, int(s)) for q, d, s in rows]


def test_run_file_from_topics_scores_like_eval_beir(tmp_path, slice_engine, nfcorpus_slice):
    runner = CliRunner()
    engine = str(slice_engine.path)
    run_path = tmp_path / "rrf.trec"
    result = runner.invoke(main, ["search", engine, "--topics", f"{nfcorpus_slice}:test", "--output", str(run_path),
                                  "--using", "rrf(bm25,dense)", "-k", "100", "--depth", "200", "--run-tag", "mine"])
    assert result.exit_code == 0, result.output
    run = read_run(run_path)
    judged = {q.query_id for q in _qrels(nfcorpus_slice)}
    assert set(run) == judged and all(len(r) == 100 for r in run.values())
    assert run_path.read_text().split("\n", 1)[0].split()[5] == "mine"
    out = tmp_path / "results"
    result = runner.invoke(main, ["eval", "beir", engine, "--dataset", str(nfcorpus_slice), "--using",
                                  "rrf(bm25,dense)", "--depth", "200", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    reported = json.loads(result.output)[0]["metrics"]
    measured = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in reported], _qrels(nfcorpus_slice),
                                          ir_measures.read_trec_run(str(run_path)))
    assert {str(m): v for m, v in measured.items()} == pytest.approx(reported, abs=1e-9)
    # a different fusion depth is a different run: the flag is not ignored
    shallow = runner.invoke(main, ["eval", "beir", engine, "--dataset", str(nfcorpus_slice), "--using",
                                   "rrf(bm25,dense)", "--depth", "10", "--out", str(out), "--json"])
    assert json.loads(shallow.output)[0]["metrics"] != reported


def test_one_depth_rule(slice_engine, nfcorpus_slice):
    from eval.beir import evaluate
    from eval.reproduce import load_table
    from retriever.core.datasets import load_dataset

    queries = [line for line in (nfcorpus_slice / "queries.jsonl").read_text().splitlines()]
    texts = [json.loads(q)["text"] for q in queries]
    default = slice_engine.rankings(texts, k=10, using="rrf(bm25,dense)")
    assert default == slice_engine.rankings(texts, k=10, using="rrf(bm25,dense)", depth=DEFAULT_DEPTH)
    dataset = load_dataset(str(nfcorpus_slice))
    result = evaluate(slice_engine, dataset, "test", ["rrf(bm25,dense)"], k=10)[0]
    explicit = evaluate(slice_engine, dataset, "test", ["rrf(bm25,dense)"], k=10, depth=DEFAULT_DEPTH)[0]
    assert result.metrics == explicit.metrics
    fused = [row for row in load_table() if "(" in row.system]
    assert fused and all(row.depth == 1000 for row in fused)


def test_topics_formats(tmp_path, nfcorpus_slice):
    tsv = tmp_path / "topics.tsv"
    tsv.write_text("q1\tvitamin d\nq2\tstatins\n")
    assert read_topics(str(tsv)) == {"q1": "vitamin d", "q2": "statins"}
    assert len(read_topics(str(nfcorpus_slice / "queries.jsonl"))) == 40
    judged = read_topics(f"{nfcorpus_slice}:test")
    assert list(judged) == sorted({q.query_id for q in _qrels(nfcorpus_slice)})
    assert len(read_topics(str(nfcorpus_slice))) == 40
    tsv.write_text("q1\tvitamin d\nq1\tagain\n")
    with pytest.raises(InputError, match="topics.tsv:2: duplicate query id 'q1'"):
        read_topics(str(tsv))
    tsv.write_text("no tab here\n")
    with pytest.raises(InputError, match="topics.tsv:1: expected"):
        read_topics(str(tsv))


def test_metrics_per_query_and_significance(tmp_path, slice_engine, nfcorpus_slice):
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["eval", "beir", str(slice_engine.path), "--dataset", str(nfcorpus_slice),
                                       "--using", "bm25", "--using", "dense", "--using", "rrf(bm25,dense)",
                                       "--metrics", "nDCG@10,AP,P@5", "--baseline", "bm25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| nDCG@10 | AP | P@5 |" in result.output and "paired t-test" in result.output
    name = nfcorpus_slice.name
    report = json.loads((out / f"{name}-test.json").read_text())
    rows = {r["system"]: r for r in report["results"]}
    assert rows["bm25"]["significance"] == {}
    test = rows["dense"]["significance"]["nDCG@10"]
    assert test["baseline"] == "bm25" and test["low"] <= test["difference"] <= test["high"]
    assert 0 <= test["t_p"] <= 1 and 0 <= test["bootstrap_p"] <= 1
    lines = (out / f"{name}-test.perquery.tsv").read_text().splitlines()
    judged = {q.query_id for q in _qrels(nfcorpus_slice)}
    assert lines[0] == "system\tmeasure\tquery_id\tvalue" and len(lines) == 1 + 3 * 3 * len(judged)
    per_query = [float(line.split("\t")[3]) for line in lines[1:] if line.startswith("dense\tnDCG@10\t")]
    assert np.mean(per_query) == pytest.approx(rows["dense"]["metrics"]["nDCG@10"], abs=1e-6)
    assert (out / f"{name}-test-dense-vs-bm25.png").stat().st_size > 1000
    bad = CliRunner().invoke(main, ["eval", "beir", str(slice_engine.path), "--dataset", str(nfcorpus_slice),
                                    "--metrics", "nDCG@10,Nope@3"])
    assert bad.exit_code == 2 and "Nope" in bad.output and "Traceback" not in bad.output


def test_several_datasets_one_table(tmp_path, slice_engine, nfcorpus_slice):
    import shutil

    root = tmp_path / "engines"
    for name in ("a", "b"):
        shutil.copytree(nfcorpus_slice, tmp_path / name)
        shutil.copytree(slice_engine.path, root / name)
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["eval", "beir", str(root), "--dataset", str(tmp_path / "a"), "--dataset",
                                       str(tmp_path / "b"), "--using", "bm25", "--using", "dense", "--baseline",
                                       "bm25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = (out / "beir-test.md").read_text()
    assert "| nDCG@10 | a | b | mean |" in table and "`dense`" in table
    assert (out / "beir-test-nDCG_10.png").stat().st_size > 1000
    missing = CliRunner().invoke(main, ["eval", "beir", str(root), "--dataset", str(nfcorpus_slice)])
    assert missing.exit_code == 1 and "no engine for dataset" in missing.output


def test_paired_bootstrap_and_t_test():
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 1, 400)
    a = b + rng.normal(0.05, 0.2, 400)
    boot = paired_bootstrap(a, b, samples=5000, seed=3)
    half = 1.96 * np.std(a - b, ddof=1) / np.sqrt(400)
    assert boot.difference == pytest.approx(np.mean(a - b))
    assert boot.low == pytest.approx(boot.difference - half, abs=0.15 * half)
    assert boot.high == pytest.approx(boot.difference + half, abs=0.15 * half)
    assert boot.p_value < 0.01 and paired_t_test(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    same = paired_bootstrap(b, b)
    assert (same.difference, same.p_value) == (0.0, 1.0) and paired_t_test(b, b) == 1.0
    noise = paired_bootstrap(b + rng.normal(0, 0.2, 400), b, seed=0)
    assert noise.p_value > 0.05 or noise.low < 0 < noise.high
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    with pytest.raises(InputError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([]) == []


def test_ir_datasets_id_offline(tmp_path, data_root):
    """An ir_datasets id loads from files already on disk and never downloads (a subprocess: ir_datasets reads
    IR_DATASETS_HOME at import)."""
    import os
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    script = ("import json; from retriever.core.datasets import load_dataset; d = load_dataset('beir/scifact/test'); "
              "print(json.dumps([d.name, sum(1 for _ in d.documents()), len(d.queries), d.splits, "
              "len(d.qrels['test'])]))")
    env = {**os.environ, "IR_DATASETS_HOME": str(tmp_path / "home")}
    root = Path(__file__).resolve().parents[1]
    missing = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True)
    assert missing.returncode != 0 and "is not on disk" in missing.stderr and "scifact.zip" in missing.stderr
    scifact = data_root / "scifact"
    (tmp_path / "home" / "beir" / "scifact").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp_path / "home" / "beir" / "scifact" / "source.zip", "w") as archive:
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            archive.write(scifact / name, f"scifact/{name}")
    found = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout.splitlines()[-1]) == ["beir-scifact-test", 5183, 300, ["test"], 300]
