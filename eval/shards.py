"""BM25 over shards: the merged index against a fan-out where each shard scores with its own statistics.

Builds a sharded engine (``workers`` Ray workers; Lucene shards merged with ``addIndexes``)
and evaluates nDCG@10 on a split three ways: the merged index (equal to a single-process
build), the fan-out search that serves BM25 whole (the default: exact), and the fan-out over
the shards with local statistics (document frequencies and average length of each shard), whose
difference is the drift.

Example:
    python -m eval.shards --dataset nfcorpus --workers 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="nfcorpus")
    parser.add_argument("--split", default="test")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from retriever.api import Engine
    from retriever.core.datasets import load_dataset
    from retriever.core.metrics import aggregate
    from retriever.distributed.build import build
    from retriever.distributed.search import DistributedEngine

    dataset = load_dataset(args.dataset)
    queries, qrels = dataset.split(args.split)
    ids = sorted(qrels)
    texts = [queries[q].text for q in ids]
    out = {"dataset": args.dataset, "split": args.split, "workers": args.workers}
    with tempfile.TemporaryDirectory(prefix="retriever-shards-") as tmp:
        build(Path(tmp) / "e", dataset.documents(), ["bm25"], workers=args.workers)
        score = (lambda runs: round(aggregate(qrels, dict(zip(ids, runs)))["nDCG@10"], 4))
        with Engine.open(Path(tmp) / "e") as merged:
            out["merged"] = score(merged.rankings(texts, 1000, using="bm25"))
        with DistributedEngine(Path(tmp) / "e") as fanned:
            out["fan-out, whole index"] = score(fanned.rankings(texts, 1000, using="bm25"))
        with DistributedEngine(Path(tmp) / "e", local_statistics=True) as fanned:
            out["fan-out, local statistics"] = score(fanned.rankings(texts, 1000, using="bm25"))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
