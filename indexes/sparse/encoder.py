"""The document encoder: any Hugging Face masked LM, SPLADE max pooling, used at index time only.

A document vector is ``w(t) = max over tokens i of log(1 + relu(logit_i(t)))`` over the
document's tokens (special tokens and padding excluded), optionally pruned to its
``top_k`` largest weights and/or the weights ``>= threshold``. Because
``log(1 + relu(.))`` is monotonic, the max is taken over the raw logits first and
the activation applied once per vocabulary entry, which avoids a pass over the
``tokens x vocabulary`` tensor.

A checkpoint without an MLM head (a ``BertModel`` such as all-MiniLM-L6-v2) gets a
vocabulary head tied to its word-piece embeddings (BERT's decoder is the input
embedding matrix); its newly created transform starts as the identity and its bias
at ``NEW_HEAD_BIAS``, so the untrained head already scores a document's own words
and their neighbours in embedding space, and keeps a few hundred terms per document
(see :func:`init_vocabulary_head`).

The MLM head's last linear layer (``model.get_output_embeddings()``) is applied by
this module, a few documents at a time, so the ``tokens x vocabulary`` logits of a
whole batch never sit in memory together.

Example:
    >>> encoder = DocEncoder.load("../shared/models/splade-tiny-msmarco", max_length=256)
    >>> vectors = encoder.encode_document(["Statins and breast cancer.", "Vitamin D."])
    >>> encoder.decode(vectors.row(0))[:5]
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from indexes.bf16 import bf16_autocast
from indexes.sparse.queries import VocabularyMismatchError, vocabulary_checksum
from indexes.sparse.vectors import SparseVectors
from retriever.core.errors import MissingResourceError
from retriever.core.models import resolve_model
from retriever.core.progress import progress

DEFAULT_MODEL = "../shared/models/splade-tiny-msmarco"
# all-MiniLM-L6-v2 with the identity transform: the median NFCorpus document has its
# 200th / 300th largest max-logit at 6.4 / 5.9, so this bias keeps ~250 terms per document
NEW_HEAD_BIAS = -6.0
_HEAD_KEYS = ("cls.predictions.transform.dense.weight", "cls.predictions.bias")
_TOKENS_PER_CHUNK = 2048


def resolve_sparse_model(name: str) -> str:
    """A loadable directory for ``name``; the default is also looked for next to this checkout."""
    if name == DEFAULT_MODEL and not Path(name).exists():
        beside_checkout = Path(__file__).resolve().parents[3] / "shared" / "models" / Path(name).name
        if beside_checkout.is_dir():
            return resolve_model(str(beside_checkout))
    return resolve_model(name)


class DocEncoder:
    """A masked LM that turns documents into vocabulary-sized sparse vectors.

    Args:
        model: a ``*ForMaskedLM`` model whose output embeddings are a linear layer.
        tokenizer: its (fast) tokenizer.
        max_length: tokens read per document (special tokens included).
        top_k: keep at most this many terms per document (0: all).
        threshold: drop weights below this value (0: none).
        bf16: encode documents under bfloat16 autocast (``runtime=torch-bf16``, :mod:`indexes.bf16`).
    """

    def __init__(self, model, tokenizer, max_length: int = 256, top_k: int = 0, threshold: float = 0.0,
                 bf16: bool = False):
        self.model, self.tokenizer, self.bf16 = model, tokenizer, bool(bf16)
        self.max_length, self.top_k, self.threshold = int(max_length), int(top_k), float(threshold)
        head = model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            raise MissingResourceError(f"{type(model).__name__}: the MLM head's output layer is not a linear layer; "
                                       "only masked LMs with a linear vocabulary projection are supported")
        if head.out_features != len(tokenizer):
            raise VocabularyMismatchError(f"the model predicts {head.out_features} terms but its tokenizer has "
                                          f"{len(tokenizer)} tokens")
        self.vocab_size = head.out_features

    @classmethod
    def load(cls, name: str = DEFAULT_MODEL, **settings) -> "DocEncoder":
        """Load a masked LM and its tokenizer from a local directory (see :func:`resolve_sparse_model`)."""
        from transformers import AutoModelForMaskedLM

        path = resolve_sparse_model(name)
        tokenizer = load_tokenizer(name)
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
        except (OSError, ValueError) as e:
            raise MissingResourceError(f"cannot load a masked LM and its tokenizer from {path}: {e}") from None
        if any(key in info["missing_keys"] for key in _HEAD_KEYS):
            init_vocabulary_head(model)
        return cls(model.eval(), tokenizer, **settings)

    @property
    def vocabulary_checksum(self) -> str:
        return vocabulary_checksum(self.tokenizer.backend_tokenizer)

    @property
    def special_ids(self) -> list[int]:
        return sorted(set(self.tokenizer.all_special_ids))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded input ids, attention mask and the mask of tokens that are pooled."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt", return_special_tokens_mask=True)
        keep = batch["attention_mask"].bool() & ~batch.pop("special_tokens_mask").bool()
        return {**batch, "keep": keep}

    def encode_document(self, texts: Sequence[str], ids: Sequence[str] | None = None,
                        batch_size: int = 32, terms: np.ndarray | None = None) -> SparseVectors:
        """Encode documents (title + text strings) into sparse vectors, in input order.

        Documents are sorted by length and batched so that little padding is computed.
        With ``terms`` (sorted vocabulary ids), only those entries of each vector are
        computed (the others are left out): exact for queries made of those terms, and
        much cheaper than the whole vocabulary (dev evaluation during training).

        A document with no text (legal input) gets an empty vector: it matches no query term.
        """
        ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
        empty = (np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32))
        present = [i for i, text in enumerate(texts) if text and text.strip()]
        lengths = [len(e) for e in self.tokenizer([texts[i] for i in present], truncation=True,
                                                  max_length=self.max_length)["input_ids"]] if present else []
        order = np.asarray(present, dtype=np.int64)[np.argsort(lengths, kind="stable")]
        columns = None if terms is None else torch.from_numpy(np.asarray(terms, dtype=np.int64))
        term_ids = None if terms is None else np.asarray(terms, dtype=np.int32)
        rows: list[tuple[np.ndarray, np.ndarray]] = [empty] * len(texts)
        with torch.inference_mode(), bf16_autocast(enabled=self.bf16), \
                progress(total=len(present), desc="encoding documents", unit="doc") as bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                weights = self.weights(self.tokenize([texts[i] for i in chunk]), columns).float()
                for i, (picked, values) in zip(chunk, self.prune(weights)):
                    rows[i] = (picked if term_ids is None else term_ids[picked], values)
                bar.update(len(chunk))
        return SparseVectors.from_rows(ids, rows, self.vocab_size)

    def weights(self, batch: dict[str, torch.Tensor], terms: torch.Tensor | None = None) -> torch.Tensor:
        """SPLADE weights, ``batch x vocabulary`` (or ``batch x len(terms)``); differentiable under grad.

        Training asks for few columns: the ranking loss reads only the batch's query
        terms and the sparsity penalty can be estimated on a sample of the others;
        projecting onto those columns rather than the whole vocabulary is what makes
        a training step affordable on a CPU.
        """
        return torch.log1p(torch.relu(self.max_logits(self.features(batch), batch["keep"], terms)))

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Hidden states entering the MLM head's output layer, ``batch x tokens x hidden``."""
        inputs = {k: v for k, v in batch.items() if k != "keep"}
        with _identity_output_layer(self.model):
            return self.model(**inputs).logits

    def max_logits(self, features: torch.Tensor, keep: torch.Tensor, terms: torch.Tensor | None = None) -> torch.Tensor:
        """Per document and vocabulary entry (all, or ``terms``), the max logit over kept tokens.

        Documents with no kept token get ``-inf`` (weight 0 after the activation).
        """
        head = self.model.get_output_embeddings()
        weight, bias = (head.weight, head.bias) if terms is None else (head.weight[terms], head.bias[terms])
        step = max(1, _TOKENS_PER_CHUNK // max(features.shape[1], 1))
        maxima = []
        for start in range(0, features.shape[0], step):
            logits = torch.nn.functional.linear(features[start:start + step], weight, bias)
            maxima.append(logits.masked_fill(~keep[start:start + step, :, None], float("-inf")).amax(1))
        return torch.cat(maxima)

    def prune(self, weights: torch.Tensor) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each row's non-zero ``(terms, weights)`` after threshold and top-k pruning."""
        for row in weights.detach().float().numpy():
            terms = np.flatnonzero((row > 0) & (row >= self.threshold))
            if self.top_k and len(terms) > self.top_k:
                terms = np.sort(terms[np.argsort(-row[terms], kind="stable")[:self.top_k]])
            yield terms.astype(np.int32), row[terms].astype(np.float32)

    def decode(self, row: tuple[np.ndarray, np.ndarray], top: int = 20) -> list[tuple[str, float]]:
        """The ``top`` heaviest ``(token, weight)`` pairs of one vector, heaviest first."""
        terms, weights = row
        order = np.argsort(-weights)[:top]
        return [(self.tokenizer.convert_ids_to_tokens(int(terms[i])), float(weights[i])) for i in order]


def init_vocabulary_head(model, bias: float = NEW_HEAD_BIAS) -> None:
    """Initialise a newly created BERT MLM head: identity transform, decoder tied to the word embeddings.

    ``AutoModelForMaskedLM`` already ties the decoder weight to the input word-piece
    embeddings; the transform (dense + GELU + LayerNorm) it creates is random, which
    maps every token to unrelated words. With the identity, a token's logits are its
    hidden state's dot products with the word-piece embeddings.

    Raises:
        MissingResourceError: the model has no BERT-style prediction head.
    """
    head = getattr(getattr(model, "cls", None), "predictions", None)
    if head is None or not hasattr(head, "transform"):
        raise MissingResourceError(f"{type(model).__name__} has no MLM head to initialise (BERT-style models only)")
    with torch.no_grad():
        dense = head.transform.dense
        dense.weight.copy_(torch.eye(dense.out_features, dense.in_features))
        dense.bias.zero_()
        head.bias.fill_(bias)
    if model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        model.get_output_embeddings().weight = model.get_input_embeddings().weight


@contextmanager
def _identity_output_layer(model) -> Iterator[None]:
    """Make the MLM head's output layer return its input, so ``model(...).logits`` are its features."""
    head = model.get_output_embeddings()
    head.forward = lambda hidden: hidden
    try:
        yield
    finally:
        del head.forward


def load_tokenizer(name: str = DEFAULT_MODEL):
    """The fast tokenizer of the sparse model ``name`` alone, without its weights (see :func:`resolve_sparse_model`).

    Raises:
        MissingResourceError: no loadable fast tokenizer there.
    """
    from transformers import AutoTokenizer

    path = resolve_sparse_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as e:
        raise MissingResourceError(f"cannot load a masked LM and its tokenizer from {path}: {e}") from None
    if not tokenizer.is_fast:
        raise MissingResourceError(f"{path}: a fast (tokenizers) tokenizer is needed")
    return tokenizer
