"""Speed, memory and size benchmarks of index kinds, side by side, as ratios to BM25.

Each system is measured in its own fresh process (so peak RSS is its own), one
after the other on the same machine in the same run: build throughput (docs/s),
single-query latency p50/p95, batch throughput (QPS), index size on disk and
peak resident memory. BM25 is always measured and is the baseline of the ratios.

Example:
    retriever bench --dataset nfcorpus --systems "bm25;dense(factory=Flat);dense(factory=HNSW32)"
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.report import write_report
from retriever.core.specs import parse_spec

BASELINE = "bm25"
WARMUP = 5


def split_specs(text: str) -> list[str]:
    """Split ``"bm25;dense(factory='IVF64,PQ8')"`` (or comma-separated simple specs) into specs."""
    specs, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch in ",;" and depth == 0:
            specs.append(current.strip())
            current = ""
        else:
            current += ch
    specs.append(current.strip())
    return [s for s in specs if s]


def run_benchmark(dataset: str, specs: Sequence[str], out_dir: Path, query_count: int = 200,
                  limit: int | None = None, data_dir: str | None = None) -> str:
    """Measure each spec in a fresh process; write JSON and Markdown to ``out_dir``; return the Markdown."""
    from indexes.base import parse_index_spec

    specs = list(dict.fromkeys([BASELINE, *specs]))
    for spec in specs:  # every spec's settings are checked before the first build
        parse_index_spec(spec)
    context = multiprocessing.get_context("spawn")
    rows = []
    for spec in specs:
        with context.Pool(1) as pool:
            rows.append(pool.apply(measure, (spec, dataset, query_count, limit, data_dir)))
    base = rows[0]
    for row in rows:
        row["ratios"] = {key: row[key] / base[key] if base[key] else None
                         for key in ("build_docs_per_s", "p50_ms", "p95_ms", "batch_qps", "size_mb", "peak_rss_mb")}
    table = markdown(rows)
    write_report(out_dir / f"bench-{dataset}", {"dataset": dataset, "limit": limit, "queries": query_count,
                                                "systems": rows}, table)
    return table


def measure(spec: str, dataset_name: str, query_count: int, limit: int | None, data_dir: str | None) -> dict[str, Any]:
    """Build one index and time its queries (runs inside a fresh process)."""
    from retriever.core.datasets import load_dataset
    from indexes.base import build_index, parse_index_spec
    from retriever.core.corpus import Corpus
    from retriever.core.storage import dir_size

    dataset = load_dataset(dataset_name, data_dir=data_dir)
    name, kind, settings = parse_index_spec(spec)
    queries = [q.text for q in dataset.queries.values()][:query_count]
    with tempfile.TemporaryDirectory(prefix="retriever-bench-") as tmp:
        docs = (d for i, d in enumerate(dataset.documents()) if limit is None or i < limit)
        corpus = Corpus.create(Path(tmp) / "corpus", docs)
        started = time.perf_counter()
        index = build_index(kind, corpus, Path(tmp) / "index", settings)
        build_seconds = time.perf_counter() - started
        timings = query_timings(index, queries)
        size = dir_size(index.directory)
        extras = index.benchmark_extras(queries)
        index.close()
    return {"system": str(parse_spec(spec)), "docs": len(corpus), "build_seconds": round(build_seconds, 2),
            "build_docs_per_s": len(corpus) / build_seconds, **timings, "size_mb": size / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "extras": extras}


def query_timings(index: Any, queries: Sequence[str], k: int = 10, **knobs: Any) -> dict[str, float]:
    """p50 / p95 latency of one query at a time (after a warm-up) and the QPS of one batch, for ``index``.

    ``knobs`` are passed to every search (e.g. a sparse index's ``min_weight``).
    """
    for query in queries[:WARMUP]:
        index.search([query], k, **knobs)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        index.search([query], k, **knobs)
        latencies.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    index.search(list(queries), k, **knobs)
    batch_seconds = time.perf_counter() - started
    return {"p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
            "batch_qps": len(queries) / batch_seconds}


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """One row per system: absolute figures, then the ratio to BM25 in parentheses."""
    columns = [("build_docs_per_s", "build docs/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"),
               ("p95_ms", "p95 ms", "{:.2f}"), ("batch_qps", "batch QPS", "{:.0f}"),
               ("size_mb", "size MB", "{:.1f}"), ("peak_rss_mb", "peak RSS MB", "{:.0f}")]
    notes = any(row.get("extras") for row in rows)  # kind-specific figures, e.g. recall against exact search
    lines = ["| system | " + " | ".join(title for _, title, _ in columns) + " |" + (" notes |" if notes else ""),
             "|---|" + "---:|" * len(columns) + ("---|" if notes else "")]
    for row in rows:
        cells = [f"{fmt.format(row[key])} ({row['ratios'][key]:.2f}×)" for key, _, fmt in columns]
        extra = [", ".join(f"{k} {v}" for k, v in row.get("extras", {}).items())] if notes else []
        lines.append(f"| `{row['system']}` | " + " | ".join(cells + extra) + " |")
    return "\n".join(lines) + "\n"
