"""Progress bars for long steps (tqdm on stderr); ``RETRIEVER_QUIET=1`` hides them.

``RETRIEVER_QUIET=1`` (set by ``retriever -q``) also hides the model-loading bars of
transformers / sentence-transformers / huggingface_hub: :func:`hush_model_bars` runs
before any model is resolved (:func:`retriever.core.models.resolve_model`).
"""

from __future__ import annotations

import os
import sys
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


def hush_model_bars() -> None:
    """When quiet, turn off the model libraries' own progress bars (before or after they are imported)."""
    if not quiet():
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
