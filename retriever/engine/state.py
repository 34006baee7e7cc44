"""An engine directory's live state (``engine.json``), its writer lock and generation directories.

Layout::

    engine.json          which generation of the corpus and of each index is live, and the
                         retired directories of older generations still waiting to be removed
    corpus-<gen>/        the corpus store (see retriever.core.corpus)
    <name>-<gen>/        one directory per named index (see indexes.base)
    .lock                the writer's lock
    .journal.json        the directories a write in progress creates (removed if it crashes)
    .readers/<gen>       reader leases: every open reader holds a shared lock on its generation's file

The writer removes only directories it recorded (in the journal while writing, then as
``retired`` in ``engine.json``), and a retired directory only once no reader holds a lease
on a generation that used it.
"""

from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from retriever.core.errors import IndexFormatError
from retriever.core.storage import read_json, write_json_atomic

STATE = "engine.json"
LOCK = ".lock"
JOURNAL = ".journal.json"
READERS = ".readers"
FORMAT_VERSION = 1
_GENERATION_DIR = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)-(?P<generation>[0-9]+)$")


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
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise IndexFormatError(f"{path / STATE}: '{key}' is missing or not a {kind.__name__}")
    named = [state["corpus"], *state["indexes"].values()]
    if not all(isinstance(name, str) and generation_of(name) is not None for name in named):
        raise IndexFormatError(f"{path / STATE}: a corpus or index entry is not a generation directory name")
    if not isinstance(state.setdefault("specs", {}), dict) or not isinstance(state.setdefault("retired", {}), dict):
        raise IndexFormatError(f"{path / STATE}: 'specs' and 'retired' must be objects")
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace ``engine.json`` atomically (the moment a write becomes visible)."""
    write_json_atomic(Path(path) / STATE, state)


def generation_dir(name: str, generation: int) -> str:
    """The directory name of ``name`` (an index name or ``corpus``) in ``generation``."""
    return f"{name}-{generation}"


def generation_of(directory: str) -> int | None:
    """The generation in a generation directory's name (``bm25-3`` -> 3), None for another name."""
    found = _GENERATION_DIR.match(directory)
    return int(found.group("generation")) if found else None


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


class Lease:
    """A reader's shared lock on one generation: the writer never removes a directory in use.

    Taken before the reader trusts ``engine.json``: the state is read again once the lock is
    held, and if it moved on meanwhile (the writer may have retired that generation) the
    lease is taken again on the new one. On a directory the reader cannot write (read-only
    media), no lease is needed: no writer can remove anything there either.
    """

    def __init__(self, path: Path):
        self.path, self._handle = Path(path), None
        state = read_state(self.path)
        while self._take(state["generation"]):
            again = read_state(self.path)
            if again["generation"] == state["generation"]:
                break
            self.release()
            state = again
        self.state: dict[str, Any] = state

    def _take(self, generation: int) -> bool:
        """Lock ``generation``'s lease file shared; False where leases cannot be written."""
        try:
            (self.path / READERS).mkdir(exist_ok=True)
            self._handle = open(self.path / READERS / str(generation), "a")
        except OSError:
            self._handle = None
            return False
        fcntl.flock(self._handle, fcntl.LOCK_SH)
        return True

    def release(self) -> None:
        """Give the lease back (the reader no longer uses its generation)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def readers_of(path: Path, first: int, last: int) -> list[int]:
    """Generations in ``first..last`` that some reader holds a lease on (checked without waiting)."""
    held = []
    folder = Path(path) / READERS
    if not folder.is_dir():
        return held
    for entry in folder.iterdir():
        if not entry.name.isdigit() or not first <= int(entry.name) <= last:
            continue
        with open(entry, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(int(entry.name))
    return held


def drop_leases(path: Path, below: int) -> None:
    """Remove the lease files of generations older than ``below`` that no reader holds."""
    folder = Path(path) / READERS
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name.isdigit() and int(entry.name) < below:
            with open(entry, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                os.unlink(entry)
