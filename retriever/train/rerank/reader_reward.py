"""The reader's answer F1 as a reward term: what the loop's reader answers from a passed set.

A passed set is read by :meth:`retriever.agent.Agent.read`, the loop's own final reader
call (each passage refined to its useful sentences, the same prompt, token limit and
answer cleaning), and the answer is scored as ``retriever eval multihop`` scores it: the
best token F1 over the gold answer and its aliases (:func:`retriever.core.metrics.best_f1`).
The language model sits behind :class:`~retriever.generate.CachedGenerator`, so a passed
set read once (same question, same passages in the same order) is answered from the
JSONL cache ever after: in later epochs, in the greedy evaluations and in a rerun.

Example:
    >>> reader = open_reader(engine, "qwen2.5-coder-0.5b-instruct.gguf", "work/rl.train/lm-cache.jsonl", threads=1)
    >>> reader(episode, [0, 3])   # F1 of the answer read from candidates 0 and 3, in that order
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from retriever.agent import Agent
from retriever.core.errors import InputError
from retriever.core.metrics import best_f1
from retriever.generate import CachedGenerator, Generator, open_generator

if TYPE_CHECKING:
    from retriever.api import Engine
    from retriever.train.rerank.episodes import Episode


class ReaderF1:
    """The answer F1 of the loop's reader on a passed set of an episode's candidates.

    Args:
        agent: an agent with a language model; its :meth:`~retriever.agent.Agent.read` is the reader.
    """

    def __init__(self, agent: Agent):
        if agent.generator is None:
            raise InputError("the reader-F1 reward needs a language model (--llm)")
        self.agent = agent
        self.reads = 0

    @property
    def name(self) -> str:
        """The reader model's name (keys the LM cache)."""
        return self.agent.generator.name

    @property
    def cache_hits(self) -> int:
        """Reads answered from the LM-call cache (0 without one)."""
        generator = self.agent.generator
        return generator.hits if isinstance(generator, CachedGenerator) else 0

    def __call__(self, episode: "Episode", order: Sequence[int]) -> float:
        """F1 of the answer read from ``episode.hits[i] for i in order`` (0.0 when there is no gold answer)."""
        if not episode.answers:
            return 0.0
        answer, _ = self.agent.read(episode.call.question, [episode.hits[i] for i in order])
        self.reads += 1
        return best_f1(answer, episode.answers)

    def stats(self) -> dict:
        """Reads so far, how many came from the cache, and the model."""
        return {"llm": self.name, "reads": self.reads, "cache_hits": self.cache_hits}


def open_reader(engine: "Engine", llm: "str | Generator", cache: str | Path | None, using: str = "hybrid",
                passages: int = 5, refine_sentences: bool = True, **settings) -> ReaderF1:
    """A :class:`ReaderF1` over ``engine`` with the model ``llm`` (cached in ``cache``).

    Args:
        engine: the engine whose corpus the episodes come from (for the loop's title and term tables).
        llm: what :func:`retriever.generate.load_generator` takes, or a generator.
        cache: the LM-call cache file (JSONL), or None for no cache.
        using, passages, refine_sentences: the loop's settings (the reader reads as that loop would).
        **settings: backend settings, e.g. ``threads=1``, ``model=...``, ``timeout=...``.
    """
    return ReaderF1(Agent(engine, open_generator(llm, cache, **settings), using=using, passages=passages,
                          refine_sentences=refine_sentences))
