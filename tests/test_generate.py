"""Language-model backends: the HTTP client against a local test server, the LM-call cache, a tiny local model."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from retriever.core.errors import GenerationError, MissingResourceError, SpecError
from retriever.generate import CachedGenerator, OpenAICompatible, load_generator, open_generator
from retriever.generate.base import Generation

CHAT = [{"role": "user", "content": "Capital of France?"}]


def completion(text: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3}}


class ScriptedServer:
    """A local chat-completions server answering each POST with the next scripted
    ``(status, body, delay[, headers])`` (headers default to a JSON content type); notes each
    request and its arrival time."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers["Content-Length"])
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                        "body": json.loads(self.rfile.read(length)), "time": time.monotonic()})
                status, body, delay, *headers = server.script.pop(0) if server.script else (500, "script exhausted", 0)
                if delay:
                    threading.Event().wait(delay)
                payload = body if isinstance(body, bytes) else (
                    json.dumps(body).encode() if isinstance(body, dict) else body.encode())
                try:
                    self.send_response(status)
                    for key, value in (headers[0] if headers else {"Content-Type": "application/json"}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(*script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_http_success_sends_greedy_request_and_key(serve, monkeypatch):
    server = serve((200, completion("Paris\nmore text"), 0))
    monkeypatch.setenv("TEST_LLM_KEY", "secret-123")
    generator = load_generator(server.url, model="qwen", key_env="TEST_LLM_KEY")
    out = generator.generate(CHAT, max_tokens=8, stop=["\n", "END"])
    assert (out.text, out.prompt_tokens, out.completion_tokens) == ("Paris", 11, 3)
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret-123"
    assert request["body"]["temperature"] == 0.0 and request["body"]["model"] == "qwen"
    # a whitespace-only stop is applied here, after a leading newline, not by the server
    assert request["body"]["max_tokens"] == 8 and request["body"]["stop"] == ["END"]


def test_http_credentials_in_the_url_are_sent_not_shown(serve):
    server = serve((200, completion("\nParis\nmore"), 0), (404, "no such model", 0))
    url = server.url.replace("://", "://me:s3cret@")
    generator = load_generator(url, model="qwen")
    assert generator.generate(CHAT, stop=["\n"]).text == "Paris"
    assert server.requests[0]["auth"] == "Basic bWU6czNjcmV0"
    with pytest.raises(GenerationError) as failure:
        generator.generate(CHAT)
    assert "s3cret" not in str(failure.value) + generator.name and "me:***@" in str(failure.value)


def test_http_retries_5xx_and_429_then_succeeds(serve):
    server = serve((503, "busy", 0), (429, "slow down", 0), (200, completion("Paris"), 0))
    generator = OpenAICompatible(server.url, retries=3, backoff=0.01)
    assert generator.generate(CHAT).text == "Paris"
    assert len(server.requests) == 3


def test_http_gives_up_after_retries(serve):
    server = serve(*[(500, "boom", 0)] * 3)
    with pytest.raises(GenerationError, match=r"gave up after 3 attempts.*HTTP 500"):
        OpenAICompatible(server.url, retries=2, backoff=0.01).generate(CHAT)
    assert len(server.requests) == 3


def test_http_client_errors_fail_at_once_with_a_clear_message(serve):
    server = serve((401, "no key", 0))
    with pytest.raises(GenerationError, match=r"HTTP 401.*is \$MISSING_KEY set\?"):
        OpenAICompatible(server.url, key_env="MISSING_KEY", backoff=0.01).generate(CHAT)
    assert len(server.requests) == 1
    server = serve((400, "bad request", 0))
    with pytest.raises(GenerationError, match="HTTP 400"):
        OpenAICompatible(server.url, backoff=0.01).generate(CHAT)


def test_http_malformed_replies(serve):
    server = serve((200, b"<html>not json", 0), (200, {"choices": []}, 0))
    generator = OpenAICompatible(server.url, backoff=0.01)
    with pytest.raises(GenerationError, match="not JSON"):
        generator.generate(CHAT)
    with pytest.raises(GenerationError, match=r"no choices\[0\]"):
        generator.generate(CHAT)


def test_http_timeout_and_unreachable(serve):
    server = serve((200, completion("late"), 1.0), (200, completion("late"), 1.0))
    with pytest.raises(GenerationError, match="timed out after 0.2 s"):
        OpenAICompatible(server.url, timeout=0.2, retries=1, backoff=0.01).generate(CHAT)
    with pytest.raises(GenerationError, match="unreachable"):
        OpenAICompatible("http://127.0.0.1:9/v1", timeout=1, retries=0).generate(CHAT)


class CountingGenerator:
    """A deterministic generator that counts its calls (for the cache)."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    def generate(self, messages, max_tokens=64, stop=()):
        self.calls += 1
        return Generation(f"answer {len(messages[-1]['content'])}", 5, 2, 0.5)


def test_cache_replays_calls_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "cache" / "lm.jsonl"
    inner = CountingGenerator()
    first = CachedGenerator(inner, path)
    a = first.generate(CHAT, 8)
    assert not a.cached and inner.calls == 1
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "torn')  # a crash in the middle of a write
    again = CachedGenerator(inner, path)
    b = again.generate(CHAT, 8)
    assert b.cached and (b.text, b.prompt_tokens, b.seconds) == (a.text, a.prompt_tokens, a.seconds)
    assert inner.calls == 1 and again.hits == 1
    again.generate(CHAT, 16)  # another max_tokens is another call
    assert inner.calls == 2


def test_load_generator_errors(tmp_path):
    with pytest.raises(MissingResourceError, match="fetch-llm"):
        load_generator(str(tmp_path / "missing.gguf"))
    with pytest.raises(SpecError, match="expected one of"):
        load_generator("vllm(url=http://x)")
    with pytest.raises(MissingResourceError, match="no model at"):
        load_generator(f"transformers(path={tmp_path})")
    assert open_generator(None) is None and open_generator("none") is None


def test_transformers_backend_decodes_greedily(tiny_causal_lm):
    generator = load_generator(str(tiny_causal_lm), threads=1)
    first = generator.generate(CHAT, max_tokens=6)
    second = generator.generate(CHAT, max_tokens=6)
    assert first.text == second.text  # greedy: the same prompt gives the same text
    assert first.prompt_tokens > 5 and 0 < first.completion_tokens <= 6
    assert generator.name.startswith("transformers:")


def test_http_honours_retry_after(serve):
    from retriever.generate.http import retry_after

    server = serve((429, b'{"error": "slow"}', 0, {"Retry-After": "1", "Content-Type": "application/json"}),
                   (200, completion("Paris"), 0))
    assert OpenAICompatible(server.url, retries=2, backoff=0.01).generate(CHAT).text == "Paris"
    times = [request["time"] for request in server.requests]
    assert times[1] - times[0] >= 0.95  # waited what the server asked, not the 0.01 s backoff
    assert retry_after("2.5") == 2.5 and retry_after(None) == 0.0 and retry_after("soon") == 0.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert retry_after("99999") == 60.0


def test_http_streams_pieces(serve):
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
              {"choices": [{"index": 0, "delta": {"content": "Par"}}]},
              {"choices": [{"index": 0, "delta": {"content": "is"}}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    head = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    body = "".join(f"data: {json.dumps({**head, **e})}\n\n" for e in events) + "data: [DONE]\n\n"
    server = serve((200, body, 0, {"Content-Type": "text/event-stream"}))
    assert list(OpenAICompatible(server.url, retries=0).stream(CHAT, max_tokens=4)) == ["Par", "is"]
