"""The engine: build, search, fusion, atomic add, and crash safety of builds."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexes.dense import DenseIndex
from retriever.api import Engine, Hit
from retriever.core.errors import IndexFormatError, InputError, SpecError


def test_search_returns_hits_with_text(slice_engine):
    hits = slice_engine.search("statins and breast cancer", k=5, using="bm25")
    assert len(hits) == 5 and all(isinstance(h, Hit) for h in hits)
    doc = slice_engine.corpus[hits[0].doc_id]
    assert (hits[0].title, hits[0].text) == (doc.title, doc.text)
    assert hits[0].score >= hits[-1].score


def test_using_forms(slice_engine):
    query = "vitamin D and bone health"
    hybrid = slice_engine.search(query, k=10, using="hybrid")
    assert [h.doc_id for h in hybrid] == [h.doc_id for h in slice_engine.search(query, k=10, using="rrf(bm25,dense)")]
    assert [h.doc_id for h in hybrid] == [h.doc_id for h in slice_engine.search(query, k=10, using=["bm25", "dense"])]
    assert [h.doc_id for h in hybrid] == [h.doc_id for h in slice_engine.search(query, k=10)]
    assert len(slice_engine.search(query, k=7, using="norm(bm25^0.3,dense^0.7)")) == 7
    with pytest.raises(SpecError, match="no index named 'sparse'"):
        slice_engine.search(query, using="sparse")


def test_batch_search_matches_single(slice_engine):
    queries = ["fish oil", "gluten sensitivity", "sugar and diabetes"]
    batch = slice_engine.batch_search(queries, k=5, using="hybrid")
    assert [[h.doc_id for h in hits] for hits in batch] == \
        [[h.doc_id for h in slice_engine.search(q, k=5, using="hybrid")] for q in queries]


def test_build_refuses_existing_and_foreign_dirs(tmp_path, slice_engine):
    with pytest.raises(FileExistsError, match="already holds an engine"):
        Engine.build(slice_engine.path, [{"_id": "x", "text": "y"}], indexes=["bm25"])
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        Engine.build(tmp_path / "foreign", [{"_id": "x", "text": "y"}], indexes=["bm25"])
    with pytest.raises(IndexFormatError, match="not an engine directory"):
        Engine.open(tmp_path / "foreign")


def small_engine(path, indexes=("bm25",)):
    docs = [{"_id": f"d{i}", "title": f"title {i}", "text": f"document number {i} about topic {i % 3}"}
            for i in range(20)]
    return Engine.build(path, docs, indexes=list(indexes))


def test_add_appends_to_every_index(tmp_path, nfcorpus_slice):
    with open(nfcorpus_slice / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in itertools.islice(f, 60)]  # 60 real documents: MiniLM encodes few
    engine = Engine.build(tmp_path / "e", docs, indexes=["bm25", "dense"])
    before = len(engine.corpus)
    added = engine.add([{"_id": "NEW-1", "title": "Arsenic in brown rice",
                         "text": "Brown rice has more inorganic arsenic than white rice."}])
    assert added == 1 and len(engine.corpus) == before + 1
    for name in ("bm25", "dense"):
        assert engine.search("arsenic brown rice", k=1, using=name)[0].doc_id == "NEW-1"
        assert engine.indexes[name].doc_count == before + 1
    reopened = Engine.open(tmp_path / "e")
    assert reopened.search("arsenic brown rice", k=1, using="hybrid")[0].doc_id == "NEW-1"
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [".lock", ".readers", "bm25-2", "corpus-2", "dense-2",
                                                                  "engine.json"]


def test_failed_add_leaves_engine_intact(tmp_path, monkeypatch):
    engine = small_engine(tmp_path / "e")
    state = (tmp_path / "e" / "engine.json").read_text()
    with pytest.raises(InputError, match="duplicate id 'd3'"):
        engine.add([{"_id": "new", "text": "fine"}, {"_id": "d3", "text": "clash"}])
    with pytest.raises(InputError, match="empty '_id'"):
        engine.add([{"_id": " ", "text": "x"}])

    def broken(self, directory, docs):
        raise RuntimeError("disk full")

    from indexes.bm25 import BM25Index
    monkeypatch.setattr(BM25Index, "write_extended", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        engine.add([{"_id": "new", "text": "fine"}])
    assert (tmp_path / "e" / "engine.json").read_text() == state
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [".lock", ".readers", "bm25-1", "corpus-1",
                                                                  "engine.json"]
    assert len(Engine.open(tmp_path / "e").corpus) == 20


def test_build_indexes_adds_a_named_index(tmp_path):
    engine = small_engine(tmp_path / "e")
    engine.build_indexes(["tuned=bm25(k1=1.2,b=0.75)"])
    assert engine.names == ["bm25", "tuned"]
    assert engine.specs["tuned"] == "tuned=bm25(k1=1.2,b=0.75)"
    assert engine.indexes["tuned"].settings == {"k1": 1.2, "b": 0.75}
    with pytest.raises(FileExistsError):
        engine.build_indexes(["tuned=bm25"])


KILL_SCRIPT = """
import sys
from retriever.api import Engine
Engine.build(sys.argv[1], sys.argv[2], indexes=["bm25", "dense"], overwrite=True)
"""


def test_killed_rebuild_keeps_previous_engine(tmp_path, nfcorpus):
    engine = small_engine(tmp_path / "e")
    expected = [h.doc_id for h in engine.search("topic 1", k=5)]
    engine.close()  # an open reader keeps its generation on disk
    corpus = Path(nfcorpus.source) / "corpus.jsonl"
    env = {**os.environ, "RETRIEVER_QUIET": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "e"), str(corpus)], env=env)
    deadline = time.time() + 120
    # wait until the new generation's dense index is being written, then kill the process
    while time.time() < deadline and not any(p.name.startswith(".tmp-dense") for p in (tmp_path / "e").iterdir()):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(p.name.startswith(".tmp-dense") for p in (tmp_path / "e").iterdir()), "kill came too late"
    reopened = Engine.open(tmp_path / "e")
    assert len(reopened.corpus) == 20 and reopened.names == ["bm25"]
    assert [h.doc_id for h in reopened.search("topic 1", k=5)] == expected
    with pytest.raises(IndexFormatError):
        Engine.open(next(p for p in (tmp_path / "e").iterdir() if p.name.startswith(".tmp-dense")))
    reopened.add([{"_id": "after", "text": "written after the crash"}])  # the next write clears the debris
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [".lock", ".readers", "bm25-2", "corpus-2",
                                                                  "engine.json"]


def test_relative_paths_after_chdir(tmp_path, monkeypatch):
    """The JVM keeps its start-up directory; relative engine paths must still land under the new one."""
    from indexes.bm25 import BM25Index  # noqa: F401  (starts the JVM before the chdir)

    small_engine(tmp_path / "warm")
    monkeypatch.chdir(tmp_path)
    engine = small_engine("relative/e")
    assert (tmp_path / "relative" / "e" / "bm25-1" / "lucene").is_dir()
    assert engine.search("topic 2", k=1)[0].doc_id.startswith("d")
