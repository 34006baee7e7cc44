"""Multi-hop QA evaluation: supporting-document recall, answer EM / F1, hops and cost, with baselines.

Three systems run in the same pass over the same questions, with the same model:

* ``closed-book``: the model answers from memory (no retrieval);
* ``single-shot``: retrieve ``passages`` documents once, then read;
* ``agent``: the multi-hop loop (:class:`retriever.agent.Agent`).

Per system: both gold documents among the passages passed to the reader and
among everything retrieved, answer EM and F1 (HotpotQA's normalization), average
hops, documents read (retrieved or linked), passages passed, LM calls, LM tokens
and seconds per question (retrieval time plus each LM call's time when it ran, so
a run resumed from the LM-call cache reports the same cost). Without a model the
answers are extractive and ``closed-book`` is skipped.

The JSON and Markdown are rewritten every ``save_every`` questions, so an
interrupted run leaves its prefix's figures; rerun the same command to resume
(every finished LM call is answered from the cache).

Example:
    >>> report = evaluate_multihop(Engine.open("work/hotpotqa"), load_dataset("hotpotqa-distractor"),
    ...                            llm="qwen.gguf", out_dir="results/multihop", limit=40)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eval.report import write_report
from retriever.core.datasets import Dataset, Query
from retriever.core.metrics import exact_match, f1_score
from retriever.agent import Agent, Budget
from retriever.agent.prompts import STOP, clean_answer, reader_messages
from retriever.api import Engine
from retriever.core.errors import InputError
from retriever.generate import Generator, open_generator
from retriever.generate.base import Generation
from retriever.core.progress import progress
from retriever.rerank.base import Reranker

SYSTEMS = ("closed-book", "single-shot", "agent")
MEASURES = ("both_gold_passed", "both_gold_retrieved", "em", "f1", "hops", "docs_read", "passages", "lm_calls",
            "lm_tokens", "seconds")
ANSWER_TOKENS = 32


@dataclass
class SystemScores:
    """Per-question values of one system, and their means."""

    system: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def means(self) -> dict[str, float]:
        n = max(len(self.rows), 1)
        return {m: round(sum(float(r[m]) for r in self.rows) / n, 4) for m in MEASURES}


@dataclass
class MultihopReport:
    """The evaluation: config, per-system means, and where the files went."""

    dataset: str
    split: str
    questions: int
    config: dict[str, Any]
    results: dict[str, dict[str, float]]
    json_path: str | None = None
    markdown_path: str | None = None


def evaluate_multihop(engine: Engine, dataset: Dataset, split: str = "test", llm: str | Generator | None = None,
                      out_dir: str | Path | None = "results/multihop", limit: int | None = None,
                      systems: Sequence[str] = SYSTEMS, using: str = "hybrid",
                      rerank: str | Reranker = "top(k=5)", passages: int = 5, candidates: int = 30,
                      budget: Budget = Budget(), refine_sentences: bool = True, cache: str | Path | None = None,
                      threads: int | None = None, save_every: int = 10) -> MultihopReport:
    """Run the systems over the first ``limit`` questions of ``split``; write JSON, Markdown and traces.

    Args:
        engine: an engine over the dataset's corpus.
        dataset: a dataset whose queries carry ``metadata["answer"]`` (hotpotqa-distractor).
        split: the qrels split (fixed: ``test`` has 600 questions).
        llm: a generator, or what :func:`retriever.generate.load_generator` takes; ``None``: no model.
        out_dir: where ``<dataset>-<split>.json``/``.md``, ``traces.jsonl`` and the LM cache go.
        limit: evaluate only the first ``limit`` questions (in the split's sorted id order).
        systems: any of ``closed-book``, ``single-shot``, ``agent``.
        using, rerank, passages, candidates, budget, refine_sentences: the agent's settings;
            ``single-shot`` reads the top ``passages`` of ``using``.
        cache: the LM-call cache file (default ``<out_dir>/lm-cache.jsonl``).
        threads: CPU threads for a local model.
        save_every: rewrite the JSON and Markdown after this many questions.

    Raises:
        InputError: an unknown system, or questions without a gold answer.
    """
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise InputError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    queries, qrels = dataset.split(split)
    chosen = list(queries.values())[:limit] if limit else list(queries.values())
    if any("answer" not in q.metadata for q in chosen):
        raise InputError(f"dataset {dataset.name!r}: questions need metadata['answer'] for answer EM / F1")
    out = Path(out_dir) if out_dir else None
    if cache is None and out is not None:
        cache = out / "lm-cache.jsonl"
    generator = open_generator(llm, cache, threads=threads)
    systems = [s for s in systems if generator is not None or s != "closed-book"]
    agent = Agent(engine, generator, using=using, rerank=rerank, candidates=candidates, passages=passages,
                  budget=budget, refine_sentences=refine_sentences)
    config = {"llm": generator.name if generator else None, "engine": str(engine.path), "limit": limit,
              "single_shot": {"using": using, "passages": passages}, "agent": agent.config()}
    scores = {s: SystemScores(s) for s in systems}
    traces = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        traces = open(out / f"{dataset.name}-{split}-traces.jsonl", "w", encoding="utf-8")
    try:
        for done, query in enumerate(progress(chosen, desc=f"multi-hop QA on {dataset.name}", unit="question"), 1):
            gold = set(qrels[query.query_id])
            if "closed-book" in scores:
                scores["closed-book"].rows.append(_closed_book(generator, query))
            if "single-shot" in scores:
                scores["single-shot"].rows.append(_single_shot(engine, generator, query, gold, using, passages))
            if "agent" in scores:
                row, trace = _agent(agent, query, gold)
                scores["agent"].rows.append(row)
                if traces:
                    traces.write(json.dumps({"query_id": query.query_id, **trace}, ensure_ascii=False) + "\n")
                    traces.flush()
            if out is not None and (done % save_every == 0 or done == len(chosen)):
                report = _write(out, dataset.name, split, done, config, scores)
    finally:
        if traces:
            traces.close()
    if out is None:
        return MultihopReport(dataset.name, split, len(chosen), config, {s: v.means() for s, v in scores.items()})
    return report


def markdown(dataset: str, split: str, questions: int, results: dict[str, dict[str, float]], llm: str | None) -> str:
    """The results as a Markdown table, one row per system."""
    lines = [f"Multi-hop QA on {dataset} ({split}, {questions} questions), model: {llm or 'none (extractive)'}", "",
             "| system | both gold in passed | both gold retrieved | passages | EM | F1 | hops | docs read "
             "| LM calls | LM tokens | s / question |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for system, m in results.items():
        lines.append(f"| {system} | {m['both_gold_passed']:.3f} | {m['both_gold_retrieved']:.3f} | "
                     f"{m['passages']:.1f} | {m['em']:.3f} | {m['f1']:.3f} | {m['hops']:.2f} | "
                     f"{m['docs_read']:.1f} | {m['lm_calls']:.2f} | {m['lm_tokens']:.0f} | {m['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def _closed_book(generator: Generator, query: Query) -> dict[str, Any]:
    generation = generator.generate(reader_messages(query.text, []), max_tokens=ANSWER_TOKENS, stop=STOP)
    return _row(query, clean_answer(generation.text), [], [], 0, [generation], generation.seconds)


def _single_shot(engine: Engine, generator: Generator | None, query: Query, gold: set[str], using: str,
                 passages: int) -> dict[str, Any]:
    started = time.perf_counter()
    hits = engine.batch_search([query.text], k=passages, using=using)[0]
    seconds = time.perf_counter() - started
    ids = [h.doc_id for h in hits]
    if generator is None:
        return _row(query, hits[0].text if hits else "", ids, ids, 1, [], seconds, gold)
    generation = generator.generate(reader_messages(query.text, [(h.title, h.text) for h in hits]),
                                    max_tokens=ANSWER_TOKENS, stop=STOP)
    return _row(query, clean_answer(generation.text), ids, ids, 1, [generation], seconds + generation.seconds, gold)


def _agent(agent: Agent, query: Query, gold: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    answer = agent.ask(query.text)
    trace = answer.trace
    row = _row(query, answer.text, [e.doc_id for e in trace.evidence], trace.retrieved, len(trace.hops), [],
               trace.seconds, gold)
    row.update(lm_calls=trace.lm_calls, lm_tokens=trace.tokens, stop_reason=trace.stop_reason,
               citations=answer.citations)
    return row, trace.to_dict()


def _row(query: Query, prediction: str, passed: Sequence[str], retrieved: Sequence[str], hops: int,
         generations: Sequence[Generation], seconds: float, gold: set[str] | None = None) -> dict[str, Any]:
    answer = str(query.metadata["answer"])
    return {"query_id": query.query_id, "prediction": prediction, "answer": answer,
            "em": exact_match(prediction, answer), "f1": f1_score(prediction, answer),
            "both_gold_passed": float(bool(gold) and gold <= set(passed)),
            "both_gold_retrieved": float(bool(gold) and gold <= set(retrieved)),
            "hops": hops, "docs_read": len(set(retrieved)), "passages": len(passed), "lm_calls": len(generations),
            "lm_tokens": sum(g.prompt_tokens + g.completion_tokens for g in generations),
            "seconds": round(seconds, 4)}


def _write(out: Path, dataset: str, split: str, done: int, config: dict[str, Any],
           scores: dict[str, SystemScores]) -> MultihopReport:
    results = {s: v.means() for s, v in scores.items()}
    stem = out / f"{dataset}-{split}"
    payload = {"dataset": dataset, "split": split, "questions": done, "config": config, "results": results,
               "per_question": {s: v.rows for s, v in scores.items()}}
    json_path, md_path = write_report(stem, payload, markdown(dataset, split, done, results, config["llm"]))
    return MultihopReport(dataset, split, done, config, results, str(json_path), str(md_path))


def report_dict(report: MultihopReport) -> dict[str, Any]:
    """The report as plain data (for ``--json``)."""
    return asdict(report)
