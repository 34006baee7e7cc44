"""The shared utilities of retriever.core: resumable checkpoints and PNG plots."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from retriever.core.checkpoint import find_checkpoint, load_checkpoint, resumable_dir, save_checkpoint
from retriever.core.errors import IndexFormatError
from retriever.core.plots import Panel, bar_plot, line_plot, panels

PNG = b"\x89PNG\r\n\x1a\n"


def _setup(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def _steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, first: int, last: int) -> None:
    for step in range(first, last):
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        (model(x) ** 2).mean().backward()
        optimizer.step()


def test_a_resumed_run_ends_with_the_same_weights(tmp_path):
    reference, optimizer = _setup()
    _steps(reference, optimizer, 0, 6)

    model, optimizer = _setup()
    _steps(model, optimizer, 0, 3)
    scale = torch.tensor([2.5])
    save_checkpoint(tmp_path / "last", model=model, optimizer=optimizer, meta={"step": 3, "history": [1.0, 0.5]},
                    extra={"scale": scale})
    resumed, optimizer = _setup(seed=1)  # other initial weights: all must come from the checkpoint
    found = load_checkpoint(tmp_path / "last", resumed, optimizer)
    assert found.meta == {"step": 3, "history": [1.0, 0.5]}
    assert torch.equal(found.extra["scale"], scale)
    _steps(resumed, optimizer, 3, 6)
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert load_checkpoint(tmp_path / "missing") is None


def test_a_checkpoint_is_replaced_whole_or_not_at_all(tmp_path):
    model, optimizer = _setup()
    directory = tmp_path / "last"
    save_checkpoint(directory, model=model, meta={"step": 1}, files=lambda d: (d / "note.txt").write_text("one"))

    def broken(staging):
        (staging / "note.txt").write_text("two")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(directory, model=model, meta={"step": 2}, files=broken)
    assert load_checkpoint(directory).meta == {"step": 1} and (directory / "note.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]

    save_checkpoint(directory, model=model, meta={"step": 2})
    directory.rename(tmp_path / ".last.new")  # killed between moving the old one aside and the new one in
    assert find_checkpoint(directory) == directory
    assert load_checkpoint(directory, model).meta == {"step": 2}
    with pytest.raises(IndexFormatError, match="no optimizer state"):
        load_checkpoint(directory, model, optimizer)


def test_resumable_dir_is_keyed_by_the_job(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRIEVER_CHECKPOINTS", str(tmp_path))
    first = resumable_dir("generative", "build", {"epochs": 3}, "checksum")
    assert first.parent == tmp_path and first.name.startswith("generative-")
    assert resumable_dir("generative", "build", {"epochs": 3}, "checksum") == first
    assert resumable_dir("generative", "build", {"epochs": 4}, "checksum") != first


def test_plots_write_pngs_and_import_matplotlib_only_when_drawing(tmp_path):
    line_plot(tmp_path / "line.png", {"loss": [(i, 1 / (i + 1)) for i in range(100)], "dev": [(0, 0.2), (50, 0.3)],
                                      "empty": []}, "training", "step", "loss")
    panels(tmp_path / "panels.png", [Panel({"a": [(0, 1)]}, "a", "x", "y"), Panel({"b": [(0, 2)]}, "b", "x", "y")])
    bar_plot(tmp_path / "bars.png", {"bm25": {"nfcorpus": 0.32, "scifact": 0.67}, "dense": {"scifact": 0.64}},
             "nDCG@10", "dataset", "nDCG@10")
    for name in ("line.png", "panels.png", "bars.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    code = "import sys, retriever.core.plots, retriever.core.checkpoint; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
