"""Resumable training checkpoints: tensors in safetensors, everything else in JSON, replaced atomically.

A checkpoint is one directory holding::

    state.safetensors   model.<name> (a module's state), optimizer.<param>.<name> (its
                        tensor state), extra.<name> (any other tensors, e.g. a learned scale)
    state.json          the caller's metadata (step, history, settings) and the
                        optimizer's non-tensor state
    ...                 whatever the caller's ``files`` hook writes (e.g. a Hugging Face
                        model directory, so the checkpoint also loads as a model)

Every save writes a complete new directory under a staging name, then swaps it in
(the old one is renamed aside, the new one renamed into place, the old one
deleted); a run killed at any moment leaves either the previous checkpoint or the
new one, and :func:`find_checkpoint` finishes a swap a kill interrupted. The
optimizer's hyper-parameters (param groups) are not saved: a resumed run builds
its optimizer with the same groups and sets the learning rate every step. No pickle.

Example:
    >>> save_checkpoint(out / "last", model=model, optimizer=optimizer, meta={"step": 100})
    >>> found = load_checkpoint(out / "last", model, optimizer)   # None when there is none
    >>> found.meta["step"]
    100
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from retriever.core.errors import IndexFormatError
from retriever.core.storage import TMP_PREFIX, read_json, staging_dir, write_json_atomic

TENSORS_FILE = "state.safetensors"
STATE_FILE = "state.json"
SCALARS = "optimizer_scalars"
ROOT_VARIABLE = "RETRIEVER_CHECKPOINTS"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` found: the directory, the caller's metadata and the extra tensors."""

    directory: Path
    meta: dict[str, Any]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def save_checkpoint(directory: Path, *, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, meta: dict[str, Any] | None = None,
                    extra: dict[str, torch.Tensor] | None = None,
                    files: Callable[[Path], None] | None = None) -> Path:
    """Write (or replace) the checkpoint ``directory`` atomically.

    Args:
        directory: the checkpoint directory (created, or replaced as a whole).
        model: a module whose ``state_dict`` is saved.
        optimizer: an optimizer whose state (Adam moments, step counts) is saved.
        meta: JSON-serializable metadata (step, history, settings), returned by :func:`load_checkpoint`.
        extra: other tensors to save, returned by :func:`load_checkpoint`.
        files: writes more files into the (staging) directory it is given.

    Returns:
        ``directory``.
    """
    directory = Path(directory)
    new, old = _siblings(directory)
    for leftover in (new, old, *directory.parent.glob(f"{TMP_PREFIX}{new.name}-*")):
        shutil.rmtree(leftover, ignore_errors=True)
    tensors: dict[str, torch.Tensor] = {}
    state = dict(meta or {})
    if model is not None:  # cloned: safetensors refuses tensors that share memory (tied weights)
        tensors.update({f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()})
    if optimizer is not None:
        scalars = {}
        for index, entries in optimizer.state_dict()["state"].items():
            for name, value in entries.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{index}.{name}"] = value.detach().contiguous()
                else:
                    scalars[f"{index}.{name}"] = value
        state[SCALARS] = scalars
    tensors.update({f"extra.{k}": v.detach().clone().contiguous() for k, v in (extra or {}).items()})
    with staging_dir(new) as tmp:
        if files is not None:
            files(tmp)
        save_file(tensors, str(tmp / TENSORS_FILE))
        write_json_atomic(tmp / STATE_FILE, state)
    if directory.exists():
        directory.rename(old)
    new.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def find_checkpoint(directory: Path) -> Path | None:
    """``directory`` if it holds a complete checkpoint (finishing a swap a kill interrupted), else None."""
    directory = Path(directory)
    new, _ = _siblings(directory)
    if not directory.exists() and (new / STATE_FILE).is_file():
        new.rename(directory)
    return directory if (directory / STATE_FILE).is_file() else None


def load_checkpoint(directory: Path, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> Checkpoint | None:
    """Load the checkpoint in ``directory`` into ``model`` and ``optimizer``; None when there is none.

    Raises:
        IndexFormatError: the checkpoint lacks what it was asked to restore.
    """
    found = find_checkpoint(directory)
    if found is None:
        return None
    meta = read_json(found / STATE_FILE)
    if not (found / TENSORS_FILE).is_file():
        raise IndexFormatError(f"{found}: {TENSORS_FILE} is missing; delete {found} to restart")
    tensors = load_file(str(found / TENSORS_FILE))
    if model is not None:
        model.load_state_dict(_strip(tensors, "model."))
    scalars = meta.pop(SCALARS, None)
    if optimizer is not None:
        if scalars is None:
            raise IndexFormatError(f"{found} holds no optimizer state; delete {found} to restart")
        state: dict[int, dict[str, Any]] = {}
        for key, value in [*_strip(tensors, "optimizer.").items(), *scalars.items()]:
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return Checkpoint(found, meta, _strip(tensors, "extra."))


def resumable_dir(kind: str, *key: Any) -> Path:
    """Where a long job keeps its resumable state (checkpoints, encoded texts) until it finishes.

    ``$RETRIEVER_CHECKPOINTS/<kind>-<digest>`` (default root ``~/.cache/retriever/checkpoints``),
    the digest taken over ``key`` (the job's settings and inputs), so a rerun of the same
    job finds the state of the interrupted one and a different job never does.
    """
    root = Path(os.environ.get(ROOT_VARIABLE) or Path.home() / ".cache" / "retriever" / "checkpoints")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return root / f"{kind}-{digest}"


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def _siblings(directory: Path) -> tuple[Path, Path]:
    """The staged new checkpoint and the replaced old one, hidden beside ``directory``."""
    return directory.with_name(f".{directory.name}.new"), directory.with_name(f".{directory.name}.old")
