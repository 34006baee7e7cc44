"""Evaluation pictures: per-query differences of two systems, and the cross-dataset table as bars.

Written with matplotlib's non-interactive Agg backend, as PNG files next to the reports.

Example:
    >>> per_query_differences({"q1": 0.5, "q2": 0.1}, {"q1": 0.3, "q2": 0.4}, "rrf", "bm25", "nDCG@10",
    ...                       Path("results/nfcorpus-rrf-vs-bm25.png"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def per_query_differences(system: Mapping[str, float], baseline: Mapping[str, float], system_name: str,
                          baseline_name: str, measure: str, path: Path) -> Path:
    """Bars of ``system - baseline`` per query, sorted; wins above zero, losses below."""
    diffs = sorted(system[q] - baseline[q] for q in baseline)
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(range(len(diffs)), diffs, width=1.0, color=["#c0392b" if d < 0 else "#2e86c1" for d in diffs])
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel(f"queries, sorted ({wins} better, {losses} worse, {len(diffs) - wins - losses} tied)")
    ax.set_ylabel(f"Δ {measure}")
    ax.set_title(f"{system_name} vs {baseline_name}: per-query {measure}")
    return _save(fig, path)


def grouped_bars(table: Mapping[str, Mapping[str, float]], measure: str, path: Path) -> Path:
    """The cross-dataset table: one group of bars per dataset, one bar per system."""
    datasets = list(dict.fromkeys(d for values in table.values() for d in values))
    width = 0.8 / max(len(table), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(datasets) * max(1, len(table) / 3)), 3.6))
    for i, (system, values) in enumerate(table.items()):
        xs = [j + i * width for j, d in enumerate(datasets) if d in values]
        ax.bar(xs, [values[d] for d in datasets if d in values], width=width, label=system)
    ax.set_xticks([j + width * (len(table) - 1) / 2 for j in range(len(datasets))], datasets)
    ax.set_ylabel(measure)
    ax.legend(fontsize=8, ncol=min(len(table), 5))
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
