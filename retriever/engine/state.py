"""An engine directory's live state (``engine.json``), its writer lock and generation directories.

Layout::

    engine.json          which generation of the corpus and of each index is live
    corpus-<gen>/        the corpus store (see retriever.core.corpus)
    <name>-<gen>/        one directory per named index (see indexes.base)
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from retriever.core.errors import IndexFormatError
from retriever.core.storage import read_json, write_json_atomic

STATE = "engine.json"
LOCK = ".lock"
FORMAT_VERSION = 1


def read_state(path: Path) -> dict[str, Any]:
    """Read and check ``engine.json`` of the engine directory ``path``."""
    path = Path(path)
    if not (path / STATE).exists():
        raise IndexFormatError(f"{path} is not an engine directory (no {STATE}); build one with "
                               f"`retriever index build {path} --dataset NAME` or Engine.build()")
    state = read_json(path / STATE)
    if not isinstance(state, dict):
        raise IndexFormatError(f"{path / STATE}: expected a JSON object, got {type(state).__name__}")
    version = state.get("format_version", 0)
    if not isinstance(version, int):
        raise IndexFormatError(f"{path / STATE}: 'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise IndexFormatError(f"{path / STATE} is newer than this retriever reads; upgrade retriever")
    for key, kind in (("generation", int), ("corpus", str), ("indexes", dict)):
        if not isinstance(state.get(key), kind):
            raise IndexFormatError(f"{path / STATE}: '{key}' is missing or not a {kind.__name__}")
    state.setdefault("specs", {})
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace ``engine.json`` atomically (the moment a write becomes visible)."""
    write_json_atomic(Path(path) / STATE, state)


def generation_dir(name: str, generation: int) -> str:
    """The directory name of ``name`` (an index name or ``corpus``) in ``generation``."""
    return f"{name}-{generation}"


def live_dirs(state: dict[str, Any]) -> set[str]:
    """Directory names the state points at."""
    return {state["corpus"], *state["indexes"].values()}


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path/.lock`` so two writers never interleave."""
    with open(Path(path) / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexFormatError(f"{path} is being written by another process") from None
        yield
