"""PNG plots for training curves and evaluation reports (matplotlib, Agg backend, imported on first use).

A series is a name and its ``(x, y)`` points; a panel is one set of axes. Series of
at most :data:`MARKER_POINTS` points get markers (evaluations every N steps), longer
ones are plain lines (per-step losses).

Example:
    >>> line_plot("loss.png", {"loss": [(1, 0.9), (2, 0.7)]}, "training", "step", "loss")
    >>> bar_plot("ndcg.png", {"bm25": {"nfcorpus": 0.32, "scifact": 0.67}}, "nDCG@10", "dataset", "nDCG@10")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

Points = Sequence[tuple[float, float]]
MARKER_POINTS = 30


@dataclass(frozen=True)
class Panel:
    """One set of axes: line series (name -> points), a title and axis labels."""

    series: Mapping[str, Points]
    title: str
    xlabel: str
    ylabel: str


def line_plot(path: str | Path, series: Mapping[str, Points], title: str, xlabel: str, ylabel: str) -> None:
    """Write one set of line series (name -> ``(x, y)`` points) as a PNG; empty series are left out."""
    panels(path, [Panel(series, title, xlabel, ylabel)])


def panels(path: str | Path, plots: Sequence[Panel]) -> None:
    """Write several panels side by side as one PNG."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(plots), figsize=(max(6.0, 4.7 * len(plots)), 3.6), dpi=100,
                             squeeze=False)
    for ax, panel in zip(axes[0], plots):
        drawn = 0
        for name, points in panel.series.items():
            if not points:
                continue
            xs, ys = zip(*points)
            ax.plot(xs, ys, "o-" if len(points) <= MARKER_POINTS else "-", linewidth=1.2, markersize=3, label=name)
            drawn += 1
        _decorate(ax, panel.title, panel.xlabel, panel.ylabel, legend=drawn > 1)
    _save(plt, fig, path)


def bar_plot(path: str | Path, series: Mapping[str, Mapping[str, float]], title: str, xlabel: str,
             ylabel: str) -> None:
    """Write grouped bars as a PNG: for each series (name -> {category: value}) one bar per category.

    Categories are placed in order of first appearance; a series without a value for
    a category has no bar there.
    """
    plt = _pyplot()
    categories = list(dict.fromkeys(c for values in series.values() for c in values))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 2 + 0.4 * len(categories) * len(series)), 3.6), dpi=100)
    for number, (name, values) in enumerate(series.items()):
        placed = [(i, values[c]) for i, c in enumerate(categories) if c in values]
        ax.bar([i + (number - (len(series) - 1) / 2) * width for i, _ in placed], [v for _, v in placed], width,
               label=name)
    ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 6 else 0)
    _decorate(ax, title, xlabel, ylabel, legend=len(series) > 1)
    _save(plt, fig, path)


def _decorate(ax, title: str, xlabel: str, ylabel: str, legend: bool) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend()


def _save(plt, fig, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed); imported only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot
