"""Request and response bodies of the HTTP API (they also make its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SearchRequest(BaseModel):
    query: str = Field(description="The query text.")
    k: int = Field(10, description="Hits to return.")
    using: str | None = Field(None, description="Index name, 'hybrid' or a fusion spec such as 'rrf(bm25,dense)'.")
    rerank: str | None = Field(None, description="A reranker spec, e.g. 'top(k=5)' (kinds the server allows).")
    depth: int | None = Field(None, description="How deep each index is read before fusion.")


class BatchSearchRequest(BaseModel):
    queries: list[str] = Field(description="Query texts.")
    k: int = 10
    using: str | None = None
    rerank: str | None = None
    depth: int | None = None


class HitOut(BaseModel):
    rank: int
    doc_id: str
    score: float
    title: str
    text: str


class SearchResponse(BaseModel):
    query: str
    using: str
    generation: int
    hits: list[HitOut]


class BatchSearchResponse(BaseModel):
    using: str
    generation: int
    results: list[SearchResponse]


class AskRequest(BaseModel):
    question: str
    using: str | None = Field(None, description="What each hop searches (default 'hybrid').")
    rerank: str | None = Field(None, description="Evidence selector spec (default 'top(k=5)').")
    max_hops: int | None = None
    passages: int | None = None


class DocRef(BaseModel):
    doc_id: str
    title: str


class AskResponse(BaseModel):
    question: str
    generation: int
    answer: str
    citations: list[DocRef]
    trace: dict[str, Any]


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    text: str
    metadata: dict[str, Any] = {}


class DocumentIn(BaseModel):
    id: str = Field(alias="_id")
    title: str = ""
    text: str
    metadata: dict[str, Any] | None = None


class AddRequest(BaseModel):
    documents: list[DocumentIn]


class AddResponse(BaseModel):
    added: int
    generation: int


class IndexOut(BaseModel):
    name: str
    spec: str
    documents: int


class EngineOut(BaseModel):
    name: str
    generation: int
    documents: int
    indexes: list[IndexOut]
    default_using: str
    llm: str | None
    writes: bool
    rerankers: list[str]
    limits: dict[str, Any]


class ErrorOut(BaseModel):
    code: str
    message: str
