"""Dense retrieval: a sentence-transformers bi-encoder and a FAISS index.

Vectors are L2-normalized and searched by inner product (cosine). The FAISS
index is chosen by an ``index_factory`` string (``Flat``, ``HNSW32``,
``IVF256,PQ16``...). Search runs on a GPU when faiss-gpu imports and one is
visible (``pip install 'retriever[gpu]'``); the index on disk is always the CPU one.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Sequence

import faiss
import numpy as np
import pyarrow as pa

from indexes.base import Index
from indexes.bf16 import RUNTIME as BF16, Bf16SentenceEncoder
from indexes.onnx import RUNTIMES, OnnxSentenceEncoder
from retriever.core.corpus import Corpus, Document
from retriever.core.errors import SettingError, SpecError
from retriever.core.models import DEFAULT_DENSE_MODEL, resolve_model
from retriever.core.progress import progress
from retriever.core.settings import Schema, Setting, at_least, one_of
from retriever.core.types import Ranking

_SHARED_ENCODERS: dict[tuple, Any] = {}  # see shared_encoder
_SHARED_LOCK = threading.Lock()

FAISS_FILE = "index.faiss"
IDS_FILE = "docids.arrow"
CHUNK = 256  # documents per encode call (sorted by length inside it); shards are whole chunks
TRAIN_SAMPLE = 100_000  # vectors a merged IVF/PQ index is trained on
SCHEMA = Schema("dense", (
    Setting("model", str, DEFAULT_DENSE_MODEL, help="sentence-transformers model (path or bundled id)"),
    Setting("factory", str, "Flat", help="FAISS index_factory string (Flat, HNSW32, 'IVF256,PQ16')"),
    Setting("max_seq_length", int, None, at_least(1), "encoder input length in tokens (default: the model's)",
            nullable=True),
    Setting("query_prefix", str, "", help="text put before every query"),
    Setting("document_prefix", str, "", help="text put before every document"),
    Setting("runtime", str, "torch", one_of(*RUNTIMES),
            "encoder runtime: torch, torch-bf16 (indexes.bf16), onnx or onnx-int8 (indexes.onnx)"),
))
# dimensions the factory string is tried on before encoding (sub-quantizer counts must divide one of them)
_PROBE_DIMENSIONS = (384, 768, 1024, 64)


class DenseIndex(Index):
    """A FAISS index of normalized sentence-transformers embeddings.

    Settings: ``model`` (path or id; default all-MiniLM-L6-v2), ``factory``
    (FAISS index_factory string; default ``Flat``), ``max_seq_length``,
    ``query_prefix`` / ``document_prefix`` (for models trained with prompts), ``runtime``
    (``torch``, ``onnx``, ``onnx-int8``: see indexes.onnx).
    Search knobs: ``nprobe`` (IVF), ``ef_search`` (HNSW), ``batch_size``.
    """

    kind = "dense"
    schema = SCHEMA
    combine = "merge"  # shards hold exact (Flat) vectors; the merge adds them to one FAISS index
    shard_block = CHUNK
    shard_independent_scores = True
    uses_accelerator = True

    def __init__(self, directory: Path, manifest: dict):
        super().__init__(directory, manifest)
        self._ids = read_ids(self.directory / IDS_FILE)
        self._cpu_index = self._searchable = None
        self._encoder = None

    @property
    def _faiss(self):
        """The FAISS index, read on first use (a fan-out driver only encodes queries)."""
        if self._cpu_index is None:
            self._cpu_index = faiss.read_index(str(self.directory / FAISS_FILE))
            self._searchable = _to_gpu(self._cpu_index)
        return self._cpu_index

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The schema's checks, plus: FAISS can build ``factory`` (tried on small empty indexes, nothing encoded)."""
        checked = SCHEMA.parse(settings)
        check_factory(checked["factory"])
        return checked

    @classmethod
    def write(cls, directory: Path, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        persisted = dict(settings)
        vectors = encode_documents(load_encoder(persisted), corpus.iter_batches(CHUNK), len(corpus),
                                   persisted["document_prefix"])
        persisted["dimension"] = int(vectors.shape[1])
        _write_faiss(directory, vectors, persisted["factory"], corpus.ids)
        return persisted

    @classmethod
    def write_shard(cls, directory: Path, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        return cls.write(directory, corpus, {**settings, "factory": "Flat"})

    @classmethod
    def merge_shards(cls, directory: Path, shards: Sequence[Index], settings: dict[str, Any],
                     base: Index | None = None) -> dict[str, Any]:
        vectors = np.concatenate([shard.vectors() for shard in shards])
        ids = [doc_id for shard in shards for doc_id in shard._ids]
        if base is not None:
            index = faiss.clone_index(base._faiss)
            index.add(vectors)
            faiss.write_index(index, str(directory / FAISS_FILE))
            write_ids(directory / IDS_FILE, base._ids + ids)
            return dict(base.settings)
        persisted = {**shards[0].settings, "factory": settings["factory"]}
        _write_faiss(directory, vectors, persisted["factory"], ids, sample=TRAIN_SAMPLE)
        return persisted

    def vectors(self) -> np.ndarray:
        """The stored vectors, row order (exact for Flat; reconstructed otherwise)."""
        return self._faiss.reconstruct_n(0, self._faiss.ntotal)

    def write_extended(self, directory: Path, docs: Sequence[Document]) -> dict[str, Any]:
        blocks = [list(docs[i:i + CHUNK]) for i in range(0, len(docs), CHUNK)]
        vectors = encode_documents(self.encoder, blocks, len(docs), self.settings["document_prefix"])
        index = faiss.clone_index(self._faiss)
        index.add(vectors)
        faiss.write_index(index, str(directory / FAISS_FILE))
        write_ids(directory / IDS_FILE, self._ids + [d.doc_id for d in docs])
        return dict(self.settings)

    @property
    def encoder(self):
        """The sentence-transformers model, loaded on first use (once per process, see :func:`shared_encoder`)."""
        if self._encoder is None:
            self._encoder = shared_encoder(self.settings)
        return self._encoder

    def encode_queries(self, queries: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Normalized float32 query embeddings, one row per query."""
        texts = [self.settings["query_prefix"] + q for q in queries]
        return self.encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=len(texts) > 256).astype(np.float32)

    def search(self, queries: Sequence[str], k: int = 10, nprobe: int | None = None,
               ef_search: int | None = None, batch_size: int = 64, **knobs: Any) -> list[Ranking]:
        if knobs:
            raise SpecError(f"unknown dense search knob(s): {', '.join(sorted(knobs))}")
        return self.search_prepared(self.encode_queries(queries, batch_size), k, nprobe, ef_search)

    def prepare_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encode_queries(queries)

    def search_prepared(self, prepared: np.ndarray, k: int = 10, nprobe: int | None = None,
                        ef_search: int | None = None, **knobs: Any) -> list[Ranking]:
        """Search with query embeddings (from :meth:`encode_queries`)."""
        if knobs:
            raise SpecError(f"unknown dense search knob(s): {', '.join(sorted(knobs))}")
        _set_knobs(self._faiss, self._searchable, nprobe, ef_search)
        scores, rows = self._searchable.search(np.asarray(prepared, dtype=np.float32), min(k, len(self._ids)))
        return [[(self._ids[r], float(s)) for s, r in zip(srow, rrow) if r >= 0]
                for srow, rrow in zip(scores, rows)]


def check_factory(factory: str) -> None:
    """Raise :class:`SettingError` unless FAISS builds ``factory`` in one of a few common dimensions."""
    problems = []
    for dimension in _PROBE_DIMENSIONS:
        try:
            faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
            return
        except RuntimeError as e:
            problems.append(_first_line(e))
    raise SettingError("dense", "factory", f"must be a FAISS index_factory string, got {factory!r} "
                       f"(FAISS: {problems[0]})")


def _first_line(error: Exception) -> str:
    """FAISS's message without its C++ location (``Error in ... at file.cpp:12: ``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return re.sub(r"^Error in .*? at \S+:\d+: (Error: )?", "", lines[-1]) if lines else type(error).__name__


def _write_faiss(directory: Path, vectors: np.ndarray, factory: str, ids: list[str], sample: int | None = None) -> None:
    """Write a ``factory`` FAISS index of ``vectors`` (trained on all of them, or on a seeded ``sample``)."""
    try:
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise SettingError("dense", "factory", f"{factory!r}: FAISS cannot build it in "
                           f"dimension {vectors.shape[1]} ({_first_line(e)})") from None
    if not index.is_trained:
        train = vectors
        if sample is not None and len(vectors) > sample:
            train = vectors[np.sort(np.random.default_rng(0).choice(len(vectors), sample, replace=False))]
        index.train(train)
    index.add(vectors)
    faiss.write_index(index, str(directory / FAISS_FILE))
    write_ids(directory / IDS_FILE, ids)


def shared_encoder(settings: dict[str, Any]):
    """The settings' encoder, loaded once per process and shared by every index that uses the same model.

    A server reopens the engine at each new generation; its dense indexes then reuse the model
    already in memory instead of loading it again (inference only: the model is never changed).
    """
    key = (resolve_model(settings["model"]), settings.get("max_seq_length"), settings.get("runtime", "torch"))
    with _SHARED_LOCK:
        if key not in _SHARED_ENCODERS:
            _SHARED_ENCODERS[key] = load_encoder(settings)
        return _SHARED_ENCODERS[key]


def load_encoder(settings: dict[str, Any]):
    """Load the settings' sentence-transformers model from disk (no download unless allowed)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model(settings["model"])
    encoder = SentenceTransformer(path, device=_device())
    if settings.get("max_seq_length"):
        encoder.max_seq_length = int(settings["max_seq_length"])
    runtime = settings.get("runtime", "torch")
    if runtime == BF16:
        return Bf16SentenceEncoder(encoder)
    if runtime != "torch":
        return OnnxSentenceEncoder(encoder, path, runtime)
    return encoder


def encode_documents(encoder, batches, total: int, prefix: str = "") -> np.ndarray:
    """Encode documents (title + text) to normalized float32 vectors, with a progress bar."""
    chunks = []
    with progress(total=total, desc="encoding documents", unit="doc") as bar:
        for batch in batches:
            texts = [prefix + d.contents for d in batch]
            chunks.append(encoder.encode(texts, batch_size=32, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False))
            bar.update(len(batch))
    return np.ascontiguousarray(np.concatenate(chunks).astype(np.float32))


def write_ids(path: Path, ids: list[str]) -> None:
    """Write row -> doc id as a one-column Arrow file."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("_id", pa.string())])) as w:
        w.write_table(pa.table({"_id": ids}))


def read_ids(path: Path) -> list[str]:
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all().column("_id").to_pylist()


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _to_gpu(index):
    """The GPU copy of ``index`` when faiss-gpu and a GPU are present, else ``index``."""
    if os.environ.get("RETRIEVER_FAISS_CPU") == "1" or not hasattr(faiss, "StandardGpuResources"):
        return index
    if faiss.get_num_gpus() < 1:
        return index
    try:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    except RuntimeError:  # kinds without a GPU implementation (e.g. HNSW) stay on the CPU
        return index


def _set_knobs(cpu_index, searchable, nprobe: int | None, ef_search: int | None) -> None:
    if nprobe is not None:
        faiss.ParameterSpace().set_index_parameter(searchable, "nprobe", nprobe)
    if ef_search is not None:
        faiss.ParameterSpace().set_index_parameter(cpu_index, "efSearch", ef_search)
