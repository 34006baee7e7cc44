"""The reranking policy: a tiny network that scores candidates and the STOP item.

``item score = MLP(standardized item features)`` (a linear layer when ``hidden`` is 0)
and ``STOP score = linear(standardized stop features)``; the decision they define
is a Plackett–Luce ordering with a STOP item (:mod:`retriever.rerank.plackett`).
Saved as ``policy.safetensors`` (weights and the feature means / deviations) and
``policy.json`` (:class:`PolicyConfig`: feature names, sizes, ``max_k``, the
cross-encoder it reads, training settings and results).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from retriever.core.errors import IndexFormatError, MissingResourceError
from retriever.rerank.features import STOP_FEATURES, Candidates, item_feature_names
from retriever.rerank.plackett import Decision, sample
from retriever.core.storage import read_json, staging_dir, write_json_atomic

CONFIG, WEIGHTS = "policy.json", "policy.safetensors"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PolicyConfig:
    """What defines a policy (persisted in ``policy.json``).

    Attributes:
        cross_encoder: the cross-encoder directory whose logits are features (relative to the policy directory,
            or absolute).
        indexes: index names whose own rankings are features.
        hidden: hidden units of the item scorer (0: linear).
        max_k: most documents passed.
        min_k: fewest documents passed.
        item_features: item feature names, in column order.
        stop_features: stop feature names, in column order.
        training: how it was trained (settings, times, results).
    """

    cross_encoder: str
    indexes: tuple[str, ...]
    hidden: int = 16
    max_k: int = 5
    min_k: int = 1
    item_features: tuple[str, ...] = ()
    stop_features: tuple[str, ...] = STOP_FEATURES
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.item_features:
            object.__setattr__(self, "item_features", item_feature_names(self.indexes))


class Policy(torch.nn.Module):
    """Scores candidates and the STOP item; decodes a decision greedily or by sampling."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        f, s = len(config.item_features), len(config.stop_features)
        self.register_buffer("item_mean", torch.zeros(f))
        self.register_buffer("item_std", torch.ones(f))
        self.register_buffer("stop_mean", torch.zeros(s))
        self.register_buffer("stop_std", torch.ones(s))
        if config.hidden:
            self.item = torch.nn.Sequential(torch.nn.Linear(f, config.hidden), torch.nn.Tanh(),
                                            torch.nn.Linear(config.hidden, 1))
        else:
            self.item = torch.nn.Linear(f, 1)
        self.stop = torch.nn.Linear(s, 1)

    def set_normalization(self, items: np.ndarray, stops: np.ndarray) -> None:
        """Standardize features with the means and deviations of training data (``[rows, features]``)."""
        for name, rows in (("item", items), ("stop", stops)):
            mean, std = rows.mean(axis=0), rows.std(axis=0)
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(mean.astype(np.float32)))
            getattr(self, f"{name}_std").copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))

    def item_scores(self, items: torch.Tensor) -> torch.Tensor:
        """``[n, features] -> [n]`` candidate scores."""
        return self.item((items - self.item_mean) / self.item_std).squeeze(-1)

    def stop_scores(self, rows: torch.Tensor) -> torch.Tensor:
        """``[steps, stop features] -> [steps]`` STOP scores."""
        return self.stop((rows - self.stop_mean) / self.stop_std).squeeze(-1)

    @torch.no_grad()
    def decide(self, candidates: Candidates, max_k: int | None = None, rng: np.random.Generator | None = None,
               ) -> tuple[Decision, np.ndarray]:
        """A decision for ``candidates`` (greedy unless ``rng``) and the candidate scores."""
        max_k = min(max_k or self.config.max_k, self.config.max_k)
        scores = self.item_scores(torch.from_numpy(candidates.items)).numpy().astype(np.float64)
        decision = sample(scores, lambda order: candidates.stop_features(order, self.config.max_k),
                          lambda row: float(self.stop_scores(torch.from_numpy(row[None]))[0]), max_k,
                          self.config.min_k, rng)
        return decision, scores

    def save(self, directory: str | Path) -> Path:
        """Write ``policy.safetensors`` and ``policy.json`` into a new ``directory`` (atomically)."""
        directory = Path(directory)
        with staging_dir(directory) as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS))
            write_json_atomic(tmp / CONFIG, {"format_version": FORMAT_VERSION, **asdict(self.config)})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Policy":
        """Read a policy saved by :meth:`save`.

        Raises:
            MissingResourceError: no policy in ``directory``.
            IndexFormatError: a newer format or inconsistent files.
        """
        directory = Path(directory)
        if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
            raise MissingResourceError(f"no reranking policy in {directory.resolve()} (needs {CONFIG} and {WEIGHTS}); "
                                       "train one with `retriever train reranker --rl --out DIR`")
        raw = read_json(directory / CONFIG)
        if raw.pop("format_version", 0) > FORMAT_VERSION:
            raise IndexFormatError(f"{directory / CONFIG} is newer than this retriever reads; upgrade retriever")
        try:
            config = PolicyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
            policy = cls(config)
            policy.load_state_dict(load_file(str(directory / WEIGHTS)))
        except (TypeError, RuntimeError) as e:
            raise IndexFormatError(f"{directory}: policy files do not match ({e})") from None
        policy.eval()
        return policy

    def cross_encoder_path(self, directory: str | Path) -> Path:
        """The cross-encoder directory, resolved against the policy's ``directory``."""
        path = Path(self.config.cross_encoder)
        return path if path.is_absolute() else (Path(directory) / path).resolve()
