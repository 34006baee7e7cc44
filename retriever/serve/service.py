"""What the service does, independent of HTTP: checked, bounded calls on the live engine.

The HTTP app (:mod:`retriever.serve.app`) and the MCP tools (:mod:`retriever.serve.mcp`)
both call a :class:`Service`; each call holds one generation of the engine from start
to end, so its results are exactly what :class:`~retriever.Engine` gives for that generation.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable, Sequence

from retriever.agent import Agent
from retriever.agent.evidence import Lexicon
from retriever.agent.loop import Answer, Budget
from retriever.agent.trace import Hop
from retriever.core.corpus import Document
from retriever.core.errors import RetrieverError
from retriever.core.specs import parse_spec
from retriever.core.types import Hit
from retriever.engine import writer
from retriever.generate import open_generator
from retriever.rerank.base import Reranker, load_reranker
from retriever.serve.config import ServeConfig
from retriever.serve.errors import ApiError
from retriever.serve.bounded import BoundedCache
from retriever.serve.live import Generation, LiveEngine

MODEL_FREE_KINDS = frozenset({"bm25", "sparse"})  # no model runs for a query (inference-free sparse included)
LOADED_RERANKERS = 8  # distinct reranker specs kept loaded (least recently used dropped)


class Service:
    """Search, read, ask and (when allowed) add, within the configured limits.

    Args:
        live: the engine, following other processes' writes.
        config: limits, the language model and what clients may choose.
    """

    def __init__(self, live: LiveEngine, config: ServeConfig):
        self.live, self.config, self.limits = live, config, config.limits
        self.generator = open_generator(config.llm, config.llm_cache)
        self._rerankers = BoundedCache(LOADED_RERANKERS)

    def search(self, queries: Sequence[str], k: int = 10, using: str | None = None, rerank: str | None = None,
               depth: int | None = None) -> tuple[int, str, list[list[Hit]]]:
        """Hits for each query; returns ``(generation, using, hits per query)``."""
        if not queries:
            raise ApiError(400, "bad_request", "no queries")
        if len(queries) > self.limits.max_batch:
            raise ApiError(400, "over_limit", f"{len(queries)} queries: at most {self.limits.max_batch} per batch")
        for query in queries:
            self.check_text(query, "query")
        self._check_range("k", k, 1, self.limits.max_k)
        if depth is not None:
            self._check_range("depth", depth, k, self.limits.max_depth)
        reranker = self.reranker(rerank) if rerank else None
        with self.live.use() as held:
            using = using or default_using(held)
            options = {"depth": depth} if depth is not None else {}
            return held.number, using, held.engine.batch_search(list(queries), k, using, reranker, **options)

    def model_free(self, queries: Sequence[str], using: str | None, rerank: str | None) -> bool:
        """Whether a search runs no model: one query, no reranker, only bm25 / sparse indexes, in this process.

        Such a search takes about a millisecond, so the app answers it on the event loop instead of
        handing it to a thread (two wake-ups more, which a busy machine makes cost milliseconds).
        """
        if len(queries) != 1 or rerank or not self.live.in_process:
            return False
        with self.live.use() as held:
            try:
                target = held.engine.resolve(using or default_using(held))
                names = [target] if isinstance(target, str) else list(target.names)
                return all(held.engine.index(name).kind in MODEL_FREE_KINDS for name in names)
            except RetrieverError:
                return False  # the threaded path reports the error

    def document(self, doc_id: str) -> tuple[int, Document]:
        """``(generation, document)``; a 404 error when the id is unknown."""
        with self.live.use() as held:
            corpus = held.engine.corpus
            if doc_id not in corpus:
                raise ApiError(404, "not_found", f"no document with id {doc_id!r}")
            return held.number, corpus[doc_id]

    def describe(self) -> dict[str, Any]:
        """Indexes, specs, counts and generation of the engine, and the service's settings."""
        with self.live.use() as held:
            engine = held.engine
            return {"name": engine.path.name, "generation": held.number, "documents": len(engine.corpus),
                    "indexes": [{"name": name, "spec": engine.specs.get(name, name),
                                 "documents": engine.index(name).doc_count} for name in engine.names],
                    "default_using": default_using(held), "llm": self.generator.name if self.generator else None,
                    "writes": self.config.allow_writes, "rerankers": list(self.config.rerankers),
                    "limits": asdict(self.limits)}

    def ask(self, question: str, using: str | None = None, rerank: str | None = None, max_hops: int | None = None,
            passages: int | None = None, on_hop: Callable[[Generation, Hop], None] | None = None
            ) -> tuple[int, Answer, list[dict[str, str]]]:
        """Run the agent on ``question``; ``on_hop`` sees each hop as soon as it is decided.

        Returns:
            ``(generation, answer, citations as {doc_id, title})``.
        """
        self.check_text(question, "question")
        if max_hops is not None:
            self._check_range("max_hops", max_hops, 1, self.limits.max_hops)
        if passages is not None:
            self._check_range("passages", passages, 1, self.limits.max_k)
        key = (using, rerank, max_hops, passages)
        with self.live.use() as held:
            lexicon = held.cached("lexicon", lambda engine: Lexicon(engine.reader.corpus))  # one per generation
            agent = held.cached(("agent", key), lambda engine: self._agent(engine, lexicon, *key))
            answer = agent.ask(question, on_hop=(lambda hop: on_hop(held, hop)) if on_hop else None)
            return held.number, answer, doc_refs(held, answer.citations)

    def add(self, documents: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Append documents to the engine (one transaction); ``(added, generation)``."""
        if not self.config.allow_writes:
            raise ApiError(403, "forbidden", "this server does not accept writes (start it with --allow-writes)")
        if not documents:
            raise ApiError(400, "bad_request", "no documents")
        if len(documents) > self.limits.max_add_documents:
            raise ApiError(400, "over_limit", f"{len(documents)} documents: at most "
                                              f"{self.limits.max_add_documents} per request")
        added = writer.add(self.live.path, documents)
        self.live.refresh()
        return added, self.live.generation

    def reranker(self, spec: str) -> Reranker:
        """The reranker for ``spec`` (loaded once), if its kind is one the server allows."""
        kind = parse_spec(spec).name
        if kind not in self.config.rerankers:
            raise ApiError(400, "bad_spec", f"reranker {kind!r} is not enabled on this server; "
                                            f"enabled: {', '.join(self.config.rerankers) or 'none'}")
        return self._rerankers.get(spec, lambda: load_reranker(spec))

    def check_text(self, text: str, what: str) -> None:
        if not text.strip():
            raise ApiError(400, "bad_request", f"empty {what}")
        if len(text) > self.limits.max_query_chars:
            raise ApiError(400, "over_limit", f"{what} of {len(text)} characters: at most "
                                              f"{self.limits.max_query_chars}")

    def _agent(self, engine: Any, lexicon: Lexicon, using: str | None, rerank: str | None, max_hops: int | None,
               passages: int | None) -> Agent:
        options: dict[str, Any] = {"budget": Budget(max_hops=max_hops or Budget.max_hops,
                                                     max_seconds=self.limits.timeout_s)}
        if using:
            options["using"] = using
        if rerank:
            options["rerank"] = self.reranker(rerank)
        if passages:
            options["passages"] = passages
        return Agent(engine.reader, self.generator, lexicon=lexicon, **options)

    @staticmethod
    def _check_range(name: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            raise ApiError(400, "over_limit", f"{name}={value}: must be between {low} and {high}")


def default_using(held: Generation) -> str:
    """What a search uses when the request names nothing: the only index, or ``hybrid``."""
    names = held.engine.names
    return names[0] if len(names) == 1 else "hybrid"


def hop_event(held: Generation, hop: Hop) -> dict[str, Any]:
    """A hop as streamed: the trace's fields plus the kept documents' titles."""
    kept = held.engine.corpus.get_many(hop.kept)
    return {**asdict(hop), "kept_documents": [{"doc_id": d.doc_id, "title": d.title} for d in kept]}


def doc_refs(held: Generation, doc_ids: Sequence[str]) -> list[dict[str, str]]:
    return [{"doc_id": d.doc_id, "title": d.title} for d in held.engine.corpus.get_many(list(doc_ids))]
