"""Indexing = training: fit the id decoder on (text vector, document id) pairs.

AdamW with linear warm-up and cosine decay, the sequence negative log-likelihood
of the trie-constrained id distribution as the loss, and optional SAM
(sharpness-aware minimization, which DSI++ found to reduce forgetting). After
every epoch the model, the optimizer state and the loss history are written to a
checkpoint directory (safetensors + JSON), so an interrupted build resumes from
its last finished epoch; each epoch's shuffling and dropout are seeded by
(seed, epoch), so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from indexes.generative.decode import sequence_logprobs
from indexes.generative.model import IdDecoder
from indexes.generative.trie import IdTrie
from retriever.core.progress import progress

STATE_FILE = "checkpoint.safetensors"
LOG_FILE = "checkpoint.json"
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
    history, first_epoch = _resume(checkpoint, model, optimizer)
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
                _save_checkpoint(checkpoint, model, optimizer, history, epoch + 1)
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


def _save_checkpoint(directory: Path, model: IdDecoder, optimizer: torch.optim.Optimizer,
                     history: list[dict], epochs_done: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).contiguous()
    save_file(tensors, str(directory / f".{STATE_FILE}.tmp"))
    os.replace(directory / f".{STATE_FILE}.tmp", directory / STATE_FILE)
    log = {"epochs_done": epochs_done, "history": history}
    (directory / f".{LOG_FILE}.tmp").write_text(json.dumps(log) + "\n", encoding="utf-8")
    os.replace(directory / f".{LOG_FILE}.tmp", directory / LOG_FILE)


def _resume(directory: Path | None, model: IdDecoder, optimizer: torch.optim.Optimizer) -> tuple[list[dict], int]:
    """Load the last checkpoint in ``directory`` into ``model`` and ``optimizer``; (history, next epoch)."""
    if directory is None or not (directory / LOG_FILE).is_file() or not (directory / STATE_FILE).is_file():
        return [], 0
    log = json.loads((directory / LOG_FILE).read_text(encoding="utf-8"))
    tensors = load_file(str(directory / STATE_FILE))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    saved = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return log["history"], int(log["epochs_done"])


def plot_losses(runs: list[dict], path: Path) -> None:
    """Write the loss curves of training ``runs`` (``{"task", "history"}``) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for number, run in enumerate(runs):
        label = run["task"] if number == 0 else f"{run['task']} {number}"
        ax.plot([h["step"] for h in run["history"]], [h["loss"] for h in run["history"]], linewidth=1.2, label=label)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("sequence NLL")
    ax.set_title("generative index: training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
