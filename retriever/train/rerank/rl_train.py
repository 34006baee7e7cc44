"""Train the reranking policy: behaviour cloning from qrels, then group-relative REINFORCE.

1. **Episodes** (:mod:`retriever.train.rerank.episodes`): every reranker call of the
   hybrid retrieval and of the no-LLM loop on the ``dev`` split, with cross-encoder
   logits cached on disk. A share of the questions (``holdout``) is kept apart to
   watch generalization; the rest is trained on.
2. **Behaviour cloning** (warm start): maximize the exact log-probability of the
   qrels decision: the gold candidates (best cross-encoder score first), then STOP.
3. **REINFORCE with group-relative advantages** (GRPO-style): for each episode draw
   ``group`` decisions from the policy, score each with the reward, and push up the
   log-probability of those above the group's mean reward
   (``advantage = reward - mean``; no learned critic). The reward of a passed set
   ``S`` is ``both * [every gold document in S] + answer * [the answer string
   occurs in S's text] - cost * |S|`` (the answer term is skipped for yes/no answers),
   plus, with ``reader_f1 > 0``, ``reader_f1 * F1`` where F1 scores the answer a language
   model reads from ``S`` (the loop's own reader, against the answer and its aliases:
   :mod:`retriever.train.rerank.reader_reward`). Every LM call is kept in a JSONL cache
   (default ``<out>.train/lm-cache.jsonl``), so a passed set is read once across epochs and reruns.

Every epoch is checkpointed (:mod:`retriever.core.checkpoint`) into
``<out>.train/last/``, seeded by ``(seed, epoch)``, so a rerun resumes and ends with the
same policy. ``reward.png`` and ``k.png`` show the curves; ``policy.json`` keeps
the settings, times and per-epoch results. The per-epoch ``train_reward`` / ``holdout_reward``
are the cheap terms only (comparable between runs with and without the reader); with the
reader, ``*_f1`` and ``*_total`` (cheap + ``reader_f1`` x F1) are measured at the end of
cloning and after every REINFORCE epoch, and ``sampled_reward`` is the reward trained on.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from retriever.core.errors import InputError
from retriever.core.progress import progress
from retriever.core.checkpoint import load_checkpoint, save_checkpoint
from retriever.core.plots import line_plot
from retriever.core.settings import above, at_least, option, schema_of, validate, within
from retriever.fusion import first_stage_problem
from retriever.train.rerank.episodes import Episode, collect_calls, episodes
from retriever.train.rerank.reader_reward import ReaderF1, open_reader
from retriever.rerank.plackett import log_prob
from retriever.rerank.policy import Policy, PolicyConfig
from retriever.rerank.scores import CrossScorer, check_model_dir

if TYPE_CHECKING:
    from retriever.generate import Generator


@dataclass(frozen=True)
class RLSettings:
    """Settings of one policy training run (saved in ``policy.json``), checked by :data:`SCHEMA`.

    Attributes:
        using: the first stage whose hits the reranker sees.
        candidates: candidates per call (the loop's ``candidates``).
        passages: evidence the loop keeps per hop while calls are recorded.
        limit: only the first ``limit`` questions of the split.
        holdout: share of the questions kept apart for monitoring.
        hidden: hidden units of the item scorer (0: linear).
        max_k: most documents the policy passes.
        min_k: fewest documents it passes.
        bc_epochs: behaviour-cloning epochs (warm start).
        bc_lr: behaviour-cloning learning rate.
        rl_epochs: REINFORCE epochs.
        lr: REINFORCE learning rate.
        group: decisions sampled per episode (the group of the group-relative advantage).
        batch: episodes per update.
        both: reward when every gold document is passed.
        answer: reward when the answer string occurs in the passed text.
        cost: reward subtracted per document passed.
        reader_f1: weight of the reader's answer F1 on the passed set (0: the cheap reward alone;
            above 0 needs a language model, ``--llm``).
        seed: seeds the initial weights, the holdout split, the episode order and the sampling.
        threads: torch CPU threads.
        init: a trained policy directory to start from instead of fresh weights: its weights and
            feature standardization (e.g. a cheap-reward policy fine-tuned with ``reader_f1``, with
            ``bc_epochs=0``); it must read the same cross-encoder and have the same sizes.
    """

    using: str = option("hybrid", first_stage_problem)
    candidates: int = option(30, at_least(1))
    passages: int = option(5, at_least(1))
    limit: int | None = option(None, at_least(1))
    holdout: float = option(0.2, within(0, 1, high_open=True))
    hidden: int = option(16, at_least(0))
    max_k: int = option(5, at_least(1))
    min_k: int = option(1, at_least(0))
    bc_epochs: int = option(20, at_least(0))
    bc_lr: float = option(0.01, above(0))
    rl_epochs: int = option(30, at_least(0))
    lr: float = option(0.003, above(0))
    group: int = option(8, at_least(1))
    batch: int = option(32, at_least(1))
    both: float = 1.0
    answer: float = 0.5
    cost: float = 0.1
    reader_f1: float = option(0.0, at_least(0))
    seed: int = 7
    threads: int = option(1, at_least(1))
    init: str | None = None

    def __post_init__(self) -> None:
        validate(self, SCHEMA)


def _min_k_within_max_k(settings) -> tuple[str, str] | None:
    if settings["min_k"] > settings["max_k"]:
        return "min_k", f"must be at most max_k ({settings['max_k']}), got {settings['min_k']}"
    return None


SCHEMA = schema_of(RLSettings, "train reranker --rl", rules=(_min_k_within_max_k,))


def cheap_reward(episode: Episode, order: Sequence[int], settings: RLSettings) -> float:
    """The reward terms that need no model: all gold passed, answer string passed, documents passed."""
    picked = list(order)
    both = episode.n_gold > 0 and int(episode.gold[picked].sum()) >= episode.n_gold
    answer = episode.has_answer and bool(episode.answer[picked].any())
    return settings.both * both + settings.answer * answer - settings.cost * len(picked)


def reward(episode: Episode, order: Sequence[int], settings: RLSettings, reader: ReaderF1 | None = None) -> float:
    """The reward of passing ``order`` (see the module docstring); ``reader`` scores the F1 term.

    Raises:
        InputError: ``settings.reader_f1 > 0`` without a reader.
    """
    value = cheap_reward(episode, order, settings)
    if settings.reader_f1 > 0:
        if reader is None:
            raise InputError("reader_f1 > 0 needs a reader (a language model: --llm)")
        value += settings.reader_f1 * reader(episode, list(order))
    return value


def train_policy(engine_dir: str | Path, dataset_name: str, split: str, cross: str | Path, out: str | Path,
                 settings: RLSettings = RLSettings(), data_dir: str | None = None, overwrite: bool = False,
                 llm: "str | Generator | None" = None, lm_cache: str | Path | None = None,
                 llm_settings: dict | None = None) -> dict:
    """Collect episodes on ``split``, clone the qrels, run REINFORCE; save the policy to ``out``.

    Args:
        engine_dir, dataset_name, split: where the episodes come from (never a test split).
        cross: the cross-encoder whose scores the policy reads.
        out: the policy directory to write.
        settings: the run's settings.
        data_dir: a data root to look in first.
        overwrite: replace ``out`` if it exists.
        llm: the reader of the reader-F1 reward (what :func:`retriever.generate.load_generator`
            takes); needed exactly when ``settings.reader_f1 > 0``.
        lm_cache: the LM-call cache file (default ``<out>.train/lm-cache.jsonl``).
        llm_settings: backend settings for ``llm``, e.g. ``{"threads": 1}``.

    Returns:
        The training summary (also in ``<out>/policy.json`` under ``training``).

    Raises:
        InputError: a test split; ``reader_f1 > 0`` without ``llm``, or ``llm`` with ``reader_f1 == 0``.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    from retriever.core.datasets import load_dataset
    from retriever.api import Engine

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if split == "test":
        raise InputError("the reranking policy is never trained on a test split")
    if (settings.reader_f1 > 0) != (llm is not None):
        raise InputError("the reader-F1 reward needs both reader_f1 > 0 (--set reader_f1=W) and a language model "
                         f"(--llm); got reader_f1={settings.reader_f1} and llm={llm!r}")
    cross_dir = check_model_dir(cross)
    torch.set_num_threads(settings.threads)
    work = out.parent / f"{out.name}.train"
    started = time.perf_counter()
    dataset = load_dataset(dataset_name, data_dir=data_dir)
    with Engine.open(engine_dir) as engine:
        calls = collect_calls(engine, dataset, split, work / "calls.jsonl", settings.using, settings.candidates,
                              settings.passages, limit=settings.limit)
        indexes = tuple(calls[0].signals) if calls else ()
        scorer = CrossScorer(cross_dir, cache_dir=work / "scores")
        data = episodes(engine, dataset, split, calls, scorer, indexes)
        reader = None if llm is None else open_reader(
            engine, llm, lm_cache or work / "lm-cache.jsonl", settings.using, settings.passages,
            **(llm_settings or {}))
        prepared = time.perf_counter() - started
        return _learn(data, settings, cross_dir, out, work, indexes, reader, dataset_name, split, prepared)


