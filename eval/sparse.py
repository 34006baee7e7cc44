"""The learned sparse index against BM25 and dense on a BEIR dataset: quality, sparsity and size.

One table per dataset split: nDCG@10, Recall@100 and RR@10 of BM25, dense, the
zero-shot inference-free sparse index (SPLADE-tiny document encoder, IDF queries)
and any number of trained document encoders, with the average number of non-zero
terms per document, the size of each index on disk and, for a trained encoder, its
training time (from the run's ``training.json``). Every dataset's JSON in the
output directory is also gathered into one cross-dataset table
(``sparse-cross.md``: each system's nDCG@10 against BM25 on the same split).
With ``prune``, the quality cost of query-term pruning (``min_weight``, a
search-time knob: no re-encoding) is measured for every sparse index, and with ``feedback`` the
quality and latency of pseudo-relevance feedback (``prf_docs`` etc., search knobs too); ``lexical``
adds a learned + word-piece BM25 variant of each sparse system (``sparse(lexical=b)``),
and ``sweep`` scores such variants for several b from the stored vectors (to choose b on dev).

Example:
    retriever eval sparse work/sparse/nfcorpus --dataset nfcorpus \\
        --model label-free=work/sparse/nf-labelfree/best --model supervised=work/sparse/nf-sup/best
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from eval.beir import evaluate
from eval.bench import query_timings
from eval.report import write_report
from retriever.core.datasets import Dataset
from retriever.core.metrics import aggregate, parse_measures
from eval.reproduce import _engine as engine_with
from indexes.base import parse_index_spec
from indexes.sparse.backends import ExactBackend
from indexes.sparse.lexical import count_pieces, lexical_vectors, with_lexical
from indexes.sparse.queries import QUERY_WEIGHTS_FILE
from retriever.core.errors import InputError
from retriever.core.storage import dir_size

SWEEP_MEASURES = parse_measures(["nDCG@10", "R@100"])
LATENCY_QUERIES = 200  # test queries timed one at a time per round
LATENCY_ROUNDS = 9  # cheap (200 queries of ~0.5 ms each); more rounds steady the median p50


def sparse_specs(models: Mapping[str, str], settings: str = "", lexical: Sequence[float] = ()) -> dict[str, str]:
    """Index name -> spec: the zero-shot ``sparse`` index plus one per trained model directory, and
    for each ``lexical`` weight b a ``NAME-lexB`` variant of each (``lexical=b``: learned + word-piece BM25).

    A model trained with learned query-term weights (its directory holds
    ``query_weights.safetensors``) is indexed with ``query_weights=learned``.
    """
    extra = f",{settings}" if settings else ""
    inner = {"sparse": settings}
    for label, path in models.items():
        learned = ",query_weights=learned" if (Path(path) / QUERY_WEIGHTS_FILE).exists() else ""
        inner[label] = f"model='{path}'{learned}{extra}"
    specs = {"sparse": f"sparse({settings})" if settings else "sparse",
             **{label: f"{label}=sparse({args})" for label, args in inner.items() if label != "sparse"}}
    for weight in lexical:
        for label, args in inner.items():
            name = f"{label}-lex{weight:g}".replace(".", "_")
            specs[name] = f"{name}=sparse({args + ',' if args else ''}lexical={weight:g})"
    return specs


def compare(engine_dir: str | Path, dataset: Dataset, models: Mapping[str, str], out_dir: str | Path,
            split: str = "test", settings: str = "", baselines: Sequence[str] = ("bm25", "dense"),
            prune: Sequence[float] = (), lexical: Sequence[float] = (),
            sweep: Sequence[float] = (), feedback: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Build what is missing in ``engine_dir``, evaluate every system, write JSON + Markdown; return the rows."""
    specs = {**{parse_index_spec(spec)[0]: spec for spec in baselines}, **sparse_specs(models, settings, lexical)}
    engine = engine_with(Path(engine_dir), dataset, list(specs.values()))  # builds what is missing
    names = list(specs)
    results = evaluate(engine, dataset, split, names, Path(out_dir) / "runs")
    rows = []
    for name, result in zip(names, results):
        index = engine.indexes[name]
        rows.append({"system": name, "spec": engine.specs[name], **{k: round(v, 4) for k, v in result.metrics.items()},
                     "avg_nnz": index.settings.get("avg_nnz"), "size_mb": round(dir_size(index.directory) / 2**20, 2),
                     "ms_per_query": round(1000 * result.seconds / max(result.queries, 1), 2),
                     "train_seconds": _train_seconds(index.settings.get("model"))
                     if index.kind == "sparse" and index.settings.get("model") in models.values() else None})
        if prune and index.kind == "sparse":
            rows[-1]["pruning"] = pruning_cost(index, dataset, split, prune, engine.indexes.get("bm25"))
        if feedback and index.kind == "sparse":
            rows[-1]["feedback"] = feedback_cost(index, dataset, split, feedback, engine.indexes.get("bm25"))
        if sweep and index.kind == "sparse" and not index.settings.get("lexical"):
            rows[-1]["lexical_sweep"] = lexical_sweep(index, engine.corpus, dataset, split, sweep)
    write_report(Path(out_dir) / f"{dataset.name}-{split}-sparse",
                 {"dataset": dataset.name, "split": split, "engine": str(engine.path), "systems": rows},
                 markdown(dataset.name, split, rows))
    (Path(out_dir) / "sparse-cross.md").write_text(cross_dataset(Path(out_dir)), encoding="utf-8")
    return rows


