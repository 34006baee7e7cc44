"""The id-generation model: a frozen pretrained query encoder and a small transformer decoder.

The encoder is a sentence-transformers model (all-MiniLM-L6-v2 by default, kept
frozen and shared with the dense index): it turns a query or a document view into
one normalized vector. A trainable adapter maps that vector to ``memory_slots``
memory vectors, and a causal transformer decoder, trained from scratch over the
id vocabulary, cross-attends to them while it emits an id token by token.

With **edge keys** (``key_docs > 0``) every edge of the id trie also has a
trainable key vector in the encoder's space, and the logit of a next token adds
``key_scale * <query vector, key of the edge it takes> + bias of the edge``. Keys
of edges into an internal node start as that node's k-means centroid, with the
log of its document count as bias (so a node's probability approximates the sum
of its documents' ``exp(key_scale * <q, d>)``), and keys of edges that complete
an id as the document's own vector, so an untrained model already descends the
id tree the way the dense index ranks, and training refines it; a
document added later gets a useful key at once (its vector), which is what lets
continual indexing place new documents without unlearning old ones. Like NCI's
prefix-aware output weights, the same token scores differently under different
prefixes.

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

from retriever.core.errors import IndexFormatError

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
    key_nodes: int = 0
    key_docs: int = 0
    key_scale: float = 10.0


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
        if config.key_docs:
            self.node_keys = nn.Parameter(torch.zeros(config.key_nodes, config.input_dim))
            self.doc_keys = nn.Parameter(torch.zeros(config.key_docs, config.input_dim))
            self.key_bias = nn.Parameter(torch.zeros(config.key_nodes + config.key_docs))
            self.key_scale = nn.Parameter(torch.tensor(float(config.key_scale)))

    @property
    def start_token(self) -> int:
        return self.embed.num_embeddings - 1

    @property
    def has_keys(self) -> bool:
        return self.config.key_docs > 0

    def key_parameters(self) -> list[nn.Parameter]:
        """The edge keys, their biases and scale (empty without keys)."""
        return [self.node_keys, self.doc_keys, self.key_bias, self.key_scale] if self.has_keys else []

    def init_keys(self, node_keys: torch.Tensor, doc_keys: torch.Tensor, node_bias: torch.Tensor) -> None:
        """Set the edge keys (``[key_nodes, dim]``, ``[key_docs, dim]``) and the biases of edges into
        nodes (``[key_nodes]``), and zero the token head, so that the untrained model scores edges
        by the keys alone."""
        with torch.no_grad():
            self.node_keys.copy_(node_keys)
            self.doc_keys.copy_(doc_keys)
            self.key_bias.zero_()
            self.key_bias[:len(node_bias)] = node_bias
            self.head.weight.zero_()
            self.head.bias.zero_()

    def affinity(self, queries: torch.Tensor) -> torch.Tensor:
        """``[B, input_dim]`` query vectors -> ``[B, key_nodes + key_docs]`` edge scores (scaled dot product + bias)."""
        keys = torch.cat([self.node_keys, self.doc_keys])
        return self.key_scale * queries @ keys.T + self.key_bias

    def edge_logits(self, affinity: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Key scores of the edges in trie ``codes`` (``[B, ..., vocab]``, see :class:`IdTrie`); 0 where invalid."""
        nodes = self.config.key_nodes
        edge = torch.where(codes >= 0, codes, torch.where(codes <= -2, nodes - 2 - codes, 0))
        scores = affinity.gather(1, edge.reshape(len(edge), -1)).view(codes.shape)
        return scores.masked_fill(codes == -1, 0.0)

    def logits(self, queries: torch.Tensor, prefix: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``[B, T, vocab]`` for query vectors, prefixes and the trie codes after each prefix."""
        logits = self(self.memory(queries), prefix)
        if self.has_keys:
            logits = logits + self.edge_logits(self.affinity(queries), codes)
        return logits

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

    def grow(self, vocab_size: int, generator: torch.Generator,
             new_doc_keys: torch.Tensor | None = None) -> "IdDecoder":
        """A copy with ``vocab_size`` tokens and, with keys, ``new_doc_keys`` appended to the document keys.

        Old tokens and keys keep their weights; new tokens start small, new documents' keys as given.
        """
        if vocab_size < self.config.vocab_size:
            raise IndexFormatError(f"cannot shrink the id vocabulary from {self.config.vocab_size} to {vocab_size}")
        added = len(new_doc_keys) if self.has_keys and new_doc_keys is not None else 0
        grown = IdDecoder(DecoderConfig(**{**asdict(self.config), "vocab_size": vocab_size,
                                           "key_docs": self.config.key_docs + added}))
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
            elif name == "doc_keys":
                fresh = torch.cat([tensor, new_doc_keys.to(tensor.dtype)])
            elif name == "key_bias":
                fresh = torch.cat([tensor, torch.zeros(added)])
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
    try:
        model.load_state_dict(load_file(str(directory / MODEL_FILE)))
    except RuntimeError as error:
        raise IndexFormatError(f"{directory / MODEL_FILE} does not match its {CONFIG_FILE} (written by another "
                               f"version of the generative index?); rebuild the index. {error}") from None
    return model.eval(), config["encoder"]
