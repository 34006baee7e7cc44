"""Plackett–Luce with a STOP item: exact probabilities of an ordering and of how many documents to pass.

A policy gives every candidate a score ``s_i`` and, after each pick, the STOP item a
score ``s_stop(t)`` that may depend on what was passed so far. A decision is a
sequence ``o_1 .. o_k`` followed by STOP. At step ``t`` (``t`` documents passed) the
next choice is drawn from a softmax over the remaining candidates plus STOP:

    P(o_1..o_k, stop) = prod_{t<k} exp(s_{o_t+1}) / Z_t  *  exp(s_stop(k)) / Z_k

with ``Z_t = sum_{j remaining} exp(s_j) + exp(s_stop(t))``. Two constraints keep it
exact: STOP is not offered before ``min_k`` picks (``Z_t`` then omits it), and after
``max_k`` picks (or when nothing remains) STOP is forced, a factor of 1. The
probabilities of all decisions sum to one (tested by enumeration); the
log-probability of any decision is differentiable in the scores, which is what
REINFORCE and behaviour cloning need.

Example:
    >>> decision = sample(item_scores, stop_score_fn, max_k=5, rng=np.random.default_rng(0))
    >>> log_prob(torch.tensor(item_scores), torch.tensor(decision.stop_scores), decision.order, max_k=5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


@dataclass
class Decision:
    """An ordering and where it stopped.

    Attributes:
        order: candidate indices passed, in order.
        steps: stop-feature rows, one per step at which STOP was offered or forced
            (``len(order) + 1`` rows: step ``t`` is the state after ``t`` picks).
    """

    order: list[int]
    steps: np.ndarray


def offered_stop(t: int, remaining: int, max_k: int, min_k: int) -> bool:
    """Whether STOP is a choice (not forbidden, not forced) after ``t`` picks with ``remaining`` left."""
    return min_k <= t < max_k and remaining > 0


def sample(scores: np.ndarray, stop_features: Callable[[list[int]], np.ndarray],
           stop_score: Callable[[np.ndarray], float], max_k: int, min_k: int = 1,
           rng: np.random.Generator | None = None) -> Decision:
    """Draw a decision (``rng`` given) or take the most likely choice at every step (``rng`` None: greedy).

    Args:
        scores: ``[n]`` candidate scores.
        stop_features: the stop features after a given prefix of picks.
        stop_score: the STOP score of a stop-feature row.
        max_k: most documents passed.
        min_k: fewest documents passed (when that many exist).
        rng: a random generator; None decodes greedily.
    """
    n = len(scores)
    remaining = np.ones(n, dtype=bool)
    order: list[int] = []
    rows = []
    while True:
        row = stop_features(order)
        rows.append(row)
        t, left = len(order), int(remaining.sum())
        if t >= max_k or left == 0:
            break
        logits = np.where(remaining, scores, -np.inf)
        stop = stop_score(row) if offered_stop(t, left, max_k, min_k) else -np.inf
        choices = np.append(logits, stop)
        if rng is None:
            pick = int(np.argmax(choices))
        else:
            probs = np.exp(choices - choices.max())
            pick = int(rng.choice(n + 1, p=probs / probs.sum()))
        if pick == n:
            break
        order.append(pick)
        remaining[pick] = False
    return Decision(order, np.stack(rows))


def log_prob(scores: torch.Tensor, stop_scores: torch.Tensor, order: Sequence[int], max_k: int,
             min_k: int = 1) -> torch.Tensor:
    """The exact log-probability of passing ``order`` and then stopping.

    Args:
        scores: ``[n]`` candidate scores.
        stop_scores: ``[len(order) + 1]`` STOP scores, one per step (row ``t`` after ``t`` picks).
        order: the candidate indices passed, in order (at most ``max_k``).
        max_k, min_k: as in :func:`sample`.
    """
    n, k = scores.shape[0], len(order)
    steps = k + 1
    remaining = torch.ones(steps, n, dtype=torch.bool)
    for t, index in enumerate(order):
        remaining[t + 1:, index] = False
    offered = torch.tensor([offered_stop(t, n - t, max_k, min_k) for t in range(steps)])
    logits = torch.cat([scores.expand(steps, n).masked_fill(~remaining, float("-inf")),
                        stop_scores.masked_fill(~offered, float("-inf")).unsqueeze(1)], dim=1)
    chosen = torch.tensor([*order, n])
    free = torch.tensor([t < max_k and t < n for t in range(steps)])  # a forced stop is a factor of 1
    logits, chosen = logits[free], chosen[free]
    return (logits.gather(1, chosen.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=1)).sum()
