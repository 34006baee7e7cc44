"""Any OpenAI-compatible chat endpoint over HTTP (vLLM, llama.cpp's server, Ollama, hosted APIs), on the
official ``openai`` SDK.

Requests are greedy (temperature 0). Each request has a ``timeout``; connection errors,
timeouts, HTTP 408/425/429 and 5xx are retried up to ``retries`` times, waiting what the
server's ``Retry-After`` header asks (seconds or an HTTP date, capped at 60 s) or else an
exponential backoff. Any other 4xx and a malformed reply fail at once with a
:class:`GenerationError` that names the URL, the status and the start of the body.
:meth:`OpenAICompatible.stream` yields the reply in pieces as the server sends them. The API
key is read from an environment variable (``OPENAI_API_KEY`` unless ``key_env`` names
another) and is never written anywhere. Credentials in the URL (``http://user:pass@host/v1``) are sent
as HTTP basic authentication and never shown: messages and the model's name carry the URL
with the password replaced by ``***``.

Example:
    >>> generator = OpenAICompatible("http://localhost:8000/v1", model="qwen2.5-1.5b-instruct", timeout=30)
    >>> for piece in generator.stream([{"role": "user", "content": "Capital of France?"}]):
    ...     print(piece, end="")
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import os
import time
import urllib.parse
from typing import Any, Callable, Iterator, Sequence, TypeVar

import openai

from retriever.core.errors import GenerationError
from retriever.generate.base import Generation, Message, backend_stops, cut_at_stop

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 60.0
log = logging.getLogger(__name__)
T = TypeVar("T")


class OpenAICompatible:
    """A chat-completions endpoint.

    Args:
        base_url: e.g. ``http://localhost:8000/v1`` (``/chat/completions`` is appended).
        model: the model name the server expects.
        key_env: the environment variable holding the API key (optional for local servers).
        timeout: seconds before one request is abandoned (CLI: ``--llm-timeout``).
        retries: extra attempts after a retryable failure.
        backoff: seconds before the first retry when the server sends no ``Retry-After``;
            doubled after each, capped at 30 s.
    """

    def __init__(self, base_url: str, model: str = "default", key_env: str = "OPENAI_API_KEY",
                 timeout: float | str = 60.0, retries: int | str = 3, backoff: float | str = 1.0):
        bare, self._basic, shown = split_credentials(base_url.rstrip("/"))
        self.url = shown + "/chat/completions"
        self.model = model
        self.key_env = key_env
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.name = f"openai:{shown}:{model}"
        key = os.environ.get(key_env)
        basic = {"Authorization": f"Basic {self._basic}"} if self._basic and not key else None
        self._client = openai.OpenAI(base_url=bare, api_key=key or "not-needed", timeout=self.timeout,
                                     max_retries=0, default_headers=basic)

    def generate(self, messages: Sequence[Message], max_tokens: int = 64,
                 stop: Sequence[str] = ()) -> Generation:
        started = time.perf_counter()
        raw = self._with_retries(lambda: self._client.chat.completions.with_raw_response.create(
            **self._body(messages, max_tokens, stop)))
        reply = _json(raw.http_response.content, self.url)
        try:
            text = reply["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (KeyError, IndexError, TypeError) as e:
            raise GenerationError(f"{self.url}: reply has no choices[0].message.content ({e}): "
                                  f"{json.dumps(reply)[:200]}") from None
        usage = reply.get("usage") or {}
        return Generation(cut_at_stop(text, stop).strip(), int(usage.get("prompt_tokens", 0)),
                          int(usage.get("completion_tokens", 0)), time.perf_counter() - started)

    def stream(self, messages: Sequence[Message], max_tokens: int = 64, stop: Sequence[str] = ()) -> Iterator[str]:
        """Yield the reply's text in pieces as the server streams them (retries only before the first piece)."""
        chunks = self._with_retries(lambda: self._client.chat.completions.create(
            **self._body(messages, max_tokens, stop), stream=True))
        try:
            for chunk in chunks:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    yield piece
        except openai.APIError as e:
            raise GenerationError(f"{self.url}: the stream broke off: {e}") from None
        finally:
            chunks.close()

    def _body(self, messages: Sequence[Message], max_tokens: int, stop: Sequence[str]) -> dict[str, Any]:
        return {"model": self.model, "messages": list(messages), "max_tokens": max_tokens, "temperature": 0.0,
                **({"stop": backend_stops(stop)} if backend_stops(stop) else {})}

    def _with_retries(self, call: Callable[[], T]) -> T:
        failure, wait = "", 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                wait = wait or min(self.backoff * 2 ** (attempt - 1), 30.0)
                log.info("%s: %s; retrying in %.1f s", self.url, failure, wait)
                time.sleep(wait)
            wait = 0.0
            try:
                return call()
            except openai.APIStatusError as e:
                detail = e.response.text[:300]
                if e.status_code not in RETRYABLE_STATUS:
                    raise GenerationError(f"{self.url}: HTTP {e.status_code} {e.response.reason_phrase}: {detail}"
                                          + (f" (is ${self.key_env} set?)" if e.status_code in (401, 403) else "")
                                          ) from None
                failure = f"HTTP {e.status_code} {e.response.reason_phrase}: {detail}"
                wait = retry_after(e.response.headers.get("retry-after"))
            except openai.APITimeoutError:
                failure = f"timed out after {self.timeout:g} s"
            except openai.APIConnectionError as e:
                failure = f"unreachable ({redact(str(e.__cause__ or e), self._basic)})"
        raise GenerationError(f"{self.url}: gave up after {self.retries + 1} attempts; last: {failure}")


def retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds a ``Retry-After`` header asks to wait (a number or an HTTP date), capped; 0 when absent or bad."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _json(raw: bytes, url: str) -> dict:
    try:
        reply = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise GenerationError(f"{url}: reply is not JSON: {raw[:200]!r}") from None
    if not isinstance(reply, dict):
        raise GenerationError(f"{url}: reply is not a JSON object: {raw[:200]!r}")
    return reply


def split_credentials(url: str) -> tuple[str, str | None, str]:
    """``url`` without its ``user:password@`` part, the basic-auth token (or None), and the URL to show.

    Example:
        >>> split_credentials("http://me:secret@host:8000/v1")
        ('http://host:8000/v1', 'bWU6c2VjcmV0', 'http://me:***@host:8000/v1')
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    bare = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    user_shown = f"{parts.username or ''}{':***' if parts.password else ''}"
    shown = urllib.parse.urlunsplit(parts._replace(netloc=f"{user_shown}@{netloc}"))
    return bare, token, shown


def redact(text: str, token: str | None) -> str:
    """``text`` with the password of a basic-auth ``token`` replaced by ``***``."""
    if not token:
        return text
    password = base64.b64decode(token).decode().partition(":")[2]
    return text.replace(password, "***") if password else text
