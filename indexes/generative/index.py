"""The generative (DSI-style) index: a model that maps a query straight to document ids.

Building the index trains the model (indexing = training); searching runs a beam
search constrained to valid ids; adding documents gives them ids and fine-tunes
the model on them plus replayed pseudo-queries of the old documents (DSI++).

Files of an index directory (no pickle)::

    manifest.json         kind, settings, document count, corpus checksum, build time
    model.safetensors     the trained decoder      model.json   its config + the encoder's name
    ids.arrow             document id -> id path   tokens.arrow (level, value) of each id token
    clusters.arrow        centroids of the semantic id tree (empty for atomic ids)
    terms.arrow           document frequencies for pseudo-queries of added documents
    memory.safetensors    the replay memory (see indexes.generative.memory)
    training.json         examples, timings and loss history of every training run
    loss.png              the loss curves

Example:
    >>> engine = Engine.build("work/gen", "nfcorpus/corpus.jsonl",
    ...                       indexes=["bm25", "generative(queries=nfcorpus:train)"])
    >>> engine.search("statins and breast cancer", using="generative", k=5)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from indexes.base import Index
from indexes.generative.decode import beam_search, sequence_logprobs
from indexes.generative.docids import DocTree, Vocabulary, check_unique
from indexes.generative.examples import Examples, TermStats, ViewSettings, document_examples, encode_texts, \
    query_examples
from indexes.generative.memory import Memory
from indexes.generative.model import DecoderConfig, IdDecoder, load_model, save_model
from indexes.generative.settings import CONTINUAL, SCHEMA
from indexes.generative.train import Targets, TrainSettings, train_decoder
from indexes.generative.trie import IdTrie
from retriever.core.checkpoint import resumable_dir
from retriever.core.corpus import Corpus, Document
from retriever.core.errors import IndexFormatError, InputError, SpecError
from retriever.core.plots import line_plot
from retriever.core.storage import read_json
from retriever.core.types import Ranking

TRAINING_FILE = "training.json"
LOSS_FILE = "loss.png"
VECTORS_FILE = "vectors.safetensors"
DEFAULT_BEAM = 100


class GenerativeIndex(Index):
    """A DSI-style index. Settings: see :data:`indexes.generative.settings.SCHEMA`.

    Search knobs: ``beam`` (beam width; default ``max(k, 100)``), ``batch_size``.
    """

    kind = "generative"
    schema = SCHEMA
    uses_accelerator = True  # a sharded build trains it whole on one worker (combine="single")

    def __init__(self, directory: Path, manifest: dict):
        super().__init__(directory, manifest)
        self.tree, self.doc_ids = DocTree.read(self.directory)
        self.vocab = Vocabulary.read(self.directory)
        self.model, _ = load_model(self.directory)
        self.trie = IdTrie(self.vocab.encode(self.tree.paths), len(self.vocab))
        config = self.model.config
        if self.model.has_keys and (config.key_nodes, config.key_docs) != (len(self.trie), len(self.doc_ids)):
            raise IndexFormatError(f"{self.directory}: the model has keys for {config.key_nodes} trie nodes and "
                                   f"{config.key_docs} documents, the index {len(self.trie)} and {len(self.doc_ids)}")
        self._encoder = None

    @classmethod
    def write(cls, directory: Path, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        s = dict(settings)
        docs = list(corpus)
        if not docs:
            raise InputError("cannot build a generative index over an empty corpus")
        doc_ids = [doc.doc_id for doc in docs]
        check_unique(doc_ids)
        cache = resumable_dir("generative", "build", s, corpus.checksum)
        started = time.perf_counter()
        stats = TermStats()
        stats.add(docs)
        examples = document_examples(docs, 0, stats, _views(s))
        if s["queries"]:
            examples += query_examples(s["queries"], {doc_id: row for row, doc_id in enumerate(doc_ids)})
        vectors = _encoded(cache, _load_encoder(s), examples.texts, s)
        encoded = time.perf_counter()
        tree = (DocTree.build(vectors[:len(docs)], s["branching"], s["leaf_size"], s["seed"])
                if s["ids"] == "semantic" else DocTree.atomic(len(docs)))
        vocab = Vocabulary.for_paths(tree.paths)
        torch.manual_seed(s["seed"])
        model = _new_model(s, tree, vocab, vectors[:len(docs)])
        record = _fit(model, tree, vocab, vectors, examples, _train_settings(s, False), cache, "build")
        record["encode_seconds"] = round(encoded - started, 2)
        _save(directory, s, model, tree, doc_ids, vocab, stats, Memory.of(examples, vectors), [record])
        shutil.rmtree(cache, ignore_errors=True)
        return s

    def write_extended(self, directory: Path, docs: Sequence[Document]) -> dict[str, Any]:
        s = SCHEMA.parse(self.settings)
        docs = list(docs)
        known = set(self.doc_ids)
        for position, doc in enumerate(docs, start=1):
            if doc.doc_id in known:
                raise InputError(f"document id {doc.doc_id!r} is already indexed (position {position})")
        check_unique([doc.doc_id for doc in docs])
        cache = resumable_dir("generative", "add", s, self.manifest.get("corpus_checksum"),
                              self.manifest.get("created"), [doc.doc_id for doc in docs])
        started = time.perf_counter()
        stats = TermStats.read(self.directory)
        stats.add(docs)
        examples = document_examples(docs, len(self.doc_ids), stats, _views(s))
        vectors = _encoded(cache, self.encoder, examples.texts, s)
        encoded = time.perf_counter()
        tree, doc_ids = DocTree.read(self.directory)
        tree.place(vectors[:len(docs)])
        vocab = Vocabulary.read(self.directory)
        vocab.extend(tree.paths[len(doc_ids):])
        generator = torch.Generator().manual_seed(s["seed"])
        model = self.model.grow(len(vocab), generator, torch.from_numpy(vectors[:len(docs)]))
        memory = Memory.read(self.directory)
        replay = memory.sample(round(s["replay"] * len(examples)), np.random.default_rng([s["seed"], len(doc_ids)]))
        mixed = examples + Examples([""] * len(replay.vectors), replay.text_of, replay.row_of, replay.source)
        mixed_vectors = np.concatenate([vectors, replay.vectors.astype(np.float32)])
        record = _fit(model, tree, vocab, mixed_vectors, mixed, _train_settings(s, True), cache, "add")
        record["encode_seconds"] = round(encoded - started, 2)
        runs = read_json(self.directory / TRAINING_FILE)["runs"] + [record]
        _save(directory, s, model, tree, doc_ids + [doc.doc_id for doc in docs], vocab, stats,
              memory + Memory.of(examples, vectors), runs)
        shutil.rmtree(cache, ignore_errors=True)
        return s

    def with_continual(self, **overrides: Any) -> "GenerativeIndex":
        """This index with other continual-indexing settings (``replay``, ``sam_rho``, ``add_epochs``, ``add_lr``).

        The directory is not changed; the new settings apply to documents added
        through the returned object and are persisted in the extended index.
        """
        unknown = set(overrides) - set(CONTINUAL)
        if unknown:
            raise SpecError(f"only continual settings can be changed on a built index ({', '.join(CONTINUAL)}); "
                            f"got {', '.join(sorted(unknown))}")
        settings = SCHEMA.parse({**self.settings, **overrides})
        return GenerativeIndex(self.directory, {**self.manifest, "settings": settings})

    @property
    def encoder(self):
        """The frozen sentence-transformers encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = _load_encoder(self.settings)
        return self._encoder

    def encode_queries(self, queries: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Normalized query vectors ``[Q, dim]``."""
        vectors = self.encoder.encode(list(queries), batch_size=batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return torch.from_numpy(np.asarray(vectors, dtype=np.float32))

    def id_of(self, doc_id: str) -> tuple[int, ...]:
        """The id path of ``doc_id``. Raises ``ValueError`` when it is not indexed."""
        return self.tree.paths[self.doc_ids.index(doc_id)]

    def search(self, queries: Sequence[str], k: int = 10, beam: int | None = None, batch_size: int = 64,
               **knobs: Any) -> list[Ranking]:
        if knobs:
            raise SpecError(f"unknown generative search knob(s): {', '.join(sorted(knobs))}; known: beam, batch_size")
        if not queries:
            return []
        k = min(k, len(self.doc_ids))
        beam = int(beam) if beam else max(k, DEFAULT_BEAM)
        vectors = self.encode_queries(queries)
        rankings = []
        for start in range(0, len(queries), batch_size):
            for found in beam_search(self.model, vectors[start:start + batch_size], self.trie, k, beam):
                rankings.append([(self.doc_ids[row], score) for row, score in found])
        return rankings

    @torch.no_grad()
    def id_logprobs(self, queries: Sequence[str]) -> np.ndarray:
        """Brute force: the log-probability of every document's id for each query, ``[Q, N]``."""
        sequences = self.vocab.encode(self.tree.paths)
        targets = Targets.for_sequences(sequences, self.trie)
        vectors = self.encode_queries(queries)
        out = np.zeros((len(queries), len(sequences)), dtype=np.float32)
        for q in range(len(queries)):
            expanded = vectors[q:q + 1].expand(len(sequences), -1)
            out[q] = sequence_logprobs(self.model, expanded, targets.tokens, targets.nodes, targets.lengths,
                                       self.trie).numpy()
        return out


def _new_model(s: dict, tree: DocTree, vocab: Vocabulary, doc_vectors: np.ndarray) -> IdDecoder:
    """A fresh decoder; with ``keys=tree`` its edge keys start as the id tree's centroids and document vectors."""
    sequences = vocab.encode(tree.paths)
    trie = IdTrie(sequences, len(vocab))
    keyed = s["keys"] == "tree"
    config = _decoder_config(s, doc_vectors.shape[1], len(vocab), trie.max_depth,
                             key_nodes=len(trie) if keyed else 0, key_docs=len(doc_vectors) if keyed else 0)
    model = IdDecoder(config)
    if keyed:
        node_keys = np.zeros((len(trie), doc_vectors.shape[1]), dtype=np.float32)
        sizes = np.zeros(len(trie), dtype=np.float32)
        for path, nodes in zip(tree.paths, trie.nodes(sequences)):
            for depth in range(1, len(path)):  # nodes[depth]: the internal node reached by path[:depth]
                node_keys[nodes[depth]] = tree.centroids[path[:depth - 1]][path[depth - 1]]
                sizes[nodes[depth]] += 1
        model.init_keys(torch.from_numpy(node_keys), torch.from_numpy(doc_vectors),
                        torch.from_numpy(np.log(np.maximum(sizes, 1))))
    return model


def _fit(model: IdDecoder, tree: DocTree, vocab: Vocabulary, vectors: np.ndarray, examples: Examples,
         settings: TrainSettings, cache: Path, task: str) -> dict:
    """Train on ``examples``; returns the run's record for ``training.json``."""
    sequences = vocab.encode(tree.paths)
    trie = IdTrie(sequences, len(vocab))
    started = time.perf_counter()
    history = train_decoder(model, torch.from_numpy(vectors), examples.text_of, examples.row_of,
                            Targets.for_sequences(sequences, trie), trie, settings, cache / "train",
                            desc=f"generative {task}")
    return {"task": task, "examples": examples.counts(), "documents": len(tree.paths),
            "epochs": settings.epochs, "train_seconds": round(time.perf_counter() - started, 2), "history": history}


def _save(directory: Path, settings: dict, model: IdDecoder, tree: DocTree, doc_ids: list[str], vocab: Vocabulary,
          stats: TermStats, memory: Memory, runs: list[dict]) -> None:
    save_model(model, directory, settings["encoder"])
    tree.write(directory, doc_ids)
    vocab.write(directory)
    stats.write(directory)
    memory.write(directory)
    parameters = sum(p.numel() for p in model.parameters())
    (directory / TRAINING_FILE).write_text(json.dumps({"parameters": parameters, "runs": runs}, indent=1) + "\n",
                                           encoding="utf-8")
    curves = {f"{run['task']} {n}" if n else run["task"]: [(h["step"], h["loss"]) for h in run["history"]]
              for n, run in enumerate(runs)}
    line_plot(directory / LOSS_FILE, curves, "generative index: training loss", "optimisation step", "sequence NLL")


def _views(s: dict) -> ViewSettings:
    return ViewSettings(spans=s["spans"], span_words=s["span_words"], pseudo_queries=s["pseudo_queries"],
                        seed=s["seed"])


def _train_settings(s: dict, adding: bool) -> TrainSettings:
    if adding:
        return TrainSettings(s["add_epochs"], s["batch_size"], s["add_lr"], sam_rho=s["sam_rho"], seed=s["seed"],
                             key_lr=s["key_lr"])
    return TrainSettings(s["epochs"], s["batch_size"], s["lr"], seed=s["seed"], key_lr=s["key_lr"])


def _decoder_config(s: dict, input_dim: int, vocab_size: int, depth: int, key_nodes: int,
                    key_docs: int) -> DecoderConfig:
    return DecoderConfig(input_dim=input_dim, vocab_size=vocab_size, max_depth=depth, d_model=s["d_model"],
                         layers=s["layers"], heads=s["heads"], ff_dim=s["ff_dim"], memory_slots=s["memory_slots"],
                         dropout=s["dropout"], input_dropout=s["input_dropout"], key_nodes=key_nodes,
                         key_docs=key_docs, key_scale=s["key_scale"])


def _load_encoder(s: dict):
    from indexes.dense import load_encoder

    return load_encoder({"model": s["encoder"], "max_seq_length": s["max_seq_length"]})


def _encoded(cache: Path, encoder, texts: list[str], s: dict) -> np.ndarray:
    """Encode ``texts``, or load their vectors from an interrupted run of the same build.

    With ``$RETRIEVER_ENCODE_CACHE`` set, vectors are kept there instead, keyed by the
    encoder, its input length and the texts, so builds that differ only in their
    decoder or training settings encode once (the cache is never cleaned up).
    """
    path = cache / VECTORS_FILE
    if os.environ.get("RETRIEVER_ENCODE_CACHE"):  # serves a resumed build as well
        digest = hashlib.sha256(json.dumps([s["encoder"], s["max_seq_length"], texts]).encode()).hexdigest()[:24]
        path = Path(os.environ["RETRIEVER_ENCODE_CACHE"]) / f"{digest}.safetensors"
    if path.is_file():
        vectors = load_file(str(path))["vectors"].numpy()
        if len(vectors) == len(texts):
            return vectors
    vectors = encode_texts(encoder, texts, desc="encoding training texts")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"vectors": torch.from_numpy(vectors)}, str(path.parent / f".{path.name}.tmp"))
    os.replace(path.parent / f".{path.name}.tmp", path)
    return vectors
