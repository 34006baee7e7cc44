"""Sharded builds and fan-out search on Ray (``pip install 'retriever[ray]'``).

Nothing here is imported unless a command asks for workers (``--workers``), so a
single-process engine never imports Ray.

- :mod:`retriever.distributed.cluster`: connect to a local or remote Ray cluster.
- :mod:`retriever.distributed.build`: sharded ``build``, ``build_indexes`` and ``add``.
- :mod:`retriever.distributed.search`: shard-searcher actors and a fan-out engine.
"""
