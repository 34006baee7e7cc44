"""Training losses of the inference-free encoder: ranking distillation and sparsification.

Ranking (per query, over every document of the batch, in-batch negatives included):

- ``kl``: KL(teacher || student) between ``softmax(teacher / tau)`` and
  ``softmax(student * scale)``, with ``scale`` a learned temperature (the
  IDF-weighted dot products of an inference-free model have no natural scale).
- ``marginmse``: mean squared error between the student's and the teacher's score
  margins of every document against the teacher's best document for the query.

Sparsification (of the documents of the batch, ``D``: documents x vocabulary):

- ``idf-flops``: FLOPS, ``sum_t (mean_d D[d, t])^2`` (Paria et al.), applied to
  document vectors that are scored against IDF-weighted queries. The ranking
  gradient of term ``t`` carries ``idf(t)`` while the penalty does not, so the
  regularizer spares informative (high-IDF) terms and removes frequent ones first:
  the IDF-aware FLOPS of Geng et al., "Towards Competitive Search Relevance For
  Inference-Free Learned Sparse Retrievers" (2024).
- ``l0``: the same penalty restricted to the documents whose number of non-zero
  terms exceeds ``l0_target`` (the l0 mask of Shen et al., "Exploring l0
  Sparsification for Inference-free Sparse Retrievers", 2025): documents already
  sparse enough are left alone instead of being pushed towards collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RANKING_LOSSES = ("kl", "marginmse")
REGULARIZERS = ("idf-flops", "l0", "none")


def ranking_loss(name: str, student: torch.Tensor, teacher: torch.Tensor, scale: torch.Tensor,
                 teacher_temperature: float) -> torch.Tensor:
    """Distillation loss of ``student`` towards ``teacher`` scores (both queries x documents)."""
    if name == "kl":
        target = F.softmax(teacher / teacher_temperature, dim=1)
        return F.kl_div(F.log_softmax(student * scale, dim=1), target, reduction="batchmean")
    best = teacher.argmax(1, keepdim=True)
    student_margin = (student.gather(1, best) - student) * scale
    teacher_margin = (teacher.gather(1, best) - teacher) / teacher_temperature
    return F.mse_loss(student_margin, teacher_margin)


def sparsity_loss(name: str, docs: torch.Tensor, columns: torch.Tensor, l0_target: int = 0) -> torch.Tensor:
    """FLOPS-style penalty on ``docs`` (documents x sampled vocabulary columns); 0 for ``none``.

    ``columns`` holds how many vocabulary entries each column stands for (1 for a
    column always computed, ``V / sample`` for a uniformly sampled one), which makes
    the sum, and the per-document non-zero counts of ``l0``, unbiased estimates of
    their values over the whole vocabulary.
    """
    if name == "none":
        return docs.new_zeros(())
    if name == "l0":
        dense_enough = (estimated_nnz(docs, columns) > l0_target).to(docs.dtype)
        docs = docs * dense_enough[:, None]
    return (columns * docs.mean(0) ** 2).sum()


def estimated_nnz(docs: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Non-zero terms per document over the whole vocabulary, estimated from the computed columns."""
    return ((docs > 0).to(columns.dtype) * columns).sum(1)


def ramp(step: int, weight: float, warmup: int) -> float:
    """A weight that grows quadratically from 0 to ``weight`` over ``warmup`` steps (SPLADE's schedule)."""
    if warmup <= 0 or step >= warmup:
        return weight
    return weight * (step / warmup) ** 2
