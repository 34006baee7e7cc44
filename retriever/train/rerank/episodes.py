"""Reranking decisions to learn from: what the loop and hybrid retrieval hand a reranker on real questions.

For each question of a split, :func:`collect_calls` records every call a reranker
receives: once on a plain hybrid retrieval of the question, and once per hop of
the no-LLM agent loop (its chain-ordered pool, the hop's query, the evidence
kept so far, each index's ranking of the query). The calls are stored as JSONL
(ids and scores only; text comes from the engine's corpus), so the features can
change without collecting again. :func:`episodes` turns calls into
:class:`Episode` arrays: features (with cross-encoder logits, cached on disk),
which candidates are gold, and which contain the answer string.

Only ``dev``/``train`` splits are collected; a ``test`` split is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from retriever.core.errors import InputError
from retriever.core.progress import progress
from retriever.core.types import Hit
from retriever.rerank.base import RerankContext, Reranker, judged_text, load_reranker
from retriever.rerank.features import Candidates, candidates
from retriever.rerank.scores import CrossScorer

if TYPE_CHECKING:
    from retriever.api import Engine

YES_NO = ("yes", "no")


@dataclass
class Call:
    """One reranker call, as ids: the question, the hop's query, the candidates, the context."""

    question_id: str
    question: str
    query: str
    hop: int
    source: str
    doc_ids: list[str]
    scores: list[float]
    kept: list[str] = field(default_factory=list)
    signals: dict[str, dict[str, list[float]]] = field(default_factory=dict)


@dataclass
class Episode:
    """A call ready for learning: features, gold and answer flags per candidate.

    ``hits`` are the candidates with their text (what a reader reads) and ``answers`` the
    question's gold answer and its aliases (what the reader's answer is scored against).
    """

    call: Call
    candidates: Candidates
    gold: np.ndarray
    answer: np.ndarray
    n_gold: int
    has_answer: bool
    hits: list[Hit] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


class Recorder:
    """A reranker that records each call it receives and lets ``inner`` decide."""

    wants_signals = True

    def __init__(self, inner: Reranker):
        self.inner = inner
        self.calls: list[tuple[str, list["Hit"], RerankContext]] = []

    def rerank(self, query: str, hits: Sequence["Hit"], context: RerankContext | None = None) -> list["Hit"]:
        context = context or RerankContext(question=query)
        self.calls.append((query, list(hits), context))
        return self.inner.rerank(query, hits, context)

    def __str__(self) -> str:
        return str(self.inner)


def collect_calls(engine: "Engine", dataset, split: str, path: Path, using: str = "hybrid", depth: int = 30,
                  passages: int = 5, behaviour: str = "top(k=5)", limit: int | None = None) -> list[Call]:
    """Record the reranker calls of every question of ``split`` into ``path`` (JSONL); reuse ``path`` if complete.

    Args:
        engine: an engine over the dataset's corpus.
        dataset: a dataset with ``metadata["answer"]`` per query.
        split: ``dev`` or ``train`` (never ``test``).
        path: the JSONL file to write (or read back).
        using: the first stage.
        depth: hits per retrieval, candidates per call (the loop's ``candidates``).
        passages: evidence the loop keeps per hop.
        behaviour: the reranker that acts in the loop while calls are recorded.
        limit: only the first ``limit`` questions.
    """
    from retriever.agent import Agent

    if split == "test":
        raise InputError(f"{dataset.name}: reranking policies are never trained on a test split")
    queries, _ = dataset.split(split)
    chosen = list(queries.values())[:limit] if limit else list(queries.values())
    if path.is_file():
        calls = read_calls(path)
        if {c.question_id for c in calls} == {q.query_id for q in chosen}:
            return calls
    recorder = Recorder(load_reranker(behaviour))
    agent = Agent(engine, None, using=using, rerank=recorder, candidates=depth, passages=passages)
    calls = []
    for query in progress(chosen, desc=f"recording reranker calls ({dataset.name} {split})", unit="question"):
        retrieved = engine.retrieve([query.text], k=depth, using=using)[0]
        hits = engine.hits(retrieved.ranking)
        signals = retrieved.signals(depth)
        calls.append(_call(query, query.text, hits, RerankContext(question=query.text, signals=signals), "plain"))
        recorder.calls.clear()
        agent.ask(query.text)
        calls += [_call(query, q, h, c, "loop") for q, h, c in recorder.calls]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in calls), encoding="utf-8")
    tmp.replace(path)
    return calls


def read_calls(path: Path) -> list[Call]:
    """The calls stored by :func:`collect_calls`."""
    with open(path, encoding="utf-8") as f:
        return [Call(**json.loads(line)) for line in f if line.strip()]


def episodes(engine: "Engine", dataset, split: str, calls: Sequence[Call], scorer: CrossScorer,
             indexes: Sequence[str]) -> list[Episode]:
    """Features, gold flags and answer flags for every call (cross-encoder logits computed once, cached)."""
    _, qrels = dataset.split(split)
    out = []
    for call in progress(calls, desc="cross-encoder scores and features", unit="call"):
        docs = engine.corpus.get_many(call.doc_ids)
        hits = [_hit(d, s) for d, s in zip(docs, call.scores)]
        kept = [_hit(d, 0.0) for d in engine.corpus.get_many(call.kept)]
        context = RerankContext(call.question, call.hop, tuple(kept),
                                {name: {d: (int(r), float(s)) for d, (r, s) in run.items()}
                                 for name, run in call.signals.items()})
        logits = scorer.score(judged_text(call.query, context), [(h.title, h.text) for h in hits], call.doc_ids)
        gold_ids = {d for d, s in qrels[call.question_id].items() if s > 0}
        query = dataset.queries[call.question_id]
        answer = str(query.metadata.get("answer", "")).strip().lower()
        has_answer = bool(answer) and answer not in YES_NO
        out.append(Episode(call, candidates(call.query, hits, context, logits, indexes),
                           np.array([h.doc_id in gold_ids for h in hits], dtype=bool),
                           np.array([has_answer and answer in (h.title + " " + h.text).lower() for h in hits],
                                    dtype=bool), len(gold_ids), has_answer, hits, query.answers))
    return out


def _call(query, text: str, hits: Sequence["Hit"], context: RerankContext, source: str) -> Call:
    return Call(query.query_id, query.text, text, context.hop, source, [h.doc_id for h in hits],
                [round(float(h.score), 6) for h in hits], [h.doc_id for h in context.kept],
                {name: {d: [r, round(s, 6)] for d, (r, s) in run.items() if d in {h.doc_id for h in hits}}
                 for name, run in context.signals.items()})


def _hit(doc, score: float) -> Hit:
    return Hit(doc.doc_id, score, doc.title, doc.text)
