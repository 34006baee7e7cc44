"""The sparse document encoder on ONNX Runtime (``sparse(runtime=onnx)`` or ``runtime=onnx-int8``).

The whole SPLADE computation of :class:`~indexes.sparse.encoder.DocEncoder` (transformer, MLM
head, max over the kept tokens, ``log(1 + relu)``) is exported as one graph, so the
``tokens x vocabulary`` logits never leave ONNX Runtime; it is run on sub-batches of at most
``TOKENS`` tokens to bound their memory. Training and term-restricted encodings stay on PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from indexes.onnx import export_module, exported, run, session
from indexes.sparse.encoder import DocEncoder, resolve_sparse_model

TOKENS = 4096


class _WeightsGraph(torch.nn.Module):
    """``(input_ids, ..., keep)`` -> SPLADE weights, ``batch x vocabulary``."""

    def __init__(self, encoder: DocEncoder, names: list[str]):
        super().__init__()
        self.encoder, self.names = encoder, names
        self.model = encoder.model

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.names, tensors))
        keep = batch.pop("keep").bool()
        head = self.encoder.model.get_output_embeddings()
        logits = torch.nn.functional.linear(self.encoder.features(batch), head.weight, head.bias)
        return torch.log1p(torch.relu(logits.masked_fill(~keep[:, :, None], float("-inf")).amax(1)))


class OnnxDocEncoder(DocEncoder):
    """A :class:`DocEncoder` whose document weights come from ONNX Runtime."""

    runtime = "onnx"

    @classmethod
    def load_onnx(cls, name: str, runtime: str, **settings) -> "OnnxDocEncoder":
        encoder = cls.load(name, **settings)
        encoder.runtime = runtime
        sample = {name: value.long() for name, value in
                  encoder.tokenize(["a sample document for the export", "another one"]).items()}
        names = list(sample)
        graph = _WeightsGraph(encoder, names)
        path = exported(resolve_sparse_model(name), "sparse-weights", runtime,
                        lambda target: export_module(graph, sample, Path(target), "weights", {0: "batch"}))
        encoder._session, encoder._names = session(path), names
        return encoder

    def weights(self, batch: dict[str, torch.Tensor], terms: torch.Tensor | None = None) -> torch.Tensor:
        if terms is not None or torch.is_grad_enabled():
            return super().weights(batch, terms)
        rows = max(1, TOKENS // max(int(batch["input_ids"].shape[1]), 1))
        arrays = {name: batch[name].numpy().astype(np.int64) for name in self._names}
        parts = [run(self._session, {name: value[start:start + rows] for name, value in arrays.items()})
                 for start in range(0, len(arrays["input_ids"]), rows)]
        return torch.from_numpy(np.concatenate(parts))
