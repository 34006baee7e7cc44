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
    last/            the latest checkpoint, with optimizer.safetensors + state.json (resume)
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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retriever.train.sparse.checkpoint import load_state, save_checkpoint
from indexes.sparse.encoder import DEFAULT_MODEL, DocEncoder
from retriever.train.sparse.evaluation import DevSet, plot_curves
from retriever.train.sparse.examples import labeled_queries, pseudo_queries, sample_batch
from retriever.train.sparse.losses import RANKING_LOSSES, REGULARIZERS, estimated_nnz, ramp, ranking_loss, sparsity_loss
from retriever.train.sparse.teachers import TeacherEnsemble
from indexes.sparse.queries import write_query_weights
from retriever.core.errors import SpecError
from retriever.core.progress import progress

REGIMES = ("label-free", "supervised")
QUERY_WEIGHTS = ("idf", "learned")
TRAINING_FILE = "training.json"


@dataclass
class TrainSettings:
    """What defines a training run (persisted in ``training.json``)."""

    regime: str = "supervised"
    split: str = "train"
    dev_split: str = "dev"
    model: str = DEFAULT_MODEL
    max_length: int = 128
    eval_max_length: int = 256
    steps: int = 600
    queries_per_step: int = 8
    docs_per_query: int = 6
    pool: int = 50
    depth: int = 200
    teachers: str = "bm25:1,dense:1"
    loss: str = "kl"
    teacher_temperature: float = 0.2
    initial_scale: float = 0.2
    scale_lr: float = 1e-2
    lr: float = 2e-5
    warmup: int = 50
    regularizer: str = "idf-flops"
    reg_weight: float = 1e-4
    reg_warmup: int = 200
    l0_target: int = 200
    flops_sample: int = 4096
    label_weight: float = 1.0
    pseudo_queries: int = 5000
    eval_every: int = 100
    eval_start: bool = True
    select: str = "dev"
    dev_queries: int = 0
    dev_pool: int = 0
    query_weights: str = "idf"
    query_lr: float = 5e-3
    seed: int = 0

    def __post_init__(self) -> None:
        choices = {"regime": REGIMES, "loss": RANKING_LOSSES, "regularizer": REGULARIZERS, "select": ("dev", "last"),
                   "query_weights": QUERY_WEIGHTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SpecError(f"train sparse: {name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.steps < 1 or self.queries_per_step < 1 or self.docs_per_query < 1 or self.eval_every < 1:
            raise SpecError("train sparse: steps, queries_per_step, docs_per_query and eval_every must be >= 1")

    @property
    def teacher_weights(self) -> dict[str, float]:
        """``"bm25:1,dense:1"`` as ``{"bm25": 1.0, "dense": 1.0}``."""
        out = {}
        for part in filter(None, (p.strip() for p in self.teachers.split(","))):
            name, _, weight = part.partition(":")
            try:
                out[name.strip()] = float(weight or 1)
            except ValueError:
                raise SpecError(f"train sparse: bad teacher weight in {part!r}") from None
        return out

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "TrainSettings":
        """Settings from ``name -> value`` pairs (strings are converted to each field's type)."""
        types = {f.name: type(f.default) for f in fields(cls)}
        unknown = set(options) - set(types)
        if unknown:
            raise SpecError(f"train sparse: unknown setting(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(types)}")
        try:
            return cls(**{name: _convert(types[name], value) for name, value in options.items()})
        except ValueError as e:
            raise SpecError(f"train sparse: bad setting value ({e})") from None


def _convert(kind: type, value: Any) -> Any:
    """A setting value from its string form (``true`` / ``false`` for flags)."""
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{value!r} is not a boolean")
        return value.lower() in ("true", "1", "yes")
    return kind(value)


def train_sparse(engine, dataset, out_dir: str | Path, settings: TrainSettings) -> dict[str, Any]:
    """Train (or resume training) a document encoder; returns the report written to ``training.json``.

    Args:
        engine: an open engine over the dataset's corpus, with the teacher indexes
            (``bm25``, ``dense``; a ``sparse`` one for the ``splade`` teacher).
        dataset: the dataset (its ``settings.split`` qrels for supervised training,
            its ``settings.dev_split`` qrels for model selection; never test).
        out_dir: where checkpoints, ``training.json`` and ``curves.png`` go.
        settings: the run's settings; a run found in ``out_dir/last`` is resumed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = engine.corpus
    torch.manual_seed(settings.seed)
    if settings.regime == "supervised":
        queries = labeled_queries(*dataset.split(settings.split), corpus)
    else:
        queries = pseudo_queries(corpus, settings.pseudo_queries, settings.seed)
    started = time.perf_counter()
    teacher = TeacherEnsemble(engine, settings.teacher_weights, settings.depth).prepare([q.text for q in queries])
    teacher_seconds = time.perf_counter() - started
    resume = (out / "last" / "state.json").exists()
    encoder = DocEncoder.load(str(out / "last") if resume else settings.model, max_length=settings.max_length)
    first_stage = engine.indexes["bm25"].search if "bm25" in engine.indexes else None
    dev = DevSet.build(encoder, corpus, dataset, settings.dev_split, settings.eval_max_length, settings.dev_queries,
                       settings.dev_pool, first_stage)
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
        state, extra = load_state(out / "last", optimizer)
        scale.data.copy_(extra["scale"])
        if table.learned:
            table.log_factor.data.copy_(extra["log_factor"])
    if not state["evaluations"] and dev.available and settings.eval_start:
        state["evaluations"].append({"step": 0, **dev.evaluate(encoder, table.factors())})
    encoder.model.train()
    bar = progress(total=settings.steps, initial=state["step"], desc="training sparse encoder", unit="step")
    while state["step"] < settings.steps:
        step = state["step"] + 1
        tick = time.perf_counter()
        record = _train_step(encoder, optimizer, (scale, table), corpus, queries, query_terms, vocabulary, teacher,
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
              **{k: v for k, v in state.items() if k != "param_groups"}}
    (out / TRAINING_FILE).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    plot_curves(report, out / "curves.png")
    return report


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


def _train_step(encoder: DocEncoder, optimizer, parameters, corpus, queries, query_terms, vocabulary, teacher,
                settings: TrainSettings, step: int) -> dict[str, float]:
    """One optimization step; returns its losses and the batch's mean non-zeros per document."""
    scale, table = parameters
    rng = random.Random(settings.seed * 1_000_003 + step)
    torch.manual_seed(settings.seed * 1_000_003 + step)
    batch = sample_batch(queries, teacher, rng, settings.queries_per_step, settings.docs_per_query,
                         settings.pool, settings.label_weight if settings.regime == "supervised" else 0.0)
    terms, columns, query_matrix = _columns([query_terms[q] for q in batch.queries], vocabulary, settings.flops_sample,
                                            rng, table)
    docs = encoder.weights(encoder.tokenize([d.contents for d in corpus.rows(batch.rows.tolist())]), terms)
    student = query_matrix @ docs[:, :query_matrix.shape[1]].T
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
        save_checkpoint(out / "best", encoder.model, encoder.tokenizer)
        if factors is not None:
            write_query_weights(out / "best", factors, encoder.vocabulary_checksum)
    extra = {"scale": scale, **({"log_factor": table.log_factor} if table.learned else {})}
    save_checkpoint(out / "last", encoder.model, encoder.tokenizer, optimizer, extra, state)
    if factors is not None:
        write_query_weights(out / "last", factors, encoder.vocabulary_checksum)


def run_training(engine_dir: str | Path, dataset_name: str, out_dir: str | Path, options: dict[str, str],
                 data_dir: str | None = None) -> dict[str, Any]:
    """Open (or build) the teacher engine for a dataset, then :func:`train_sparse` (the CLI entry point).

    ``options`` are :class:`TrainSettings` fields as strings (``{"steps": "600"}``).
    The engine gets the teacher indexes it lacks (``bm25``, ``dense``; ``sparse`` for
    the ``splade`` teacher).
    """
    from retriever.core.datasets import load_dataset
    from retriever.api import Engine
    from retriever.engine.state import STATE

    settings = TrainSettings.from_options(options)
    dataset = load_dataset(dataset_name, data_dir=data_dir)
    needed = [name for name in ("bm25", "dense") if name in settings.teacher_weights]
    needed += ["sparse"] if "splade" in settings.teacher_weights else []
    if not (Path(engine_dir) / STATE).exists():
        engine = Engine.build(engine_dir, dataset.documents(), needed)
    else:
        engine = Engine.open(engine_dir)
        missing = [name for name in needed if name not in engine.indexes]
        if missing:
            engine.build_indexes(missing)
    return train_sparse(engine, dataset, out_dir, settings)
