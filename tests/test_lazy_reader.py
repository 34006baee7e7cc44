"""The reader opens indexes lazily: a BM25 query never loads the dense model nor imports torch."""

import subprocess
import sys

from retriever.api import Engine

PROBE = """
import sys
from retriever import Engine
engine = Engine.open(sys.argv[1])
hits = engine.search("statins and breast cancer", k=3, using="bm25")
print(len(hits), sorted(m for m in ("torch", "sentence_transformers", "faiss") if m in sys.modules))
"""


def test_bm25_query_does_not_import_torch(slice_engine):
    assert set(slice_engine.names) == {"bm25", "dense"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(slice_engine.path)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split("\n")[0] == "3 []"


def test_indexes_open_on_first_use_and_the_stage_searches_each_once(slice_engine, monkeypatch):
    engine = Engine.open(slice_engine.path)
    assert engine.reader._indexes == {}
    engine.search("vitamin D", k=5, using="bm25")
    assert list(engine.reader._indexes) == ["bm25"]
    calls = []
    for name in ("bm25", "dense"):
        index = engine.index(name)
        monkeypatch.setattr(index, "search", lambda queries, k, _search=index.search, _name=name, **knobs:
                            calls.append(_name) or _search(queries, k, **knobs))
    retrieved = engine.retrieve(["vitamin D", "fish oil"], k=5, using="rrf(bm25,dense)")
    assert sorted(calls) == ["bm25", "dense"]
    assert [len(r.ranking) for r in retrieved] == [5, 5]
    assert set(retrieved[0].per_index) == {"bm25", "dense"} and len(retrieved[0].per_index["dense"]) == 100
    signals = retrieved[0].signals(10)
    assert signals["bm25"][retrieved[0].per_index["bm25"][0][0]] == (0, retrieved[0].per_index["bm25"][0][1])
    assert [len(signals[name]) for name in ("bm25", "dense")] == [10, 10]
