"""ONNX Runtime for the document encoders: exported by the project from the local model, fp32 or int8.

``runtime=onnx`` (or ``onnx-int8``) in a dense or sparse spec encodes documents (and dense
queries) with ONNX Runtime instead of PyTorch. The graph is exported from the local model on
first use with ``torch.onnx.export`` and kept in a cache directory (``$RETRIEVER_ONNX_CACHE``,
default ``~/.cache/retriever/onnx``) under a key of the model's files; ``onnx-int8`` adds
ONNX Runtime's dynamic int8 quantization of the weights (activations quantized per batch at
run time), which changes the vectors slightly (its quality drift is reported separately).
Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from indexes.bf16 import RUNTIME as BF16
from retriever.core.errors import MissingResourceError, SpecError

RUNTIMES = ("torch", BF16, "onnx", "onnx-int8")  # every document-encoder runtime (torch-bf16: indexes.bf16)


def cache_dir() -> Path:
    return Path(os.environ.get("RETRIEVER_ONNX_CACHE", Path.home() / ".cache" / "retriever" / "onnx"))


def model_key(model_dir: str, graph: str) -> str:
    """A key for ``graph`` exported from ``model_dir``: its path and its files' names, sizes and times."""
    digest = hashlib.sha256(f"{Path(model_dir).resolve()}|{graph}".encode())
    for path in sorted(Path(model_dir).rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}|{stat.st_size}|{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:20]


def exported(model_dir: str, graph: str, runtime: str, export: Callable[[Path], None]) -> Path:
    """The ONNX file of ``graph`` for ``runtime``, exporting (and quantizing) it once into the cache.

    Args:
        model_dir: the local model directory it is exported from.
        graph: a name for what is exported (e.g. ``sparse-weights``).
        runtime: ``onnx`` or ``onnx-int8``.
        export: writes the fp32 graph to the path it is given.
    """
    folder = cache_dir() / model_key(model_dir, graph)
    fp32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
    if not fp32.exists():
        _atomic(fp32, export)
    if runtime == "onnx-int8" and not int8.exists():
        _atomic(int8, lambda tmp: _quantize(fp32, tmp))
    return int8 if runtime == "onnx-int8" else fp32


def session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``path`` with ``threads`` intra-op threads (default: torch's)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingResourceError("runtime=onnx needs onnxruntime: pip install onnxruntime==1.32.0") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of ``sess`` for ``inputs`` (int64 token arrays)."""
    return sess.run(None, {name: np.ascontiguousarray(value, dtype=np.int64) for name, value in inputs.items()})[0]


def export_module(module, inputs: dict, path: Path, output: str, output_axes: dict[int, str]) -> None:
    """Export a torch module taking ``inputs`` (batch x tokens tensors) to ONNX at ``path``."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise MissingResourceError("exporting to ONNX needs onnx: pip install onnx==1.23.2") from None
    axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(module, tuple(inputs.values()), str(path), input_names=list(inputs), output_names=[output],
                          dynamic_axes={**axes, output: output_axes}, opset_version=17, dynamo=False)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary sibling (concurrent workers may export the same model)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class OnnxSentenceEncoder:
    """A mean-pooling sentence-transformers model whose transformer runs on ONNX Runtime.

    Answers ``encode(texts, batch_size, normalize_embeddings, ...)`` like the
    sentence-transformers model it wraps (texts sorted by length, batched, mean-pooled over
    the attention mask, L2-normalized).
    """

    def __init__(self, model, model_dir: str, runtime: str):
        pooling = getattr(model[1], "pooling_mode", None) if len(model) > 1 else None
        if pooling != "mean" or len(model) > 3:
            raise SpecError("runtime=onnx supports mean-pooling sentence-transformers models (Transformer, Pooling, "
                            "Normalize); use runtime=torch for this model")
        self.model, self.tokenizer = model, model.tokenizer
        sample = self._tokenize(["a sample sentence for the export", "another"])
        self._names = list(sample)
        transformer = _LastHidden(model[0].auto_model, self._names)
        path = exported(model_dir, "dense-last-hidden", runtime, lambda target: export_module(
            transformer, {k: torch.from_numpy(v) for k, v in sample.items()}, target, "hidden",
            {0: "batch", 1: "tokens"}))
        self._session = session(path)

    @property
    def max_seq_length(self) -> int:
        return self.model.max_seq_length

    def _tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        found = self.tokenizer(texts, padding=True, truncation=True, max_length=self.model.max_seq_length,
                               return_tensors="np")
        return {name: found[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")
                if name in found}

    def encode(self, texts, batch_size: int = 32, normalize_embeddings: bool = True, **_: Any) -> np.ndarray:
        texts = list(texts)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        out = np.zeros((len(texts), dimension()), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start:start + batch_size]
            inputs = self._tokenize([texts[i] for i in chosen])
            hidden = run(self._session, inputs)
            mask = inputs["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            if normalize_embeddings:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[chosen] = pooled
        return out


class _LastHidden(torch.nn.Module):
    """The transformer's last hidden states, from its inputs given positionally (for the export)."""

    def __init__(self, model, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors))).last_hidden_state
