"""The FastAPI app: JSON API under ``/api``, OpenAPI at ``/docs``, the web page at ``/``.

Example:
    >>> live = LiveEngine.open("work/nfcorpus")
    >>> app = create_app(live, ServeConfig())
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path
from typing import Any, AsyncIterator, Callable, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from retriever.core.errors import RetrieverError
from retriever.serve.config import ServeConfig
from retriever.serve.errors import ApiError, BodyLimit, install_error_handlers, log, typed_error
from retriever.serve.live import LiveEngine
from retriever.serve.schemas import (AddRequest, AddResponse, AskRequest, AskResponse, BatchSearchRequest,
                                     BatchSearchResponse, DocumentOut, EngineOut, ErrorOut, SearchRequest,
                                     SearchResponse)
from retriever.serve.service import Service, hop_event

STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                           "frame-ancestors 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorOut} for status in (400, 401, 404, 413, 422, 504)}
T = TypeVar("T")


def create_app(live: LiveEngine, config: ServeConfig) -> FastAPI:
    """The service over ``live``, configured by ``config`` (limits, token, writes, CORS)."""
    service = Service(live, config)
    app = FastAPI(title="retriever", description="Search, read and ask over one engine directory.",
                  version="1", docs_url="/docs", redoc_url=None)
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.include_router(_probes(live))
    app.include_router(_api(service, config), dependencies=[Depends(_authorizer(config.token))], responses=ERRORS)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    return app


def _authorizer(token: str | None) -> Callable[[Request], None]:
    expected = f"Bearer {token}".encode() if token else None

    def authorize(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer ...)")

    return authorize


def _probes(live: LiveEngine) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["probes"])

    @router.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", summary="Readiness: the engine is open at its live generation",
                responses={503: {"model": ErrorOut}})
    async def ready() -> dict[str, Any]:
        try:
            live.maybe_refresh()
            return {"status": "ready", "generation": live.generation}
        except (OSError, RetrieverError) as e:
            raise ApiError(503, "not_ready", str(e)) from None

    return router


def _api(service: Service, config: ServeConfig) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["api"])
    limits = config.limits

    async def run(work: Callable[[], T]) -> T:
        """Run blocking engine work in a thread, answering 504 after the request timeout."""
        try:
            return await asyncio.wait_for(anyio.to_thread.run_sync(work, abandon_on_cancel=True), limits.timeout_s)
        except TimeoutError:
            raise ApiError(504, "timeout", f"request took over {limits.timeout_s:g} s") from None

    async def searched(body: SearchRequest) -> Response:
        def work() -> tuple[int, str, list]:
            return service.search([body.query], body.k, body.using, body.rerank, body.depth)

        inline = service.model_free([body.query], body.using, body.rerank)
        generation, using, hits = work() if inline else await run(work)
        return _json(_response(body.query, using, generation, hits[0]))

    @router.get("/search", response_model=SearchResponse, summary="Search one query")
    async def search_get(q: str = Query(description="The query text."), k: int = 10, using: str | None = None,
                         rerank: str | None = None, depth: int | None = None) -> Response:
        return await searched(SearchRequest(query=q, k=k, using=using, rerank=rerank, depth=depth))

    @router.post("/search", response_model=SearchResponse, summary="Search one query")
    async def search_post(body: SearchRequest) -> Response:
        return await searched(body)

    @router.post("/batch_search", response_model=BatchSearchResponse, summary="Search many queries at once")
    async def batch_search(body: BatchSearchRequest) -> Response:
        generation, using, hits = await run(
            lambda: service.search(body.queries, body.k, body.using, body.rerank, body.depth))
        return _json(BatchSearchResponse(using=using, generation=generation, results=[
            _response(q, using, generation, h) for q, h in zip(body.queries, hits)]))

    @router.get("/documents/{doc_id:path}", response_model=DocumentOut, summary="One document by id")
    async def document(doc_id: str) -> DocumentOut:
        _, doc = await run(lambda: service.document(doc_id))
        return DocumentOut(doc_id=doc.doc_id, title=doc.title, text=doc.text, metadata=dict(doc.metadata))

    @router.get("/engine", response_model=EngineOut, summary="Indexes, specs, counts and generation")
    async def engine() -> EngineOut:
        return EngineOut(**await run(service.describe))

    @router.post("/ask", response_model=AskResponse, summary="Answer a question with the multi-hop agent")
    async def ask(body: AskRequest) -> AskResponse:
        generation, answer, cited = await run(
            lambda: service.ask(body.question, body.using, body.rerank, body.max_hops, body.passages))
        return AskResponse(question=body.question, generation=generation, answer=answer.text, citations=cited,
                           trace=answer.trace.to_dict())

    @router.post("/ask/stream", summary="Ask, streaming each hop as Server-Sent Events",
                 response_class=StreamingResponse,
                 responses={200: {"content": {"text/event-stream": {}},
                                  "description": "events: start, hop (one per hop), answer; or error"}})
    async def ask_stream(body: AskRequest) -> StreamingResponse:
        service.check_text(body.question, "question")
        return StreamingResponse(_ask_events(service, body, limits.timeout_s), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/ask/stream", summary="Ask (GET form of the stream, for EventSource)",
                response_class=StreamingResponse)
    async def ask_stream_get(question: str, using: str | None = None, max_hops: int | None = None
                             ) -> StreamingResponse:
        return await ask_stream(AskRequest(question=question, using=using, max_hops=max_hops))

    @router.post("/documents", response_model=AddResponse, responses={403: {"model": ErrorOut}},
                 summary="Add documents (only when the server runs with --allow-writes and a token)")
    async def add(body: AddRequest) -> AddResponse:
        records = [d.model_dump(by_alias=True, exclude_none=True) for d in body.documents]
        added, generation = await run(lambda: service.add(records))
        return AddResponse(added=added, generation=generation)

    return router


def _json(model: BaseModel) -> Response:
    """``model`` serialized once by pydantic (it was validated when built; FastAPI would check it again)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _response(query: str, using: str, generation: int, hits: list) -> SearchResponse:
    return SearchResponse(query=query, using=using, generation=generation,
                          hits=[{"rank": rank, "doc_id": h.doc_id, "score": h.score, "title": h.title,
                                 "text": h.text} for rank, h in enumerate(hits, 1)])


