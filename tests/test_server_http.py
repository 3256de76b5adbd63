"""The server over streamable HTTP on 127.0.0.1, as a real subprocess: the mcp SDK client (sessions and
stateless mode), and the transport's defences: bearer token (401), Origin / DNS rebinding (403 / 421),
body size (413), refusing a non-loopback bind without a token."""

from __future__ import annotations

import json
import subprocess

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from server_support import (
    result_fields,
    HEADERS,
    INIT,
    ROOT,
    SERVER_CMD,
    TOOLS,
    HttpServer,
    check_structured,
    error_text,
    observation,
    server_env,
)


async def _exercise(url: str, http_client=None) -> dict:
    text = observation()
    transport = streamable_http_client(url, http_client=http_client) if http_client else url
    async with Client(transport) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        r = await c.call_tool("compact", {"text": text, "ratio": 0.3, "query": "psql"})
        out = check_structured(tools["compact"], r)
        e = await c.call_tool("expand", {"handle": out["handle"], "lines": "1-3"})
        ex = check_structured(tools["expand"], e)
        errors = [
            await c.call_tool("compact", {"text": ""}),
            await c.call_tool("compact", {"text": text, "ratio": 7}),
            await c.call_tool("expand", {"handle": "ffffffffffffffff"}),
            await c.call_tool("compact", {}),
        ]
        after = await c.call_tool("compact", {"text": text, "target_tokens": 300})
        st = check_structured(tools["status"], await c.call_tool("status", {}))
        return {
            "tools": set(tools),
            "out": out,
            "expand": ex,
            "errors": [error_text(x) for x in errors],
            "after": check_structured(tools["compact"], after),
            "status": st,
        }


def test_http_sessions_list_and_call_tools():
    with HttpServer() as srv:
        got = anyio.run(_exercise, srv.url)
    assert got["tools"] == TOOLS
    assert got["out"]["tokens_after"] <= int(got["out"]["tokens_before"] * 0.3)
    assert got["expand"]["text"] == "".join(observation().splitlines(keepends=True)[:3])
    assert "empty" in got["errors"][0] and "ratio" in got["errors"][1]
    assert "no original" in got["errors"][2] and "exactly one" in got["errors"][3]
    assert got["after"]["tokens_after"] <= 300
    assert got["status"]["transport"] == "streamable-http"


def test_http_stateless_mode_for_replicas():
    with HttpServer(["--stateless"]) as srv:
        got = anyio.run(_exercise, srv.url)
        # stateless: a tools/call without any session id is answered
        with httpx.Client(timeout=30) as h:
            r = h.post(
                srv.url,
                headers={**HEADERS, "mcp-protocol-version": "2025-06-18"},
                json={"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}},
            )
    assert r.status_code == 200 and "mcp-session-id" not in r.headers
    assert got["tools"] == TOOLS and got["after"]["tokens_after"] <= 300


TOKEN = "t0ken-for-tests-0123456789abcdef"


def test_bearer_token_is_required_when_set():
    env = server_env({"CONTEXT_DISTILL_HTTP_TOKEN": TOKEN})
    with HttpServer(env=env) as srv:
        with httpx.Client(timeout=30) as h:
            none = h.post(srv.url, headers=HEADERS, json=INIT)
            wrong = h.post(srv.url, headers={**HEADERS, "authorization": "Bearer nope"}, json=INIT)
            right = h.post(srv.url, headers={**HEADERS, "authorization": f"Bearer {TOKEN}"}, json=INIT)
        got = anyio.run(
            _exercise, srv.url, create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        )

        async def without_token():
            async with Client(srv.url) as c:
                await c.list_tools()

        with pytest.raises(Exception):
            anyio.run(without_token)
    assert none.status_code == 401 and wrong.status_code == 401
    assert none.headers.get("www-authenticate") == "Bearer"
    assert right.status_code == 200
    assert got["tools"] == TOOLS


def test_origin_and_host_are_validated():
    with HttpServer() as srv:
        with httpx.Client(timeout=30) as h:
            evil = h.post(srv.url, headers={**HEADERS, "origin": "http://evil.example"}, json=INIT)
            rebinding = h.post(srv.url, headers={**HEADERS, "host": f"evil.example:{srv.port}"}, json=INIT)
            local = h.post(srv.url, headers={**HEADERS, "origin": f"http://localhost:{srv.port}"}, json=INIT)
            plain = h.post(srv.url, headers=HEADERS, json=INIT)
    assert evil.status_code == 403
    assert rebinding.status_code == 421
    assert local.status_code == 200 and plain.status_code == 200


def test_request_body_size_is_limited():
    env = server_env({"CONTEXT_DISTILL_HTTP_MAX_BODY_BYTES": "65536"})
    big = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "compact", "arguments": {"text": "x" * 100_000}},
    }
    with HttpServer(env=env) as srv:
        with httpx.Client(timeout=30) as h:
            r = h.post(srv.url, headers=HEADERS, content=json.dumps(big).encode())

            def chunks():
                body = json.dumps(big).encode()
                for i in range(0, len(body), 8192):
                    yield body[i : i + 8192]

            chunked = h.post(srv.url, headers=HEADERS, content=chunks())  # no content-length
            ok = h.post(srv.url, headers=HEADERS, json=INIT)
    assert r.status_code == 413 and chunked.status_code == 413
    assert ok.status_code == 200


