"""Progress bars for long steps (tqdm on stderr); ``RETRIEVER_QUIET=1`` hides them."""

from __future__ import annotations

import os
from typing import Any, Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet() -> bool:
    return os.environ.get("RETRIEVER_QUIET") == "1"


def progress(iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "",
             unit: str = "it", **kwargs: Any) -> "tqdm[T]":
    """A tqdm bar over ``iterable`` (or a manual one when ``iterable`` is None)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=quiet(), dynamic_ncols=True,
                leave=False, **kwargs)
