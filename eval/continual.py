"""The DSI++ forgetting experiment: index part of a corpus, add the rest, measure old and new documents.

A seeded ``holdout`` share of the documents is held out as "new". The generative
index is built over the old documents (real training queries, if any, are
restricted to old documents: new documents arrive without query logs), then the
new documents are added in each way being compared:

* ``dsi++``: the index's own continual indexing (new-document examples plus
  replayed pseudo-queries of old documents), as ``engine.add`` runs it;
* ``dsi++ sam``: the same with sharpness-aware minimization (if ``sam_rho`` > 0);
* ``dsi++ <settings>``: the same with other continual settings (``variants``);
* ``naive``: fine-tuning on the new documents only (``replay=0``);
* ``rebuild``: training from scratch over all documents with the same data.

BM25 over the old and over all documents is a control that cannot forget: its
change shows how much of a drop comes only from new documents competing for the
top ranks. Quality is measured on the test queries, with the qrels restricted to
old documents ("old") or to new documents ("new"); every run ranks the whole
current index. Writes ``<dataset>-continual.json`` / ``.md``.

Example:
    retriever eval continual --dataset nfcorpus --train-queries train --out results/generative
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from eval.report import write_report
from retriever.core.datasets import Dataset, Qrels, load_dataset, write_beir
from retriever.core.metrics import aggregate, parse_measures
from indexes.base import Index, build_index, extend_index, open_index
from retriever.core.corpus import Corpus
from retriever.core.progress import progress
from retriever.core.storage import MANIFEST

MEASURES = ("nDCG@10", "Success@10")


def run_continual(dataset_name: str, work_dir: Path, out_dir: Path, settings: dict[str, str] | None = None,
                  train_queries: str = "", holdout: float = 0.2, seed: int = 0, split: str = "test",
                  sam_rho: float = 0.0, variants: dict[str, dict[str, str]] | None = None,
                  data_dir: str | None = None) -> dict[str, Any]:
    """Run the experiment (reusing whatever a previous run left in ``work_dir``) and write JSON + Markdown.

    Args:
        dataset_name: a dataset name or BEIR directory.
        work_dir: where corpora and indexes are built (kept, so a rerun resumes).
        out_dir: where ``<dataset>-continual.json`` / ``.md`` go.
        settings: generative index settings (strings, as in a spec).
        train_queries: a split of real training queries (e.g. ``train``), or ``""``.
        holdout: the share of documents added later.
        seed: seeds the holdout draw.
        split: the evaluation split.
        sam_rho: also run DSI++ with SAM at this radius (0: skip).
        variants: more DSI++ runs, label -> continual settings (e.g. ``{"replay=4": {"replay": "4"}}``).
        data_dir: a data root to look in first.
    """
    dataset = load_dataset(dataset_name, data_dir=data_dir)
    docs = [doc for doc, _, _ in dataset.documents()]
    ids = sorted(doc.doc_id for doc in docs)
    random.Random(seed).shuffle(ids)
    new_ids = set(ids[:round(holdout * len(ids))])
    old_docs = [d for d in docs if d.doc_id not in new_ids]
    new_docs = [d for d in docs if d.doc_id in new_ids]
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = dict(settings or {})
    if train_queries:
        settings["queries"] = f"{_old_only_queries(dataset, train_queries, new_ids, work_dir / 'queries')}:{train_queries}"
    old_corpus = _corpus(work_dir / "corpus-old", lambda: Corpus.create(work_dir / "corpus-old", old_docs))
    all_corpus = _corpus(work_dir / "corpus-all", lambda: old_corpus.extend(work_dir / "corpus-all", new_docs))
    queries, qrels = dataset.split(split)
    subsets = {"old": _restrict(qrels, lambda d: d not in new_ids), "new": _restrict(qrels, lambda d: d in new_ids)}

    rows = []
    for kind, kind_settings in (("bm25", {}), ("generative", settings)):
        name = "BM25 (control)" if kind == "bm25" else "generative"
        base = _built(work_dir / f"{kind}-old", lambda: build_index(kind, old_corpus, work_dir / f"{kind}-old",
                                                                     kind_settings))
        before = _measure(base, queries, {"old": subsets["old"]})
        rows.append(_row(f"{name}: before adding", before, base, before))
        if kind == "bm25":
            grown = _built(work_dir / "bm25-all", lambda: extend_index(base, new_docs, all_corpus, work_dir / "bm25-all"))
            rows.append(_row(f"{name}: after adding", _measure(grown, queries, subsets), grown, before))
            continue
        runs: dict[str, dict[str, Any]] = {"dsi++": {}, "naive": {"replay": 0.0}}
        if sam_rho > 0:
            runs["dsi++ sam"] = {"sam_rho": sam_rho}
        runs.update({f"dsi++ {label}": overrides for label, overrides in (variants or {}).items()})
        for variant, overrides in runs.items():
            target = work_dir / f"generative-{re.sub(r'[^A-Za-z0-9.=_-]+', '-', variant.replace('+', 'p'))}"
            grown = _built(target, lambda: extend_index(base.with_continual(**overrides), new_docs, all_corpus, target))
            rows.append(_row(f"{name}: add, {variant}", _measure(grown, queries, subsets), grown, before))
        rebuilt = _built(work_dir / "generative-rebuild",
                         lambda: build_index(kind, all_corpus, work_dir / "generative-rebuild", settings))
        rows.append(_row(f"{name}: full rebuild", _measure(rebuilt, queries, subsets), rebuilt, before))

    payload = {"dataset": dataset.name, "split": split, "holdout": holdout, "seed": seed, "old_documents": len(old_docs),
               "new_documents": len(new_docs), "queries": {k: len(v) for k, v in subsets.items()},
               "settings": settings, "rows": rows}
    write_report(out_dir / f"{dataset.name}-continual", payload, markdown(payload))
    return payload


def markdown(payload: dict[str, Any]) -> str:
    """The experiment's table: old / new quality, what is kept, the new/old Hits@10 ratio, and the cost."""
    lines = [f"{payload['dataset']} ({payload['split']}): {payload['old_documents']} old documents indexed, "
             f"{payload['new_documents']} added; queries judged on old documents: {payload['queries']['old']}, "
             f"on new: {payload['queries']['new']}.", "",
             "| system | old nDCG@10 | old Hits@10 | new nDCG@10 | new Hits@10 | old kept (nDCG / Hits) "
             "| new/old Hits@10 | seconds |", "|---|" + "---:|" * 7]
    for r in payload["rows"]:
        old, new = r["old"], r.get("new")
        cells = [f"{old['nDCG@10']:.4f}", f"{old['Success@10']:.4f}",
                 f"{new['nDCG@10']:.4f}" if new else "", f"{new['Success@10']:.4f}" if new else "",
                 f"{r['kept']['nDCG@10']:.2f} / {r['kept']['Success@10']:.2f}",
                 f"{r['new_over_old']:.2f}" if new else "", f"{r['seconds']:.0f}" if r["seconds"] else ""]
        lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _row(system: str, measured: dict[str, dict[str, float]], index: Index, before: dict) -> dict[str, Any]:
    old, new = measured["old"], measured.get("new")
    seconds = index.manifest.get("add_seconds") or index.manifest.get("build_seconds")
    return {"system": system, "old": old, "new": new, "seconds": seconds,
            "kept": {m: old[m] / before["old"][m] if before["old"][m] else 0.0 for m in MEASURES},
            "new_over_old": new["Success@10"] / old["Success@10"] if new and old["Success@10"] else None}


