"""Multi-hop QA evaluation: supporting-document recall, answer EM / F1, hops and cost, with baselines.

The chosen systems run in the same pass over the same questions, with the same model:

* ``closed-book``: the model answers from memory (no retrieval);
* ``single-shot``: retrieve ``passages`` documents once, then read;
* ``agent``: the multi-hop loop (:class:`retriever.agent.Agent`), the model writing each hop's query;
* ``rule-agent`` (not run by default): the same loop in its no-LLM mode gathers the evidence (every
  hop's query written by the rules) and the model only reads it, with the loop's own final reader
  call (:meth:`retriever.agent.Agent.read`): one LM call per question, as ``single-shot``.

Per system: *all* supporting documents among the passages passed to the reader
(``all_gold_passed``) and among everything retrieved (``all_gold_retrieved``),
recall@5 of the supporting documents (the share of them among the first five
passages passed: the figure HippoRAG and IRCoT report), answer EM and F1
(HotpotQA's normalization, the best over the answer and its ``answer_aliases``),
average hops, documents read (retrieved or linked), passages passed, LM calls, LM
tokens and seconds per question (retrieval time plus each LM call's time when it
ran, so a run resumed from the LM-call cache reports the same cost). The same
means are also reported per question group: per question ``type`` (HotpotQA's
bridge / comparison, 2WikiMultiHopQA's four types) and per hop count (the number
of supporting documents: 2, 3 or 4 on MuSiQue). Without a model the answers are
extractive and ``closed-book`` is skipped.

``limit`` draws a seeded sample of the split, stratified by question type (or hop
count where there is no type): each stratum contributes in proportion to its size
(largest remainders, at least one question per stratum), so a 100-question sample
of MuSiQue keeps its 3- and 4-hop questions.

The JSON and Markdown are rewritten every ``save_every`` questions, so an
interrupted run leaves its prefix's figures; rerun the same command to resume
(every finished LM call is answered from the cache).

Example:
    >>> report = evaluate_multihop(Engine.open("work/hotpotqa"), load_dataset("hotpotqa-distractor"),
    ...                            llm="qwen.gguf", out_dir="results/multihop", limit=40)
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eval.report import write_report
from eval.significance import interval_cell, paired_rows
from retriever.core.datasets import Dataset, Query
from retriever.core.metrics import best_exact_match, best_f1
from retriever.agent import Agent, Budget
from retriever.agent.reading import generator_call, read_answer
from retriever.api import Engine
from retriever.core.errors import InputError
from retriever.generate import Generator, open_generator
from retriever.generate.base import Generation
from retriever.core.progress import progress
from retriever.rerank.base import Reranker

SYSTEMS = ("closed-book", "single-shot", "agent", "rule-agent")
DEFAULT_SYSTEMS = ("closed-book", "single-shot", "agent")
MEASURES = ("all_gold_passed", "recall_at_5", "all_gold_retrieved", "em", "f1", "hops", "docs_read", "passages",
            "lm_calls", "lm_tokens", "seconds")
PAIRED_MEASURES = ("f1", "em", "all_gold_passed")
PAIRED_LABELS = {"f1": "F1 points", "em": "EM points", "all_gold_passed": "all gold passed, points"}
SAMPLE_SEED = 2026


@dataclass
class SystemScores:
    """Per-question values of one system, and their means."""

    system: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def means(self, group: str | None = None) -> dict[str, float]:
        """Means over every row, or over the rows of one group (e.g. ``type=comparison``, ``hops=3``)."""
        rows = [r for r in self.rows if group is None or group in r["groups"]]
        n = max(len(rows), 1)
        return {"questions": len(rows), **{m: round(sum(float(r[m]) for r in rows) / n, 4) for m in MEASURES}}

    def groups(self) -> dict[str, dict[str, float]]:
        """Means per group, types first; a group holding the same questions as one before it (MuSiQue's
        ``hops=2`` is ``type=2hop``) is left out."""
        out, seen = {}, set()
        for name in sorted({g for r in self.rows for g in r["groups"]}, key=lambda g: (not g.startswith("type="), g)):
            members = frozenset(r["query_id"] for r in self.rows if name in r["groups"])
            if members not in seen:
                seen.add(members)
                out[name] = self.means(name)
        return out


@dataclass
class MultihopReport:
    """The evaluation: config, per-system means, and where the files went."""

    dataset: str
    split: str
    questions: int
    config: dict[str, Any]
    results: dict[str, dict[str, float]]
    groups: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    json_path: str | None = None
    markdown_path: str | None = None


def evaluate_multihop(engine: Engine, dataset: Dataset, split: str = "test", llm: str | Generator | None = None,
                      out_dir: str | Path | None = "results/multihop", limit: int | None = None,
                      systems: Sequence[str] = DEFAULT_SYSTEMS, using: str = "hybrid",
                      rerank: str | Reranker = "top(k=5)", passages: int = 5, candidates: int = 30,
                      rescore: str | Reranker | None = None, budget: Budget = Budget(),
                      refine_sentences: bool = True, reader: str = "direct", choices: bool = False,
                      cache: str | Path | None = None, threads: int | None = None,
                      save_every: int = 10) -> MultihopReport:
    """Run the systems over ``split`` (or a stratified sample of ``limit``); write JSON, Markdown and traces.

    Args:
        engine: an engine over the dataset's corpus.
        dataset: a dataset whose queries carry ``metadata["answer"]`` (and optionally ``answer_aliases``).
        split: the qrels split (hotpotqa-distractor: ``test`` has 600 questions; musique and
            2wikimultihopqa: ``all``, ``dev``, ``test``).
        llm: a generator, or what :func:`retriever.generate.load_generator` takes; ``None``: no model.
        out_dir: where ``<dataset>-<split>.json``/``.md``, ``traces.jsonl`` and the LM cache go.
        limit: evaluate a seeded sample of ``limit`` questions, stratified by type (:func:`stratified_sample`).
        systems: any of :data:`SYSTEMS` (see the module docstring).
        using, rerank, rescore, passages, candidates, budget, refine_sentences, reader, choices: the
            agent's settings; ``single-shot`` reads the top ``passages`` of ``using``, and every system reads
            its answer with ``reader`` and ``choices`` (:mod:`retriever.agent.reading`).
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
    chosen = stratified_sample(list(queries.values()), limit) if limit else list(queries.values())
    if any("answer" not in q.metadata for q in chosen):
        raise InputError(f"dataset {dataset.name!r}: questions need metadata['answer'] for answer EM / F1")
    out = Path(out_dir) if out_dir else None
    if cache is None and out is not None:
        cache = out / "lm-cache.jsonl"
    generator = open_generator(llm, cache, threads=threads)
    systems = [s for s in systems if generator is not None or s not in ("closed-book", "rule-agent")]
    agent = Agent(engine, generator, using=using, rerank=rerank, candidates=candidates, passages=passages,
                  budget=budget, refine_sentences=refine_sentences, rescore=rescore, reader=reader,
                  choices=choices)
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
                scores["closed-book"].rows.append(_closed_book(generator, query, reader, choices))
            if "single-shot" in scores:
                scores["single-shot"].rows.append(_single_shot(engine, generator, query, gold, using, passages,
                                                               reader, choices))
            if "agent" in scores:
                row, trace = _agent(agent, query, gold)
                scores["agent"].rows.append(row)
                if traces:
                    traces.write(json.dumps({"query_id": query.query_id, **trace}, ensure_ascii=False) + "\n")
                    traces.flush()
            if "rule-agent" in scores:
                scores["rule-agent"].rows.append(_rule_agent(agent, query, gold))
            if out is not None and (done % save_every == 0 or done == len(chosen)):
                report = _write(out, dataset.name, split, done, config, scores)
    finally:
        if traces:
            traces.close()
    if out is None:
        return MultihopReport(dataset.name, split, len(chosen), config, {s: v.means() for s, v in scores.items()},
                              {s: v.groups() for s, v in scores.items()})
    return report


