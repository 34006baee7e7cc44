"""Any OpenAI-compatible chat endpoint over HTTP: vLLM, llama.cpp's server, Ollama, hosted APIs.

POSTs ``{base_url}/chat/completions`` with greedy settings. Connection errors,
timeouts, HTTP 429 and 5xx are retried with exponential backoff; any other 4xx
and a malformed reply fail at once with a :class:`GenerationError` that names the
URL, the status and the start of the body. The API key is read from an
environment variable (``OPENAI_API_KEY`` unless ``key_env`` names another) and is
never written anywhere. Credentials in the URL (``http://user:pass@host/v1``) are sent
as HTTP basic authentication and never shown: messages and the model's name carry the URL
with the password replaced by ``***``.

Example:
    >>> generator = OpenAICompatible("http://localhost:8000/v1", model="qwen2.5-1.5b-instruct")
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Sequence

from retriever.core.errors import GenerationError
from retriever.generate.base import Generation, Message, backend_stops, cut_at_stop

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class OpenAICompatible:
    """A chat-completions endpoint.

    Args:
        base_url: e.g. ``http://localhost:8000/v1`` (``/chat/completions`` is appended).
        model: the model name the server expects.
        key_env: the environment variable holding the API key (optional for local servers).
        timeout: seconds before one request is abandoned.
        retries: extra attempts after a retryable failure.
        backoff: seconds before the first retry; doubled after each, capped at 30 s.
    """

    def __init__(self, base_url: str, model: str = "default", key_env: str = "OPENAI_API_KEY",
                 timeout: float | str = 60.0, retries: int | str = 3, backoff: float | str = 1.0):
        bare, self._basic, shown = split_credentials(base_url.rstrip("/"))
        self._request_url = bare + "/chat/completions"
        self.url = shown + "/chat/completions"
        self.model = model
        self.key_env = key_env
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.name = f"openai:{shown}:{model}"

    def generate(self, messages: Sequence[Message], max_tokens: int = 64,
                 stop: Sequence[str] = ()) -> Generation:
        body = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": 0.0, **({"stop": backend_stops(stop)} if backend_stops(stop) else {})}
        started = time.perf_counter()
        reply = self._post(json.dumps(body).encode("utf-8"))
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

    def _post(self, data: bytes) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self._basic:
            headers["Authorization"] = f"Basic {self._basic}"
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            request = urllib.request.Request(self._request_url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                if e.code not in RETRYABLE_STATUS:
                    raise GenerationError(f"{self.url}: HTTP {e.code} {e.reason}: {detail}"
                                          + (f" (is ${self.key_env} set?)" if e.code in (401, 403) else "")) from None
                failure = f"HTTP {e.code} {e.reason}: {detail}"
                continue
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                failure = f"timed out after {self.timeout:g} s" if isinstance(reason, (socket.timeout, TimeoutError)) \
                    else f"unreachable ({redact(str(reason), self._basic)})"
                continue
            try:
                reply = json.loads(raw)
            except json.JSONDecodeError:
                raise GenerationError(f"{self.url}: reply is not JSON: {raw[:200]!r}") from None
            if not isinstance(reply, dict):
                raise GenerationError(f"{self.url}: reply is not a JSON object: {raw[:200]!r}")
            return reply
        raise GenerationError(f"{self.url}: gave up after {self.retries + 1} attempts; last: {failure}")


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
