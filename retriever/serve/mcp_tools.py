"""MCP tools over stdio (``retriever mcp ENGINE``): search, get_document, ask.

The tools call the same :class:`~retriever.serve.service.Service` as the HTTP API, with
the same limits; an error reaches the client as the tool's error message.

Example (a client's configuration):
    ``{"command": "retriever", "args": ["mcp", "work/nfcorpus"]}``
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from retriever.core.errors import RetrieverError
from retriever.serve.config import ServeConfig
from retriever.serve.errors import ApiError
from retriever.serve.live import LiveEngine
from retriever.serve.service import Service


def build_server(service: Service) -> Any:
    """An :class:`mcp.server.mcpserver.MCPServer` exposing ``service`` as three tools."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    @contextmanager
    def reported() -> Iterator[None]:
        """A refused call (bad spec, unknown id, over a limit) reaches the client with its message."""
        try:
            yield
        except (ApiError, RetrieverError) as e:
            raise ToolError(str(e)) from e

    server = MCPServer("retriever", instructions="Search a document collection, read documents by id, and "
                                                 "answer multi-hop questions with cited documents.")

    @server.tool(description="Search the collection; returns ranked hits (doc_id, score, title, text).")
    def search(query: str, k: int = 10, using: str | None = None, rerank: str | None = None) -> dict[str, Any]:
        with reported():
            generation, used, hits = service.search([query], k, using, rerank)
        return {"query": query, "using": used, "generation": generation,
                "hits": [{"rank": rank, "doc_id": h.doc_id, "score": h.score, "title": h.title, "text": h.text}
                         for rank, h in enumerate(hits[0], 1)]}

    @server.tool(description="One document (title and full text) by its id.")
    def get_document(doc_id: str) -> dict[str, Any]:
        with reported():
            generation, doc = service.document(doc_id)
        return {"doc_id": doc.doc_id, "title": doc.title, "text": doc.text, "generation": generation}

    @server.tool(description="Answer a question with the multi-hop agent: the answer, cited documents and the "
                             "hops (query, retrieved and kept documents, decision).")
    def ask(question: str, max_hops: int | None = None) -> dict[str, Any]:
        with reported():
            generation, answer, cited = service.ask(question, max_hops=max_hops)
        hops = [{"hop": h.hop, "query": h.query, "retrieved": h.retrieved, "kept": h.kept, "decision": h.decision}
                for h in answer.trace.hops]
        return {"question": question, "answer": answer.text, "citations": cited, "hops": hops,
                "stop_reason": answer.trace.stop_reason, "generation": generation}

    return server


def run_stdio(engine_dir: str | Path, config: ServeConfig = ServeConfig()) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    service = Service(LiveEngine.open(engine_dir, config.refresh_s), config)
    build_server(service).run("stdio")