def test_non_loopback_bind_without_token_refuses_to_start():
    env = server_env()
    proc = subprocess.run(
        [*SERVER_CMD, "--http", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "CONTEXT_DISTILL_HTTP_TOKEN" in err and "loopback" in err
    assert len(err.strip().splitlines()) == 1
    short = subprocess.run(
        [*SERVER_CMD, "--http", "--host", "0.0.0.0", "--port", "1"],
        env={**env, "CONTEXT_DISTILL_HTTP_TOKEN": "short"},
        cwd=str(ROOT),
        capture_output=True,
        timeout=60,
    )
    assert short.returncode == 2 and "too short" in short.stderr.decode()


def test_http_json_responses_on_a_custom_path():
    with HttpServer(["--json-response", "--path", "/context-distill"]) as srv:
        got = anyio.run(_exercise, srv.url)
        with httpx.Client(timeout=30) as h:
            r = h.post(srv.url, headers=HEADERS, json=INIT)
            wrong_path = h.post(f"http://127.0.0.1:{srv.port}/mcp", headers=HEADERS, json=INIT)
    assert got["tools"] == TOOLS
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["result"]["serverInfo"]["name"] == "context-distill"
    assert wrong_path.status_code == 404


def test_non_loopback_bind_with_a_token_serves_only_with_the_token():
    import secrets

    token = secrets.token_urlsafe(24)
    env = server_env({"CONTEXT_DISTILL_HTTP_TOKEN": token})
    with HttpServer(["--host", "0.0.0.0", "--stateless"], env=env) as srv:
        with httpx.Client(timeout=30) as h:
            anonymous = h.post(srv.url, headers=HEADERS, json=INIT)
            evil_origin = h.post(
                srv.url, headers={**HEADERS, "authorization": f"Bearer {token}", "origin": "http://evil.example"}, json=INIT
            )
        got = anyio.run(_exercise, srv.url, create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}))
    assert anonymous.status_code == 401
    assert evil_origin.status_code == 403
    assert got["tools"] == TOOLS and got["status"]["transport"] == "streamable-http"


@pytest.mark.parametrize("args", [[], ["--stateless"]])
def test_summarize_samples_the_clients_model_over_http(args):
    """2026-07-28 over HTTP (sessions or stateless): sampling rides an input-required round trip."""
    from mcp_types import CreateMessageResult, TextContent
    from server_support import FIXTURES

    from compaction._summarize import SECTIONS

    answer = "\n".join(f"## {s}\n- written by the client's model\n" for s in SECTIONS)
    asked = []

    async def sample(context, params):
        asked.append(params)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=answer), model="m1")

    async def go(url):
        async with Client(url, sampling_callback=sample) as c:
            assert c.protocol_version == "2026-07-28"
            return await c.call_tool("summarize", {"transcript_path": str(FIXTURES / "claude-code-short.jsonl")})

    with HttpServer(args) as srv:
        r = anyio.run(go, srv.url)
    assert not r.is_error, r.content[0].text
    assert result_fields(r)["backend"] == "mcp-sampling:m1" and asked
    assert "written by the client's model" in result_fields(r)["text"]


def test_another_loopback_address_is_an_allowed_host_when_bound():
    from server._http import HttpConfig

    ts = HttpConfig(host="127.0.0.2", port=8765, path="/mcp", stateless=False).transport_security()
    assert "127.0.0.2:*" in ts.allowed_hosts and "http://127.0.0.2:*" in ts.allowed_origins
    assert "127.0.0.1:*" in ts.allowed_hosts