async def _ask_events(service: Service, body: AskRequest, timeout_s: float) -> AsyncIterator[str]:
    """Run the agent in a thread; yield ``start``, one ``hop`` per hop as it is decided, then ``answer``."""
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()

    def emit(event: str | None, data: Any = None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (event, data))

    def work() -> None:
        try:
            emit("start", {"question": body.question})
            generation, answer, cited = service.ask(body.question, body.using, body.rerank, body.max_hops,
                                                    body.passages, on_hop=lambda held, hop: emit(
                                                        "hop", hop_event(held, hop)))
            emit("answer", {"generation": generation, "answer": answer.text, "citations": cited,
                            "stop_reason": answer.trace.stop_reason, "trace": answer.trace.to_dict()})
        except ApiError as e:
            emit("error", {"code": e.code, "message": e.message})
        except RetrieverError as e:
            found = typed_error(e)
            emit("error", {"code": found.code, "message": found.message})
        except Exception as e:  # noqa: BLE001 - reported as a JSON event, logged here
            log.error("internal error in ask stream: %s", type(e).__name__, exc_info=e)
            emit("error", {"code": "internal", "message": "internal error (details are in the server log)"})
        finally:
            emit(None)

    worker = asyncio.ensure_future(anyio.to_thread.run_sync(work, abandon_on_cancel=True))
    deadline = loop.time() + timeout_s
    try:
        while True:
            try:
                event, data = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                yield _sse("error", {"code": "timeout", "message": f"ask took over {timeout_s:g} s"})
                return
            if event is None:
                return
            yield _sse(event, data)
    finally:
        worker.cancel()


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