def stratified_sample(queries: Sequence[Query], limit: int, seed: int = SAMPLE_SEED) -> list[Query]:
    """``limit`` questions drawn with ``random.Random(seed)``, each type (or hop count) in proportion to its size.

    Strata get ``limit * size / total`` questions rounded down, the remaining ones go to the
    largest remainders, and every stratum gets at least one while ``limit`` allows. The sample
    comes back in the split's order.
    """
    if limit >= len(queries):
        return list(queries)
    strata: dict[str, list[Query]] = {}
    for query in queries:
        strata.setdefault(_stratum(query), []).append(query)
    shares = {name: limit * len(members) / len(queries) for name, members in strata.items()}
    counts = {name: int(share) for name, share in shares.items()}
    order = sorted(strata, key=lambda name: (counts[name] > 0, -(shares[name] - counts[name]), name))
    for name in order[:limit - sum(counts.values())]:
        counts[name] += 1
    rng, chosen = random.Random(seed), set()
    for name in sorted(strata):
        members = [q.query_id for q in strata[name]]
        rng.shuffle(members)
        chosen.update(members[:counts[name]])
    return [q for q in queries if q.query_id in chosen]


def _stratum(query: Query) -> str:
    kind = query.metadata.get("type")
    return f"type={kind}" if kind else f"hops={query.metadata.get('hops', '')}"


