"""Options that mean the same in every command, the one KEY=VALUE parser, and logging set-up.

Flag names keep one meaning across commands:

* ``--dataset``: a dataset name or BEIR directory; required wherever an ENGINE_DIR is
  evaluated (the engine was built for one dataset), defaulted only by commands that
  build their own engines (``bench``, ``eval continual``).
* ``--using``: an index name or fusion spec to search with; ``--index``: an index spec to build.
* ``--systems``: the answer systems of ``eval multihop`` (closed-book, single-shot, agent).
* ``--limit``: only the first N queries / questions of a split.
* ``--candidates``: hits a reranker sees (per hop in the loop).
* ``--depth``: per-index depth before fusion (default :data:`retriever.engine.stage.DEFAULT_DEPTH`).
* ``--set KEY=VALUE``: one setting, repeatable. ``--out``: an output directory; ``--output``: one file.
* ``--json``: print the result as JSON instead of a table.

Logging: ``retriever -v`` (info; ``-vv`` debug), default warnings, ``retriever -q`` (errors only, and no
progress bars: it sets ``RETRIEVER_QUIET=1``); handlers are installed by :func:`setup_logging`
when the command line starts, never at import.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import click

from retriever.engine.stage import DEFAULT_DEPTH

DEPTH_HELP = (f"Per-index depth before fusion: each index is read to max(k, depth) hits "
              f"[default: {DEFAULT_DEPTH}].")

data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                               help="Data root to look in first (then $RETRIEVER_DATA, then ../shared/data).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
depth_option = click.option("--depth", type=click.IntRange(min=1), default=None, help=DEPTH_HELP)


def parse_pairs(items: Sequence[str], flag: str = "--set", what: str = "KEY=VALUE") -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a usage error names the flag and the bad item.

    Raises:
        click.UsageError: an item without ``=``, with an empty key, or a key given twice.
    """
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"{flag} takes {what}, got {item!r}")
        if key in pairs:
            raise click.UsageError(f"{flag}: {key!r} given twice")
        pairs[key] = value.strip()
    return pairs


def setup_logging(verbose: int, quiet: bool) -> None:
    """Configure stdlib logging for the command line (stderr); ``quiet`` also hides progress bars."""
    if quiet:
        os.environ["RETRIEVER_QUIET"] = "1"
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("transformers", "sentence_transformers", "huggingface_hub", "faiss", "urllib3", "httpx",
                  "openai", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
