"""Optional LLM backends for ``summarize``: an OpenAI-compatible endpoint and Anthropic's Messages API.

Both speak plain HTTP through the standard library (``urllib``), so nothing new is installed.
Every failure (unreachable, refused, HTTP error, timeout, an answer that is not the expected
JSON) becomes one ``LLMError`` whose message says what happened; the summarizer then falls
back to its embedded extractive default. API keys are sent in headers only: never in an
error message, a log line or ``repr``.

Configuration from the environment (``backend_from_env``):

    CONTEXT_DISTILL_LLM            openai | anthropic   (unset, "", "none" or "embedded": no LLM)
    CONTEXT_DISTILL_LLM_BASE_URL   e.g. http://localhost:11434/v1 (Ollama), http://localhost:8000/v1 (vLLM),
                                   http://localhost:1234/v1 (LM Studio); default https://api.openai.com/v1
                                   or https://api.anthropic.com
    CONTEXT_DISTILL_LLM_MODEL      the model name (default gpt-4o-mini / claude-haiku-4-5)
    CONTEXT_DISTILL_LLM_API_KEY    the key; else OPENAI_API_KEY / ANTHROPIC_API_KEY
    CONTEXT_DISTILL_LLM_TIMEOUT    seconds for the whole call (default 60)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping

from ._llm_protocol import LLMBackend, LLMError
from ._redact import redact_secrets

__all__ = [
    "OpenAICompatibleBackend",
    "AnthropicBackend",
    "backend_from_env",
    "LLMBackend",
    "LLMError",
    "DEFAULT_TIMEOUT_S",
]

log = logging.getLogger("context_distill")

DEFAULT_TIMEOUT_S = 60.0
#: the largest answer body we read; a larger one is garbage for our purpose
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_USER_AGENT = "context-distill"

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_DEFAULT_MODEL = "claude-haiku-4-5"
ANTHROPIC_VERSION = "2023-06-01"

# Remote endpoints honour the standard *_proxy variables; a loopback endpoint (a local vLLM,
# Ollama or LM Studio) is always reached directly, whatever the proxy settings say.
class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the API key to whatever host ``Location`` names (and turn the
    POST into a GET): refused, with the address to configure instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        where = urllib.parse.urlsplit(newurl)
        raise LLMError(
            f"the LLM endpoint answered HTTP {code}, a redirect to {where.scheme}://{where.hostname}{where.path}; "
            "redirects are not followed (they would carry the API key): set CONTEXT_DISTILL_LLM_BASE_URL to the final URL"
        )


_OPENER = urllib.request.build_opener(_NoRedirects())
_DIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
#: the longest timeout accepted (a summary that takes longer is not worth waiting for)
MAX_TIMEOUT_S = 3600.0


def _opener_for(url: str) -> urllib.request.OpenerDirector:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127."):
        return _DIRECT_OPENER
    return _OPENER


def _check_base_url(base_url: object, what: str) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise LLMError(f"{what}: base_url must be an http(s) URL, got {base_url!r}")
    url = base_url.strip().rstrip("/")
    if not (url.startswith("http://") or url.startswith("https://")):
        raise LLMError(f"{what}: base_url must start with http:// or https://, got {redact_secrets(url)[:200]!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        # never echoed: the part before '@' is a secret
        raise LLMError(
            f"{what}: base_url must not hold a user name or password ({parts.scheme}://...@{parts.hostname}); "
            "give the key in CONTEXT_DISTILL_LLM_API_KEY"
        )
    if not parts.hostname:
        raise LLMError(f"{what}: base_url has no host: {url[:200]!r}")
    return url


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise LLMError(f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, got {timeout!r}")
    return float(timeout)


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body[:2000].decode("utf-8", "replace")
    text = " ".join(text.split())
    return redact_secrets(text)[:limit]


def _post_json(url: str, payload: dict[str, Any], headers: Mapping[str, str], timeout: float, who: str) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON answer, or raise LLMError.

    ``timeout`` bounds the whole call (connect, wait, and reading the body), not only each
    socket operation: a server that drips bytes cannot hold the caller longer than that."""
    data = json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    req.add_header("User-Agent", _USER_AGENT)
    for k, v in headers.items():
        req.add_header(k, v)
    deadline = time.monotonic() + timeout
    try:
        resp = _opener_for(url).open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(4096)
        except Exception:  # noqa: BLE001 - the status is the message
            body = b""
        finally:
            exc.close()
        detail = _snippet(body)
        raise LLMError(f"{who}: HTTP {exc.code} from {url}" + (f": {detail}" if detail else "")) from None
    except (TimeoutError, OSError) as exc:  # URLError is an OSError; socket.timeout is TimeoutError
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise LLMError(f"{who}: no answer from {url} within {timeout:g} s") from None
        raise LLMError(f"{who}: cannot reach {url}: {reason}") from None
    try:
        with resp:
            chunks: list[bytes] = []
            size = 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LLMError(f"{who}: no complete answer from {url} within {timeout:g} s")
                with contextlib.suppress(AttributeError, OSError):  # each read waits only for the time left
                    resp.fp.raw._sock.settimeout(left)  # type: ignore[union-attr]
                try:
                    # read1: whatever has arrived (read(n) would wait for all n bytes)
                    chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                except (TimeoutError, OSError):
                    raise LLMError(f"{who}: no complete answer from {url} within {timeout:g} s") from None
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise LLMError(f"{who}: answer from {url} is larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
    except LLMError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything odd while reading is the server's fault
        raise LLMError(f"{who}: reading the answer from {url} failed: {type(exc).__name__}") from None
    body = b"".join(chunks)
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LLMError(f"{who}: answer from {url} is not JSON: {_snippet(body, 120)!r}") from None


class _HTTPBackend:
    name: str

    def __init__(self, *, base_url: str, model: str, api_key: str | None, timeout: float, kind: str) -> None:
        if not isinstance(model, str) or not model.strip():
            raise LLMError(f"{kind}: a model name is needed (set CONTEXT_DISTILL_LLM_MODEL)")
        if api_key is not None and not isinstance(api_key, str):
            raise LLMError(f"{kind}: api_key must be text")
        self.base_url = _check_base_url(base_url, kind)
        self.model = model.strip()
        self.timeout = _check_timeout(timeout)
        self._api_key = api_key or None
        self.name = f"{kind}:{self.model}"

    def __repr__(self) -> str:  # never the key
        key = "set" if self._api_key else "none"
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, api_key={key}, timeout={self.timeout:g})"

    __str__ = __repr__

    @staticmethod
    def _check_call(system: object, prompt: object, max_tokens: object) -> None:
        if not isinstance(system, str) or not isinstance(prompt, str):
            raise LLMError("system and prompt must be text")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise LLMError(f"max_tokens must be a positive whole number, got {max_tokens!r}")


