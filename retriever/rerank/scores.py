"""Cross-encoder scores: load a saved ``CrossEncoder`` offline, score (query, passage) pairs, cache them.

A cross-encoder directory follows sentence-transformers' ``CrossEncoder`` layout
(``config.json``, ``model.safetensors``, tokenizer files); ``retriever train
reranker`` writes one. :class:`CrossScorer` returns raw logits (no sigmoid) so
scores keep their scale; every score is computed once per process (shared by all
scorers of the same weights), and with
``cache_dir`` also on disk (one JSONL file per model, named by a hash of its
weights), so repeated evaluations and reinforcement-learning epochs never score
the same pair twice.

Example:
    >>> scorer = CrossScorer("work/models/cross-minilm")
    >>> scorer.score("who wrote Dune?", [("Dune (novel)", "Dune is a 1965 novel by Frank Herbert.")])
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from retriever.core.errors import MissingResourceError

WEIGHTS = "model.safetensors"
_MEMORY: dict[str, dict[tuple[str, str], float]] = {}  # fingerprint -> (query hash, doc key) -> logit
TRAIN_HINT = "train one with `retriever train reranker --out DIR` (see README, Reranking)"


def passage(title: str, text: str) -> str:
    """The text a cross-encoder reads for a document: its title, then its text."""
    return f"{title}. {text}" if title else text


def check_model_dir(path: str | Path) -> Path:
    """``path`` as a cross-encoder directory, or :class:`MissingResourceError` saying what is missing."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise MissingResourceError(f"cross-encoder {directory.resolve()} not found; {TRAIN_HINT}")
    missing = [name for name in ("config.json", WEIGHTS) if not (directory / name).is_file()]
    if missing:
        raise MissingResourceError(f"{directory.resolve()} is not a cross-encoder directory (no "
                                   f"{' or '.join(missing)}); {TRAIN_HINT}")
    return directory.resolve()


@lru_cache(maxsize=4)
def _load(path: str, mtime: float):
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    model = CrossEncoder(path, device="cpu", local_files_only=True, activation_fn=torch.nn.Identity())
    model.model.eval()
    return model


def load_cross_encoder(path: str | Path):
    """The ``CrossEncoder`` saved in ``path`` (loaded once per process; reloaded if its weights change)."""
    directory = check_model_dir(path)
    return _load(str(directory), (directory / WEIGHTS).stat().st_mtime)


@lru_cache(maxsize=4)
def _fingerprint(weights: str, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def fingerprint(path: str | Path) -> str:
    """A short hash of a cross-encoder's weights (names its score cache)."""
    weights = check_model_dir(path) / WEIGHTS
    return _fingerprint(str(weights), weights.stat().st_mtime)


class CrossScorer:
    """Scores (query, document) pairs with a cross-encoder; every score is computed once.

    Args:
        path: a cross-encoder directory.
        batch_size: pairs per forward pass.
        cache_dir: keep scores on disk in ``<cache_dir>/<fingerprint>.jsonl`` across runs.
    """

    def __init__(self, path: str | Path, batch_size: int = 32, cache_dir: str | Path | None = None):
        self.path = check_model_dir(path)
        self.batch_size = int(batch_size)
        self.model = load_cross_encoder(self.path)
        self.fingerprint = fingerprint(self.path)
        self._memory = _MEMORY.setdefault(self.fingerprint, {})
        self._file = Path(cache_dir) / f"{self.fingerprint}.jsonl" if cache_dir else None
        if self._file is not None and self._file.is_file():
            with open(self._file, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        self._memory[(row["q"], row["d"])] = float(row["s"])

    def score(self, query: str, documents: Sequence[tuple[str, str]], ids: Sequence[str] | None = None) -> np.ndarray:
        """Raw logits of ``query`` against each ``(title, text)``; ``ids`` key the cache (default: the text)."""
        return self.score_pairs([query] * len(documents), documents, ids)

    def score_pairs(self, queries: Sequence[str], documents: Sequence[tuple[str, str]],
                    ids: Sequence[str] | None = None) -> np.ndarray:
        """Raw logits of each ``(queries[i], documents[i])``, computing only the pairs not seen before."""
        keys = [(_query_key(q), ids[i] if ids is not None else _query_key(passage(*documents[i])))
                for i, q in enumerate(queries)]
        todo = list({key: i for i, key in enumerate(keys) if key not in self._memory}.values())
        if todo:
            texts = [passage(*documents[i]) for i in todo]
            order = sorted(range(len(todo)), key=lambda j: len(texts[j]))
            logits = self.model.predict([(queries[todo[j]], texts[j]) for j in order], batch_size=self.batch_size,
                                        show_progress_bar=False, convert_to_numpy=True)
            fresh = {keys[todo[j]]: float(np.ravel(value)[0]) for j, value in zip(order, logits)}
            self._memory.update(fresh)
            self._append(fresh)
        return np.array([self._memory[key] for key in keys], dtype=np.float32)

    def _append(self, fresh: dict[tuple[str, str], float]) -> None:
        if self._file is None:
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._file, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps({"q": q, "d": d, "s": round(s, 5)}, ensure_ascii=False) + "\n"
                            for (q, d), s in fresh.items()))
            f.flush()
            os.fsync(f.fileno())


def _query_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]
