"""Inference-free queries: the encoder's tokenizer plus an IDF table over the indexed corpus.

A query is never run through a neural model. It is tokenized with the document
encoder's tokenizer (a ``tokenizers`` file stored in the index directory), special
tokens are dropped, and each distinct token is weighted by its IDF in the corpus::

    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

where ``N`` is the number of indexed documents and ``df(t)`` the number of them
whose tokenized title + text contains ``t`` (the whole text, not only the part the
encoder reads). The score of a document is ``sum_t q(t) * w_d(t)`` with
``q(t) = idf(t)``, or, with a learned query-term table, ``q(t) = idf(t) * f(t)``:
``f`` is a per-token factor learned with the document encoder (``retriever train
sparse --set query_weights=learned``), a lookup like the IDF (no model at query
time); tokens the training never saw keep ``f = 1``, so the table transfers to
any corpus (the IDF part is the index's own).

Query terms can be pruned (``min_weight``: drop terms whose weight is below it;
``max_terms``: keep the heaviest ones): fewer, rarer terms means shorter posting
lists to read, at a quality cost that ``retriever bench`` / ``eval`` measure.

Files (in the index directory)::

    tokenizer.json   the tokenizer (Hugging Face ``tokenizers`` format)
    df.arrow         term id, token, document frequency and IDF of every vocabulary entry
    terms.json       document count, vocabulary size and checksum, special token ids
    query_weights.safetensors   the learned factor table ``f`` (only with query_weights=learned)
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer

from retriever.core.errors import IndexFormatError, MissingResourceError
from retriever.core.storage import read_json

TOKENIZER_FILE = "tokenizer.json"
DF_FILE = "df.arrow"
META_FILE = "terms.json"
QUERY_WEIGHTS_FILE = "query_weights.safetensors"
_CHUNK = 2048


class VocabularyMismatchError(IndexFormatError):
    """An index, a tokenizer and a model that do not share one vocabulary."""


def vocabulary_checksum(tokenizer: Tokenizer) -> str:
    """sha256 over the tokenizer's ``token -> id`` map (added tokens included)."""
    vocab = sorted(tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


def plain_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """``tokenizer`` without truncation or padding (queries and DF counts use every token)."""
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def write_query_weights(directory: Path, factors: np.ndarray, vocab_sha256: str) -> None:
    """Write a learned query-term factor table (one float32 per vocabulary id) into ``directory``."""
    save_file({"factor": np.ascontiguousarray(factors, dtype=np.float32)}, str(Path(directory) / QUERY_WEIGHTS_FILE),
              metadata={"vocab_sha256": vocab_sha256, "weight": "idf(t) * factor[t]"})


def read_query_weights(directory: Path, vocab_sha256: str) -> np.ndarray:
    """The factor table in ``directory``, checked against the vocabulary it was learned for.

    Raises:
        MissingResourceError: ``directory`` holds no table.
        VocabularyMismatchError: the table was learned for another vocabulary.
        IndexFormatError: the file cannot be read.
    """
    path = Path(directory) / QUERY_WEIGHTS_FILE
    if not path.exists():
        raise MissingResourceError(f"{path} not found: query_weights=learned needs a model trained with "
                                   "--set query_weights=learned (or use query_weights=idf)")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        factors = load_file(str(path))["factor"]
    except (SafetensorError, KeyError, OSError) as e:
        raise IndexFormatError(f"{path}: not a query weight table ({e})") from None
    if metadata.get("vocab_sha256") != vocab_sha256:
        raise VocabularyMismatchError(f"{path} was learned for another vocabulary than this tokenizer's")
    return factors.astype(np.float32)


def _check_sizes(tokenizer_size: int, idf_size: int, factors: np.ndarray | None) -> None:
    if idf_size != tokenizer_size or (factors is not None and len(factors) != tokenizer_size):
        raise VocabularyMismatchError(f"the IDF table has {idf_size} entries"
                                      f"{'' if factors is None else f' and the query weights {len(factors)}'}"
                                      f" but the tokenizer has {tokenizer_size} tokens")


class QueryEncoder:
    """Tokenizer-only query encoder with the corpus's document frequencies.

    Args:
        tokenizer: the document encoder's tokenizer.
        df: document frequency of every vocabulary id (int64, one per id).
        doc_count: number of documents the frequencies were counted over.
        special_ids: token ids never used as query terms ([CLS], [SEP], [PAD], ...).
        factors: learned per-token factors on the IDF (None: IDF weights).
        min_weight: query terms weighing less are dropped (0: none).
        max_terms: at most this many terms per query, the heaviest (0: all).
    """

    def __init__(self, tokenizer: Tokenizer, df: np.ndarray, doc_count: int, special_ids: Sequence[int],
                 factors: np.ndarray | None = None, min_weight: float = 0.0, max_terms: int = 0):
        self.tokenizer = plain_tokenizer(tokenizer)
        self.df = np.asarray(df, dtype=np.int64)
        self.doc_count = int(doc_count)
        self.special_ids = sorted(int(i) for i in special_ids)
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        _check_sizes(size, len(self.df), factors)
        self.factors = None if factors is None else np.asarray(factors, dtype=np.float32)
        self.min_weight, self.max_terms = float(min_weight), int(max_terms)
        self.idf = np.log1p((self.doc_count - self.df + 0.5) / (self.df + 0.5)).astype(np.float32)
        self._special = np.zeros(size, dtype=bool)
        self._special[self.special_ids] = True

    @property
    def vocab_size(self) -> int:
        return len(self.df)

    @classmethod
    def count(cls, tokenizer: Tokenizer, texts: Iterable[str], special_ids: Sequence[int]) -> "QueryEncoder":
        """Count document frequencies of ``texts`` (one per document) and build the encoder."""
        tokenizer = plain_tokenizer(tokenizer)
        df = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=np.int64)
        return cls(tokenizer, df, 0, special_ids).extended(texts)

    def with_options(self, factors: np.ndarray | None = None, min_weight: float = 0.0,
                     max_terms: int = 0) -> "QueryEncoder":
        """The same frequencies with a factor table and/or query-term pruning (cheap: the tables are shared,
        so a per-search ``min_weight`` costs nothing over the index's own setting)."""
        _check_sizes(self.vocab_size, self.vocab_size, factors)  # the IDF table has the tokenizer's size
        out = copy.copy(self)
        out.factors = None if factors is None else np.asarray(factors, dtype=np.float32)
        out.min_weight, out.max_terms = float(min_weight), int(max_terms)
        return out

    def extended(self, texts: Iterable[str]) -> "QueryEncoder":
        """A new encoder whose frequencies also count ``texts`` (added documents)."""
        df, count, chunk = self.df.copy(), self.doc_count, []
        for text in [*texts, None]:
            if text is not None:
                chunk.append(text)
            if chunk and (text is None or len(chunk) >= _CHUNK):
                for encoding in self.tokenizer.encode_batch(chunk, add_special_tokens=False):
                    df[np.unique(np.asarray(encoding.ids, dtype=np.int64))] += 1
                count += len(chunk)
                chunk = []
        return QueryEncoder(self.tokenizer, df, count, self.special_ids, self.factors, self.min_weight,
                            self.max_terms)

    def token_ids(self, text: str) -> np.ndarray:
        """Distinct non-special token ids of ``text``, sorted."""
        ids = np.unique(np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int32))
        return ids[~self._special[ids]] if len(ids) else ids

    @property
    def weights(self) -> np.ndarray:
        """The query weight of every vocabulary id: IDF, times the learned factor if there is one."""
        return self.idf if self.factors is None else self.idf * self.factors

    def encode_query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(term ids, weights)`` of a query (IDF or learned, pruned as configured); no model involved."""
        ids = self.token_ids(text)
        weights = self.idf[ids] if self.factors is None else self.idf[ids] * self.factors[ids]
        keep = weights >= self.min_weight if self.min_weight > 0 else weights > 0
        if self.max_terms and keep.sum() > self.max_terms:
            keep &= np.isin(np.arange(len(ids)), np.argsort(-weights, kind="stable")[:self.max_terms])
        return ids[keep], weights[keep]

    def decode(self, terms: Sequence[int]) -> list[str]:
        """Token strings of vocabulary ids (to read a vector)."""
        return [self.tokenizer.id_to_token(int(t)) or f"[{t}]" for t in terms]

    def write(self, directory: Path) -> None:
        """Write ``tokenizer.json``, ``df.arrow`` and ``terms.json`` into ``directory``."""
        directory = Path(directory)
        self.tokenizer.save(str(directory / TOKENIZER_FILE))
        ids = np.arange(self.vocab_size, dtype=np.int32)
        table = pa.table({"term": ids, "token": self.decode(ids), "df": self.df, "idf": self.idf})
        with pa.OSFile(str(directory / DF_FILE), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        if self.factors is not None:
            write_query_weights(directory, self.factors, vocabulary_checksum(self.tokenizer))
        meta = {"doc_count": self.doc_count, "vocab_size": self.vocab_size, "special_ids": self.special_ids,
                "vocab_sha256": vocabulary_checksum(self.tokenizer),
                "idf": "ln(1 + (N - df + 0.5) / (df + 0.5))"}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, directory: Path, min_weight: float = 0.0, max_terms: int = 0) -> "QueryEncoder":
        """Read an encoder written by :meth:`write` (with its factor table if it has one); checks the tokenizer."""
        directory = Path(directory)
        meta = read_json(directory / META_FILE)
        try:
            tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
            table = pa.ipc.open_file(pa.memory_map(str(directory / DF_FILE))).read_all()
        except Exception as e:  # tokenizers raises plain Exceptions on a bad file
            raise IndexFormatError(f"{directory}: cannot read the tokenizer or the IDF table ({e})") from None
        if vocabulary_checksum(tokenizer) != meta["vocab_sha256"]:
            raise VocabularyMismatchError(f"{directory / TOKENIZER_FILE} is not the tokenizer this index was "
                                          "built with (vocabulary checksum differs)")
        factors = (read_query_weights(directory, meta["vocab_sha256"])
                   if (directory / QUERY_WEIGHTS_FILE).exists() else None)
        return cls(tokenizer, table.column("df").to_numpy(), meta["doc_count"], meta["special_ids"], factors,
                   min_weight, max_terms)