def pruning_cost(index, dataset: Dataset, split: str, min_weights: Sequence[float],
                 baseline=None) -> list[dict[str, float]]:
    """nDCG@10, query terms per query and p50 latency of a sparse index for each query-term ``min_weight``.

    With ``baseline`` (the BM25 index) each p50 is also given as a ratio to BM25's, timed in the
    same process in interleaved rounds (the median of :data:`LATENCY_ROUNDS`), so a change in the
    machine's load hits both alike.
    """
    qrels, ids, texts = _judged_queries(dataset, split)
    out = []
    for floor in min_weights:
        rankings = index.search(texts, 10, min_weight=floor)
        metrics = aggregate(qrels, dict(zip(ids, rankings)), parse_measures(["nDCG@10"]))
        terms = [len(t) for t, _ in index.encode_queries(texts, min_weight=floor)]
        out.append({"min_weight": floor, "nDCG@10": round(metrics["nDCG@10"], 4),
                    "terms_per_query": round(sum(terms) / max(len(terms), 1), 2)})
    _add_latency(out, index, texts, [{"min_weight": floor} for floor in min_weights], baseline)
    return out


def feedback_cost(index, dataset: Dataset, split: str, variants: Sequence[Mapping[str, Any]],
                  baseline=None) -> list[dict[str, Any]]:
    """nDCG@10, R@100 and p50 latency of a sparse index without feedback and with each set of feedback
    knobs (``{"prf_docs": 3, ...}``; :mod:`indexes.sparse.feedback`), p50 also as a ratio to BM25's."""
    qrels, ids, texts = _judged_queries(dataset, split)
    knob_sets = [{"prf_docs": 0}, *[dict(v) for v in variants]]
    out = []
    for knobs in knob_sets:
        metrics = aggregate(qrels, dict(zip(ids, index.search(texts, 100, **knobs))), SWEEP_MEASURES)
        out.append({"knobs": knobs, **{k: round(v, 4) for k, v in metrics.items()}})
    _add_latency(out, index, texts, knob_sets, baseline)
    return out


def _judged_queries(dataset: Dataset, split: str) -> tuple[dict, list[str], list[str]]:
    """The split's qrels, and the ids and texts of its queries that have judgments (in qrels order)."""
    queries, qrels = dataset.split(split)
    ids = [qid for qid in qrels if qid in queries]
    return qrels, ids, [queries[qid].text for qid in ids]


def _add_latency(rows: list[dict[str, Any]], index, texts: Sequence[str], knob_sets: Sequence[dict[str, Any]],
                 baseline=None) -> None:
    """Give each row the p50 of ``index`` with its knobs (and the ratio to ``baseline``'s), timed in the
    same process in interleaved rounds (the median of :data:`LATENCY_ROUNDS`)."""
    timed = texts[:LATENCY_QUERIES]
    p50s: list[list[float]] = [[] for _ in knob_sets]
    base: list[float] = []
    for _ in range(LATENCY_ROUNDS):
        if baseline is not None:
            base.append(query_timings(baseline, timed)["p50_ms"])
        for times, knobs in zip(p50s, knob_sets):
            times.append(query_timings(index, timed, **knobs)["p50_ms"])
    for row, times in zip(rows, p50s):
        row["p50_ms"] = round(float(np.median(times)), 3)
        if base:
            row["p50_vs_bm25"] = round(row["p50_ms"] / float(np.median(base)), 2)


