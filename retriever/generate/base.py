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

import re
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
    """``text`` (leading whitespace skipped) up to the first occurrence of any stop string.

    A reply that starts with a newline therefore still gives its first line, not nothing.
    """
    text = text.lstrip()
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]


def backend_stops(stop: Sequence[str]) -> list[str]:
    """The stop strings a backend may apply itself: not the whitespace-only ones.

    A backend stopping at ``"\n"`` would stop at a reply's leading newline and return nothing;
    those stops are applied by :func:`cut_at_stop` after the leading whitespace instead.
    """
    return [s for s in stop if s and s.strip()]


_QUOTE = r"> \1"
_ROLE_LINE = re.compile(r"(?im)^([ \t]*(?:system|user|assistant)[ \t]*:)")


def plain_chat(messages: Sequence[Message]) -> str:
    """A chat as plain text (``ROLE: content`` turns), for models without a chat template.

    A line of content that starts like a turn (``ASSISTANT: ...``, any case) is quoted with
    ``> `` so that text inside a message (a retrieved document) cannot forge a turn.
    """
    lines = [f"{m['role'].upper()}: {_ROLE_LINE.sub(_QUOTE, m['content'])}" for m in messages]
    return "\n\n".join(lines) + "\n\nASSISTANT:"
