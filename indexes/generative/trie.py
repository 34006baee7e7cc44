"""The prefix trie of valid document ids, as one dense table the decoder can index.

Row ``n`` of :attr:`IdTrie.table` describes internal node ``n`` (node 0 is the root):
entry ``[n, token]`` is ``-1`` when ``token`` may not follow that prefix, the child
node number when it leads to a longer prefix, and ``-2 - row`` when it completes
the id of document ``row``. Ids are prefix-free: no id is the prefix of another.

Example:
    >>> trie = IdTrie([(0, 2), (0, 3), (1,)], vocab_size=4)
    >>> trie.table.tolist()
    [[1, -4, -1, -1], [-1, -1, -2, -3]]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from retriever.core.errors import InputError

INVALID = -1


def leaf_code(row: int) -> int:
    """The table code of a completed id for document ``row``."""
    return -2 - row


class IdTrie:
    """Prefix trie over token sequences (one per document row).

    Raises:
        InputError: an empty sequence, two equal sequences, or one that is a prefix of another.
    """

    def __init__(self, sequences: Sequence[Sequence[int]], vocab_size: int):
        children: list[dict[int, int]] = [{}]
        for row, sequence in enumerate(sequences):
            if not sequence:
                raise InputError(f"document row {row} has an empty id")
            node = 0
            for depth, token in enumerate(sequence):
                code = children[node].get(token)
                if depth == len(sequence) - 1:
                    if code is not None:
                        raise InputError(f"document row {row}: id {tuple(sequence)} is not unique "
                                         "(equal to or a prefix of another id)")
                    children[node][token] = leaf_code(row)
                elif code is None:
                    children.append({})
                    children[node][token] = len(children) - 1
                    node = len(children) - 1
                elif code < 0:
                    raise InputError(f"document row {row}: id {tuple(sequence)} extends another document's id")
                else:
                    node = code
        table = np.full((len(children), vocab_size), INVALID, dtype=np.int64)
        for node, kids in enumerate(children):
            for token, code in kids.items():
                table[node, token] = code
        self.table = torch.from_numpy(table)
        self.max_depth = max(len(s) for s in sequences) if sequences else 0

    def __len__(self) -> int:
        return self.table.shape[0]

    def nodes(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """For each sequence, the internal node before each token (padded with 0 to :attr:`max_depth`)."""
        out = np.zeros((len(sequences), self.max_depth), dtype=np.int64)
        table = self.table.numpy()
        for i, sequence in enumerate(sequences):
            node = 0
            for depth, token in enumerate(sequence):
                out[i, depth] = node
                node = int(table[node, token])
        return out
