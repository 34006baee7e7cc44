"""Indexing = training: fit the id decoder on (text vector, document id) pairs.

AdamW with linear warm-up and cosine decay, the sequence negative log-likelihood
of the trie-constrained id distribution as the loss, and optional SAM
(sharpness-aware minimization, which DSI++ found to reduce forgetting). After
every epoch the model, the optimizer state and the loss history are written to a
checkpoint directory (:mod:`retriever.core.checkpoint`), so an interrupted build resumes from
its last finished epoch; each epoch's shuffling and dropout are seeded by
(seed, epoch), so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from indexes.generative.decode import sequence_logprobs
from indexes.generative.model import IdDecoder
from indexes.generative.trie import IdTrie
from retriever.core.checkpoint import load_checkpoint, save_checkpoint
from retriever.core.progress import progress

WARMUP = 0.05
CURVE_POINTS = 200


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one training run."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    sam_rho: float = 0.0
    seed: int = 0
    key_lr: float = 0.1


@dataclass
class Targets:
    """Every document's id as padded token and trie-node tensors (row-indexed)."""

    tokens: torch.Tensor
    nodes: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def for_sequences(cls, sequences: list[tuple[int, ...]], trie: IdTrie) -> "Targets":
        tokens = np.zeros((len(sequences), trie.max_depth), dtype=np.int64)
        for i, sequence in enumerate(sequences):
            tokens[i, :len(sequence)] = sequence
        return cls(torch.from_numpy(tokens), torch.from_numpy(trie.nodes(sequences)),
                   torch.tensor([len(s) for s in sequences], dtype=torch.long))


def train_decoder(model: IdDecoder, vectors: torch.Tensor, text_of: np.ndarray, row_of: np.ndarray,
                  targets: Targets, trie: IdTrie, settings: TrainSettings, checkpoint: Path | None = None,
                  desc: str = "training") -> list[dict]:
    """Train ``model`` in place so that ``vectors[text_of[i]]`` generates the id of ``row_of[i]``.

    Args:
        model: the decoder (trained in place).
        vectors: ``[texts, dim]`` encoded texts.
        text_of: per example, its text's row in ``vectors``.
        row_of: per example, the document row whose id it should generate.
        targets: every document's id (see :class:`Targets`).
        trie: the trie of valid ids.
        settings: optimisation settings.
        checkpoint: a directory to resume from and to checkpoint into after every epoch.
        desc: the progress bar's label.

    Returns:
        The loss history: one ``{"epoch", "step", "loss", "seconds"}`` record per logged point.
    """
    examples = len(row_of)
    steps_per_epoch = max(1, math.ceil(examples / settings.batch_size))
    total = steps_per_epoch * settings.epochs
    optimizer = _optimizer(model, settings)
    found = load_checkpoint(checkpoint, model, optimizer) if checkpoint is not None else None
    history, first_epoch = (found.meta["history"], found.meta["epochs_done"]) if found else ([], 0)
    log_every = max(1, total // CURVE_POINTS)
    text_of_t, row_of_t = torch.from_numpy(text_of), torch.from_numpy(row_of)
    model.train()
    with progress(total=total, initial=first_epoch * steps_per_epoch, desc=desc, unit="step") as bar:
        for epoch in range(first_epoch, settings.epochs):
            started = time.perf_counter()
            torch.manual_seed(settings.seed * 100_003 + epoch)
            order = torch.from_numpy(np.random.default_rng([settings.seed, epoch]).permutation(examples))
            running = []
            for step in range(steps_per_epoch):
                batch = order[step * settings.batch_size:(step + 1) * settings.batch_size]
                global_step = epoch * steps_per_epoch + step
                for group in optimizer.param_groups:
                    group["lr"] = group["lr_scale"] * _learning_rate(settings.lr, global_step, total)

                def loss_fn() -> torch.Tensor:
                    rows = row_of_t[batch]
                    return -sequence_logprobs(model, vectors[text_of_t[batch]], targets.tokens[rows], targets.nodes[rows],
                                              targets.lengths[rows], trie).mean()

                loss = _sam_step(model, loss_fn, settings.sam_rho) if settings.sam_rho > 0 else _plain_step(loss_fn)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                running.append(loss)
                if (global_step + 1) % log_every == 0 or step == steps_per_epoch - 1:
                    history.append({"epoch": epoch, "step": global_step + 1, "loss": float(np.mean(running))})
                    running = []
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
            history[-1]["seconds"] = round(time.perf_counter() - started, 2)
            if checkpoint is not None:
                save_checkpoint(checkpoint, model=model, optimizer=optimizer,
                                meta={"epochs_done": epoch + 1, "history": history})
    model.eval()
    return history


def _optimizer(model: IdDecoder, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW; edge keys learn at ``key_lr`` times the rate, without weight decay (they start meaningful)."""
    keys = {id(p) for p in model.key_parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in keys], "lr_scale": 1.0}]
    if keys:
        groups.append({"params": model.key_parameters(), "lr_scale": settings.key_lr, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)


def _plain_step(loss_fn) -> float:
    loss = loss_fn()
    loss.backward()
    return float(loss.detach())


def _sam_step(model: IdDecoder, loss_fn, rho: float) -> float:
    """Sharpness-aware minimization: take the gradient at the worst nearby point (radius ``rho``)."""
    loss = loss_fn()
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.norm(torch.stack([p.grad.norm() for p in params]))
    shifts = []
    with torch.no_grad():
        for p in params:
            shift = p.grad * (rho / (norm + 1e-12))
            p.add_(shift)
            shifts.append(shift)
    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    with torch.no_grad():
        for p, shift in zip(params, shifts):
            p.sub_(shift)
    return float(loss.detach())


def _learning_rate(peak: float, step: int, total: int) -> float:
    warmup = max(1, int(WARMUP * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

