"""Resumable training checkpoints: a model's and an optimizer's tensors in safetensors, the rest in JSON.

A checkpoint is a directory ``step-<N>/`` (written under a temporary name and
renamed when complete) holding ``state.safetensors`` (``model.*`` and
``optimizer.<param>.<name>`` tensors) and ``state.json`` (step, history, settings).
``latest.json`` names the newest one and is replaced atomically, so a run killed
at any moment resumes from its last complete checkpoint. No pickle.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from retriever.core.errors import IndexFormatError
from retriever.core.storage import read_json, staging_dir, write_json_atomic

LATEST = "latest.json"


def save_checkpoint(directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    meta: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` under ``directory``, point ``latest.json`` at it, drop older ones."""
    directory = Path(directory)
    tensors = {f"model.{k}": v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    scalars: dict[str, Any] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"optimizer.{index}.{name}"] = value.detach().contiguous()
            else:
                scalars[f"{index}.{name}"] = float(value)
    final = directory / f"step-{step}"
    if final.exists():
        shutil.rmtree(final)
    with staging_dir(final) as tmp:
        save_file(tensors, str(tmp / "state.safetensors"))
        write_json_atomic(tmp / "state.json", {**meta, "step": step, "optimizer_scalars": scalars})
    write_json_atomic(directory / LATEST, {"step": step, "directory": final.name})
    for old in directory.glob("step-*"):
        if old != final and old.is_dir():
            shutil.rmtree(old)
    return final


def load_checkpoint(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict | None:
    """Load the latest checkpoint of ``directory`` into ``model`` and ``optimizer``; its JSON, or None if none."""
    pointer = Path(directory) / LATEST
    if not pointer.is_file():
        return None
    found = Path(directory) / read_json(pointer)["directory"]
    if not (found / "state.safetensors").is_file():
        raise IndexFormatError(f"{found}: checkpoint named by {pointer} is incomplete; delete {directory} to restart")
    meta = read_json(found / "state.json")
    tensors = load_file(str(found / "state.safetensors"))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta.pop("optimizer_scalars", {}).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = torch.tensor(value)
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return meta


def plot_curves(path: Path, series: dict[str, tuple[list[float], list[float]]], title: str, xlabel: str,
                ylabel: str) -> None:
    """Write line plots (``name -> (x, y)``) as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, linewidth=1.2, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
