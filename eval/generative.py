"""Quality next to cost: nDCG@10, Recall@100, Hits@1/@10, query latency, index size and build time.

Evaluates index names and fusion specs of one engine on a dataset split, side by
side from the same run (the generative index next to BM25 and dense, alone and
fused), and writes TREC runs plus ``<dataset>-<split>-compare.json`` / ``.md``.
Hits@k (the DSI papers' measure) is ir-measures' ``Success@k``: the share of
queries with at least one relevant document in the top k.

Example:
    retriever eval generative work/generative/nfcorpus --dataset nfcorpus \\
        --using bm25 --using dense --using generative --using "rrf(bm25,dense,generative)"
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from eval.report import write_report
from eval.runs import slug, write_run
from retriever.core.datasets import Dataset
from retriever.core.metrics import aggregate, parse_measures
from retriever.api import Engine
from retriever.core.progress import progress
from retriever.core.storage import dir_size

MEASURES = ("nDCG@10", "R@100", "Success@1", "Success@10")
TITLES = {"Success@1": "Hits@1", "Success@10": "Hits@10"}


def compare(engine: Engine, dataset: Dataset, split: str = "test", systems: Sequence[str] = (),
            out_dir: str | Path | None = None, k: int = 100, depth: int = 1000, batch_size: int = 64) -> list[dict]:
    """Evaluate ``systems`` (default: every index, then RRF over all) and write JSON + Markdown.

    Returns:
        One record per system: metrics, ms per query, and for single indexes their
        size on disk, build seconds, and (generative) trained parameters.
    """
    systems = list(systems) or [*engine.names, f"rrf({','.join(engine.names)})"]
    queries, qrels = dataset.split(split)
    query_ids, texts = list(queries), [q.text for q in queries.values()]
    measures = parse_measures(MEASURES)
    records = []
    for system in systems:
        started = time.perf_counter()
        rankings = []
        for start in progress(range(0, len(texts), batch_size), desc=f"{system} on {dataset.name}", unit="batch"):
            rankings += engine.rankings(texts[start:start + batch_size], k=k, using=system, depth=depth)
        seconds = time.perf_counter() - started
        run = dict(zip(query_ids, rankings))
        record = {"system": system, "metrics": aggregate(qrels, run, measures), "queries": len(texts),
                  "ms_per_query": round(1000 * seconds / max(len(texts), 1), 2), **_index_cost(engine, system)}
        if out_dir:
            record["run_file"] = str(write_run(Path(out_dir) / f"{dataset.name}-{split}-{slug(system)}.trec",
                                               run, system))
        records.append(record)
    if out_dir:
        payload = {"dataset": dataset.name, "split": split, "engine": str(engine.path), "k": k, "depth": depth,
                   "results": records}
        write_report(Path(out_dir) / f"{dataset.name}-{split}-compare", payload,
                     markdown(dataset.name, split, records))
    return records


def markdown(dataset: str, split: str, records: Sequence[dict]) -> str:
    """One row per system: metrics, ms / query, index MB, build seconds."""
    names = [TITLES.get(m, m) for m in MEASURES]
    lines = [f"| {dataset} ({split}) | " + " | ".join(names) + " | ms / query | index MB | build s |",
             "|---|" + "---:|" * (len(names) + 3)]
    for r in records:
        cells = [f"{r['metrics'][m]:.4f}" for m in MEASURES]
        cells += [f"{r['ms_per_query']:.1f}", _cell(r.get("index_mb"), "{:.1f}"), _cell(r.get("build_seconds"), "{:.0f}")]
        lines.append(f"| `{r['system']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _index_cost(engine: Engine, system: str) -> dict[str, Any]:
    if system not in engine.indexes:
        return {}
    index = engine.indexes[system]
    cost = {"index_mb": round(dir_size(index.directory) / 2**20, 2),
            "build_seconds": index.manifest.get("build_seconds"), "settings": index.settings}
    model = index.directory / "model.safetensors"
    if model.is_file():
        cost["model_mb"] = round(model.stat().st_size / 2**20, 2)
        training = json.loads((index.directory / "training.json").read_text(encoding="utf-8"))
        cost["trained_parameters"] = training["parameters"]
        cost["training_runs"] = [{k: v for k, v in run.items() if k != "history"} for run in training["runs"]]
    return cost


def _cell(value: Any, fmt: str) -> str:
    return fmt.format(value) if value is not None else ""
