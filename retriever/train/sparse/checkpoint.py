"""Training checkpoints of the sparse encoder: a loadable Hugging Face model directory plus state.

A checkpoint directory holds the model (``config.json``, ``model.safetensors``),
its tokenizer files, and, for resuming, ``optimizer.safetensors`` (the AdamW
moments and the learned score scale) and ``state.json`` (step, optimizer
hyper-parameters, the history so far). No pickle: tensors go to safetensors,
everything else to JSON.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from retriever.core.storage import read_json, staging_dir

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


def save_checkpoint(directory: Path, model, tokenizer, optimizer: torch.optim.Optimizer | None = None,
                    extra: dict[str, torch.Tensor] | None = None, state: dict[str, Any] | None = None) -> None:
    """Write (or replace) a checkpoint directory atomically."""
    directory = Path(directory)
    new, old = (directory.with_name(directory.name + suffix) for suffix in (".new", ".old"))
    for leftover in (new, old):
        shutil.rmtree(leftover, ignore_errors=True)
    with staging_dir(new) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if optimizer is not None:
            tensors, groups = _flatten(optimizer)
            tensors.update({f"extra.{k}": v.detach().contiguous() for k, v in (extra or {}).items()})
            save_file(tensors, str(tmp / OPTIMIZER_FILE))
            (tmp / STATE_FILE).write_text(json.dumps({**(state or {}), "param_groups": groups}, indent=1) + "\n",
                                          encoding="utf-8")
    if directory.exists():
        directory.rename(old)
    new.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_state(directory: Path, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore ``optimizer`` from a checkpoint; returns its JSON state and the extra tensors."""
    state = read_json(Path(directory) / STATE_FILE)
    tensors = load_file(str(Path(directory) / OPTIMIZER_FILE))
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state.pop("param_groups")})
    return state, {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}


def _flatten(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    saved = optimizer.state_dict()
    tensors = {f"state.{index}.{name}": (value if torch.is_tensor(value) else torch.tensor(value)).contiguous()
               for index, entries in saved["state"].items() for name, value in entries.items()}
    return tensors, [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
                     for group in saved["param_groups"]]
