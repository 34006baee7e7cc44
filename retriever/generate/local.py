"""Local models: Hugging Face transformers (a model directory, or a GGUF file) and llama.cpp.

* :class:`TransformersGenerator` loads a causal LM directory, or a GGUF file
  through transformers' ``gguf_file=`` (it dequantizes to fp32: slow, no compile;
  needs the ``gguf`` package).
* :class:`LlamaCppGenerator` runs a GGUF file through llama-cpp-python, the
  optional extra ``pip install 'retriever[llm]'`` (quantized, fast on CPU).

Both decode greedily. A model without a chat template gets a plain
``ROLE: content`` transcript. Text inside a message never becomes a special token: the
tokenizer's special tokens (``[SEP]``, ``<|im_end|>``) are broken up in message content
with a zero-width space before the prompt is rendered.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

from retriever.core.errors import MissingResourceError
from retriever.generate.base import Generation, Message, backend_stops, cut_at_stop, plain_chat

ZERO_WIDTH_SPACE = "\u200b"


class TransformersGenerator:
    """A causal LM through transformers.

    Args:
        path: a model directory (``config.json`` + weights), or the directory of ``gguf_file``.
        gguf_file: a GGUF file name inside ``path`` (or a full path to one).
        threads: torch intra-op threads (default: torch's choice).
        max_context: prompt tokens kept (the end of the prompt is kept when longer).
    """

    def __init__(self, path: str | Path, gguf_file: str | None = None, threads: int | str | None = None,
                 max_context: int | str = 4096):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path).expanduser()
        if gguf_file and Path(gguf_file).is_absolute():
            path, gguf_file = Path(gguf_file).parent, Path(gguf_file).name
        where = path / gguf_file if gguf_file else path / "config.json"
        if not where.exists():
            raise MissingResourceError(f"no model at {where}: pass a model directory with config.json, or "
                                       f"path=DIR and gguf_file=NAME.gguf (fetch one with ../shared/bin/fetch-llm)")
        if gguf_file:
            _require("gguf", "pip install gguf (transformers reads GGUF files through it)")
        if threads:
            torch.set_num_threads(int(threads))
        extra: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), **extra)
        self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **extra).eval()
        self.max_context = int(max_context)
        self._specials = special_token_pattern(self.tokenizer)
        self.name = f"transformers:{path.name}{'/' + gguf_file if gguf_file else ''}"

    def generate(self, messages: Sequence[Message], max_tokens: int = 64,
                 stop: Sequence[str] = ()) -> Generation:
        import torch

        started = time.perf_counter()
        messages = defuse_special_tokens(messages, self._specials)
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        else:
            prompt = plain_chat(messages)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ids = ids[:, -self.max_context:]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                      do_sample=False, pad_token_id=pad)
        new = out[0, ids.shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(cut_at_stop(text, stop).strip(), int(ids.shape[1]), int(new.shape[0]),
                          time.perf_counter() - started)


class LlamaCppGenerator:
    """A GGUF model through llama-cpp-python (``pip install 'retriever[llm]'``).

    Args:
        path: the ``.gguf`` file.
        threads: CPU threads (default: all cores).
        n_ctx: context window in tokens.
        n_gpu_layers: layers offloaded to a GPU when llama.cpp was built with one.
    """

    def __init__(self, path: str | Path, threads: int | str | None = None, n_ctx: int | str = 4096,
                 n_gpu_layers: int | str = 0):
        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingResourceError(f"no GGUF file at {path}; fetch one with "
                                       f"../shared/bin/fetch-llm qwen2.5-coder-1.5b-instruct")
        llama_cpp = _require("llama_cpp", "pip install 'retriever[llm]'  (builds llama-cpp-python)")
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=int(n_ctx), n_threads=int(threads or os.cpu_count()),
                                   n_gpu_layers=int(n_gpu_layers), seed=0, verbose=False)
        self.name = f"llamacpp:{path.name}:{path.stat().st_size}"

    def generate(self, messages: Sequence[Message], max_tokens: int = 64,
                 stop: Sequence[str] = ()) -> Generation:
        started = time.perf_counter()
        reply = self.llm.create_chat_completion(messages=list(messages), max_tokens=max_tokens, temperature=0.0,
                                                top_k=1, stop=backend_stops(stop) or None)
        usage = reply.get("usage") or {}
        text = reply["choices"][0]["message"].get("content") or ""
        return Generation(cut_at_stop(text, stop).strip(), int(usage.get("prompt_tokens", 0)),
                          int(usage.get("completion_tokens", 0)), time.perf_counter() - started)


def special_token_pattern(tokenizer: Any) -> re.Pattern | None:
    """A pattern matching any of ``tokenizer``'s special tokens written as text (None if it has none)."""
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            specials.add(str(token.content))
    specials = {t for t in specials if len(t) > 1}
    if not specials:
        return None
    return re.compile("|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)))


def defuse_special_tokens(messages: Sequence[Message], pattern: re.Pattern | None) -> list[Message]:
    """``messages`` with every special token in their content broken by a zero-width space."""
    if pattern is None:
        return list(messages)
    return [{**m, "content": pattern.sub(lambda found: found.group(0)[0] + ZERO_WIDTH_SPACE + found.group(0)[1:],
                                         m["content"])} for m in messages]


def _require(module: str, install: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingResourceError(f"the {module!r} package is not installed; {install}") from None
