"""The LM-call cache: a JSONL file of past calls, so long evaluations resume where they stopped.

Each line is one call: ``{"key", "model", "text", "prompt_tokens",
"completion_tokens", "seconds"}``. The key is the SHA-256 of the model name, the
messages, ``max_tokens`` and the stop strings, so a changed prompt or model never
reuses an old answer. Lines are appended and flushed one call at a time; a line
cut short by a crash is skipped when the file is read again.

Example:
    >>> generator = CachedGenerator(load_generator(path), "results/multihop/lm-cache.jsonl")
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from retriever.generate.base import Generation, Generator, Message


class CachedGenerator:
    """Wraps a :class:`Generator`; answers repeated calls from a JSONL file.

    Args:
        inner: the generator that runs on a cache miss.
        path: the cache file (created with its parent directory if missing).
    """

    def __init__(self, inner: Generator, path: str | Path):
        self.inner = inner
        self.name = inner.name
        self.path = Path(path)
        self.hits = 0
        self._entries = _read_entries(self.path)

    def generate(self, messages: Sequence[Message], max_tokens: int = 64,
                 stop: Sequence[str] = ()) -> Generation:
        key = call_key(self.name, messages, max_tokens, stop)
        if key in self._entries:
            self.hits += 1
            entry = self._entries[key]
            return Generation(entry["text"], entry["prompt_tokens"], entry["completion_tokens"],
                              entry["seconds"], cached=True)
        generation = self.inner.generate(messages, max_tokens, stop)
        entry = {"key": key, "model": self.name, "text": generation.text,
                 "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                 "seconds": round(generation.seconds, 4)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._entries[key] = entry
        return replace(generation, cached=False)


def call_key(model: str, messages: Sequence[Message], max_tokens: int, stop: Sequence[str]) -> str:
    """The cache key of one call: SHA-256 over everything that decides its output."""
    payload = json.dumps({"model": model, "messages": list(messages), "max_tokens": max_tokens,
                          "stop": list(stop)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _read_entries(path: Path) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    if not path.exists():
        return entries
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: the call runs again
            if isinstance(entry, dict) and "key" in entry and "text" in entry:
                entries[entry["key"]] = entry
    return entries
