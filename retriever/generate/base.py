"""The generator protocol: one method that turns chat messages into text, and its result.

Every backend (local transformers, llama.cpp, an OpenAI-compatible HTTP endpoint)
implements :class:`Generator`: a ``name`` that identifies the model (it keys the
LM-call cache and is written into traces) and :meth:`Generator.generate`, which
decodes greedily so that the same prompt always gives the same text.

Example:
    >>> generator = load_generator("~/.cache/retriever-models/qwen2.5-coder-0.5b-instruct.gguf")
    >>> generator.generate([{"role": "user", "content": "Capital of France?"}], max_tokens=8).text
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

Message = dict[str, str]


@dataclass(frozen=True)
class Generation:
    """What one LM call produced, and what it cost.

    Attributes:
        text: the completion (stop strings removed).
        prompt_tokens: tokens read.
        completion_tokens: tokens written.
        seconds: wall-clock time of the call when it ran (kept when replayed from a cache).
        cached: whether it came from the LM-call cache.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cached: bool = False


@runtime_checkable
class Generator(Protocol):
    """A language model behind one method; ``name`` identifies the model and its settings."""

    name: str

    def generate(self, messages: Sequence[Message], max_tokens: int = 64,
                 stop: Sequence[str] = ()) -> Generation:
        """Greedy completion of a chat (``[{"role": ..., "content": ...}]``)."""
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string."""
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]


def plain_chat(messages: Sequence[Message]) -> str:
    """A chat as plain text, for models without a chat template."""
    lines = [f"{m['role'].upper()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nASSISTANT:"