def _learn(data: list[Episode], settings: RLSettings, cross_dir: Path, out: Path, work: Path,
           indexes: tuple[str, ...], reader: ReaderF1 | None, dataset_name: str, split: str,
           prepared: float) -> dict:
    """Cloning then REINFORCE on ``data`` (resuming from ``work/last``); saves the policy to ``out``."""
    train, held = _split(data, settings)
    config = PolicyConfig(os.path.relpath(cross_dir, out.resolve()), indexes, settings.hidden, settings.max_k,
                          settings.min_k)
    torch.manual_seed(settings.seed)  # the policy's initial weights: two fresh runs train the same policy
    policy = Policy(config)
    if settings.init:
        policy.load_state_dict(_initial_policy(settings.init, config, cross_dir).state_dict())
    else:
        policy.set_normalization(np.concatenate([e.candidates.items for e in train]),
                                 _stop_rows(train, settings.max_k))
    optimizer = torch.optim.Adam(policy.parameters(), lr=settings.bc_lr)
    found = load_checkpoint(work / "last", policy, optimizer)
    resumed = found.meta if found else None
    history: list[dict] = resumed["history"] if resumed else [_evaluate(policy, train, held, settings, 0, "start",
                                                                         reader=reader)]
    first = resumed["step"] if resumed else 0
    total = settings.bc_epochs + settings.rl_epochs
    learn_started = time.perf_counter() - (resumed["seconds"] if resumed else 0.0)
    for epoch in progress(range(first, total), total=total, initial=first, desc="training the reranking policy",
                          unit="epoch"):
        cloning = epoch < settings.bc_epochs
        for group in optimizer.param_groups:
            group["lr"] = settings.bc_lr if cloning else settings.lr
        rng = np.random.default_rng([settings.seed, epoch])
        order = rng.permutation(len(train))
        sampled = []
        for start in range(0, len(order), settings.batch):
            batch = [train[i] for i in order[start:start + settings.batch]]
            loss = _cloning_loss(policy, batch) if cloning else _reinforce_loss(policy, batch, settings, rng, sampled,
                                                                                  reader)
            if loss is None:
                continue
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append(_evaluate(policy, train, held, settings, epoch + 1, "bc" if cloning else "rl", sampled,
                                 reader))
        save_checkpoint(work / "last", model=policy, optimizer=optimizer,
                        meta={"step": epoch + 1, "history": history, "seconds": time.perf_counter() - learn_started})
        _plot(work, history)
    learn_seconds = time.perf_counter() - learn_started
    summary = {"settings": asdict(settings), "dataset": dataset_name, "split": split, "episodes": len(data),
               "train_episodes": len(train), "holdout_episodes": len(held),
               "questions": len({e.call.question_id for e in data}), "prepare_seconds": round(prepared, 1),
               "train_seconds": round(learn_seconds, 1), "history": history}
    if reader is not None:
        summary["reader"] = reader.stats()
    policy.config = PolicyConfig(**{**asdict(config), "training": summary})
    if out.exists():
        shutil.rmtree(out)
    policy.save(out)
    _plot(out, history)
    return {key: value for key, value in summary.items() if key != "history"} | {"final": history[-1]}