def lexical_sweep(index, corpus, dataset: Dataset, split: str, weights: Sequence[float]) -> list[dict[str, float]]:
    """nDCG@10 and R@100 of a learned-only sparse index's vectors plus b x word-piece BM25, for each b.

    Exact search over the stored float vectors with the weights ``sparse(lexical=b)`` would index
    (:mod:`indexes.sparse.lexical`, the corpus's mean length as reference): the same ranking as
    that index up to impact quantization, without encoding the corpus again. For choosing b on a
    dev split.
    """
    if index.settings.get("lexical", 0) > 0:
        raise InputError(f"{index.directory} already has a lexical part; sweep a learned-only sparse index")
    qrels, ids, texts = _judged_queries(dataset, split)
    encoded = index.encode_queries(texts)
    learned, tokens = index.vectors, index.queries
    documents = [d.contents for d in corpus.get_many(learned.ids)]
    counts = count_pieces(tokens.tokenizer, documents, tokens.special_ids)
    lexical = lexical_vectors(counts, learned.ids, learned.dim, counts.mean_length)
    out = []
    for weight in weights:
        vectors = with_lexical(learned, lexical, weight) if weight else learned
        metrics = aggregate(qrels, dict(zip(ids, ExactBackend(vectors).search(encoded, 100))), SWEEP_MEASURES)
        out.append({"lexical": weight, **{k: round(v, 4) for k, v in metrics.items()},
                    "avg_nnz": round(float(vectors.nnz_per_doc.mean()), 1)})
    return out


def _train_seconds(model: str | None) -> float | None:
    """Training time of a model written by ``retriever train sparse`` (its run's ``training.json``)."""
    report = Path(model).parent / "training.json" if model else None
    if report is None or not report.exists():
        return None
    return round(json.loads(report.read_text(encoding="utf-8")).get("train_seconds", 0.0), 1)


def cross_dataset(out_dir: Path) -> str:
    """One table over every ``*-sparse.json`` in ``out_dir``: nDCG@10 against BM25 on the same split."""
    lines = ["| dataset (split) | system | nDCG@10 | vs BM25 | non-zeros / doc | index MB | training s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for path in sorted(Path(out_dir).glob("*-sparse.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        base = next((r["nDCG@10"] for r in payload["systems"] if r["system"] == "bm25"), None)
        for r in payload["systems"]:
            delta = f"{r['nDCG@10'] - base:+.4f}" if base is not None else "–"
            nnz = f"{r['avg_nnz']:.1f}" if r.get("avg_nnz") is not None else "–"
            trained = f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "–"
            lines.append(f"| {payload['dataset']} ({payload['split']}) | `{r['spec']}` | {r['nDCG@10']:.4f} | {delta} | "
                         f"{nnz} | {r['size_mb']:.1f} | {trained} |")
    return "\n".join(lines) + "\n"


def markdown(dataset: str, split: str, rows: list[dict[str, Any]]) -> str:
    """One row per system: quality, non-zeros per document, index size."""
    lines = [f"| {dataset} ({split}) | nDCG@10 | R@100 | RR@10 | non-zeros / doc | index MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        nnz = f"{r['avg_nnz']:.1f}" if r["avg_nnz"] is not None else "–"
        lines.append(f"| `{r['spec']}` | {r['nDCG@10']:.4f} | {r['R@100']:.4f} | {r['RR@10']:.4f} | {nnz} | "
                     f"{r['size_mb']:.1f} |")
        for cost in r.get("pruning", []):
            ratio = f", {cost['p50_vs_bm25']:.2f}x BM25" if "p50_vs_bm25" in cost else ""
            lines.append(f"| `{r['spec']}` query min_weight={cost['min_weight']:g} "
                         f"({cost['terms_per_query']:.1f} terms/query; p50 {cost['p50_ms']:.3f} ms{ratio}) | "
                         f"{cost['nDCG@10']:.4f} | | | | |")
        for cost in r.get("feedback", []):
            knobs = ",".join(f"{k}={v:g}" for k, v in cost["knobs"].items())
            ratio = f", {cost['p50_vs_bm25']:.2f}x BM25" if "p50_vs_bm25" in cost else ""
            lines.append(f"| `{r['spec']}` search {knobs} (p50 {cost['p50_ms']:.3f} ms{ratio}) | "
                         f"{cost['nDCG@10']:.4f} | {cost['R@100']:.4f} | | | |")
        for point in r.get("lexical_sweep", []):
            lines.append(f"| `{r['spec']}` + lexical={point['lexical']:g} (exact, stored vectors) | "
                         f"{point['nDCG@10']:.4f} | {point['R@100']:.4f} | | {point['avg_nnz']:.1f} | |")
    return "\n".join(lines) + "\n"
