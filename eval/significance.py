"""Paired significance between two systems' per-query scores, Holm-corrected across systems.

* :func:`paired_t_test`: two-sided paired t-test (scipy).
* :func:`paired_bootstrap`: the paired bootstrap over queries: resample query
  indices with replacement, take the mean difference; its 2.5th / 97.5th
  percentiles are the 95% interval (the README's intervals), and the two-sided
  p-value is the share of resampled differences, re-centred on zero, at least as
  far from zero as the observed one.
* :func:`paired_rows`: the paired bootstrap of several measures of two systems' per-question
  rows, matched by ``query_id``; :func:`interval_cell` writes one as a table cell.
* :func:`holm`: Holm-Bonferroni step-down adjustment of a family of p-values
  (here: every system compared with the baseline on one measure and dataset).

Example:
    >>> test = paired_bootstrap([0.5, 0.7, 0.2], [0.4, 0.6, 0.2], samples=1000)
    >>> test.difference, test.low, test.high
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

from retriever.core.errors import InputError

BOOTSTRAP_SAMPLES = 10_000
ALPHA = 0.05


@dataclass(frozen=True)
class Bootstrap:
    """A paired bootstrap: mean difference (a - b), its 95% interval and a two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float


def _differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1 or not len(a_arr):
        raise InputError(f"paired tests need two equally long, non-empty score lists (got {a_arr.shape} "
                         f"and {b_arr.shape})")
    return a_arr - b_arr


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test of ``a`` against ``b`` (1.0 when they never differ)."""
    diff = _differences(a, b)
    if not np.any(diff):
        return 1.0
    if np.all(diff == diff[0]):
        return 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> Bootstrap:
    """The paired bootstrap of the mean of ``a - b`` over queries (see the module docstring)."""
    diff = _differences(a, b)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    observed = float(diff.mean())
    low, high = np.percentile(means, [2.5, 97.5])
    extreme = np.abs(means - observed) >= abs(observed) - 1e-12
    p_value = 1.0 if observed == 0 else float(extreme.mean())
    return Bootstrap(observed, float(low), float(high), p_value)


def paired_rows(rows: Sequence[dict], base: Sequence[dict], measures: Sequence[str]) -> dict[str, Any]:
    """``rows`` minus ``base`` on the questions both hold (matched by ``query_id``, in ``rows``' order): each
    measure's :func:`paired_bootstrap` as a dict, and ``questions``. A measure that some row lacks (or holds
    as None) is left out."""
    by_id = {r["query_id"]: r for r in base}
    shared = [(r, by_id[r["query_id"]]) for r in rows if r["query_id"] in by_id]
    out: dict[str, Any] = {}
    for measure in measures:
        a, b = [r.get(measure) for r, _ in shared], [r.get(measure) for _, r in shared]
        if None not in a and None not in b:
            out[measure] = asdict(paired_bootstrap([float(x) for x in a], [float(x) for x in b]))
    return out | {"questions": len(shared)}


def interval_cell(test: dict[str, float]) -> str:
    """A bootstrap (as :func:`paired_rows` gives it) as a table cell in points: ``+1.2 (-0.3, +2.8; p=0.120)``."""
    return (f"{100 * test['difference']:+.1f} ({100 * test['low']:+.1f}, {100 * test['high']:+.1f}; "
            f"p={test['p_value']:.3f})")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for position, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - position) * p_values[i]))
        adjusted[i] = running
    return adjusted