def _measure(index: Index, queries: dict, subsets: dict[str, Qrels], batch_size: int = 64) -> dict[str, dict]:
    """Rank every query of any subset over the whole index; score each subset against its qrels."""
    wanted = sorted(set().union(*subsets.values()))
    rankings = []
    for start in progress(range(0, len(wanted), batch_size), desc=f"searching {index.kind}", unit="batch"):
        rankings += index.search([queries[q].text for q in wanted[start:start + batch_size]], 100)
    run = dict(zip(wanted, rankings))
    measures = parse_measures(MEASURES)
    return {name: aggregate(qrels, {q: run[q] for q in qrels}, measures) for name, qrels in subsets.items()}


def _restrict(qrels: Qrels, keep) -> Qrels:
    restricted = {q: {d: s for d, s in judged.items() if s > 0 and keep(d)} for q, judged in qrels.items()}
    return {q: judged for q, judged in restricted.items() if judged}


def _old_only_queries(dataset: Dataset, split: str, new_ids: set[str], directory: Path) -> Path:
    """A BEIR directory whose ``split`` qrels judge old documents only (written once)."""
    if not (directory / "qrels" / f"{split}.tsv").is_file():
        _, qrels = dataset.split(split)
        old_only = _restrict(qrels, lambda d: d not in new_ids)
        write_beir(Dataset(dataset.name, dataset.source, {q: dataset.queries[q] for q in old_only},
                           {split: old_only}, _documents=[]), directory)
    return directory


def _corpus(directory: Path, create) -> Corpus:
    return Corpus.open(directory) if (directory / MANIFEST).is_file() else create()


def _built(directory: Path, build) -> Index:
    """Open the index a previous run left at ``directory``, or build it."""
    return open_index(directory) if (directory / MANIFEST).is_file() else build()


def settings_from_spec(spec: str) -> dict[str, str]:
    """The settings of a ``generative(...)`` spec string."""
    from indexes.base import parse_index_spec
    from retriever.core.errors import SpecError

    _, kind, settings = parse_index_spec(spec)
    if kind != "generative":
        raise SpecError(f"the continual experiment needs a generative spec, got {spec!r}")
    return settings