class OpenAICompatibleBackend(_HTTPBackend):
    """``POST {base_url}/chat/completions``: OpenAI, vLLM, Ollama (``/v1``), LM Studio, llama.cpp server."""

    def __init__(
        self,
        *,
        base_url: str = OPENAI_DEFAULT_BASE_URL,
        model: str = OPENAI_DEFAULT_MODEL,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        temperature: float = 0.0,
    ) -> None:
        super().__init__(base_url=base_url, model=model, api_key=api_key, timeout=timeout, kind="openai")
        self.temperature = float(temperature)

    def complete(self, *, system: str, prompt: str, max_tokens: int) -> str:
        self._check_call(system, prompt, max_tokens)
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        payload = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": False,
        }
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        answer = _post_json(f"{self.base_url}/chat/completions", payload, headers, self.timeout, self.name)
        try:
            choice = answer["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            err = answer.get("error") if isinstance(answer, dict) else None
            if err:
                msg = err.get("message") if isinstance(err, dict) else err
                raise LLMError(f"{self.name}: the endpoint answered with an error: {redact_secrets(str(msg))[:200]}") from None
            raise LLMError(f"{self.name}: answer has no choices[0].message.content") from None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not content.strip():
            raise LLMError(f"{self.name}: the model returned no text")
        return content


class AnthropicBackend(_HTTPBackend):
    """``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    def __init__(
        self,
        *,
        base_url: str = ANTHROPIC_DEFAULT_BASE_URL,
        model: str = ANTHROPIC_DEFAULT_MODEL,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        anthropic_version: str = ANTHROPIC_VERSION,
        temperature: float = 0.0,
    ) -> None:
        super().__init__(base_url=base_url, model=model, api_key=api_key, timeout=timeout, kind="anthropic")
        self.anthropic_version = anthropic_version
        self.temperature = float(temperature)

    def complete(self, *, system: str, prompt: str, max_tokens: int) -> str:
        self._check_call(system, prompt, max_tokens)
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
        }
        if system:
            payload["system"] = system
        headers = {"anthropic-version": self.anthropic_version}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        url = f"{self.base_url}/v1/messages"
        answer = _post_json(url, payload, headers, self.timeout, self.name)
        if not isinstance(answer, dict):
            raise LLMError(f"{self.name}: answer is not a JSON object")
        if answer.get("type") == "error" or "error" in answer and "content" not in answer:
            err = answer.get("error")
            msg = err.get("message") if isinstance(err, dict) else err
            raise LLMError(f"{self.name}: the API answered with an error: {redact_secrets(str(msg))[:200]}")
        blocks = answer.get("content")
        if not isinstance(blocks, list):
            raise LLMError(f"{self.name}: answer has no content list")
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        if not isinstance(text, str) or not text.strip():
            raise LLMError(f"{self.name}: the model returned no text")
        return text


def backend_from_env(env: Mapping[str, str] | None = None) -> LLMBackend | None:
    """The backend configured by ``CONTEXT_DISTILL_LLM*`` variables, or None when none is set.

    Raises LLMError (one line saying which variable to fix) when the configuration is
    present but unusable, e.g. an unknown kind or a missing key for the public APIs."""
    env = os.environ if env is None else env
    kind = (env.get("CONTEXT_DISTILL_LLM") or "").strip().lower()
    if kind in ("", "none", "embedded", "off", "0", "false"):
        return None
    base_url = (env.get("CONTEXT_DISTILL_LLM_BASE_URL") or "").strip()
    model = (env.get("CONTEXT_DISTILL_LLM_MODEL") or "").strip()
    raw_timeout = (env.get("CONTEXT_DISTILL_LLM_TIMEOUT") or "").strip()
    try:
        timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT_S
    except ValueError:
        raise LLMError(f"CONTEXT_DISTILL_LLM_TIMEOUT={raw_timeout!r} is not a number of seconds") from None
    if kind in ("openai", "openai-compatible", "vllm", "ollama", "lmstudio"):
        key = env.get("CONTEXT_DISTILL_LLM_API_KEY") or env.get("OPENAI_API_KEY") or None
        base_url = base_url or OPENAI_DEFAULT_BASE_URL
        if not key and base_url.rstrip("/") == OPENAI_DEFAULT_BASE_URL:
            raise LLMError(
                "CONTEXT_DISTILL_LLM=openai needs a key for api.openai.com: set CONTEXT_DISTILL_LLM_API_KEY "
                "or OPENAI_API_KEY, or point CONTEXT_DISTILL_LLM_BASE_URL at a local server"
            )
        return OpenAICompatibleBackend(base_url=base_url, model=model or OPENAI_DEFAULT_MODEL, api_key=key, timeout=timeout)
    if kind in ("anthropic", "claude"):
        key = env.get("CONTEXT_DISTILL_LLM_API_KEY") or env.get("ANTHROPIC_API_KEY") or None
        base_url = base_url or ANTHROPIC_DEFAULT_BASE_URL
        if not key and base_url.rstrip("/") == ANTHROPIC_DEFAULT_BASE_URL:
            raise LLMError(
                "CONTEXT_DISTILL_LLM=anthropic needs a key: set CONTEXT_DISTILL_LLM_API_KEY or ANTHROPIC_API_KEY"
            )
        return AnthropicBackend(base_url=base_url, model=model or ANTHROPIC_DEFAULT_MODEL, api_key=key, timeout=timeout)
    raise LLMError(f"CONTEXT_DISTILL_LLM={kind!r} is unknown: use openai (any OpenAI-compatible server) or anthropic")
