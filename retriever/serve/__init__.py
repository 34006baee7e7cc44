"""``retriever serve``: the engine behind HTTP (FastAPI), a web page, and MCP tools.

Modules: :mod:`~retriever.serve.config` (settings and limits), :mod:`~retriever.serve.live`
(the engine at its live generation), :mod:`~retriever.serve.service` (checked calls),
:mod:`~retriever.serve.app` (the HTTP app), :mod:`~retriever.serve.run` (uvicorn),
:mod:`~retriever.serve.mcp` (MCP tools over stdio), :mod:`~retriever.serve.bench` (load test).
"""

from retriever.serve.config import Limits, ServeConfig

__all__ = ["Limits", "ServeConfig"]
