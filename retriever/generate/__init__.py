"""Language-model backends behind one protocol, and :func:`load_generator` to pick one.

``load_generator`` takes what a user types after ``--llm``:

* ``http://host:port/v1`` (or https): an OpenAI-compatible endpoint (vLLM,
  llama.cpp's server, Ollama); ``model=`` names the served model.
* a ``.gguf`` file: llama.cpp through llama-cpp-python (``pip install 'retriever[llm]'``).
* a model directory (``config.json``): local transformers.
* a spec string: ``llamacpp(path=F.gguf,threads=2)``,
  ``transformers(path=DIR,gguf_file=F.gguf)``, ``openai(url=URL,model=NAME,key_env=VAR,timeout=30)``.

Example:
    >>> generator = load_generator("work/models/qwen.gguf", threads=2)
    >>> cached = CachedGenerator(generator, "work/lm-cache.jsonl")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retriever.core.errors import MissingResourceError, SpecError
from retriever.generate.base import Generation, Generator, Message
from retriever.generate.cache import CachedGenerator
from retriever.generate.http import OpenAICompatible, split_credentials
from retriever.core.specs import parse_spec

__all__ = ["Generation", "Generator", "Message", "CachedGenerator", "OpenAICompatible", "load_generator",
           "open_generator"]


def load_generator(spec: str, **settings: Any) -> Generator:
    """A generator from a URL, a path or a spec string (see the module docstring).

    Args:
        spec: what to load.
        **settings: constructor settings that override the spec's (``None`` values are ignored),
            e.g. ``threads=2`` or ``model="qwen"``.

    Raises:
        MissingResourceError: nothing at that path, or the backend's package is not installed.
        SpecError: an unknown backend or a bad setting.
    """
    from retriever.generate.local import LlamaCppGenerator, TransformersGenerator

    settings = {k: v for k, v in settings.items() if v is not None}
    if spec.startswith(("http://", "https://")):
        return _construct(OpenAICompatible, spec, {"base_url": spec}, settings)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _construct(LlamaCppGenerator, spec, {"path": path}, settings)
    if path.is_dir():
        return _construct(TransformersGenerator, spec, {"path": path}, settings)
    if "(" not in spec:
        raise MissingResourceError(f"no language model at {path.resolve()}: pass a .gguf file, a model directory, "
                                   f"an http(s):// endpoint or a spec like llamacpp(path=...); fetch a GGUF with "
                                   f"../shared/bin/fetch-llm qwen2.5-coder-1.5b-instruct")
    parsed = parse_spec(spec)
    backends = {"llamacpp": LlamaCppGenerator, "transformers": TransformersGenerator, "openai": OpenAICompatible}
    if parsed.name not in backends or parsed.args:
        raise SpecError(f"language-model spec {spec!r}: expected one of {', '.join(backends)} with key=value settings")
    kwargs = dict(parsed.kwargs)
    if parsed.name == "openai" and "url" in kwargs:
        kwargs["base_url"] = kwargs.pop("url")
    return _construct(backends[parsed.name], spec, kwargs, settings)


def open_generator(spec: "str | Generator | None", cache: str | Path | None = None,
                   **settings: Any) -> "Generator | None":
    """:func:`load_generator`, wrapped in a :class:`CachedGenerator` when ``cache`` names a file.

    ``spec`` may already be a generator (it is only wrapped) or ``None``/``"none"`` (no model: ``None``).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return None
    generator = load_generator(spec, **settings) if isinstance(spec, str) else spec
    return CachedGenerator(generator, cache) if cache and not isinstance(generator, CachedGenerator) else generator


def _construct(cls: type, spec: str, kwargs: dict[str, Any], settings: dict[str, Any]) -> Generator:
    import inspect

    accepted = inspect.signature(cls).parameters
    merged = {**kwargs, **{k: v for k, v in settings.items() if k in accepted}}
    try:
        return cls(**merged)
    except TypeError as e:
        shown = split_credentials(spec)[2] if spec.startswith(("http://", "https://")) else spec
        raise SpecError(f"language model {shown!r}: {e}") from None
