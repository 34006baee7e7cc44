"""A reproducible synthetic corpus for cost measurements: real sentences, drawn with a fixed seed.

No million-document corpus is available offline, so documents are assembled from the
sentences of the real corpora in ``../shared/data`` (NFCorpus and SciFact abstracts, the
HotpotQA, MuSiQue and 2WikiMultiHopQA context paragraphs). Each document takes a number of
sentences drawn from the empirical sentences-per-document distribution of those corpora (so
lengths are realistic) and a title made of the first words of another sentence.

It is synthetic: word statistics are real but documents are not coherent and nothing is
relevant to anything. Use it for **cost only** (build speed, size, latency, memory), never
for quality.

Example:
    >>> docs = synthetic_documents(10_000, seed=0)   # a generator of Documents
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from retriever.core.corpus import Document
from retriever.core.datasets import data_roots

SEED = 0
_BLOCK = 10_000
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_BEIR = ("nfcorpus", "scifact")
_DISTRACTOR = (("hotpotqa", "hotpot_dev_distractor_1100.jsonl"), ("musique", "musique_ans_dev_626.jsonl"),
               ("2wikimultihopqa", "2wiki_dev_1033.jsonl"))


@lru_cache(maxsize=1)
def sentence_pool() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """All sentences of the source corpora (deduplicated, in a fixed order) and the sentences-per-document counts."""
    root = next((r for r in data_roots() if (r / "nfcorpus" / "corpus.jsonl").is_file()), None)
    if root is None:
        from retriever.core.errors import MissingResourceError

        raise MissingResourceError("the synthetic corpus needs ../shared/data (nfcorpus at least)")
    sentences: dict[str, None] = {}
    counts: list[int] = []
    for name in _BEIR:
        path = root / name / "corpus.jsonl"
        if path.is_file():
            for line in path.open(encoding="utf-8"):
                parts = [s for s in _SPLIT.split(json.loads(line)["text"]) if len(s) > 20]
                counts.append(len(parts))
                sentences.update(dict.fromkeys(parts))
    for name, file in _DISTRACTOR:
        path = root / name / file
        if path.is_file():
            for line in path.open(encoding="utf-8"):
                for paragraph in _paragraphs(json.loads(line)):
                    parts = [s.strip() for s in paragraph if len(s.strip()) > 20]
                    counts.append(len(parts))
                    sentences.update(dict.fromkeys(parts))
    return tuple(sentences), tuple(c for c in counts if c > 0)


def _paragraphs(record: dict) -> Iterator[list[str]]:
    context = record.get("context") or record.get("paragraphs") or []
    if isinstance(context, dict):  # HotpotQA / 2Wiki (datasets layout): {"title": [...], "sentences": [[...]]}
        yield from context.get("sentences", [])
    else:
        for item in context:
            if isinstance(item, dict):  # MuSiQue: {"title", "paragraph_text"}
                yield _SPLIT.split(item.get("paragraph_text", ""))
            elif isinstance(item, list) and len(item) == 2:  # [title, [sentences]]
                yield item[1]


def synthetic_documents(count: int, seed: int = SEED) -> Iterator[Document]:
    """``count`` synthetic documents, ids ``syn-00000000``...; the same ``seed`` gives the same corpus, and a
    smaller corpus is a prefix of a larger one (draws are made in whole blocks of 10,000 documents)."""
    sentences, counts = sentence_pool()
    rng = np.random.default_rng(seed)
    lengths = np.asarray(counts)
    for start in range(0, count, _BLOCK):
        sizes = lengths[rng.integers(0, len(lengths), _BLOCK)]
        picks = rng.integers(0, len(sentences), int(sizes.sum()) + _BLOCK)
        offset = 0
        for i, size in enumerate(sizes.tolist()):
            title = " ".join(sentences[picks[offset]].split()[:6]).rstrip(".,;:")
            text = " ".join(sentences[j] for j in picks[offset + 1:offset + 1 + size].tolist())
            offset += size + 1
            if start + i >= count:
                return
            yield Document(f"syn-{start + i:08d}", title, text)
