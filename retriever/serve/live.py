"""The engine a service answers from, following other processes' writes without a restart.

Each generation of the engine directory is opened once as an :class:`~retriever.Engine`
and warmed (corpus and every index opened, each index searched once) *before* requests
switch to it, so no request waits for a model to load and none reads a generation whose
files a later write removed. A request holds the generation it started on until it ends;
the previous one is closed when its last request finishes.

Example:
    >>> live = LiveEngine.open("work/nfcorpus")
    >>> with live.use() as held:
    ...     held.engine.search("vitamin D", k=3)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from retriever.api import Engine
from retriever.engine.state import STATE
from retriever.serve.bounded import BoundedCache

REOPEN_TRIES = 3
CACHED_VALUES = 32  # per generation: agents for distinct request options, and their one title table
Opener = Callable[[Path], Engine]
log = logging.getLogger("retriever.serve")


class Generation:
    """One open generation: its engine, the requests using it, and values derived from it.

    The derived values are keyed by request options, so at most :data:`CACHED_VALUES` of them
    are kept (least recently used dropped): clients cannot grow the server's memory.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.users = 0
        self.retired = False
        self.cache = BoundedCache(CACHED_VALUES)

    @property
    def number(self) -> int:
        return self.engine.reader.generation

    def cached(self, key: Any, make: Callable[[Engine], Any]) -> Any:
        """A value derived from this generation (e.g. an agent), made on first use."""
        return self.cache.get(key, lambda: make(self.engine))


class LiveEngine:
    """An engine directory kept open at its live generation.

    Args:
        path: the engine directory.
        refresh_s: at most how often ``engine.json`` is checked for a new generation.
        opener: opens one generation (default :meth:`Engine.open`; a sharded engine on Ray passes
            :class:`~retriever.distributed.search.DistributedEngine`, so its searches fan out).
    """

    def __init__(self, path: str | Path, refresh_s: float = 0.25, opener: Opener = Engine.open):
        self.path = Path(path)
        self.refresh_s = refresh_s
        self.opener = opener
        self.in_process = opener == Engine.open  # False when searches go to other processes (Ray actors)
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._stamp = self._state_stamp()
        self._current = Generation(_warm(opener(self.path)))
        self._checked = time.monotonic()

    @classmethod
    def open(cls, path: str | Path, refresh_s: float = 0.25, opener: Opener = Engine.open) -> "LiveEngine":
        """Open and warm the live generation of ``path``."""
        return cls(path, refresh_s, opener)

    @property
    def generation(self) -> int:
        return self._current.number

    @contextmanager
    def use(self) -> Iterator[Generation]:
        """The current :class:`Generation`, held open until the block ends."""
        self.maybe_refresh()
        with self._lock:
            held = self._current
            held.users += 1
        try:
            yield held
        finally:
            with self._lock:
                held.users -= 1
                done = held.retired and held.users == 0
            if done:
                held.engine.close()

    def maybe_refresh(self) -> bool:
        """Start switching to a new generation if another write made one; True when a switch started.

        Checks ``engine.json`` at most every ``refresh_s`` seconds. The new generation is
        opened and warmed in a background thread while requests keep answering from the one
        they have; they move to it once it is ready.
        """
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return False
        self._checked = now
        if self._state_stamp() == self._stamp or not self._refreshing.acquire(blocking=False):
            return False
        threading.Thread(target=self._switch_in_background, name="retriever-refresh", daemon=True).start()
        return True

    def _switch_in_background(self) -> None:
        try:
            self._switch()
        except Exception as e:  # keep answering from the generation we have; retried on the next check
            log.warning("could not open the new generation of %s: %s", self.path, e)
        finally:
            self._refreshing.release()

    def refresh(self) -> bool:
        """Switch to the live generation now (waits for a switch already running)."""
        with self._refreshing:
            return self._switch()

    def close(self) -> None:
        with self._lock:
            held = self._current
            held.retired = True
            done = held.users == 0
        if done:
            held.engine.close()

    def _switch(self) -> bool:
        for attempt in range(REOPEN_TRIES):
            stamp = self._state_stamp()
            if stamp == self._stamp:
                return False
            try:
                engine = _warm(self.opener(self.path))
            except Exception:
                if attempt + 1 == REOPEN_TRIES:
                    raise
                continue  # a later write replaced that generation (and removed its files) while it opened
            with self._lock:
                old, self._current, self._stamp = self._current, Generation(engine), stamp
                old.retired = True
                done = old.users == 0
            if done:
                old.engine.close()
            return True
        return False

    def _state_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.path / STATE)
        return st.st_ino, st.st_mtime_ns, st.st_size


def _warm(engine: Engine) -> Engine:
    """Open the corpus and every index, and search each once (loads query encoders, the id table)."""
    for name in engine.names:
        engine.search("warm up", k=1, using=name)
    return engine
