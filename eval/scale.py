"""Cost as the corpus grows: build, size, latency, throughput and memory at 10k, 100k, 1M documents.

Each row is measured in a fresh process on the synthetic corpus of :mod:`eval.synthetic` (real
sentences, fixed seed; **cost only, never quality**): the corpus store is written first (not
timed), then the index is built single-process (``workers=0``) or sharded over ``workers``
local Ray workers (:func:`retriever.distributed.build.build_sharded`), then 200 real queries
(NFCorpus test and HotpotQA questions) are timed one at a time (p50 / p95) and as one batch
(QPS). Peak RSS is the measuring process's (the Lucene JVM lives inside it; Ray workers'
memory is not included). Every figure is also given as a ratio to the first size of the same
system, and a growth exponent ``b`` is fitted per system (``figure ~ docs^b``, least squares in
log-log).

Example:
    retriever bench --scale --index bm25 --sizes 10000,100000 --scale-workers 0,2
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.bench import query_timings
from eval.report import git_commit

FIGURES = [("build_docs_per_s", "build docs/s", "{:.0f}"), ("size_mb", "size MB", "{:.1f}"),
           ("p50_ms", "p50 ms", "{:.2f}"), ("p95_ms", "p95 ms", "{:.2f}"), ("batch_qps", "batch QPS", "{:.0f}"),
           ("peak_rss_mb", "peak RSS MB", "{:.0f}")]
QUERIES = 200


def run_scale(specs: Sequence[str], sizes: Sequence[int], workers: Sequence[int], out_dir: Path,
              seed: int = 0) -> str:
    """Measure every (spec, workers, size) in a fresh process; write JSON, Markdown and a plot; return the Markdown."""
    context = multiprocessing.get_context("spawn")
    rows = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        for count in workers:
            for size in sizes:
                with context.Pool(1) as pool:
                    rows.append(pool.apply(measure, (spec, size, count, seed)))
                _write(out_dir, rows, seed)  # keep what is measured so far (long runs)
    return _write(out_dir, rows, seed)


def measure(spec: str, size: int, workers: int, seed: int) -> dict[str, Any]:
    """One row: build ``spec`` over ``size`` synthetic documents with ``workers`` (0: no Ray) and time queries."""
    from eval.synthetic import synthetic_documents
    from indexes.base import build_index, parse_index_spec
    from retriever.core.corpus import Corpus
    from retriever.core.storage import dir_size

    _, kind, settings = parse_index_spec(spec)
    queries = real_queries(QUERIES)
    with tempfile.TemporaryDirectory(prefix="retriever-scale-", dir=_scratch_root()) as tmp:
        started = time.perf_counter()
        corpus = Corpus.create(Path(tmp) / "corpus", synthetic_documents(size, seed))
        corpus_seconds = time.perf_counter() - started
        if workers:
            from retriever.distributed.build import build_sharded
            from retriever.distributed.cluster import connect

            cluster = connect(workers)  # started before the clock: a cluster outlives one build
            started = time.perf_counter()
            index = build_sharded(cluster, kind, settings, corpus, Path(tmp) / "index")
        else:
            started = time.perf_counter()
            index = build_index(kind, corpus, Path(tmp) / "index", settings)
        build_seconds = time.perf_counter() - started
        timings = query_timings(index, queries)
        size_bytes = dir_size(index.directory) - sum(dir_size(d) for d in index.shard_dirs)
        index.close()
    return {"system": spec, "workers": workers, "docs": size, "corpus_seconds": round(corpus_seconds, 1),
            "build_seconds": round(build_seconds, 1), "build_docs_per_s": size / build_seconds,
            "size_mb": size_bytes / 2**20, **timings,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def real_queries(count: int) -> list[str]:
    """Real query texts: NFCorpus test queries, then HotpotQA questions."""
    from retriever.core.datasets import load_dataset

    texts = [q.text for q in load_dataset("nfcorpus").queries.values()]
    if len(texts) < count:
        texts += [q.text for q in load_dataset("hotpotqa-distractor").queries.values()]
    return texts[:count]


def growth_exponent(docs: Sequence[int], values: Sequence[float]) -> float | None:
    """``b`` of ``value ~ docs^b`` (least squares in log-log); None with fewer than two sizes."""
    pairs = [(d, v) for d, v in zip(docs, values) if v and v > 0]
    if len(pairs) < 2:
        return None
    x, y = np.log([d for d, _ in pairs]), np.log([v for _, v in pairs])
    return float(np.polyfit(x, y, 1)[0])


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """One row per measurement (figure and ratio to the system's smallest size), then exponents per system."""
    header = "| system | workers | docs | " + " | ".join(t for _, t, _ in FIGURES) + " |"
    lines = [header, "|---|---:|---:|" + "---:|" * len(FIGURES)]
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["system"], row["workers"]), []).append(row)
    for (system, workers), group in groups.items():
        base = group[0]
        for row in group:
            cells = [f"{fmt.format(row[key])} ({row[key] / base[key]:.2f}×)" if base[key] else fmt.format(row[key])
                     for key, _, fmt in FIGURES]
            lines.append(f"| `{system}` | {workers} | {row['docs']:,} | " + " | ".join(cells) + " |")
        exponents = [growth_exponent([r["docs"] for r in group], [r[key] for r in group]) for key, _, _ in FIGURES]
        lines.append(f"| `{system}` | {workers} | growth exponent b | "
                     + " | ".join("" if b is None else f"{b:.2f}" for b in exponents) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Log-log panels of each figure against corpus size, one line per system and worker count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(f"{row['system']} ({row['workers']} workers)" if row["workers"] else row["system"],
                          []).append(row)
    for ax, (key, title, _) in zip(axes.flat, FIGURES):
        for label, group in groups.items():
            ax.plot([r["docs"] for r in group], [r[key] for r in group], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("documents (synthetic)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Cost as the corpus grows (synthetic corpus from real sentences; cost only)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write(out_dir: Path, rows: list[dict[str, Any]], seed: int) -> str:
    table = markdown(rows)
    payload = {"corpus": "synthetic (eval.synthetic; real sentences, fixed seed; cost only)", "seed": seed,
               "commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    (out_dir / "scale.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out_dir / "scale.md").write_text(table, encoding="utf-8")
    plot(rows, out_dir / "scale.png")
    return table


def _scratch_root() -> str | None:
    import os

    return os.environ.get("RETRIEVER_SCALE_TMP")
