"""Reranking evaluations: ranking measures, and what each reranker passes on to the reader.

* :func:`evaluate_reranked` (``retriever eval beir ... --rerank SPEC``): the chosen
  measures (default nDCG@10, R@100, RR@10) of each first-stage system and of the same system with its top
  ``candidates`` reranked, in one run (runs, JSON and Markdown as in :mod:`eval.beir`).
* :func:`evaluate_selection` (``retriever eval rerank``): on a multi-hop dataset,
  what each reranker passes on: both gold documents among the passed ones, the
  answer string in the passed text (questions whose answer is not yes/no), and
  documents passed; ``plain`` reranks one hybrid retrieval of the question,
  ``loop`` selects the evidence inside the no-LLM agent loop (the reranker alone
  decides how many: the loop's ``passages`` cap is set to ``candidates``; the
  passed text is what the loop hands the reader, i.e. the refined sentences). With a
  language model (``--llm``), the loop's reader (:meth:`retriever.agent.Agent.read`, the
  reader of the RL reward) also answers from each passed set, scored by EM / F1 against the
  answer and its aliases; with a ``baseline`` reranker, every other reranker's F1, EM and
  both-gold difference from it on the same questions gets a paired bootstrap interval.

Example:
    >>> evaluate_selection(Engine.open("work/hotpotqa"), load_dataset("hotpotqa-distractor"), "test",
    ...                    ["top(k=5)", "rl(path=work/models/rl-policy)"])
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from eval.beir import SystemResult, compare, evaluate, write_results
from eval.report import write_report
from eval.runs import slug, write_run
from eval.significance import interval_cell, paired_rows
from retriever.core.datasets import Dataset
from retriever.core.errors import InputError
from retriever.core.metrics import DEFAULT_MEASURES, best_exact_match, best_f1
from retriever.api import Engine
from retriever.core.progress import progress
from retriever.core.types import Hit
from retriever.rerank.base import RerankContext, load_reranker, reranker_settings, wants_signals

if TYPE_CHECKING:
    from retriever.agent import Agent
    from retriever.generate import Generator

MEASURES = ("both_gold_passed", "answer_in_passed", "passed", "seconds")
READ_MEASURES = ("em", "f1", "lm_tokens")
PAIRED = ("f1", "em", "both_gold_passed")
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
                       out_dir: str | Path | None = "results/rerank", llm: "str | Generator | None" = None,
                       cache: str | Path | None = None, baseline: str | None = None,
                       llm_settings: dict | None = None) -> dict[str, Any]:
    """Both-gold recall, answer containment, documents passed (and, with ``llm``, the reader's EM / F1) per
    (mode, reranker); see the module docstring.

    Args:
        limit: a seeded sample of ``limit`` questions, stratified by type (:func:`eval.multihop.stratified_sample`).
        llm: the reader (what :func:`retriever.generate.load_generator` takes), or None: no answers.
        cache: its LM-call cache (default ``<out_dir>/lm-cache.jsonl``); a rerun reads each passed set once.
        baseline: one of ``reranks``; the others are compared with it per mode (paired bootstrap).
        llm_settings: backend settings for ``llm``, e.g. ``{"threads": 1}``.

    Raises:
        InputError: ``baseline`` is not one of ``reranks``.
    """
    from eval.multihop import stratified_sample
    from retriever.agent import Agent
    from retriever.generate import open_generator

    if baseline is not None and baseline not in reranks:
        raise InputError(f"--baseline {baseline!r} must be one of the --rerank specs: {', '.join(reranks)}")
    queries, qrels = dataset.split(split)
    chosen = stratified_sample(list(queries.values()), limit) if limit else list(queries.values())
    rerankers = [load_reranker(spec) for spec in reranks]
    agent = Agent(engine, None, using=using, rerank=rerankers[0], candidates=candidates, passages=candidates)
    agents = [agent.with_reranker(r) for r in rerankers]
    if cache is None and out_dir and llm is not None:
        cache = Path(out_dir) / "lm-cache.jsonl"
    generator = open_generator(llm, cache, **(llm_settings or {}))
    reader = agent.with_generator(generator) if generator is not None else None
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
                row = _row(query.query_id, [h.doc_id for h in passed], " ".join(h.title + " " + h.text for h in passed),
                           gold, answer, time.perf_counter() - started)
                rows[f"plain | {reranker}"].append(_read(reader, query, passed, row))
        if "loop" in modes:
            for reranker, selecting in zip(rerankers, agents):
                started = time.perf_counter()
                found = selecting.ask(query.text)
                trace = found.trace
                text = " ".join(e.title + " " + " ".join(e.sentences) for e in trace.evidence)
                row = _row(query.query_id, [e.doc_id for e in trace.evidence], text, gold, answer,
                           time.perf_counter() - started)
                row["hops"] = len(trace.hops)
                rows[f"loop | {reranker}"].append(_read(reader, query, list(found.passed), row))
    report = {"dataset": dataset.name, "split": split, "questions": len(chosen), "using": using,
              "candidates": candidates, "engine": str(engine.path), "llm": generator.name if generator else None,
              "baseline": baseline, "results": {name: _means(r) for name, r in rows.items()},
              "paired": _paired(rows, [str(r) for r in rerankers], modes, baseline), "per_question": rows}
    if out_dir:
        write_report(Path(out_dir) / f"{dataset.name}-{split}-selection", report, markdown(report))
    return report


def _read(reader: "Agent | None", query, passed: Sequence[Hit], row: dict) -> dict:
    """``row`` with the reader's answer from ``passed`` and its EM / F1 (unchanged without a reader)."""
    if reader is None:
        return row
    prediction, generations = reader.read(query.text, passed)
    return row | {"prediction": prediction, "em": best_exact_match(prediction, query.answers),
                  "f1": best_f1(prediction, query.answers),
                  "lm_tokens": sum(g.prompt_tokens + g.completion_tokens for g in generations)}


def _paired(rows: dict[str, list[dict]], reranks: Sequence[str], modes: Sequence[str],
            baseline: str | None) -> dict[str, dict[str, Any]]:
    """Per mode, each reranker minus ``baseline`` on the same questions (:func:`eval.significance.paired_rows`)."""
    if baseline is None:
        return {}
    return {f"{mode} | {spec}": {"baseline": f"{mode} | {baseline}"} | paired_rows(
                rows[f"{mode} | {spec}"], rows[f"{mode} | {baseline}"], PAIRED)
            for mode in modes for spec in reranks if spec != baseline}


def markdown(report: dict[str, Any]) -> str:
    """The selection results as Markdown: one row per (mode, reranker), then the paired differences."""
    read = report.get("llm") is not None
    answers = " EM | F1 |" if read else ""
    lines = [f"Reranker selection on {report['dataset']} ({report['split']}, {report['questions']} questions, "
             f"{report['candidates']} candidates from `{report['using']}`"
             + (f", reader {report['llm']})" if read else ")"), "",
             "| mode | reranker | both gold passed | answer in passed | docs passed |" + answers + " ms / question |",
             "|---|---|---:|---:|---:|" + "---:|" * (2 * read) + "---:|"]
    for name, m in report["results"].items():
        mode, reranker = name.split(" | ", 1)
        scored = f" {m['em']:.3f} | {m['f1']:.3f} |" if read else ""
        lines.append(f"| {mode} | `{reranker}` | {m['both_gold_passed']:.3f} | {m['answer_in_passed']:.3f} | "
                     f"{m['passed']:.2f} |{scored} {1000 * m['seconds']:.0f} |")
    paired = report.get("paired") or {}
    if paired:
        measures = [m for m in PAIRED if all(m in per for per in paired.values())]
        lines += ["", f"| mode | reranker - `{report['baseline']}` | questions | " + " | ".join(
            f"{m} (95% CI, p)" for m in measures) + " |", "|---|---|---:|" + "---:|" * len(measures)]
        for name, per in paired.items():
            mode, reranker = name.split(" | ", 1)
            cells = [interval_cell(per[m]) for m in measures]
            lines.append(f"| {mode} | `{reranker}` | {per['questions']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _row(query_id: str, passed: list[str], text: str, gold: set[str], answer: str, seconds: float) -> dict:
    scored = bool(answer) and answer not in YES_NO
    return {"query_id": query_id, "passed_ids": passed, "passed": len(passed),
            "both_gold_passed": float(bool(gold) and gold <= set(passed)),
            "answer_in_passed": float(answer in text.lower()) if scored else None, "seconds": round(seconds, 4)}


def _means(rows: list[dict]) -> dict[str, float]:
    out = {}
    for measure in MEASURES + (READ_MEASURES if any("f1" in r for r in rows) else ()):
        values = [r[measure] for r in rows if r.get(measure) is not None]
        out[measure] = round(sum(values) / len(values), 4) if values else 0.0
    out["answer_scored"] = sum(r["answer_in_passed"] is not None for r in rows)
    return out
