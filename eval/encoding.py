"""Document-encoding throughput and quality of the encoder runtimes, in one run.

For each index kind (dense, sparse) and runtime (``torch`` today's path, ``torch-bf16``, ``onnx``,
``onnx-int8``), the same documents are encoded one runtime after the other in this process
(docs/s, after a warm-up that also exports the ONNX graph), and, with ``--quality``, the
index is built over the whole dataset and nDCG@10 evaluated, reported as the change
against ``torch``.

Example:
    python -m eval.encoding --dataset nfcorpus --docs 512 --quality
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from indexes.onnx import RUNTIMES


def throughput(kind: str, runtime: str, texts: Sequence[str], settings: dict[str, Any]) -> float:
    """Documents per second encoding ``texts`` (title + text strings) with ``kind``'s encoder on ``runtime``."""
    from retriever.core.corpus import Document

    docs = [Document(str(i), "", t) for i, t in enumerate(texts)]
    if kind == "dense":
        from indexes.dense import CHUNK, DenseIndex, encode_documents, load_encoder

        encoder = load_encoder(DenseIndex.check_settings({**settings, "runtime": runtime}))
        encode_documents(encoder, [docs[:32]], 32)
        started = time.perf_counter()
        encode_documents(encoder, [docs[i:i + CHUNK] for i in range(0, len(docs), CHUNK)], len(docs))
    else:
        from indexes.sparse.index import ENCODE_CHUNK, SparseIndex, encode_corpus, load_encoder

        encoder = load_encoder(SparseIndex.check_settings({**settings, "runtime": runtime}))
        encode_corpus(encoder, [docs[:32]])
        started = time.perf_counter()
        encode_corpus(encoder, [docs[i:i + ENCODE_CHUNK] for i in range(0, len(docs), ENCODE_CHUNK)])
    return len(docs) / (time.perf_counter() - started)


def quality(kind: str, runtime: str, dataset_name: str, settings: dict[str, Any]) -> float:
    """nDCG@10 on the dataset's test split of a ``kind`` index built with ``runtime``."""
    from retriever.api import Engine
    from retriever.core.datasets import load_dataset
    from retriever.core.metrics import aggregate

    dataset = load_dataset(dataset_name)
    queries, qrels = dataset.split("test")
    spec = f"{kind}(" + ",".join(f"{k}={v}" for k, v in {**settings, "runtime": runtime}.items()) + ")"
    with tempfile.TemporaryDirectory(prefix="retriever-encoding-") as tmp:
        engine = Engine.build(Path(tmp) / "e", dataset.documents(), indexes=[spec])
        ids = sorted(qrels)
        runs = engine.rankings([queries[q].text for q in ids], 10, using=kind)
        engine.close()
    return aggregate(qrels, dict(zip(ids, runs)))["nDCG@10"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="nfcorpus")
    parser.add_argument("--kinds", default="dense,sparse")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--docs", type=int, default=512, help="documents timed per runtime")
    parser.add_argument("--quality", action="store_true", help="also build each index and evaluate nDCG@10")
    parser.add_argument("--out", default="results/encoding.json")
    args = parser.parse_args(argv)
    from retriever.core.datasets import load_dataset

    texts = [doc.contents for doc, _, _ in load_dataset(args.dataset).documents()][:args.docs]
    rows = []
    for kind in args.kinds.split(","):
        for runtime in args.runtimes.split(","):
            row = {"kind": kind, "runtime": runtime, "docs": len(texts),
                   "docs_per_s": round(throughput(kind, runtime, texts, {}), 2)}
            if args.quality:
                row["ndcg@10"] = round(quality(kind, runtime, args.dataset, {}), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    for row in rows:
        base = next((r for r in rows if r["kind"] == row["kind"] and r["runtime"] == "torch"), None)
        if base is None:  # --runtimes without torch: nothing to compare with in this run
            continue
        row["speedup"] = round(row["docs_per_s"] / base["docs_per_s"], 2)
        if "ndcg@10" in row:
            row["ndcg_change"] = round(row["ndcg@10"] - base["ndcg@10"], 4)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
