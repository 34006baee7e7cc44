"""Dev-set tracking during training (nDCG@10 and sparsity after a full re-encode) and the training curves."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from eval.metrics import aggregate, parse_measures
from indexes.sparse.backends import ExactBackend
from indexes.sparse.encoder import DocEncoder
from indexes.sparse.index import ENCODE_CHUNK, encode_corpus
from indexes.sparse.queries import QueryEncoder
from retriever.corpus import Corpus

MEASURES = parse_measures(["nDCG@10", "R@100"])


@dataclass
class DevSet:
    """The corpus, its IDF query encoder, and the dev queries and qrels (if the dataset has that split)."""

    corpus: Corpus
    query_encoder: QueryEncoder
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return bool(self.qrels)

    @classmethod
    def build(cls, encoder: DocEncoder, corpus: Corpus, dataset, split: str) -> "DevSet":
        tokenizer = Tokenizer.from_str(encoder.tokenizer.backend_tokenizer.to_str())
        query_encoder = QueryEncoder.count(tokenizer, (d.contents for d in corpus), encoder.special_ids)
        if split not in dataset.qrels:
            return cls(corpus, query_encoder)
        queries, qrels = dataset.split(split)
        return cls(corpus, query_encoder, {qid: q.text for qid, q in queries.items()}, qrels)

    def evaluate(self, encoder: DocEncoder) -> dict[str, Any]:
        """Re-encode the corpus with ``encoder`` and score the dev queries exactly (brute force)."""
        started = time.perf_counter()
        vectors = encode_corpus(encoder, self.corpus.iter_batches(ENCODE_CHUNK))
        rankings = ExactBackend(vectors).search([self.query_encoder.encode_query(t) for t in self.queries.values()],
                                                100)
        metrics = aggregate(self.qrels, dict(zip(self.queries, rankings)), MEASURES)
        return {**{k: round(v, 4) for k, v in metrics.items()}, "nnz": round(float(vectors.nnz_per_doc.mean()), 1),
                "seconds": round(time.perf_counter() - started, 1)}


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """Loss, mean non-zeros per document and dev nDCG@10 against the training step (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["steps"]
    evaluations = [e for e in report["evaluations"] if "nDCG@10" in e]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    x = [s["step"] for s in steps]
    axes[0].plot(x, [s["ranking"] for s in steps], label="ranking", lw=0.8)
    axes[0].plot(x, [s["loss"] for s in steps], label="total", lw=0.8, alpha=0.7)
    axes[0].set_title("loss")
    axes[0].legend()
    axes[1].plot(x, [s["nnz"] for s in steps], label="batch", lw=0.8)
    axes[1].plot([e["step"] for e in evaluations], [e["nnz"] for e in evaluations], "o-", label="corpus")
    axes[1].set_title("non-zeros per document")
    axes[1].legend()
    axes[2].plot([e["step"] for e in evaluations], [e["nDCG@10"] for e in evaluations], "o-")
    axes[2].set_title(f"dev nDCG@10 ({report['settings']['dev_split']})")
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
