"""The ONNX Runtime encoders (exported here from the local models) match PyTorch; int8 stays close."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def texts(nfcorpus):
    return [doc.contents for doc, _, _ in nfcorpus.documents()][:24]


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RETRIEVER_ONNX_CACHE", str(tmp_path_factory.getbasetemp() / "onnx-cache"))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_sparse_onnx_weights_equal_torch(texts):
    from indexes.sparse.index import SparseIndex, load_encoder

    def dense_rows(runtime):
        encoder = load_encoder(SparseIndex.check_settings({"max_length": "64", "runtime": runtime}))
        return encoder.encode_document(texts).matrix().toarray()

    torch_rows, onnx_rows, int8_rows, bf16_rows = (dense_rows(r) for r in ("torch", "onnx", "onnx-int8", "torch-bf16"))
    assert np.abs(torch_rows - onnx_rows).max() < 1e-3
    assert _cosines(torch_rows, bf16_rows).min() > 0.99 and np.abs(torch_rows - bf16_rows).max() > 0  # bfloat16
    assert _cosines(torch_rows, int8_rows).min() > 0.9
    assert np.abs(torch_rows - int8_rows).max() > 1e-3  # int8 is a different (quantized) model


def test_dense_onnx_embeddings_equal_torch(texts):
    from indexes.dense import DenseIndex, load_encoder

    def embed(runtime):
        return load_encoder(DenseIndex.check_settings({"max_seq_length": "64", "runtime": runtime})).encode(
            texts, batch_size=8, normalize_embeddings=True)

    torch_vectors, onnx_vectors, int8_vectors, bf16_vectors = (
        embed(r) for r in ("torch", "onnx", "onnx-int8", "torch-bf16"))
    assert np.abs(torch_vectors - onnx_vectors).max() < 1e-4
    assert bf16_vectors.dtype == np.float32 and _cosines(torch_vectors, bf16_vectors).min() > 0.999
    assert _cosines(torch_vectors, int8_vectors).min() > 0.9


@pytest.mark.parametrize("spec", ["dense(runtime=tensorrt)", "sparse(runtime=tensorrt)"])
def test_unknown_runtime_is_a_setting_error(spec):
    from indexes.base import parse_index_spec
    from retriever.core.errors import SettingError

    with pytest.raises(SettingError, match="runtime.*must be one of torch, torch-bf16, onnx, onnx-int8"):
        parse_index_spec(spec)
