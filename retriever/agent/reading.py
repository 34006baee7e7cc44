"""The reader's final answer, in one of two styles.

* ``direct``: one call that replies ``ANSWER: <answer>`` on one line.
* ``reason``: a first call that states, in a few sentences, the facts that lead to the answer and
  then the ``ANSWER:`` line; when the reply has no such line (small models often stop after the
  reasoning), a second call shows it its own reasoning and asks for the one-line answer. The
  reasoning is what a two-document chain needs: a direct reader asked "Where was the director of
  film X born?" tends to answer with the director.

With ``choices`` on, a which-of question ("..., A or B?") is settled by the passages' dates, or a reply
that names neither A nor B is mapped to the one whose passage mentions it (:func:`retriever.agent.choice.choose`).
"""

from __future__ import annotations

from typing import Callable, Sequence

from retriever.agent.choice import choose
from retriever.agent.prompts import STOP, clean_answer, final_messages, reader_messages, reasoned_answer, \
    reasoning_messages
from retriever.core.errors import SpecError
from retriever.generate.base import Generation, Generator, Message

READERS = ("direct", "reason")
ANSWER_TOKENS = 32
REASON_TOKENS = 128

Call = Callable[[list[Message], int, Sequence[str]], "Generation | None"]


def check_reader(reader: str) -> str:
    """``reader`` if it is one of :data:`READERS`."""
    if reader not in READERS:
        raise SpecError(f"unknown reader {reader!r}; choose from {', '.join(READERS)}")
    return reader


def read_answer(call: Call, question: str, passages: Sequence[tuple[str, str]], reader: str = "direct",
                choices: bool = False, sources: Sequence[tuple[str, str]] | None = None
                ) -> tuple[str | None, list[Generation]]:
    """Answer ``question`` from ``passages`` (none: from memory) through ``call(messages, max_tokens, stop)``,
    which returns None when it may not run (a budget); returns the answer (None if no call ran to the end)
    and the generations made. ``choices``: settle a which-of question by :func:`choose`, reading ``sources``
    (the passages' whole documents, when the reader saw only some of their sentences; default ``passages``)."""
    answer, generations = _read(call, question, passages, reader)
    if choices and answer is not None:
        answer = choose(question, passages if sources is None else sources, answer)
    return answer, generations


def _read(call: Call, question: str, passages: Sequence[tuple[str, str]],
          reader: str) -> tuple[str | None, list[Generation]]:
    if reader == "direct":
        generation = call(reader_messages(question, passages), ANSWER_TOKENS, STOP)
        return (clean_answer(generation.text), [generation]) if generation is not None else (None, [])
    reasoning = call(reasoning_messages(question, passages), REASON_TOKENS, ())
    if reasoning is None:
        return None, []
    answer = reasoned_answer(reasoning.text)
    if answer is not None:
        return answer, [reasoning]
    final = call(final_messages(question, passages, reasoning.text), ANSWER_TOKENS, STOP)
    if final is None:
        return None, [reasoning]
    return clean_answer(final.text), [reasoning, final]


def generator_call(generator: Generator) -> Call:
    """A :data:`Call` that runs ``generator`` with no budget."""
    return lambda messages, max_tokens, stop: generator.generate(messages, max_tokens=max_tokens, stop=stop)
