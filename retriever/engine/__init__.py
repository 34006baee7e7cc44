"""The engine layer: an engine directory's state, its writer, its lazy reader and the retrieval stage.

- :mod:`retriever.engine.state`: ``engine.json``, the writer's lock, generation directories;
- :mod:`retriever.engine.writer`: one transaction primitive used by build, build_indexes and add;
- :mod:`retriever.engine.reader`: a snapshot of one generation whose indexes open on first use;
- :mod:`retriever.engine.stage`: the one retrieval stage (every index searched once per query,
  the fused ranking together with each index's own ranking).

Users normally go through :class:`retriever.Engine`, which composes these with rerankers and the agent.
"""