def _initial_policy(directory: str, config: PolicyConfig, cross_dir: Path) -> Policy:
    """The policy in ``directory``, checked to read ``cross_dir`` with ``config``'s features and sizes.

    Raises:
        InputError: it reads another cross-encoder or has other features or sizes.
    """
    start = Policy.load(directory)
    if start.cross_encoder_path(directory) != cross_dir.resolve():
        raise InputError(f"init={directory} reads the cross-encoder {start.cross_encoder_path(directory)}, "
                         f"not {cross_dir.resolve()} (--cross); its features would mean something else")
    fields = ("indexes", "hidden", "max_k", "min_k", "item_features", "stop_features")
    differ = [f"{f}: {getattr(start.config, f)} vs {getattr(config, f)}" for f in fields
              if getattr(start.config, f) != getattr(config, f)]
    if differ:
        raise InputError(f"init={directory} does not match this run ({'; '.join(differ)}); "
                         "set the same hidden, max_k and min_k and record calls with the same first stage")
    return start


def _split(data: list[Episode], settings: RLSettings) -> tuple[list[Episode], list[Episode]]:
    """Train / holdout episodes, split by question (seeded)."""
    questions = sorted({e.call.question_id for e in data})
    random.Random(settings.seed).shuffle(questions)
    held = set(questions[:int(round(settings.holdout * len(questions)))])
    return [e for e in data if e.call.question_id not in held], [e for e in data if e.call.question_id in held]


def _stop_rows(data: list[Episode], max_k: int) -> np.ndarray:
    """Stop features along each episode's cross-encoder order (for standardization)."""
    rows = []
    for e in data:
        order = list(np.argsort(-e.candidates.ce, kind="stable")[:max_k])
        rows += [e.candidates.stop_features(order[:t], max_k) for t in range(len(order) + 1)]
    return np.stack(rows)


