"""Settings of a running service: where it listens, who may call it, and its limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from retriever.core.errors import SpecError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Limits:
    """Bounds on one request; anything larger is refused with a 4xx JSON error.

    Attributes:
        max_k: most hits a search may ask for.
        max_depth: deepest an index may be read before fusion.
        max_query_chars: longest query or question.
        max_batch: most queries in one batch search.
        max_body_bytes: largest request body.
        max_add_documents: most documents one add may carry.
        max_hops: most hops an ask may ask for.
        timeout_s: seconds before a request is answered with a timeout error.
    """

    max_k: int = 100
    max_depth: int = 1000
    max_query_chars: int = 1000
    max_batch: int = 64
    max_body_bytes: int = 1 << 20
    max_add_documents: int = 1000
    max_hops: int = 4
    timeout_s: float = 30.0


@dataclass(frozen=True)
class ServeConfig:
    """How the service runs.

    Attributes:
        host: address to bind; anything but loopback needs ``token`` or ``insecure``.
        port: TCP port.
        token: bearer token every API call must carry (never logged nor shown in ``repr``).
        insecure: allow a non-loopback host without a token.
        allow_writes: expose ``POST /api/documents`` (needs ``token``).
        cors_origins: origins allowed by CORS (empty: CORS off).
        rerankers: reranker kinds clients may name (``top``; ``cross`` and ``rl`` load models).
        llm: the language model for ``ask`` (``None``: the no-LLM mode).
        llm_cache: an LM-call cache file.
        limits: per-request :class:`Limits`.
        refresh_s: how often (at most) ``engine.json`` is checked for another process's write.
    """

    host: str = LOOPBACK
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    insecure: bool = False
    allow_writes: bool = False
    cors_origins: tuple[str, ...] = ()
    rerankers: tuple[str, ...] = ("top",)
    llm: str | None = None
    llm_cache: str | None = None
    limits: Limits = Limits()
    refresh_s: float = 0.25

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < 8:
            raise SpecError("--token must be at least 8 characters")
        if self.allow_writes and not self.token:
            raise SpecError("--allow-writes needs --token: adding documents over HTTP needs a bearer token")
        if not is_loopback(self.host) and not self.token and not self.insecure:
            raise SpecError(f"binding {self.host} (not loopback) needs --token, or --insecure to serve without one")
        if not 0 <= self.port <= 65535:
            raise SpecError(f"--port {self.port}: not a TCP port")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