def markdown(dataset: str, split: str, questions: int, results: dict[str, dict[str, float]], llm: str | None,
             groups: dict[str, dict[str, dict[str, float]]] | None = None) -> str:
    """The results as Markdown: one row per system, then one row per (group, system)."""
    lines = [f"Multi-hop QA on {dataset} ({split}, {questions} questions), model: {llm or 'none (extractive)'}", "",
             "| system | all gold in passed | recall@5 | all gold retrieved | passages | EM | F1 | hops | docs read "
             "| LM calls | LM tokens | s / question |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for system, m in results.items():
        lines.append(f"| {system} | {m['all_gold_passed']:.3f} | {m['recall_at_5']:.3f} | "
                     f"{m['all_gold_retrieved']:.3f} | {m['passages']:.1f} | {m['em']:.3f} | {m['f1']:.3f} | "
                     f"{m['hops']:.2f} | {m['docs_read']:.1f} | {m['lm_calls']:.2f} | {m['lm_tokens']:.0f} | "
                     f"{m['seconds']:.2f} |")
    rows = [(group, system, m) for system, per in (groups or {}).items() for group, m in per.items()]
    if rows:
        lines += ["", "| group | system | questions | all gold in passed | recall@5 | all gold retrieved | EM | F1 "
                  "| hops |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for group, system, m in sorted(rows, key=lambda row: (row[0], row[1])):
            lines.append(f"| {group} | {system} | {m['questions']} | {m['all_gold_passed']:.3f} | "
                         f"{m['recall_at_5']:.3f} | {m['all_gold_retrieved']:.3f} | {m['em']:.3f} | {m['f1']:.3f} | "
                         f"{m['hops']:.2f} |")
    return "\n".join(lines) + "\n"


def _closed_book(generator: Generator, query: Query, reader: str, choices: bool) -> dict[str, Any]:
    answer, generations = read_answer(generator_call(generator), query.text, [], reader, choices)
    return _row(query, answer or "", [], [], 0, generations, sum(g.seconds for g in generations))


def _single_shot(engine: Engine, generator: Generator | None, query: Query, gold: set[str], using: str,
                 passages: int, reader: str = "direct", choices: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    hits = engine.batch_search([query.text], k=passages, using=using)[0]
    seconds = time.perf_counter() - started
    ids = [h.doc_id for h in hits]
    if generator is None:
        return _row(query, hits[0].text if hits else "", ids, ids, 1, [], seconds, gold)
    answer, generations = read_answer(generator_call(generator), query.text, [(h.title, h.text) for h in hits],
                                      reader, choices)
    return _row(query, answer or "", ids, ids, 1, generations, seconds + sum(g.seconds for g in generations), gold)


def _agent(agent: Agent, query: Query, gold: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    answer = agent.ask(query.text)
    trace = answer.trace
    row = _row(query, answer.text, [e.doc_id for e in trace.evidence], trace.retrieved, len(trace.hops), [],
               trace.seconds, gold)
    row.update(lm_calls=trace.lm_calls, lm_tokens=trace.tokens, stop_reason=trace.stop_reason,
               citations=answer.citations)
    return row, trace.to_dict()


def _rule_agent(agent: Agent, query: Query, gold: set[str]) -> dict[str, Any]:
    """The no-LLM loop's evidence, read once by ``agent``'s model."""
    found = agent.with_generator(None).ask(query.text)
    trace, passed = found.trace, list(found.passed)
    prediction, generations = agent.read(query.text, passed)
    return _row(query, prediction, [h.doc_id for h in passed], trace.retrieved, len(trace.hops), generations,
                trace.seconds + sum(g.seconds for g in generations), gold)


def _row(query: Query, prediction: str, passed: Sequence[str], retrieved: Sequence[str], hops: int,
         generations: Sequence[Generation], seconds: float, gold: set[str] | None = None) -> dict[str, Any]:
    answers = query.answers
    gold = gold or set()
    return {"query_id": query.query_id, "prediction": prediction, "answer": answers[0],
            "groups": [_stratum(query)] + ([f"hops={query.metadata['hops']}"] if query.metadata.get("type") and
                                           "hops" in query.metadata else []),
            "em": best_exact_match(prediction, answers), "f1": best_f1(prediction, answers),
            "all_gold_passed": float(bool(gold) and gold <= set(passed)),
            "recall_at_5": len(gold & set(passed[:5])) / len(gold) if gold else 0.0,
            "all_gold_retrieved": float(bool(gold) and gold <= set(retrieved)),
            "hops": hops, "docs_read": len(set(retrieved)), "passages": len(passed), "lm_calls": len(generations),
            "lm_tokens": sum(g.prompt_tokens + g.completion_tokens for g in generations),
            "seconds": round(seconds, 4)}


def paired_differences(scores: dict[str, SystemScores], baseline: str = "single-shot") -> dict[str, dict[str, Any]]:
    """Each other system minus ``baseline`` on the same questions: mean difference of F1, EM and all gold
    passed, with the paired bootstrap's 95% interval and p-value (:func:`eval.significance.paired_rows`)."""
    if baseline not in scores:
        return {}
    base_ids = {r["query_id"] for r in scores[baseline].rows}
    return {system: paired_rows(values.rows, scores[baseline].rows, PAIRED_MEASURES)
            for system, values in scores.items()
            if system != baseline and any(r["query_id"] in base_ids for r in values.rows)}


def _write(out: Path, dataset: str, split: str, done: int, config: dict[str, Any],
           scores: dict[str, SystemScores]) -> MultihopReport:
    results = {s: v.means() for s, v in scores.items()}
    groups = {s: v.groups() for s, v in scores.items()}
    paired = paired_differences(scores)
    stem = out / f"{dataset}-{split}"
    payload = {"dataset": dataset, "split": split, "questions": done, "config": config, "results": results,
               "groups": groups, "paired_vs_single_shot": paired, "per_question": {s: v.rows for s, v in scores.items()}}
    text = markdown(dataset, split, done, results, config["llm"], groups) + paired_markdown(paired)
    json_path, md_path = write_report(stem, payload, text)
    return MultihopReport(dataset, split, done, config, results, groups, str(json_path), str(md_path))


def paired_markdown(paired: dict[str, dict[str, Any]], baseline: str = "single-shot") -> str:
    """The paired differences as a table (points for F1 / EM, share for all gold passed)."""
    if not paired:
        return ""
    lines = ["", f"| paired vs {baseline} | questions | " + " | ".join(
        f"{PAIRED_LABELS[m]} (95% CI, p)" for m in PAIRED_MEASURES) + " |",
        "|---|---:|" + "---:|" * len(PAIRED_MEASURES)]
    for system, per in paired.items():
        cells = [interval_cell(per[m]) for m in PAIRED_MEASURES]
        lines.append(f"| {system} | {per['questions']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_dict(report: MultihopReport) -> dict[str, Any]:
    """The report as plain data (for ``--json``)."""
    return asdict(report)
