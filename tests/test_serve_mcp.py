"""MCP round trip: `retriever mcp ENGINE` over stdio, called by the mcp package's own client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]


async def _round_trip(engine_dir: Path, query: str, doc_id: str, question: str) -> dict:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=[str(ROOT / "cli.py"), "mcp", str(engine_dir)],
                                   cwd=str(ROOT), env={**os.environ, "RETRIEVER_QUIET": "1"})
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            found = await session.call_tool("search", {"query": query, "k": 5, "using": "bm25"})
            document = await session.call_tool("get_document", {"doc_id": doc_id})
            missing = await session.call_tool("get_document", {"doc_id": "no-such-doc"})
            answer = await session.call_tool("ask", {"question": question})
    return {"tools": tools, "search": found, "document": document, "missing": missing, "ask": answer}


def _payload(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)


def test_mcp_tools_round_trip(hotpot_engine, hotpot_slice):
    question = hotpot_slice[0][0].text
    doc_id = hotpot_engine.corpus.ids[0]
    got = anyio.run(_round_trip, hotpot_engine.path, question, doc_id, question)
    assert got["tools"] == ["ask", "get_document", "search"]
    hits = _payload(got["search"])["hits"]
    assert [(h["doc_id"], h["score"]) for h in hits] == [
        (h.doc_id, h.score) for h in hotpot_engine.search(question, k=5, using="bm25")]
    document = _payload(got["document"])
    assert (document["doc_id"], document["text"]) == (doc_id, hotpot_engine.corpus[doc_id].text)
    assert got["missing"].is_error and "no-such-doc" in got["missing"].content[0].text
    expected = hotpot_engine.ask(question)
    answer = _payload(got["ask"])
    assert answer["answer"] == expected.text
    assert [c["doc_id"] for c in answer["citations"]] == expected.citations
    assert [h["kept"] for h in answer["hops"]] == [h.kept for h in expected.trace.hops]