def _decision_log_prob(policy: Policy, episode: Episode, order: list[int], rows: np.ndarray) -> torch.Tensor:
    scores = policy.item_scores(torch.from_numpy(episode.candidates.items))
    return log_prob(scores, policy.stop_scores(torch.from_numpy(rows)), order, policy.config.max_k,
                    policy.config.min_k)


def _cloning_loss(policy: Policy, batch: list[Episode]) -> torch.Tensor | None:
    """Negative log-likelihood of the qrels decision: gold candidates (best cross-encoder first), then STOP."""
    max_k, terms = policy.config.max_k, []
    for e in batch:
        gold = [int(i) for i in np.argsort(-e.candidates.ce, kind="stable") if e.gold[i]][:max_k]
        if not gold:
            continue
        rows = np.stack([e.candidates.stop_features(gold[:t], max_k) for t in range(len(gold) + 1)])
        terms.append(-_decision_log_prob(policy, e, gold, rows))
    return torch.stack(terms).mean() if terms else None


def _reinforce_loss(policy: Policy, batch: list[Episode], settings: RLSettings, rng: np.random.Generator,
                    sampled: list[tuple[float, int]], reader: ReaderF1 | None = None) -> torch.Tensor:
    """REINFORCE with the group's mean reward as the baseline."""
    terms = []
    for e in batch:
        decisions = [policy.decide(e.candidates, rng=rng)[0] for _ in range(settings.group)]
        rewards = np.array([reward(e, d.order, settings, reader) for d in decisions])
        sampled += [(float(r), len(d.order)) for r, d in zip(rewards, decisions)]
        advantages = rewards - rewards.mean()
        for d, advantage in zip(decisions, advantages):
            if advantage != 0.0:
                terms.append(-float(advantage) * _decision_log_prob(policy, e, d.order, d.steps))
    return torch.stack(terms).sum() / (len(batch) * settings.group) if terms else torch.zeros((), requires_grad=True)


def _evaluate(policy: Policy, train: list[Episode], held: list[Episode], settings: RLSettings, epoch: int,
              phase: str, sampled: list[tuple[float, int]] | None = None, reader: ReaderF1 | None = None) -> dict:
    """Greedy results on the training and holdout episodes (and the epoch's sampled reward).

    ``*_reward`` is the cheap reward; with a reader, ``*_f1`` and ``*_total`` are added at the end of
    cloning and after every REINFORCE epoch (during cloning the reader's answers are not needed).
    """
    row: dict = {"epoch": epoch, "phase": phase}
    read = reader is not None and (phase == "rl" or epoch == settings.bc_epochs)
    for name, data in (("train", train), ("holdout", held)):
        if not data:
            continue
        orders = [policy.decide(e.candidates)[0].order for e in data]
        cheap = [cheap_reward(e, o, settings) for e, o in zip(data, orders)]
        row[f"{name}_reward"] = round(float(np.mean(cheap)), 4)
        if read:
            f1 = [reader(e, o) for e, o in zip(data, orders)]
            row[f"{name}_f1"] = round(float(np.mean(f1)), 4)
            row[f"{name}_total"] = round(float(np.mean(cheap) + settings.reader_f1 * np.mean(f1)), 4)
        row[f"{name}_k"] = round(float(np.mean([len(o) for o in orders])), 3)
        row[f"{name}_both_gold"] = round(float(np.mean([e.n_gold > 0 and e.gold[o].sum() >= e.n_gold
                                                         for e, o in zip(data, orders)])), 4)
    if sampled:
        row["sampled_reward"] = round(float(np.mean([r for r, _ in sampled])), 4)
        row["sampled_k"] = round(float(np.mean([k for _, k in sampled])), 3)
    return row


def _plot(directory: Path, history: list[dict]) -> None:
    epochs = [h["epoch"] for h in history]

    def series(key: str) -> list[tuple[float, float]]:
        return [(h["epoch"], h[key]) for h in history if key in h]

    line_plot(directory / "reward.png", {"train (greedy)": series("train_reward"),
                                         "holdout (greedy)": series("holdout_reward"),
                                         "train (sampled, RL)": series("sampled_reward"),
                                         "holdout reader F1 (greedy)": series("holdout_f1")},
              f"reranking policy: reward (cloning until epoch {min(epochs[-1], _bc_end(history))})",
              "epoch", "mean reward")
    line_plot(directory / "k.png", {"train (greedy)": series("train_k"), "holdout (greedy)": series("holdout_k"),
                                    "train (sampled, RL)": series("sampled_k")},
              "reranking policy: documents passed", "epoch", "mean k")


def _bc_end(history: list[dict]) -> int:
    return max((h["epoch"] for h in history if h["phase"] == "bc"), default=0)
