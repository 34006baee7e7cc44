"""Scoring ids under the model: teacher-forced sequence log-probabilities and trie-constrained beam search.

At every step the next-token distribution is a softmax over the tokens the trie
allows after the current prefix, so the model defines a proper distribution over
valid ids and a document's score is the sum of its id tokens' log-probabilities.
Training, brute-force scoring and beam search all use this one definition.
"""

from __future__ import annotations

import torch

from indexes.generative.model import IdDecoder
from indexes.generative.trie import INVALID, IdTrie

NEG_INF = float("-inf")


def allowed_log_softmax(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Log-softmax of ``logits`` over the entries whose trie code is valid (others get -inf)."""
    return torch.log_softmax(logits.masked_fill(codes == INVALID, NEG_INF), dim=-1)


def sequence_logprobs(model: IdDecoder, queries: torch.Tensor, tokens: torch.Tensor, nodes: torch.Tensor,
                      lengths: torch.Tensor, trie: IdTrie) -> torch.Tensor:
    """Log-probability of each whole id, teacher-forced.

    Args:
        model: the decoder.
        queries: ``[B, input_dim]`` query vectors.
        tokens: ``[B, T]`` id tokens (padded).
        nodes: ``[B, T]`` trie node before each token (see :meth:`IdTrie.nodes`).
        lengths: ``[B]`` id lengths.
        trie: the trie of valid ids.

    Returns:
        ``[B]`` sequence log-probabilities.
    """
    start = torch.full((len(tokens), 1), model.start_token, dtype=torch.long)
    codes = trie.table[nodes]
    logp = allowed_log_softmax(model.logits(queries, torch.cat([start, tokens[:, :-1]], dim=1), codes), codes)
    picked = logp.gather(2, tokens.unsqueeze(2)).squeeze(2)
    valid = torch.arange(tokens.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return picked.masked_fill(~valid, 0.0).sum(dim=1)


@torch.no_grad()
def beam_search(model: IdDecoder, queries: torch.Tensor, trie: IdTrie, k: int, beam: int) -> list[list[tuple[int, float]]]:
    """The ``k`` most probable valid ids for each query vector, by trie-constrained beam search.

    Each step keeps the ``beam`` best unfinished prefixes per query; ids completed
    along the way are collected, and a prefix that already scores below the k-th
    completed id is dropped (log-probabilities only decrease as a prefix grows).
    With ``beam`` at least the number of ids the search is exhaustive (exact).

    Returns:
        Per query, up to ``k`` ``(document row, log-probability)`` pairs, best first.
    """
    n = len(queries)
    memory = model.memory(queries)
    affinity = model.affinity(queries) if model.has_keys else None
    prefixes = torch.full((n, 1, 1), model.start_token, dtype=torch.long)  # [Q, beams, t]
    nodes = torch.zeros((n, 1), dtype=torch.long)
    scores = torch.zeros((n, 1))
    done_scores = torch.full((n, k), NEG_INF)
    done_rows = torch.full((n, k), -1, dtype=torch.long)
    for _ in range(trie.max_depth):
        width = prefixes.shape[1]
        flat = prefixes.reshape(n * width, -1)
        logits = model(memory.repeat_interleave(width, dim=0), flat)[:, -1]
        codes = trie.table[nodes.reshape(-1)]
        if affinity is not None:
            logits = logits + model.edge_logits(affinity, codes.view(n, width, -1)).view(n * width, -1)
        logp = allowed_log_softmax(logits, codes).view(n, width, -1)
        total = (scores.unsqueeze(2) + logp).reshape(n, -1)
        codes = codes.view(n, -1)
        finished = torch.where(codes <= -2, total, torch.full_like(total, NEG_INF))
        done_scores, order = torch.cat([done_scores, finished], 1).topk(k, dim=1)
        done_rows = torch.cat([done_rows, -2 - codes], 1).gather(1, order)
        bar = done_scores[:, -1:]
        open_ = torch.where((codes >= 0) & (total > bar), total, torch.full_like(total, NEG_INF))
        keep = min(beam, int((open_ > NEG_INF).sum(dim=1).max()))
        if keep == 0:
            break
        scores, picked = open_.topk(keep, dim=1)
        vocab = logp.shape[2]
        parents, tokens = picked // vocab, picked % vocab
        prefixes = torch.cat([prefixes.gather(1, parents.unsqueeze(2).expand(-1, -1, prefixes.shape[2])),
                              tokens.unsqueeze(2)], dim=2)
        nodes = codes.gather(1, picked).clamp(min=0)
    results = []
    for row_scores, rows in zip(done_scores.tolist(), done_rows.tolist()):
        results.append([(r, s) for r, s in zip(rows, row_scores) if s > NEG_INF])
    return results
