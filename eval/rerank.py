"""Reranking evaluations that need no language model.

* :func:`evaluate_reranked` (``retriever eval beir ... --rerank SPEC``): the chosen
  measures (default nDCG@10, R@100, RR@10) of each first-stage system and of the same system with its top
  ``candidates`` reranked, in one run (runs, JSON and Markdown as in :mod:`eval.beir`).
* :func:`evaluate_selection` (``retriever eval rerank``): on a multi-hop dataset,
  what each reranker passes on: both gold documents among the passed ones, the
  answer string in the passed text (questions whose answer is not yes/no), and
  documents passed; ``plain`` reranks one hybrid retrieval of the question,
  ``loop`` selects the evidence inside the no-LLM agent loop (the reranker alone
  decides how many: the loop's ``passages`` cap is set to ``candidates``; the
  passed text is what the loop hands the reader, i.e. the refined sentences).

Example:
    >>> evaluate_selection(Engine.open("work/hotpotqa"), load_dataset("hotpotqa-distractor"), "test",
    ...                    ["top(k=5)", "rl(path=work/models/rl-policy)"])
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from eval.beir import SystemResult, compare, evaluate, write_results
from eval.report import write_report
from eval.runs import slug, write_run
from retriever.core.datasets import Dataset
from retriever.core.metrics import DEFAULT_MEASURES
from retriever.api import Engine
from retriever.core.progress import progress
from retriever.rerank.base import RerankContext, load_reranker, reranker_settings, wants_signals

MEASURES = ("both_gold_passed", "answer_in_passed", "passed", "seconds")
YES_NO = ("yes", "no")


def evaluate_reranked(engine: Engine, dataset: Dataset, split: str, systems: Sequence[str], reranks: Sequence[str],
                      out_dir: str | Path | None, depth: int | None = None, candidates: int = 100,
                      measures: Sequence = DEFAULT_MEASURES, baseline: str | None = None) -> list[SystemResult]:
    """Each system, then each system with its top ``candidates`` reranked by each spec; writes runs, JSON, Markdown.

    With ``baseline`` (one of ``systems``), every other row is tested against it (see :func:`eval.beir.compare`).
    """
    for spec in reranks:  # settings are checked before any system runs
        reranker_settings(spec)
    results = evaluate(engine, dataset, split, systems, out_dir, depth=depth, measures=measures)
    queries, _ = dataset.split(split)
    query_ids = list(queries)
    for spec in reranks:
        reranker = load_reranker(spec)
        for system in systems:
            found: list = []

            def rankings(chunk: Sequence[str], using: str) -> list:
                hits = engine.batch_search(chunk, k=candidates, using=using, rerank=reranker, candidates=candidates,
                                           depth=depth)
                found.extend([(h.doc_id, h.score) for h in ranked] for ranked in hits)
                return found[-len(chunk):]

            result = evaluate(engine, dataset, split, [system], None, depth=depth, measures=measures, batch_size=8,
                              rankings_fn=rankings)[0]
            result.system = f"{system} >> {reranker}"
            result.config["rerank"] = {"spec": str(reranker), "candidates": candidates}
            if out_dir:
                run_path = Path(out_dir) / f"{dataset.name}-{split}-{slug(result.system)}.trec"
                result.run_file = str(write_run(run_path, dict(zip(query_ids, found)), result.system))
            results.append(result)
    if baseline:
        compare(results, baseline)
    if out_dir:
        write_results(Path(out_dir), dataset, split, results, {"k": 100, "depth": depth, "engine": str(engine.path),
                                                               "candidates": candidates, "baseline": baseline})
    return results


def evaluate_selection(engine: Engine, dataset: Dataset, split: str, reranks: Sequence[str], using: str = "hybrid",
                       candidates: int = 30, modes: Sequence[str] = ("plain", "loop"), limit: int | None = None,
                       out_dir: str | Path | None = "results/rerank") -> dict[str, Any]:
    """Both-gold recall, answer containment and documents passed per (mode, reranker); see the module docstring."""
    from retriever.agent import Agent

    queries, qrels = dataset.split(split)
    chosen = list(queries.values())[:limit] if limit else list(queries.values())
    rerankers = [load_reranker(spec) for spec in reranks]
    agent = Agent(engine, None, using=using, rerank=rerankers[0], candidates=candidates, passages=candidates)
    agents = [agent.with_reranker(r) for r in rerankers]
    rows: dict[str, list[dict]] = {f"{mode} | {r}": [] for mode in modes for r in rerankers}
    for query in progress(chosen, desc=f"reranker selection on {dataset.name}", unit="question"):
        gold = {d for d, s in qrels[query.query_id].items() if s > 0}
        answer = str(query.metadata.get("answer", "")).strip().lower()
        if "plain" in modes:
            retrieved = engine.retrieve([query.text], k=candidates, using=using)[0]
            hits = engine.hits(retrieved.ranking)
            for reranker in rerankers:
                started = time.perf_counter()
                context = RerankContext(question=query.text,
                                        signals=retrieved.signals(candidates) if wants_signals(reranker) else {})
                passed = reranker.rerank(query.text, hits, context)
                rows[f"plain | {reranker}"].append(_row(query.query_id, [h.doc_id for h in passed],
                                                        " ".join(h.title + " " + h.text for h in passed), gold,
                                                        answer, time.perf_counter() - started))
        if "loop" in modes:
            for reranker, selecting in zip(rerankers, agents):
                started = time.perf_counter()
                trace = selecting.ask(query.text).trace
                text = " ".join(e.title + " " + " ".join(e.sentences) for e in trace.evidence)
                row = _row(query.query_id, [e.doc_id for e in trace.evidence], text, gold, answer,
                           time.perf_counter() - started)
                row["hops"] = len(trace.hops)
                rows[f"loop | {reranker}"].append(row)
    report = {"dataset": dataset.name, "split": split, "questions": len(chosen), "using": using,
              "candidates": candidates, "engine": str(engine.path),
              "results": {name: _means(r) for name, r in rows.items()}, "per_question": rows}
    if out_dir:
        write_report(Path(out_dir) / f"{dataset.name}-{split}-selection", report, markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The selection results as a Markdown table, one row per (mode, reranker)."""
    lines = [f"Reranker selection on {report['dataset']} ({report['split']}, {report['questions']} questions, "
             f"{report['candidates']} candidates from `{report['using']}`)", "",
             "| mode | reranker | both gold passed | answer in passed | docs passed | ms / question |",
             "|---|---|---:|---:|---:|---:|"]
    for name, m in report["results"].items():
        mode, reranker = name.split(" | ", 1)
        lines.append(f"| {mode} | `{reranker}` | {m['both_gold_passed']:.3f} | {m['answer_in_passed']:.3f} | "
                     f"{m['passed']:.2f} | {1000 * m['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def _row(query_id: str, passed: list[str], text: str, gold: set[str], answer: str, seconds: float) -> dict:
    scored = bool(answer) and answer not in YES_NO
    return {"query_id": query_id, "passed_ids": passed, "passed": len(passed),
            "both_gold_passed": float(bool(gold) and gold <= set(passed)),
            "answer_in_passed": float(answer in text.lower()) if scored else None, "seconds": round(seconds, 4)}


def _means(rows: list[dict]) -> dict[str, float]:
    out = {}
    for measure in MEASURES:
        values = [r[measure] for r in rows if r.get(measure) is not None]
        out[measure] = round(sum(values) / len(values), 4) if values else 0.0
    out["answer_scored"] = sum(r["answer_in_passed"] is not None for r in rows)
    return out
