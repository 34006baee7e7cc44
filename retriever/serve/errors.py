"""Every error leaves the service as JSON ``{"code", "message"}``, never as a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retriever.core.errors import (GenerationError, IndexFormatError, InputError, MissingResourceError,
                                   RetrieverError, SpecError)

log = logging.getLogger("retriever.serve")

_TYPED = [(SpecError, 400, "bad_spec"), (InputError, 400, "bad_input"), (MissingResourceError, 503, "unavailable"),
          (GenerationError, 502, "llm_failed"), (IndexFormatError, 500, "engine_error")]
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """An error answered with ``status`` and a JSON body ``{"code", "message"}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def typed_error(error: RetrieverError) -> ApiError:
    """The :class:`ApiError` for one of the package's typed errors."""
    for kind, status, code in _TYPED:
        if isinstance(error, kind):
            return ApiError(status, code, str(error))
    return ApiError(500, "engine_error", str(error))


def install_error_handlers(app: FastAPI) -> None:
    """Map typed, validation, HTTP and unexpected errors to JSON error bodies."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, e.message)

    @app.exception_handler(RetrieverError)
    async def _typed(_: Request, e: RetrieverError) -> JSONResponse:
        found = typed_error(e)
        return error_response(found.status, found.code, found.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
                             for err in e.errors()[:5])
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, e: HTTPException) -> JSONResponse:
        return error_response(e.status_code, _HTTP_CODES.get(e.status_code, "http_error"), str(e.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(e).__name__, exc_info=e)
        return error_response(500, "internal", "internal error (details are in the server log)")


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` (declared or streamed) with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise ApiError(413, "too_large", f"request body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "too_large", f"request body over {self.max_bytes} bytes")
        await response(scope, receive, send)
