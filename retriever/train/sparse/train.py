"""Fine-tuning the document encoder for inference-free retrieval (``retriever train sparse``).

Queries are never encoded by the model: a query is its tokens weighted by their IDF
in the corpus, exactly as at search time, and the student score is
``sum_t idf(t) * w_d(t)``. The encoder learns from a normalized ensemble of
teachers (:mod:`retriever.train.sparse.teachers`) with a ranking distillation loss over
every document of the batch, plus an IDF-aware FLOPS or an l0-style penalty
(:mod:`retriever.train.sparse.losses`), on pseudo-queries (label-free) or qrels
(supervised) (:mod:`retriever.train.sparse.examples`).

With ``query_weights=learned`` a per-token factor table ``f`` is learned jointly
with the encoder: the student score becomes ``sum_t idf(t) * f(t) * w_d(t)``, with
``f = exp(a)``, ``a`` starting at 0 (plain IDF) and trained at its own learning rate
``query_lr``. The table is written next to each checkpoint
(``query_weights.safetensors``, see :mod:`indexes.sparse.queries`) and an index
built with ``sparse(model=RUN/best,query_weights=learned)`` looks it up at query
time: still no model runs for a query.

Training reads documents up to ``max_length`` tokens (128: a step costs less than
half of one at 256); every ``eval_every`` steps the corpus is re-encoded at
``eval_max_length`` (the index's length, 256) and the dev split scored exactly
(nDCG@10, average non-zeros per document; see :mod:`retriever.train.sparse.evaluation`);
the best checkpoint by dev nDCG@10 (or the last one, ``select=last``) is kept.
``dev_queries`` / ``dev_pool`` reduce the dev evaluation to a sample of queries
re-ranking BM25's top documents (a pilot protocol for large encoders on a CPU).
Output directory::

    best/            the selected model: a loadable HF model directory (safetensors + tokenizer;
                     query_weights.safetensors with query_weights=learned)
    last/            the latest checkpoint: the model, plus state.safetensors + state.json (resume;
                     see :mod:`retriever.core.checkpoint`)
    training.json    settings, per-step losses and sparsity, evaluations, timings
    curves.png       loss, non-zeros per document and dev nDCG@10 against steps

Example:
    >>> report = train_sparse("work/sparse/nfcorpus", "nfcorpus", "work/sparse/nf-sup",
    ...                       TrainSettings(regime="supervised", steps=600))
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from indexes.sparse.encoder import DEFAULT_MODEL, DocEncoder
from indexes.sparse.queries import write_query_weights
from retriever.core.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from retriever.core.plots import Panel, panels
from retriever.train.sparse.evaluation import DevSet
from retriever.train.sparse.examples import labeled_queries, pseudo_queries, sample_batch
from retriever.train.sparse.losses import RANKING_LOSSES, REGULARIZERS, estimated_nnz, ramp, ranking_loss, sparsity_loss
from retriever.train.sparse.teachers import TEACHERS, TeacherEnsemble
from retriever.core.errors import SettingError
from retriever.core.progress import progress
from retriever.core.settings import above, at_least, from_strings, one_of, option, schema_of, validate

REGIMES = ("label-free", "supervised")
TRAINING_FILE = "training.json"


def teacher_weights(text: str) -> dict[str, float]:
    """``"bm25:1,dense:0.5"`` as ``{"bm25": 1.0, "dense": 0.5}``.

    Raises:
        SettingError: an unknown teacher, a bad weight, or none at all.
    """
    problem = _teacher_problem(text)
    if problem:
        raise SettingError("train sparse", "teachers", f"{problem}, got {text!r}")
    return {name.strip(): float(weight or 1) for name, _, weight in
            (part.strip().partition(":") for part in text.split(",") if part.strip())}


def _teacher_problem(text: str) -> str | None:
    parts = [part.strip().partition(":") for part in text.split(",") if part.strip()]
    if not parts:
        return "must name at least one teacher"
    for name, _, weight in parts:
        if name.strip() not in TEACHERS:
            return f"must name teachers among {', '.join(TEACHERS)}"
        try:
            if weight and not math.isfinite(float(weight)):
                return "must give finite weights"
        except ValueError:
            return "must be name:weight pairs with numeric weights"
    return None


@dataclass
class TrainSettings:
    """What defines a training run (persisted in ``training.json``); checked by :data:`SCHEMA`.

    ``teachers`` weighs the teacher kinds (``bm25``, ``dense``, ``splade``); ``bm25_index``,
    ``dense_index`` and ``splade_index`` name the engine indexes they read.
    """

    regime: str = option("supervised", one_of(*REGIMES))
    split: str = "train"
    dev_split: str = "dev"
    dev_holdout: int = option(0, at_least(0), "hold out this many seeded training queries as the dev set "
                              "(for datasets without a dev split, e.g. SciFact); 0: use dev_split")
    model: str = DEFAULT_MODEL
    max_length: int = option(128, at_least(3))
    eval_max_length: int = option(256, at_least(3))
    steps: int = option(600, at_least(1))
    queries_per_step: int = option(8, at_least(1))
    docs_per_query: int = option(6, at_least(1))
    pool: int = option(50, at_least(1))
    depth: int = option(200, at_least(1))
    teachers: str = option("bm25:1,dense:1", _teacher_problem,
                           "teacher kinds and weights, e.g. bm25:1,dense:1")
    bm25_index: str = option("bm25", help="the engine index the bm25 teacher reads")
    dense_index: str = option("dense", help="the engine index the dense teacher reads")
    splade_index: str = option("sparse", help="the engine sparse index the splade teacher reads")
    loss: str = option("kl", one_of(*RANKING_LOSSES))
    teacher_temperature: float = option(0.2, above(0))
    initial_scale: float = option(0.2, above(0))
    scale_lr: float = option(1e-2, at_least(0))
    lr: float = option(2e-5, above(0))
    warmup: int = option(50, at_least(0))
    regularizer: str = option("idf-flops", one_of(*REGULARIZERS))
    reg_weight: float = option(1e-4, at_least(0))
    reg_warmup: int = option(200, at_least(0))
    l0_target: int = option(200, at_least(1))
    flops_sample: int = option(4096, at_least(0))
    label_weight: float = option(1.0, at_least(0))
    pseudo_queries: int = option(5000, at_least(1))
    eval_every: int = option(100, at_least(1))
    eval_start: bool = True
    select: str = option("dev", one_of("dev", "last"))
    dev_queries: int = option(0, at_least(0), "dev evaluation on a fixed sample of this many queries (0: all)")
    dev_pool: int = option(0, at_least(0), "dev evaluation re-ranks BM25's top dev_pool documents (0: exact)")
    query_weights: str = option("idf", one_of("idf", "learned"), "query-term weights: idf, or learned (idf x factor)")
    query_lr: float = option(5e-3, above(0), "peak learning rate of the learned query-term factors")
    lexical: float = option(0.0, at_least(0), "train (and select on dev) with this x BM25 word-piece saturation "
                            "added to each document vector, as the index's lexical=b adds it (0: learned only)")
    seed: int = option(0, at_least(0))

    def __post_init__(self) -> None:
        validate(self, SCHEMA)

    @property
    def teacher_weights(self) -> dict[str, float]:
        """``"bm25:1,dense:1"`` as ``{"bm25": 1.0, "dense": 1.0}``."""
        return teacher_weights(self.teachers)

    @property
    def teacher_indexes(self) -> dict[str, str]:
        """Teacher kind -> the engine index it reads, for the teachers in use."""
        names = {"bm25": self.bm25_index, "dense": self.dense_index, "splade": self.splade_index}
        return {kind: names[kind] for kind in self.teacher_weights}

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "TrainSettings":
        """Settings from ``name -> value`` pairs (strings are converted to each field's type)."""
        return from_strings(cls, SCHEMA, options)


SCHEMA = schema_of(TrainSettings, "train sparse")


def train_sparse(engine, dataset, out_dir: str | Path, settings: TrainSettings) -> dict[str, Any]:
    """Train (or resume training) a document encoder; returns the report written to ``training.json``.

    Args:
        engine: an open engine over the dataset's corpus, with the teacher indexes
            (``settings.bm25_index``, ``settings.dense_index``; ``settings.splade_index``
            for the ``splade`` teacher).
        dataset: the dataset (its ``settings.split`` qrels for supervised training,
            its ``settings.dev_split`` qrels for model selection; never test).
        out_dir: where checkpoints, ``training.json`` and ``curves.png`` go.
        settings: the run's settings; a run found in ``out_dir/last`` is resumed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = engine.corpus
    torch.manual_seed(settings.seed)
    training, judged = _training_and_dev(dataset, settings)
    if settings.regime == "supervised":
        queries = labeled_queries(*training, corpus)
    else:
        queries = pseudo_queries(corpus, settings.pseudo_queries, settings.seed)
    started = time.perf_counter()
    teacher = TeacherEnsemble(engine, settings.teacher_weights, settings.depth,
                              settings.teacher_indexes).prepare([q.text for q in queries])
    teacher_seconds = time.perf_counter() - started
    resume = find_checkpoint(out / "last") is not None
    encoder = DocEncoder.load(str(out / "last") if resume else settings.model, max_length=settings.max_length)
    first_stage = engine.indexes[settings.bm25_index].search if settings.bm25_index in engine.indexes else None
    dev = DevSet.build(encoder, corpus, judged, settings.eval_max_length, settings.dev_queries, settings.dev_pool,
                       first_stage, settings.lexical)
    query_terms = [dev.query_encoder.token_ids(q.text) for q in queries]
    vocabulary = np.setdiff1d(np.arange(encoder.vocab_size), encoder.special_ids)
    scale = torch.nn.Parameter(torch.tensor(math.log(settings.initial_scale)))
    table = QueryTable(dev.query_encoder.idf, settings.query_weights == "learned")
    groups = [{"params": list(encoder.model.parameters()), "weight_decay": 0.01},
              {"params": [scale], "weight_decay": 0.0}]
    if table.learned:
        groups.append({"params": [table.log_factor], "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=settings.lr)
    state: dict[str, Any] = {"step": 0, "steps": [], "evaluations": [], "train_seconds": 0.0}
    if resume:
        found = load_checkpoint(out / "last", optimizer=optimizer)
        state = found.meta
        scale.data.copy_(found.extra["scale"])
        if table.learned:
            table.log_factor.data.copy_(found.extra["log_factor"])
    if not state["evaluations"] and dev.available and settings.eval_start:
        state["evaluations"].append({"step": 0, **dev.evaluate(encoder, table.factors())})
    encoder.model.train()
    bar = progress(total=settings.steps, initial=state["step"], desc="training sparse encoder", unit="step")
    while state["step"] < settings.steps:
        step = state["step"] + 1
        tick = time.perf_counter()
        record = _train_step(encoder, optimizer, (scale, table), dev, queries, query_terms, vocabulary, teacher,
                             settings, step)
        state["train_seconds"] += time.perf_counter() - tick
        state["steps"].append(record)
        state["step"] = step
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", nnz=f"{record['nnz']:.0f}")
        if step % settings.eval_every == 0 or step == settings.steps:
            _checkpoint(encoder, optimizer, (scale, table), state, out, dev, settings)
    bar.close()
    report = {"settings": asdict(settings), "examples": len(queries), "teacher_seconds": round(teacher_seconds, 1),
              **state}
    (out / TRAINING_FILE).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    _plot(report, out / "curves.png")
    return report


def _training_and_dev(dataset, settings: TrainSettings) -> tuple[tuple[dict, dict] | None, tuple[dict, dict] | None]:
    """(queries, qrels) to train on (None for label-free) and to select on (None: no dev set).

    With ``dev_holdout`` a fixed seeded sample of the training split is the dev set and is
    left out of training; else the ``dev_split`` qrels, where the dataset has them.
    """
    training = dataset.split(settings.split) if settings.regime == "supervised" or settings.dev_holdout else None
    if settings.dev_holdout:
        queries, qrels = training
        if settings.dev_holdout >= len(qrels):
            raise SettingError("train sparse", "dev_holdout",
                               f"must be below the {len(qrels)} queries of split {settings.split!r}")
        held = set(random.Random(settings.seed).sample(sorted(qrels), settings.dev_holdout))
        keep = sorted(set(qrels) - held)
        return ({q: queries[q] for q in keep}, {q: qrels[q] for q in keep}), \
            ({q: queries[q] for q in sorted(held)}, {q: qrels[q] for q in sorted(held)})
    judged = dataset.split(settings.dev_split) if settings.dev_split in dataset.qrels else None
    return training, judged


class QueryTable:
    """The query-term weights the student scores with: IDF, times ``exp(log_factor)`` when learned."""

    def __init__(self, idf: np.ndarray, learned: bool):
        self.idf, self.learned = torch.from_numpy(np.asarray(idf, dtype=np.float32)), learned
        self.log_factor = torch.nn.Parameter(torch.zeros(len(idf)), requires_grad=learned)

    def weights(self, ids: torch.Tensor) -> torch.Tensor:
        """Differentiable weights of vocabulary ``ids``."""
        return self.idf[ids] * self.log_factor[ids].exp() if self.learned else self.idf[ids]

    def factors(self) -> np.ndarray | None:
        """The learned factor table (None with IDF weights)."""
        return self.log_factor.detach().exp().numpy() if self.learned else None


def _plot(report: dict[str, Any], path: Path) -> None:
    """Loss, mean non-zeros per document and dev nDCG@10 against the training step (PNG)."""
    steps = report["steps"]
    evaluations = [e for e in report["evaluations"] if "nDCG@10" in e]
    panels(path, [
        Panel({"ranking": [(s["step"], s["ranking"]) for s in steps],
               "total": [(s["step"], s["loss"]) for s in steps]}, "loss", "step", "loss"),
        Panel({"batch": [(s["step"], s["nnz"]) for s in steps],
               "corpus": [(e["step"], e["nnz"]) for e in evaluations]}, "non-zeros per document", "step", "non-zeros"),
        Panel({"dev": [(e["step"], e["nDCG@10"]) for e in evaluations]},
              f"dev nDCG@10 ({report['settings']['dev_split']})", "step", "nDCG@10")])


def _train_step(encoder: DocEncoder, optimizer, parameters, dev: DevSet, queries, query_terms, vocabulary, teacher,
                settings: TrainSettings, step: int) -> dict[str, float]:
    """One optimization step; returns its losses and the batch's mean non-zeros per document.

    The student scores learned weights plus, with ``settings.lexical`` = b > 0, b x the documents'
    word-piece BM25 part (``dev.lexical``, already weighted); the sparsity penalty sees the learned part only.
    """
    scale, table = parameters
    corpus = dev.corpus
    rng = random.Random(settings.seed * 1_000_003 + step)
    torch.manual_seed(settings.seed * 1_000_003 + step)
    batch = sample_batch(queries, teacher, rng, settings.queries_per_step, settings.docs_per_query,
                         settings.pool, settings.label_weight if settings.regime == "supervised" else 0.0)
    terms, columns, query_matrix = _columns([query_terms[q] for q in batch.queries], vocabulary, settings.flops_sample,
                                            rng, table)
    docs = encoder.weights(encoder.tokenize([d.contents for d in corpus.rows(batch.rows.tolist())]), terms)
    scored = docs[:, :query_matrix.shape[1]]
    if dev.lexical is not None:
        lexical = dev.lexical[batch.rows][:, terms[:query_matrix.shape[1]].numpy()].toarray()
        scored = scored + torch.from_numpy(lexical.astype(np.float32))
    student = query_matrix @ scored.T
    rank = ranking_loss(settings.loss, student, torch.from_numpy(batch.targets), scale.exp(),
                        settings.teacher_temperature)
    reg = sparsity_loss(settings.regularizer, docs, columns, settings.l0_target)
    loss = rank + ramp(step, settings.reg_weight, settings.reg_warmup) * reg
    for group, peak in zip(optimizer.param_groups, (settings.lr, settings.scale_lr, settings.query_lr)):
        group["lr"] = peak * _schedule(step, settings)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(encoder.model.parameters(), 1.0)
    optimizer.step()
    return {"step": step, "loss": loss.item(), "ranking": rank.item(), "sparsity": reg.item(),
            "nnz": estimated_nnz(docs, columns).mean().item(), "scale": scale.exp().item()}


def _columns(queries: list[np.ndarray], vocabulary: np.ndarray, sample: int, rng: random.Random,
             table: QueryTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The vocabulary columns a step computes: the batch's query terms, then a uniform sample of the others.

    Returns the column ids, how many vocabulary entries each column stands for, and
    the queries' term weights over the query-term columns (queries x query terms;
    differentiable in the learned table).
    """
    query_terms = np.unique(np.concatenate(queries)).astype(np.int64)
    others = np.setdiff1d(vocabulary, query_terms)
    picked = np.array(sorted(rng.sample(range(len(others)), min(sample, len(others)))), dtype=np.int64)
    terms = torch.from_numpy(np.concatenate([query_terms, others[picked]]))
    columns = torch.ones(len(terms))
    columns[len(query_terms):] = len(others) / max(len(picked), 1)
    rows = torch.from_numpy(np.concatenate([np.full(len(ids), i) for i, ids in enumerate(queries)]).astype(np.int64))
    ids = torch.from_numpy(np.concatenate(queries).astype(np.int64))
    positions = torch.from_numpy(np.searchsorted(query_terms, ids.numpy()))
    matrix = torch.zeros((len(queries), len(query_terms))).index_put((rows, positions), table.weights(ids))
    return terms, columns, matrix


def _schedule(step: int, settings: TrainSettings) -> float:
    """The learning-rate multiplier: linear warm-up, then linear decay to a tenth of the peak."""
    if step <= settings.warmup:
        return step / max(settings.warmup, 1)
    remaining = (settings.steps - step) / max(settings.steps - settings.warmup, 1)
    return 0.1 + 0.9 * remaining


def _checkpoint(encoder: DocEncoder, optimizer, parameters, state: dict, out: Path, dev,
                settings: TrainSettings) -> None:
    """Evaluate on dev (when there is one), save ``last``, and ``best`` when it improved."""
    scale, table = parameters
    factors = table.factors()
    encoder.model.eval()
    evaluation = ({"step": state["step"], **dev.evaluate(encoder, factors)} if dev.available
                  else {"step": state["step"]})
    encoder.model.train()
    state["evaluations"].append(evaluation)
    previous = [e.get("nDCG@10", -1.0) for e in state["evaluations"][:-1] if e.get("saved")]
    improved = settings.select == "last" or not dev.available or evaluation["nDCG@10"] > max(previous, default=-1.0)
    if improved:
        evaluation["saved"] = True
        save_checkpoint(out / "best", files=lambda tmp: _save_model(encoder, tmp, factors))
    extra = {"scale": scale, **({"log_factor": table.log_factor} if table.learned else {})}
    save_checkpoint(out / "last", optimizer=optimizer, meta=state, extra=extra,
                    files=lambda tmp: _save_model(encoder, tmp, factors))


def _save_model(encoder: DocEncoder, directory: Path, factors: np.ndarray | None) -> None:
    """The encoder as a loadable Hugging Face model directory (safetensors + tokenizer), with the
    learned query-term factor table when there is one."""
    encoder.model.save_pretrained(directory, safe_serialization=True)
    encoder.tokenizer.save_pretrained(directory)
    if factors is not None:
        write_query_weights(directory, factors, encoder.vocabulary_checksum)


def run_training(engine_dir: str | Path, dataset_name: str, out_dir: str | Path, options: dict[str, str],
                 data_dir: str | None = None) -> dict[str, Any]:
    """Open (or build) the teacher engine for a dataset, then :func:`train_sparse` (the CLI entry point).

    ``options`` are :class:`TrainSettings` fields as strings (``{"steps": "600"}``),
    checked before anything is built. The engine gets the teacher indexes it lacks
    (``bm25_index``, ``dense_index``; ``splade_index`` for the ``splade`` teacher),
    each built with its kind's default settings.
    """
    from retriever.core.datasets import load_dataset
    from retriever.api import Engine
    from retriever.engine.state import STATE

    settings = TrainSettings.from_options(options)
    dataset = load_dataset(dataset_name, data_dir=data_dir)
    kinds = {"bm25": "bm25", "dense": "dense", "splade": "sparse"}
    needed = {name: kinds[teacher] for teacher, name in settings.teacher_indexes.items()}
    specs = {name: kind if name == kind else f"{name}={kind}" for name, kind in needed.items()}
    if not (Path(engine_dir) / STATE).exists():
        engine = Engine.build(engine_dir, dataset.documents(), list(specs.values()))
    else:
        engine = Engine.open(engine_dir)
        missing = [spec for name, spec in specs.items() if name not in engine.indexes]
        if missing:
            engine.build_indexes(missing)
    return train_sparse(engine, dataset, out_dir, settings)
