"""Sharded builds and fan-out search on a local Ray cluster equal the single-process engine.

Real components throughout: Lucene BM25, MiniLM (Flat), SPLADE-tiny with Lucene impacts, on the
NFCorpus slice; two shards; ``ray.init(num_cpus=2)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

from retriever.api import Engine  # noqa: E402

SPECS = ["bm25", "dense(max_seq_length=64)", "sparse(max_length=32,lexical=1)"]  # lexical: its pinned avgdl
NAMES = ["bm25", "dense", "sparse"]
ADDED = 40


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU cluster, started after the JVM (the order that crashed Lucene before Ray's
    fault handlers were put back; the whole suite starts Lucene long before this module)."""
    from indexes.jvm import java_class
    from retriever.distributed.cluster import connect, disconnect

    java_class("java.util.ArrayList")
    yield connect(2)
    disconnect()


@pytest.fixture(scope="module")
def docs(nfcorpus_slice):
    lines = (nfcorpus_slice / "corpus.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def queries(nfcorpus_slice):
    return [json.loads(line)["text"] for line in (nfcorpus_slice / "queries.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def engines(tmp_path_factory, docs, cluster):
    from retriever.distributed.build import build

    root = tmp_path_factory.mktemp("distributed")
    single = Engine.build(root / "single", docs[:-ADDED], indexes=SPECS)
    build(root / "sharded", docs[:-ADDED], SPECS, workers=2)
    return single, Engine.open(root / "sharded")


def test_shard_ranges_fall_on_blocks():
    from retriever.distributed.build import shard_ranges

    assert shard_ranges(0, 360, 2, 256) == [(0, 256), (256, 360)]
    assert shard_ranges(0, 10, 3) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(100, 101, 4, 256) == [(100, 101)]


def test_sharded_build_equals_single_process(engines, queries):
    single, sharded = engines
    for name in NAMES:
        index = sharded.index(name)
        assert len(index.shard_dirs) == 2 and index.doc_count == len(single.corpus)
        assert sharded.rankings(queries, 10, using=name) == single.rankings(queries, 10, using=name), name


def test_fanout_search_equals_single_process(engines, queries):
    from retriever.distributed.search import DistributedEngine

    single, sharded = engines
    with DistributedEngine(sharded.path) as fanned:
        assert [f.fan_out for f in map(fanned.index, NAMES)] == [False, True, True]
        for using in [*NAMES, "rrf(bm25,dense,sparse)", "norm(bm25,sparse)"]:
            assert fanned.rankings(queries, 10, using=using) == single.rankings(queries, 10, using=using), using
        feedback = {"sparse": {"prf_docs": 3}}  # expanded on the driver from the merged first round
        assert fanned.rankings(queries, 10, using="sparse", knobs=feedback) == \
            single.rankings(queries, 10, using="sparse", knobs=feedback) != single.rankings(queries, 10, using="sparse")
        hits = fanned.batch_search(queries[:3], k=3, using="rrf(bm25,dense)", rerank="top(k=3)")
        assert [[h.doc_id for h in found] for found in hits] == \
            [[d for d, _ in r] for r in single.rankings(queries[:3], 3, using="rrf(bm25,dense)")]
    with DistributedEngine(sharded.path, local_statistics=True) as local:
        # BM25 over shards, each with its own statistics: the same matching documents, other scores
        ranked, exact = local.rankings(queries, 1000, using="bm25"), single.rankings(queries, 1000, using="bm25")
        assert [{d for d, _ in r} for r in ranked] == [{d for d, _ in r} for r in exact]
        assert ranked != exact


def test_service_fronts_the_sharded_engine(engines, queries):
    """`retriever serve --ray`: the same HTTP app is the ingress; its answers equal the single process's."""
    from fastapi.testclient import TestClient

    from retriever.distributed.search import DistributedEngine
    from retriever.serve.app import create_app
    from retriever.serve.config import ServeConfig
    from retriever.serve.live import LiveEngine

    single, sharded = engines
    live = LiveEngine.open(sharded.path, opener=DistributedEngine)
    try:
        with live.use() as held:
            assert isinstance(held.engine, DistributedEngine)
        with TestClient(create_app(live, ServeConfig())) as api:
            for using in ["bm25", "sparse", "rrf(bm25,dense)"]:
                answers = [api.get("/api/search", params={"q": q, "k": 10, "using": using}).json() for q in queries]
                assert [[(h["doc_id"], h["score"]) for h in a["hits"]] for a in answers] == \
                    single.rankings(queries, 10, using=using), using
            batch = api.post("/api/batch_search", json={"queries": queries[:3], "k": 5, "using": "dense"}).json()
            assert [[h["doc_id"] for h in r["hits"]] for r in batch["results"]] == \
                [[d for d, _ in r] for r in single.rankings(queries[:3], 5, using="dense")]
    finally:
        live.close()


def test_sharded_add_equals_single_process_add(engines, docs, queries):
    from retriever.distributed.build import add
    from retriever.distributed.search import DistributedEngine

    single, sharded = engines
    single.add(docs[-ADDED:])
    assert add(sharded.path, docs[-ADDED:], workers=2) == ADDED
    sharded.refresh()
    for name, shards in zip(NAMES, [4, 3, 3]):  # bm25 shards split any range; encoders' fall on 256-doc blocks
        assert len(sharded.index(name).shard_dirs) == shards
        assert sharded.rankings(queries, 10, using=name) == single.rankings(queries, 10, using=name), name
    with DistributedEngine(sharded.path) as fanned:
        assert fanned.rankings(queries, 10, using="sparse") == single.rankings(queries, 10, using="sparse")


def test_without_workers_ray_is_not_imported(tmp_path, docs):
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:20]))
    code = ("import sys, cli; from click.testing import CliRunner; "
            f"r = CliRunner().invoke(cli.main, ['index', 'build', {str(tmp_path / 'e')!r}, '--corpus', "
            f"{str(tmp_path / 'c.jsonl')!r}, '--kinds', 'bm25']); "
            "assert r.exit_code == 0, r.output; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
