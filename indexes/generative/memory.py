"""The replay memory (DSI++'s generative memory): encoded pseudo-queries of indexed documents.

When documents are added, the decoder trains on the new documents' examples plus
a sample of this memory, so it keeps generating the old documents' ids. The memory
holds the encoder's vectors (float16) of every indexed document's pseudo-queries
and real training queries with the document row each should generate; the encoder
is frozen, so the vectors stay valid as long as the index lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from indexes.generative.examples import SOURCES, Examples
from retriever.core.errors import IndexFormatError

MEMORY_FILE = "memory.safetensors"
REPLAYED = (SOURCES.index("pseudo"), SOURCES.index("query"))


@dataclass
class Memory:
    """Vectors ``[texts, dim]`` and pairs (text row, document row, source)."""

    vectors: np.ndarray
    text_of: np.ndarray
    row_of: np.ndarray
    source: np.ndarray

    @classmethod
    def of(cls, examples: Examples, vectors: np.ndarray) -> "Memory":
        """The replayable pairs (pseudo-queries and real queries) of ``examples`` and their vectors."""
        keep = np.isin(examples.source, REPLAYED)
        used, text_of = np.unique(examples.text_of[keep], return_inverse=True)
        return cls(vectors[used].astype(np.float16), text_of.astype(np.int64),
                   examples.row_of[keep], examples.source[keep])

    def __len__(self) -> int:
        return len(self.row_of)

    def __add__(self, other: "Memory") -> "Memory":
        return Memory(np.concatenate([self.vectors, other.vectors]),
                      np.concatenate([self.text_of, other.text_of + len(self.vectors)]),
                      np.concatenate([self.row_of, other.row_of]), np.concatenate([self.source, other.source]))

    def sample(self, count: int, rng: np.random.Generator) -> "Memory":
        """``count`` pairs drawn without replacement (all of them if fewer)."""
        picked = np.sort(rng.choice(len(self), size=min(count, len(self)), replace=False))
        used, text_of = np.unique(self.text_of[picked], return_inverse=True)
        return Memory(self.vectors[used], text_of.astype(np.int64), self.row_of[picked], self.source[picked])

    def write(self, directory: Path) -> None:
        save_file({"vectors": torch.from_numpy(np.ascontiguousarray(self.vectors)),
                   "text_of": torch.from_numpy(self.text_of), "row_of": torch.from_numpy(self.row_of),
                   "source": torch.from_numpy(self.source)}, str(directory / MEMORY_FILE))

    @classmethod
    def read(cls, directory: Path) -> "Memory":
        if not (directory / MEMORY_FILE).is_file():
            raise IndexFormatError(f"{directory / MEMORY_FILE} is missing: the generative index is incomplete")
        t = load_file(str(directory / MEMORY_FILE))
        return cls(t["vectors"].numpy(), t["text_of"].numpy(), t["row_of"].numpy(), t["source"].numpy())
