"""The id-generation model: a frozen pretrained query encoder and a small transformer decoder.

The encoder is a sentence-transformers model (all-MiniLM-L6-v2 by default, kept
frozen and shared with the dense index): it turns a query or a document view into
one normalized vector. A trainable adapter maps that vector to ``memory_slots``
memory vectors, and a causal transformer decoder, trained from scratch over the
id vocabulary, cross-attends to them while it emits an id token by token.

Only the decoder (with its adapter) is trained and saved, as ``model.safetensors``
plus ``model.json`` (its config and the encoder's name). Freezing the encoder lets
indexing encode every training text once and then run many cheap decoder epochs
on 2 CPU cores (see the README's "Generative index" section for the numbers).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from retriever.errors import IndexFormatError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "model.json"


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of the decoder (persisted in ``model.json``)."""

    input_dim: int
    vocab_size: int
    max_depth: int
    d_model: int = 256
    layers: int = 2
    heads: int = 4
    ff_dim: int = 1024
    memory_slots: int = 4
    dropout: float = 0.1
    input_dropout: float = 0.1


class IdDecoder(nn.Module):
    """Maps a query vector to a distribution over id token sequences.

    Args:
        config: the architecture.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.adapter = nn.Sequential(nn.Dropout(config.input_dropout),
                                     nn.Linear(config.input_dim, config.memory_slots * d))
        self.memory_norm = nn.LayerNorm(d)
        self.embed = nn.Embedding(config.vocab_size + 1, d)  # the last row is the start token
        self.position = nn.Embedding(config.max_depth, d)
        layer = nn.TransformerDecoderLayer(d, config.heads, config.ff_dim, config.dropout,
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, config.layers)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size)

    @property
    def start_token(self) -> int:
        return self.embed.num_embeddings - 1

    def memory(self, queries: torch.Tensor) -> torch.Tensor:
        """``[B, input_dim]`` query vectors -> ``[B, memory_slots, d_model]`` memory."""
        slots = self.adapter(queries).view(len(queries), self.config.memory_slots, self.config.d_model)
        return self.memory_norm(slots)

    def forward(self, memory: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``[B, T, vocab]`` for prefixes ``[B, T]`` that start with the start token."""
        steps = prefix.shape[1]
        hidden = self.embed(prefix) + self.position.weight[:steps]
        causal = torch.triu(torch.full((steps, steps), float("-inf"), device=prefix.device), diagonal=1)
        hidden = self.decoder(hidden, memory, tgt_mask=causal)
        return self.head(self.norm(hidden))

    def grow(self, vocab_size: int, generator: torch.Generator) -> "IdDecoder":
        """A copy with ``vocab_size`` tokens; old tokens keep their weights, new ones start small."""
        if vocab_size < self.config.vocab_size:
            raise IndexFormatError(f"cannot shrink the id vocabulary from {self.config.vocab_size} to {vocab_size}")
        grown = IdDecoder(DecoderConfig(**{**asdict(self.config), "vocab_size": vocab_size}))
        state = self.state_dict()
        old = self.config.vocab_size
        new_state = grown.state_dict()
        for name, tensor in state.items():
            target = new_state[name]
            if tensor.shape == target.shape:
                new_state[name] = tensor
                continue
            fresh = torch.randn(target.shape, generator=generator) * 0.02
            if name == "embed.weight":
                fresh[:old] = tensor[:old]
                fresh[-1] = tensor[-1]  # the start token
            elif name == "head.weight":
                fresh[:old] = tensor
            elif name == "head.bias":
                fresh = torch.full(target.shape, float(tensor.mean()))
                fresh[:old] = tensor
            new_state[name] = fresh
        grown.load_state_dict(new_state)
        return grown


def save_model(model: IdDecoder, directory: Path, encoder: str) -> None:
    """Write ``model.safetensors`` and ``model.json`` (config + encoder name) into ``directory``."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / MODEL_FILE))
    config = {"encoder": encoder, "decoder": asdict(model.config)}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_model(directory: Path) -> tuple[IdDecoder, str]:
    """Read what :func:`save_model` wrote; returns the decoder (eval mode) and the encoder name."""
    if not (directory / MODEL_FILE).is_file() or not (directory / CONFIG_FILE).is_file():
        raise IndexFormatError(f"{directory} has no {MODEL_FILE} / {CONFIG_FILE}: the generative index is incomplete")
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    model = IdDecoder(DecoderConfig(**config["decoder"]))
    model.load_state_dict(load_file(str(directory / MODEL_FILE)))
    return model.eval(), config["encoder"]
