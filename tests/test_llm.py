"""The HTTP LLM backends against real HTTP servers started here on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from compaction import llm
from compaction._llm_protocol import LLMBackend, LLMError
from compaction.llm import AnthropicBackend, OpenAICompatibleBackend, backend_from_env

SECRET = "sk-test-" + "A1b2C3d4E5f6G7h8I9j0K1l2"


class FakeLLM:
    """A tiny HTTP server; ``mode`` picks the answer; every request is recorded."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                owner.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body)})
                mode = owner.mode
                if mode == "500":
                    self._send(500, b'{"error": {"message": "internal boom"}}')
                elif mode == "401":
                    self._send(401, b'{"error": {"message": "bad key"}}')
                elif mode == "slow":
                    time.sleep(2)
                    self._send(200, b"{}")
                elif mode == "drip":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        for _ in range(30):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.1)
                    except OSError:
                        pass
                elif mode == "garbage":
                    self._send(200, b"<html>this is not json</html>")
                elif mode == "wrong-shape":
                    self._send(200, b'{"hello": "world"}')
                elif mode == "empty-text":
                    if self.path.endswith("/chat/completions"):
                        self._send(200, b'{"choices": [{"message": {"role": "assistant", "content": ""}}]}')
                    else:
                        self._send(200, b'{"type": "message", "content": []}')
                elif mode == "summarizer":
                    # follow the summarize prompt: answer with each heading it asks for
                    req = owner.requests[-1]["body"]
                    prompt = req["messages"][-1]["content"]
                    asked = prompt.split("exactly these headings", 1)[-1]
                    heads = [ln for ln in asked.splitlines() if ln.startswith("## ")]
                    text = "\n".join(f"{h}\nLLM-WROTE-THIS\n" for h in heads)
                    if self.path.endswith("/chat/completions"):
                        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
                    else:
                        body = {"type": "message", "content": [{"type": "text", "text": text}]}
                    self._send(200, json.dumps(body).encode())
                elif self.path.endswith("/chat/completions"):
                    req = owner.requests[-1]["body"]
                    answer = "SUMMARY(" + req["messages"][-1]["content"][:20] + ")"
                    self._send(200, json.dumps({
                        "id": "chatcmpl-1", "object": "chat.completion", "model": req["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                    }).encode())
                elif self.path == "/v1/messages":
                    req = owner.requests[-1]["body"]
                    answer = "ANTHROPIC(" + req["messages"][-1]["content"][:20] + ")"
                    self._send(200, json.dumps({
                        "id": "msg_1", "type": "message", "role": "assistant", "model": req["model"],
                        "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
                    }).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = FakeLLM()
    yield f
    f.close()


def test_openai_success_sends_chat_completions(fake):
    b = OpenAICompatibleBackend(base_url=fake.url + "/v1", model="qwen2.5:7b", api_key=SECRET, timeout=5)
    assert isinstance(b, LLMBackend)
    out = b.complete(system="You summarize.", prompt="Summarize this session please", max_tokens=123)
    assert out == "SUMMARY(Summarize this sessi)"
    req = fake.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "qwen2.5:7b"
    assert req["body"]["max_tokens"] == 123
    assert req["body"]["messages"][0] == {"role": "system", "content": "You summarize."}
    assert req["headers"]["authorization"] == f"Bearer {SECRET}"
    assert b.name == "openai:qwen2.5:7b"


def test_openai_without_key_sends_no_auth_header(fake):
    b = OpenAICompatibleBackend(base_url=fake.url + "/v1/", model="m", timeout=5)
    b.complete(system="", prompt="hi", max_tokens=5)
    assert "authorization" not in fake.requests[-1]["headers"]
    assert fake.requests[-1]["body"]["messages"] == [{"role": "user", "content": "hi"}]


def test_anthropic_success_sends_messages_with_headers(fake):
    b = AnthropicBackend(base_url=fake.url, model="claude-x", api_key=SECRET, timeout=5)
    out = b.complete(system="Be brief.", prompt="What happened here", max_tokens=50)
    assert out == "ANTHROPIC(What happened here)"
    req = fake.requests[-1]
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == SECRET
    assert req["headers"]["anthropic-version"] == "2023-06-01"
    assert req["body"]["system"] == "Be brief."
    assert req["body"]["max_tokens"] == 50
    assert b.name == "anthropic:claude-x"


@pytest.mark.parametrize("cls", [OpenAICompatibleBackend, AnthropicBackend])
def test_http_500_is_llm_error_without_key(fake, cls, caplog):
    fake.mode = "500"
    b = cls(base_url=fake.url + ("/v1" if cls is OpenAICompatibleBackend else ""), model="m", api_key=SECRET, timeout=5)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LLMError) as ei:
        b.complete(system="s", prompt="p", max_tokens=10)
    msg = str(ei.value)
    assert "HTTP 500" in msg and "internal boom" in msg
    assert SECRET not in msg and SECRET not in repr(b) and SECRET not in caplog.text


@pytest.mark.parametrize("cls", [OpenAICompatibleBackend, AnthropicBackend])
def test_timeout_is_llm_error_and_bounded(fake, cls):
    fake.mode = "slow"
    b = cls(base_url=fake.url + ("/v1" if cls is OpenAICompatibleBackend else ""), model="m", timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="within 0.5 s"):
        b.complete(system="s", prompt="p", max_tokens=10)
    assert time.monotonic() - t0 < 2.5


def test_dripping_server_cannot_hold_the_caller_past_the_timeout(fake):
    fake.mode = "drip"
    b = OpenAICompatibleBackend(base_url=fake.url + "/v1", model="m", timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="within 1 s"):
        b.complete(system="s", prompt="p", max_tokens=10)
    assert time.monotonic() - t0 < 3.0


@pytest.mark.parametrize("mode", ["garbage", "wrong-shape", "empty-text"])
@pytest.mark.parametrize("cls", [OpenAICompatibleBackend, AnthropicBackend])
def test_garbage_answers_are_llm_errors(fake, cls, mode):
    fake.mode = mode
    b = cls(base_url=fake.url + ("/v1" if cls is OpenAICompatibleBackend else ""), model="m", timeout=5)
    with pytest.raises(LLMError):
        b.complete(system="s", prompt="p", max_tokens=10)


def test_unreachable_server_is_llm_error():
    f = FakeLLM()
    url = f.url
    f.close()
    b = OpenAICompatibleBackend(base_url=url + "/v1", model="m", timeout=2)
    with pytest.raises(LLMError, match="cannot reach|within"):
        b.complete(system="s", prompt="p", max_tokens=10)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(LLMError, match="http"):
        OpenAICompatibleBackend(base_url="ftp://x", model="m")
    with pytest.raises(LLMError, match="model"):
        AnthropicBackend(base_url="http://127.0.0.1:1", model=" ")
    with pytest.raises(LLMError, match="timeout"):
        OpenAICompatibleBackend(base_url="http://127.0.0.1:1", model="m", timeout=0)
    b = OpenAICompatibleBackend(base_url="http://127.0.0.1:1", model="m")
    with pytest.raises(LLMError, match="max_tokens"):
        b.complete(system="s", prompt="p", max_tokens=0)


def test_backend_from_env():
    assert backend_from_env({}) is None
    assert backend_from_env({"CONTEXT_DISTILL_LLM": "none"}) is None
    b = backend_from_env({
        "CONTEXT_DISTILL_LLM": "openai",
        "CONTEXT_DISTILL_LLM_BASE_URL": "http://localhost:11434/v1",
        "CONTEXT_DISTILL_LLM_MODEL": "llama3.2",
        "CONTEXT_DISTILL_LLM_TIMEOUT": "7.5",
    })
    assert isinstance(b, OpenAICompatibleBackend) and b.name == "openai:llama3.2" and b.timeout == 7.5
    b = backend_from_env({"CONTEXT_DISTILL_LLM": "openai", "OPENAI_API_KEY": SECRET})
    assert isinstance(b, OpenAICompatibleBackend) and b.base_url == llm.OPENAI_DEFAULT_BASE_URL
    assert SECRET not in repr(b) and SECRET not in str(b)
    b = backend_from_env({"CONTEXT_DISTILL_LLM": "anthropic", "ANTHROPIC_API_KEY": SECRET, "CONTEXT_DISTILL_LLM_MODEL": "claude-z"})
    assert isinstance(b, AnthropicBackend) and b.name == "anthropic:claude-z"
    with pytest.raises(LLMError, match="ANTHROPIC_API_KEY"):
        backend_from_env({"CONTEXT_DISTILL_LLM": "anthropic"})
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        backend_from_env({"CONTEXT_DISTILL_LLM": "openai"})
    with pytest.raises(LLMError, match="unknown"):
        backend_from_env({"CONTEXT_DISTILL_LLM": "gemini"})
    with pytest.raises(LLMError, match="TIMEOUT"):
        backend_from_env({"CONTEXT_DISTILL_LLM": "openai", "OPENAI_API_KEY": "k", "CONTEXT_DISTILL_LLM_TIMEOUT": "soon"})


def test_backend_from_env_reads_os_environ(monkeypatch, fake):
    monkeypatch.setenv("CONTEXT_DISTILL_LLM", "openai")
    monkeypatch.setenv("CONTEXT_DISTILL_LLM_BASE_URL", fake.url + "/v1")
    monkeypatch.setenv("CONTEXT_DISTILL_LLM_MODEL", "local")
    b = backend_from_env()
    assert b.complete(system="", prompt="from env", max_tokens=5) == "SUMMARY(from env)"


def test_loopback_endpoint_ignores_proxy_variables(monkeypatch, fake):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    b = OpenAICompatibleBackend(base_url=fake.url + "/v1", model="m", timeout=5)
    assert b.complete(system="", prompt="direct", max_tokens=5) == "SUMMARY(direct)"


# -- summarize with an HTTP backend ---------------------------------------------------------------
TRANSCRIPT = Path(__file__).resolve().parent / "fixtures" / "hooks" / "claude-code-tool-heavy.jsonl"


@pytest.fixture
def bm25_engine():
    import compaction
    from compaction.baselines import BM25Scorer

    return compaction.Engine(scorer=BM25Scorer())


@pytest.mark.parametrize("cls", [OpenAICompatibleBackend, AnthropicBackend])
def test_summarize_uses_a_working_backend(fake, cls, bm25_engine):
    import compaction

    fake.mode = "summarizer"
    b = cls(base_url=fake.url + ("/v1" if cls is OpenAICompatibleBackend else ""), model="m", timeout=10)
    res = compaction.summarize(TRANSCRIPT, backend=b, engine=bm25_engine)
    assert res.backend == b.name
    assert "LLM-WROTE-THIS" in res.text
    prompt = fake.requests[-1]["body"]["messages"][-1]["content"]
    assert "<transcript>" in prompt


@pytest.mark.parametrize("mode", ["500", "slow", "garbage", "wrong-shape", "empty-text", "ok"])
def test_summarize_falls_back_to_embedded_when_the_backend_fails(fake, mode, bm25_engine):
    """"ok" answers text without the required sections: also a failure for summarize."""
    import compaction

    fake.mode = mode
    b = OpenAICompatibleBackend(base_url=fake.url + "/v1", model="m", api_key=SECRET, timeout=0.5)
    t0 = time.monotonic()
    res = compaction.summarize(TRANSCRIPT, backend=b, engine=bm25_engine)
    assert time.monotonic() - t0 < 30
    assert res.backend == "embedded"
    assert any("openai:m" in w for w in res.warnings), res.warnings
    assert SECRET not in res.text and all(SECRET not in w for w in res.warnings)
    embedded = compaction.summarize(TRANSCRIPT, engine=bm25_engine)
    assert res.text == embedded.text


def test_a_redirect_is_refused_and_never_carries_the_key():
    """A 302 from the endpoint would send the Authorization header to the Location host."""
    import http.server
    import threading

    seen: list[str] = []

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization") or "")
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"choices": [{"message": {"content": "stolen"}}]}')

        do_POST = do_GET  # noqa: N815

        def log_message(self, *a):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Other)

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{other.server_port}/steal")
            self.end_headers()

        def log_message(self, *a):
            pass

    first = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    for srv in (first, other):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        backend = OpenAICompatibleBackend(base_url=f"http://127.0.0.1:{first.server_port}/v1", model="m", api_key="sk-SECRET-KEY-0123456789", timeout=5)
        with pytest.raises(LLMError, match="redirect"):
            backend.complete(system="system", prompt="prompt", max_tokens=10)
        assert seen == []
    finally:
        first.shutdown()
        other.shutdown()


@pytest.mark.parametrize("url", ["https://user:S3cretPassw0rd@example.com/v1", "https://:tok@example.com"])
def test_credentials_in_the_url_are_refused_without_echoing_them(url):
    with pytest.raises(LLMError) as exc:
        OpenAICompatibleBackend(base_url=url, model="m")
    assert "S3cretPassw0rd" not in str(exc.value) and "tok" not in str(exc.value).replace("token", "")


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, 0, -1])
def test_absurd_timeouts_are_refused(timeout):
    with pytest.raises(LLMError, match="timeout"):
        OpenAICompatibleBackend(base_url="http://127.0.0.1:9/v1", model="m", timeout=timeout)
