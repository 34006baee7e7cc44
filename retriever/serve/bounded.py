"""A thread-safe map of values made on first use that keeps at most ``size`` of them.

The service keys such values by what clients send (request options, reranker specs), so a
bound is what keeps clients from growing the server's memory; the least recently used value
is dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class BoundedCache:
    """At most ``size`` values, least recently used dropped; ``get`` makes a missing one (once, under the lock)."""

    def __init__(self, size: int):
        self.size = size
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value for ``key``, made by ``make()`` if it is not kept."""
        with self._lock:
            if key not in self._values:
                self._values[key] = make()
                while len(self._values) > self.size:
                    self._values.popitem(last=False)
            self._values.move_to_end(key)
            return self._values[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)
