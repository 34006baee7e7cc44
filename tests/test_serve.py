"""The HTTP API through its ASGI app, on real engines: results equal the Python API; limits, token, errors."""

from __future__ import annotations

import json
import logging
import time

import pytest
from fastapi.testclient import TestClient

from retriever.api import Engine
from retriever.core.errors import SpecError
from retriever.engine import writer
from retriever.serve.app import create_app
from retriever.serve.config import Limits, ServeConfig
from retriever.serve.live import LiveEngine
from retriever.serve.run import serve

TOKEN = "s3cret-token-for-tests"


def client(path, **settings) -> TestClient:
    config = ServeConfig(**settings)
    return TestClient(create_app(LiveEngine.open(path, config.refresh_s), config), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def api(slice_engine):
    with client(slice_engine.path) as c:
        yield c


@pytest.fixture(scope="module")
def queries(nfcorpus_slice):
    return [json.loads(line)["text"] for line in open(nfcorpus_slice / "queries.jsonl")][:6]


def pairs(hits):
    return [(h["doc_id"], h["score"], h["title"], h["text"]) for h in hits]


def python_pairs(hits):
    return [(h.doc_id, h.score, h.title, h.text) for h in hits]


@pytest.mark.parametrize("using", ["bm25", "dense", "rrf(bm25,dense)"])
def test_search_get_and_post_equal_the_python_api(api, slice_engine, queries, using):
    for query in queries[1:4]:
        expected = python_pairs(slice_engine.search(query, k=7, using=using))
        got = api.get("/api/search", params={"q": query, "k": 7, "using": using})
        assert got.status_code == 200, got.text
        assert expected and pairs(got.json()["hits"]) == expected
        assert [h["rank"] for h in got.json()["hits"]] == list(range(1, len(expected) + 1))
        posted = api.post("/api/search", json={"query": query, "k": 7, "using": using})
        assert pairs(posted.json()["hits"]) == expected
        assert posted.json()["generation"] == slice_engine.reader.generation


def test_batch_search_rerank_and_depth_equal_the_python_api(api, slice_engine, queries):
    expected = slice_engine.batch_search(queries, k=5, using="rrf(bm25,dense)", rerank="top(k=3)", depth=50)
    got = api.post("/api/batch_search", json={"queries": queries, "k": 5, "using": "rrf(bm25,dense)",
                                              "rerank": "top(k=3)", "depth": 50})
    assert got.status_code == 200, got.text
    assert [pairs(r["hits"]) for r in got.json()["results"]] == [python_pairs(h) for h in expected]
    assert all(len(r["hits"]) == 3 for r in got.json()["results"])
    default = api.get("/api/search", params={"q": queries[0]}).json()
    assert default["using"] == "hybrid" and pairs(default["hits"]) == python_pairs(slice_engine.search(queries[0]))


def test_document_engine_and_probes(api, slice_engine):
    doc_id = slice_engine.corpus.ids[3]
    doc = api.get(f"/api/documents/{doc_id}").json()
    assert (doc["doc_id"], doc["title"], doc["text"]) == (doc_id, slice_engine.corpus[doc_id].title,
                                                          slice_engine.corpus[doc_id].text)
    missing = api.get("/api/documents/no-such-doc")
    assert missing.status_code == 404 and missing.json() == {"code": "not_found",
                                                             "message": "no document with id 'no-such-doc'"}
    info = api.get("/api/engine").json()
    assert info["generation"] == slice_engine.reader.generation and info["documents"] == len(slice_engine.corpus)
    assert [(i["name"], i["spec"], i["documents"]) for i in info["indexes"]] == [
        (n, slice_engine.specs[n], len(slice_engine.corpus)) for n in slice_engine.names]
    assert info["writes"] is False and info["llm"] is None
    assert api.get("/api/health").json() == {"status": "ok"}
    assert api.get("/api/ready").json() == {"status": "ready", "generation": slice_engine.reader.generation}
    assert "/api/search" in api.get("/openapi.json").json()["paths"]
    assert api.get("/docs").status_code == 200


def test_page_is_served_offline(api):
    page = api.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("app.js", "style.css"):
        body = api.get(f"/static/{asset}")
        assert body.status_code == 200 and "https://" not in body.text


@pytest.mark.parametrize("request_args, status, code", [
    (("get", "/api/search", {"params": {"q": "x", "k": 101}}), 400, "over_limit"),
    (("get", "/api/search", {"params": {"q": "x" * 1001}}), 400, "over_limit"),
    (("get", "/api/search", {"params": {"q": "  "}}), 400, "bad_request"),
    (("get", "/api/search", {"params": {"q": "x", "depth": 5000}}), 400, "over_limit"),
    (("post", "/api/batch_search", {"json": {"queries": ["x"] * 65}}), 400, "over_limit"),
    (("post", "/api/batch_search", {"json": {"queries": []}}), 400, "bad_request"),
    (("post", "/api/search", {"content": b'{"query": "' + b"x" * (1 << 20) + b'"}',
                              "headers": {"content-type": "application/json"}}), 413, "too_large"),
    (("post", "/api/search", {"json": {"k": 3}}), 422, "invalid_request"),
    (("get", "/api/search", {"params": {"q": "x", "k": "ten"}}), 422, "invalid_request"),
    (("get", "/api/search", {"params": {"q": "x", "using": "nope"}}), 400, "bad_spec"),
    (("get", "/api/search", {"params": {"q": "x", "using": "rrf(bm25,"}}), 400, "bad_spec"),
    (("get", "/api/search", {"params": {"q": "x", "rerank": "cross(model=/etc)"}}), 400, "bad_spec"),
    (("post", "/api/documents", {"json": {"documents": [{"_id": "a", "text": "b"}]}}), 403, "forbidden"),
    (("get", "/api/nothing-here", {}), 404, "not_found"),
    (("delete", "/api/search", {}), 405, "method_not_allowed"),
    (("post", "/api/ask", {"json": {"question": "x", "max_hops": 9}}), 400, "over_limit"),
])
def test_errors_are_json_code_and_message(api, request_args, status, code):
    method, url, kwargs = request_args
    got = getattr(api, method)(url, **kwargs)
    assert got.status_code == status, got.text
    assert got.headers["content-type"].startswith("application/json")
    assert set(got.json()) == {"code", "message"} and got.json()["code"] == code
    assert "Traceback" not in got.text


def test_token_guards_the_api_and_is_never_logged(slice_engine, caplog):
    caplog.set_level(logging.DEBUG)
    with client(slice_engine.path, token=TOKEN) as c:
        refused = c.get("/api/search", params={"q": "vitamin"})
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        wrong = c.get("/api/engine", headers={"Authorization": "Bearer wrong-token-here"})
        assert wrong.status_code == 401
        ok = c.get("/api/search", params={"q": "vitamin"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["hits"]
        assert c.get("/api/health").status_code == 200 and c.get("/").status_code == 200
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(ServeConfig(token=TOKEN))


def test_settings_are_safe_by_default(slice_engine):
    assert ServeConfig().host == "127.0.0.1"
    with pytest.raises(SpecError, match="--token"):
        ServeConfig(host="0.0.0.0")
    ServeConfig(host="0.0.0.0", token=TOKEN)
    ServeConfig(host="0.0.0.0", insecure=True)
    with pytest.raises(SpecError, match="--allow-writes needs --token"):
        ServeConfig(allow_writes=True)
    with client(slice_engine.path) as c:
        assert "access-control-allow-origin" not in c.get("/api/health", headers={"Origin": "http://x.test"}).headers
    with client(slice_engine.path, cors_origins=("http://x.test",)) as c:
        got = c.get("/api/health", headers={"Origin": "http://x.test"})
        assert got.headers["access-control-allow-origin"] == "http://x.test"


def test_only_model_free_single_searches_skip_the_thread_pool(api, slice_engine, queries):
    service = api.app.state.service
    assert service.model_free(queries[:1], "bm25", None)
    assert not service.model_free(queries[:1], "dense", None)  # a model encodes the query
    assert not service.model_free(queries[:1], "rrf(bm25,dense)", None)
    assert not service.model_free(queries[:2], "bm25", None)  # a batch
    assert not service.model_free(queries[:1], "bm25", "top(k=3)")
    assert not service.model_free(queries[:1], "nope", None)  # the threaded path reports the error
    assert api.get("/api/search", params={"q": queries[0], "using": "nope"}).json()["code"] == "bad_spec"
    got = api.get("/api/search", params={"q": queries[0], "k": 5, "using": "bm25"}).json()
    assert [(h["doc_id"], h["score"]) for h in got["hits"]] == slice_engine.rankings(queries[:1], 5, using="bm25")[0]


def test_a_ray_engine_has_one_ingress_process(slice_engine):
    from click.testing import CliRunner

    import cli

    got = CliRunner().invoke(cli.main, ["serve", str(slice_engine.path), "--ray-address", "auto"])
    assert got.exit_code == 2 and "--ray-address needs --ray" in got.output
    with pytest.raises(SpecError, match="one ingress process"):
        serve(slice_engine.path, ServeConfig(), workers=2, opener=lambda path: Engine.open(path))


def test_timeout_is_a_json_504(hotpot_engine, hotpot_slice):
    with client(hotpot_engine.path, limits=Limits(timeout_s=1e-4)) as c:
        got = c.post("/api/ask", json={"question": hotpot_slice[0][0].text})
    assert got.status_code == 504 and got.json()["code"] == "timeout"


def test_ask_json_and_stream_equal_the_python_api(hotpot_engine, hotpot_slice):
    question = hotpot_slice[0][0].text
    expected = hotpot_engine.ask(question)
    with client(hotpot_engine.path) as c:
        got = c.post("/api/ask", json={"question": question})
        assert got.status_code == 200, got.text
        assert got.json()["answer"] == expected.text
        assert [d["doc_id"] for d in got.json()["citations"]] == expected.citations
        assert [h["kept"] for h in got.json()["trace"]["hops"]] == [h.kept for h in expected.trace.hops]
        with c.stream("POST", "/api/ask/stream", json={"question": question}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = parse_sse("".join(stream.iter_text()))
    names = [name for name, _ in events]
    assert names == ["start", *["hop"] * len(expected.trace.hops), "answer"]
    hops = [data for name, data in events if name == "hop"]
    assert [(h["query"], h["retrieved"], h["kept"]) for h in hops] == [
        (h.query, h.retrieved, h.kept) for h in expected.trace.hops]
    assert [d["doc_id"] for d in hops[0]["kept_documents"]] == expected.trace.hops[0].kept
    assert all(h["decision"] in ("search", "stop", "answer") for h in hops)
    final = events[-1][1]
    assert final["answer"] == expected.text and [d["doc_id"] for d in final["citations"]] == expected.citations


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@pytest.fixture
def small_engine(tmp_path, nfcorpus_slice):
    docs = [json.loads(line) for line in open(nfcorpus_slice / "corpus.jsonl")][:60]
    return Engine.build(tmp_path / "small", docs, indexes=["bm25"])


def test_writes_need_the_flag_and_the_token(small_engine):
    doc = {"_id": "new-1", "title": "Zanzibar spice", "text": "Cloves from Zanzibar and nutmeg in a test."}
    with client(small_engine.path, token=TOKEN, allow_writes=True) as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/api/documents", json={"documents": [doc]}).status_code == 401
        got = c.post("/api/documents", json={"documents": [doc]}, headers=auth)
        assert got.status_code == 200, got.text
        assert got.json() == {"added": 1, "generation": small_engine.reader.generation + 1}
        found = c.get("/api/search", params={"q": "Zanzibar cloves", "k": 1}, headers=auth).json()
        assert found["hits"][0]["doc_id"] == "new-1" and found["generation"] == got.json()["generation"]
        again = c.post("/api/documents", json={"documents": [doc]}, headers=auth)
        assert again.status_code == 400 and again.json()["code"] == "bad_input"


def test_another_process_add_is_picked_up_without_restart(small_engine):
    before = small_engine.reader.generation
    with client(small_engine.path, refresh_s=0.0) as c:
        assert c.get("/api/search", params={"q": "Quokka marsupial"}).json()["generation"] == before
        writer.add(small_engine.path, [{"_id": "q-1", "title": "Quokka", "text": "The quokka is a marsupial."}])
        deadline = time.monotonic() + 60
        while c.get("/api/ready").json()["generation"] == before and time.monotonic() < deadline:
            time.sleep(0.05)  # the new generation opens in the background
        got = c.get("/api/search", params={"q": "Quokka marsupial", "k": 1}).json()
        assert got["generation"] == before + 1 and got["hits"][0]["doc_id"] == "q-1"
        assert c.get("/api/documents/q-1").json()["title"] == "Quokka"


def test_a_request_keeps_its_generation_until_it_ends(small_engine):
    live = LiveEngine.open(small_engine.path, refresh_s=0.0)
    with live.use() as held:
        writer.add(small_engine.path, [{"_id": "w-1", "title": "Wombat", "text": "A wombat digs burrows."}])
        assert live.refresh() and live.generation == held.number + 1
        assert "w-1" not in [h.doc_id for h in held.engine.search("wombat burrows", k=5)]  # the old one answers
        assert held.engine.reader._indexes, "not closed while in use"
    assert not held.engine.reader._indexes, "closed once its last request ended"
    with live.use() as now:
        assert now.engine.search("wombat burrows", k=1)[0].doc_id == "w-1"
    live.close()


def test_agents_kept_per_generation_are_bounded(small_engine):
    """Each distinct (using, rerank, max_hops, passages) makes an agent; clients cannot grow that without bound."""
    from retriever.serve.live import CACHED_VALUES

    with client(small_engine.path) as c:
        for passages in range(1, CACHED_VALUES + 6):
            for max_hops in (1, 2):
                got = c.post("/api/ask", json={"question": "vitamin D and cancer", "passages": passages,
                                               "max_hops": max_hops})
                assert got.status_code == 200, got.text
        live = c.app.state.service.live
        with live.use() as held:
            assert len(held.cache) == CACHED_VALUES
            assert ("agent", (None, None, 2, CACHED_VALUES + 5)) in held.cache  # the latest is kept
            assert ("agent", (None, None, 1, 1)) not in held.cache  # the oldest went
            lexicon = held.cached("lexicon", pytest.fail)  # one title and term table per generation, kept
            for key in [(None, None, 2, CACHED_VALUES + 5), (None, None, 1, CACHED_VALUES + 5)]:
                assert held.cached(("agent", key), pytest.fail).lexicon is lexicon
