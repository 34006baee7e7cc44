"""BEIR evaluation of any index or fused pipeline of an engine: nDCG@10, Recall@100, MRR@10.

For each system (an index name or a fusion spec) it writes a TREC run file, and
for the whole evaluation a JSON result (metrics, config, model settings, commit,
timings) and a Markdown table.

Example:
    >>> results = evaluate(Engine.open("work/nfcorpus"), load_dataset("nfcorpus"),
    ...                    systems=["bm25", "dense", "rrf(bm25,dense)"], out_dir="results/nfcorpus")
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from retriever.core.datasets import Dataset
from retriever.core.errors import InputError
from retriever.core.metrics import DEFAULT_MEASURES, aggregate
from retriever.api import Engine
from retriever.core.progress import progress

RUN_DEPTH = 100


@dataclass
class SystemResult:
    """Metrics and timings of one system on one dataset split."""

    system: str
    metrics: dict[str, float]
    queries: int
    seconds: float
    run_file: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def check_corpus(engine: Engine, name: str, qrels: dict[str, dict[str, int]]) -> None:
    """Refuse to score an engine whose corpus holds none of the judged documents; warn when some are missing.

    Raises:
        InputError: not one judged document of ``qrels`` is in the engine's corpus (built on another corpus).
    """
    judged = {doc_id for docs in qrels.values() for doc_id in docs}
    missing = [doc_id for doc_id in judged if doc_id not in engine.corpus]
    source = engine.corpus.manifest.get("source") or "documents given in Python"
    if judged and len(missing) == len(judged):
        raise InputError(f"{engine.path} was built on another corpus ({source}): none of the {len(judged)} "
                         f"documents judged in {name} is in it; build an engine on {name} to evaluate on it")
    if missing:
        print(f"warning: {len(missing)} of {len(judged)} documents judged in {name} are not in {engine.path} "
              f"(built from {source}); they count as not retrieved", file=sys.stderr)


def evaluate(engine: Engine, dataset: Dataset, split: str = "test", systems: Sequence[str] = ("bm25",),
             out_dir: str | Path | None = None, k: int = RUN_DEPTH, depth: int = 1000,
             batch_size: int = 256, rankings_fn=None) -> list[SystemResult]:
    """Evaluate each system on ``dataset``'s ``split`` and write runs + JSON + Markdown to ``out_dir``.

    Args:
        engine: an open engine over the dataset's corpus.
        dataset: the dataset (queries and qrels).
        split: the qrels split.
        systems: index names or fusion specs (see :meth:`Engine.resolve`).
        out_dir: where the run files, ``<dataset>-<split>.json`` and ``.md`` go.
        k: run depth per query (metrics need 100).
        depth: how deep each index is read before fusion.
        batch_size: queries per engine call (a progress bar advances per batch).
        rankings_fn: optional ``(queries, system) -> rankings`` replacing the engine
            call (e.g. to add a reranking stage).
    """
    queries, qrels = dataset.split(split)
    check_corpus(engine, dataset.name, qrels)
    query_ids, texts = list(queries), [q.text for q in queries.values()]
    results = []
    for system in systems:
        started = time.perf_counter()
        rankings = []
        for start in progress(range(0, len(texts), batch_size), desc=f"{system} on {dataset.name}", unit="batch"):
            chunk = texts[start:start + batch_size]
            rankings += (rankings_fn(chunk, system) if rankings_fn
                         else engine.rankings(chunk, k=k, using=system, depth=depth))
        seconds = time.perf_counter() - started
        run = dict(zip(query_ids, rankings))
        result = SystemResult(system, aggregate(qrels, run, DEFAULT_MEASURES), len(query_ids), round(seconds, 3),
                              config=_system_config(engine, system))
        if out_dir:
            result.run_file = str(write_run(Path(out_dir) / f"{dataset.name}-{split}-{_slug(system)}.trec", run, system))
        results.append(result)
    if out_dir:
        write_results(Path(out_dir), dataset, split, results, {"k": k, "depth": depth, "engine": str(engine.path)})
    return results


def write_run(path: Path, run: dict[str, Sequence[tuple[str, float]]], tag: str) -> Path:
    """Write a TREC run file: ``qid Q0 docid rank score tag``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = _slug(tag)
    with open(path, "w", encoding="utf-8") as f:
        for qid, ranking in run.items():
            for rank, (doc_id, score) in enumerate(ranking, start=1):
                f.write(f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
    return path


def write_results(out_dir: Path, dataset: Dataset, split: str, results: Sequence[SystemResult],
                  config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<dataset>-<split>.json`` and ``.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{dataset.name}-{split}"
    payload = {"dataset": dataset.name, "split": split, "source": dataset.source, "commit": git_commit(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": config,
               "results": [asdict(r) for r in results]}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown_table(dataset.name, split, results), encoding="utf-8")
    return stem.with_suffix(".json"), stem.with_suffix(".md")


def markdown_table(dataset: str, split: str, results: Sequence[SystemResult]) -> str:
    """A Markdown table: one row per system, one column per measure, plus ms/query."""
    names = [str(m) for m in DEFAULT_MEASURES]
    lines = [f"| {dataset} ({split}) | " + " | ".join(names) + " | ms / query |",
             "|---|" + "---:|" * (len(names) + 1)]
    for r in results:
        cells = " | ".join(f"{r.metrics[n]:.4f}" for n in names)
        lines.append(f"| `{r.system}` | {cells} | {1000 * r.seconds / max(r.queries, 1):.1f} |")
    return "\n".join(lines) + "\n"


def git_commit() -> str | None:
    """The checkout's commit, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _system_config(engine: Engine, system: str) -> dict[str, Any]:
    target = engine.resolve(system)
    names = [target] if isinstance(target, str) else list(target.names)
    return {name: {"kind": engine.indexes[name].kind, "settings": engine.indexes[name].settings} for name in names}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.^-]+", "_", text).strip("_")
