"""The learned sparse index against BM25 and dense on a BEIR dataset: quality, sparsity and size.

One table per dataset split: nDCG@10, Recall@100 and RR@10 of BM25, dense, the
zero-shot inference-free sparse index (SPLADE-tiny document encoder, IDF queries)
and any number of trained document encoders, with the average number of non-zero
terms per document and the size of each index on disk.

Example:
    retriever eval sparse work/sparse/nfcorpus --dataset nfcorpus \\
        --model label-free=work/sparse/nf-labelfree/best --model supervised=work/sparse/nf-sup/best
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from eval.beir import evaluate
from eval.report import write_report
from retriever.core.datasets import Dataset
from eval.reproduce import _engine as engine_with
from retriever.core.storage import dir_size

def sparse_specs(models: Mapping[str, str], settings: str = "") -> dict[str, str]:
    """Index name -> spec: the zero-shot ``sparse`` index plus one per trained model directory."""
    extra = f",{settings}" if settings else ""
    specs = {"sparse": f"sparse({settings})" if settings else "sparse"}
    for label, path in models.items():
        specs[label] = f"{label}=sparse(model='{path}'{extra})"
    return specs


def compare(engine_dir: str | Path, dataset: Dataset, models: Mapping[str, str], out_dir: str | Path,
            split: str = "test", settings: str = "") -> list[dict[str, Any]]:
    """Build what is missing in ``engine_dir``, evaluate every system, write JSON + Markdown; return the rows."""
    specs = {"bm25": "bm25", "dense": "dense", **sparse_specs(models, settings)}
    engine = engine_with(Path(engine_dir), dataset, list(specs.values()))  # builds what is missing
    names = list(specs)
    results = evaluate(engine, dataset, split, names, Path(out_dir) / "runs")
    rows = []
    for name, result in zip(names, results):
        index = engine.indexes[name]
        rows.append({"system": name, "spec": engine.specs[name], **{k: round(v, 4) for k, v in result.metrics.items()},
                     "avg_nnz": index.settings.get("avg_nnz"), "size_mb": round(dir_size(index.directory) / 2**20, 2),
                     "ms_per_query": round(1000 * result.seconds / max(result.queries, 1), 2)})
    write_report(Path(out_dir) / f"{dataset.name}-{split}-sparse",
                 {"dataset": dataset.name, "split": split, "engine": str(engine.path), "systems": rows},
                 markdown(dataset.name, split, rows))
    return rows


def markdown(dataset: str, split: str, rows: list[dict[str, Any]]) -> str:
    """One row per system: quality, non-zeros per document, index size."""
    lines = [f"| {dataset} ({split}) | nDCG@10 | R@100 | RR@10 | non-zeros / doc | index MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        nnz = f"{r['avg_nnz']:.1f}" if r["avg_nnz"] is not None else "–"
        lines.append(f"| `{r['spec']}` | {r['nDCG@10']:.4f} | {r['R@100']:.4f} | {r['RR@10']:.4f} | {nnz} | "
                     f"{r['size_mb']:.1f} |")
    return "\n".join(lines) + "\n"
