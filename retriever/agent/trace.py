"""The loop's trace: what each hop searched, found, kept and decided, and what it cost.

A trace is plain data (dataclasses of str, int, float and lists) that serializes
to JSON with :meth:`Trace.to_json`; :data:`TRACE_SCHEMA` is its JSON Schema
(draft 2020-12), so traces can be checked by any validator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TRACE_VERSION = 2
STOP_REASONS = ("answered", "sufficient", "max_hops", "token_budget", "time_budget", "no_new_evidence",
                "repeated_query")


@dataclass
class Hop:
    """One round of the loop."""

    hop: int
    query: str
    source: str  # "question", "llm" or "expansion"
    retrieved: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    decision: str = ""  # "answer", "search" or "stop"
    replies: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass
class Evidence:
    """A passage passed to the reader, with the sentences refinement kept."""

    doc_id: str
    title: str
    hop: int
    sentences: list[str]


@dataclass
class Trace:
    """The whole run for one question."""

    question: str
    config: dict[str, Any]
    model: str | None
    hops: list[Hop] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)  # compared entities ("parts") and the hop budget
    chains: list[list[str]] = field(default_factory=list)  # the evidence chains (doc ids) found at the end
    answer: str = ""
    citations: list[str] = field(default_factory=list)
    stop_reason: str = ""
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    version: int = TRACE_VERSION

    @property
    def retrieved(self) -> list[str]:
        """Every document id any hop brought in (searched or linked), first seen first."""
        return list(dict.fromkeys(d for hop in self.hops for d in (*hop.retrieved, *hop.linked)))

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """The trace as JSON; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=2)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text


_STRINGS = {"type": "array", "items": {"type": "string"}}
_COUNT = {"type": "integer", "minimum": 0}
TRACE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "retriever agent trace",
    "type": "object",
    "required": ["version", "question", "config", "model", "hops", "evidence", "plan", "chains", "answer",
                 "citations",
                 "stop_reason", "lm_calls", "prompt_tokens", "completion_tokens", "seconds"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": TRACE_VERSION},
        "question": {"type": "string"},
        "config": {"type": "object"},
        "model": {"type": ["string", "null"]},
        "hops": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["hop", "query", "source", "retrieved", "linked", "kept", "decision", "replies",
                         "prompt_tokens", "completion_tokens", "seconds"],
            "properties": {
                "hop": _COUNT, "query": {"type": "string"},
                "source": {"enum": ["question", "llm", "expansion"]},
                "retrieved": _STRINGS, "linked": _STRINGS, "kept": _STRINGS,
                "decision": {"enum": ["answer", "search", "stop"]}, "replies": _STRINGS,
                "prompt_tokens": _COUNT, "completion_tokens": _COUNT, "seconds": {"type": "number", "minimum": 0},
            }}},
        "evidence": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["doc_id", "title", "hop", "sentences"],
            "properties": {"doc_id": {"type": "string"}, "title": {"type": "string"}, "hop": _COUNT,
                           "sentences": _STRINGS}}},
        "plan": {"type": "object", "required": ["parts", "hops"], "properties": {
            "parts": _STRINGS, "hops": {"type": "integer", "minimum": 1}}},
        "chains": {"type": "array", "items": _STRINGS},
        "answer": {"type": "string"},
        "citations": _STRINGS,
        "stop_reason": {"enum": list(STOP_REASONS)},
        "lm_calls": _COUNT, "prompt_tokens": _COUNT, "completion_tokens": _COUNT,
        "seconds": {"type": "number", "minimum": 0},
    },
}
