"""bfloat16 autocast for the PyTorch document encoders (``runtime=torch-bf16``).

The model keeps its float32 weights; its matrix products run in bfloat16 under
``torch.autocast``, which CPUs with AVX512-BF16 or AMX (and GPUs) execute about twice as fast
as float32. Outputs are returned as float32. The vectors change slightly (bfloat16 keeps 8 bits
of mantissa); the quality drift is measured by ``python -m eval.encoding --quality``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

RUNTIME = "torch-bf16"


@contextmanager
def bf16_autocast(device: str = "cpu", enabled: bool = True) -> Iterator[None]:
    """Run the block's matrix products in bfloat16 on ``device`` (a no-op when not ``enabled``)."""
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=enabled):
        yield


class Bf16SentenceEncoder:
    """A sentence-transformers model whose ``encode`` runs under bfloat16 autocast (float32 output)."""

    def __init__(self, model: Any):
        self.model = model

    @property
    def max_seq_length(self) -> int:
        return self.model.max_seq_length

    def encode(self, texts, **kwargs: Any) -> np.ndarray:
        with bf16_autocast(self.model.device.type):
            vectors = self.model.encode(texts, **kwargs)
        return np.asarray(vectors, dtype=np.float32)
