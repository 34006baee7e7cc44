"""The agentic multi-hop retrieval loop: :class:`Agent`, its :class:`Answer`, :class:`Budget` and trace.

Example:
    >>> from retriever.agent import Agent
    >>> answer = Agent(engine, generator=None).ask("Who directed the film Kiss and Tell?")
    >>> answer.trace.to_json("work/trace.json")
"""

from retriever.agent.loop import Agent, Answer, Budget
from retriever.agent.trace import TRACE_SCHEMA, Evidence, Hop, Trace

__all__ = ["Agent", "Answer", "Budget", "Trace", "Hop", "Evidence", "TRACE_SCHEMA"]
