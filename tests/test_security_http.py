"""Security over real HTTP (issue 5), against a real server subprocess: loopback by default,
bearer token, Origin validation against look-alikes, hostile bodies, transcript paths confined
to the allowed roots, handoff ids that cannot name paths, spawning without a shell, and
secrets kept out of the cache and the handoff store.

(tests/test_server_http.py covers the basic 401 / 403 / 421 / 413 paths; this module attacks them.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

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
    HttpServer,
    error_text,
    free_port,
    observation,
    server_env,
)

H = HEADERS
TOKEN = "s3cure-test-token-" + "0123456789abcdef"
SECRET = "sk-proj-" + "Zx9" * 20  # assembled at run time


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            addr, hexport = cols[1].split(":")
            if int(hexport, 16) == port and cols[3] == "0A":  # LISTEN
                found.add(addr)
    return found


def test_http_binds_loopback_by_default(tmp_path):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see the bound address")
    port = free_port()
    proc = subprocess.Popen(
        [*SERVER_CMD, "--http", "--port", str(port)],  # no --host
        env=server_env(),
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _listening_addresses(port):
            assert proc.poll() is None, "server exited"
            time.sleep(0.2)
        addrs = _listening_addresses(port)
    finally:
        proc.terminate()
        proc.wait(10)
    assert addrs == {"0100007F"}, addrs  # 127.0.0.1 only


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_non_loopback_binds_refuse_to_start_without_a_token(host):
    proc = subprocess.run(
        [*SERVER_CMD, "--http", "--host", host, "--port", str(free_port())],
        env=server_env(),
        cwd=str(ROOT),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "CONTEXT_DISTILL_HTTP_TOKEN" in proc.stderr.decode()


def test_token_is_checked_exactly_on_every_method_and_path():
    env = server_env({"CONTEXT_DISTILL_HTTP_TOKEN": TOKEN})
    with HttpServer(env=env) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        with httpx.Client(timeout=30) as h:
            wrong = {
                "basic scheme": {"authorization": f"Basic {TOKEN}"},
                "prefix": {"authorization": f"Bearer {TOKEN[:-1]}"},
                "longer": {"authorization": f"Bearer {TOKEN}x"},
                "no scheme": {"authorization": TOKEN},
                "two headers": {"authorization": f"Bearer nope, Bearer {TOKEN}"},
                "in a cookie": {"cookie": f"token={TOKEN}"},
            }
            codes = {k: h.post(srv.url, headers={**H, **v}, json=INIT).status_code for k, v in wrong.items()}
            in_query = h.post(srv.url + f"?token={TOKEN}", headers=H, json=INIT).status_code
            get = h.get(srv.url, headers={"accept": "text/event-stream"}).status_code
            delete = h.delete(srv.url).status_code
            other = h.get(base + "/").status_code
            bad_origin = h.post(srv.url, headers={**H, "origin": "http://evil.example"}, json=INIT)
            right = h.post(srv.url, headers={**H, "authorization": f"Bearer {TOKEN}"}, json=INIT)
    assert set(codes.values()) == {401}, codes
    assert in_query == get == delete == other == 401
    # a page from another origin learns nothing, not even that a token is needed
    assert bad_origin.status_code == 403 and "token" not in bad_origin.text.lower()
    assert right.status_code == 200
    assert TOKEN not in right.text


LOOKALIKES = [
    "http://127.0.0.1.evil.example",
    "http://localhost.evil.example",
    "http://localhost:{port}.evil.example",
    "http://localhost:{port}@evil.example",
    "http://localhost@evil.example",
    "http://evil.example:{port}",
    "http://[::1].evil.example",
    "https://evil.example",
    "null",
    "file://",
    "chrome-extension://abcdef",
    "http://localhost:{port}/path",
    "http://localhost:-1",
    "http://localhost:",
]


def test_origin_lookalikes_are_refused_and_real_local_origins_allowed():
    with HttpServer() as srv:
        p = srv.port
        with httpx.Client(timeout=30) as h:
            bad = {o: h.post(srv.url, headers={**H, "origin": o.format(port=p)}, json=INIT).status_code for o in LOOKALIKES}
            good = {
                o: h.post(srv.url, headers={**H, "origin": o.format(port=p)}, json=INIT).status_code
                for o in ("http://127.0.0.1:{port}", "http://localhost:{port}", "http://[::1]:{port}", "http://localhost:3000")
            }
            hosts = {
                hst: h.post(srv.url, headers={**H, "host": hst.format(port=p)}, json=INIT).status_code
                for hst in ("evil.example:{port}", "127.0.0.1.evil.example:{port}", "localhost.evil.example", "localhost:{port}.evil.example", "0.0.0.0:{port}")
            }
    assert set(bad.values()) == {403}, {k: v for k, v in bad.items() if v != 403}
    assert set(good.values()) == {200}, good
    assert all(code in (400, 421) for code in hosts.values()), hosts  # DNS rebinding: a foreign Host is refused


def _raw_status(port: int, extra_headers: bytes, body: bytes) -> int:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"
            b"accept: application/json, text/event-stream\r\n" % port + extra_headers + b"\r\n" + body
        )
        head = s.recv(64)
    return int(head.split()[1])


def test_hostile_bodies_get_clear_rejections_and_the_server_keeps_serving():
    env = server_env({"CONTEXT_DISTILL_HTTP_MAX_BODY_BYTES": str(2 * 1024 * 1024)})
    with HttpServer(["--stateless"], env=env) as srv:
        hp = {**H, "mcp-protocol-version": "2025-06-18"}
        with httpx.Client(timeout=60) as h:
            results = {
                "deep nesting": h.post(srv.url, headers=hp, content=b"[" * 1_000_000),
                "deep args": h.post(
                    srv.url,
                    headers=hp,
                    content=b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"compact","arguments":{"text":'
                    + b"[" * 100_000
                    + b"]" * 100_000
                    + b"}}}",
                ),
                "not json": h.post(srv.url, headers=hp, content=b"\xff\xfe\x00garbage"),
                "wrong types": h.post(
                    srv.url,
                    headers=hp,
                    json={"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "compact", "arguments": {"text": 5, "ratio": "x"}}},
                ),
                "unknown tool": h.post(
                    srv.url, headers=hp, json={"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "rm -rf", "arguments": {}}}
                ),
                "too big": h.post(srv.url, headers=hp, content=b"x" * (3 * 1024 * 1024)),
            }
            lying = _raw_status(srv.port, b"content-length: 999999999\r\n", b"{}")
            ok = h.post(
                srv.url,
                headers=hp,
                json={"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "compact", "arguments": {"text": observation(), "ratio": 0.3}}},
            )
        alive = srv.proc.poll() is None
    for name, r in results.items():
        assert r.status_code < 500, (name, r.status_code, r.text[:300])
    assert results["too big"].status_code == 413 and lying == 413
    for name in ("wrong types", "unknown tool"):
        assert '"isError":true' in results[name].text.replace(" ", "") or '"error"' in results[name].text, name
    assert ok.status_code == 200 and '"isError":false' in ok.text.replace(" ", "")
    assert alive


# -- files: transcript paths and handoff ids ----------------------------------------------------------


def _session_record(text: str) -> str:
    return json.dumps({"type": "user", "sessionId": "s", "uuid": "u1", "cwd": "/p", "message": {"role": "user", "content": text}})


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "allowed"
    root.mkdir()
    (root / "ok.jsonl").write_text(_session_record("fix the parser please") + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text(_session_record("OUTSIDE-SECRET-CONTENT") + "\n")
    (root / "link.jsonl").symlink_to(outside / "secret.jsonl")
    (root / "dir.jsonl").mkdir()
    os.mkfifo(root / "fifo.jsonl")
    return root, outside


def _client(url: str, token: str | None = None):
    if token:
        return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})))
    return Client(url)


def test_transcript_paths_outside_the_roots_are_refused_over_http(roots, tmp_path):
    root, outside = roots
    env = server_env({"CONTEXT_DISTILL_ROOTS": str(root), "HOME": str(tmp_path / "home")})
    bad_paths = [
        "/etc/passwd",
        str(outside / "secret.jsonl"),
        f"{root}/../outside/secret.jsonl",
        str(root / "link.jsonl"),
        str(root / "dir.jsonl"),
        str(root / "fifo.jsonl"),
        str(root / "missing.jsonl"),
        f"{root}/ok.jsonl\x00.txt",
        "~root/.ssh/id_rsa",
        "",
    ]

    async def go(url):
        async with _client(url) as c:
            out = {}
            for tool in ("summarize", "context_status", "spawn_handoff"):
                for p in bad_paths:
                    r = await c.call_tool(tool, {"transcript_path": p})
                    out[(tool, p)] = r
            good = await c.call_tool("context_status", {"transcript_path": str(root / "ok.jsonl")})
            return out, good

    with HttpServer(env=env) as srv:
        out, good = anyio.run(go, srv.url)
    for (tool, p), r in out.items():
        msg = error_text(r)
        assert "OUTSIDE-SECRET" not in msg and "root:" not in msg, (tool, p, msg)
        assert len(msg.strip().splitlines()) == 1, msg
    for tool in ("summarize", "context_status", "spawn_handoff"):
        assert "outside the folders" in error_text(out[(tool, "/etc/passwd")])
        assert "outside the folders" in error_text(out[(tool, str(root / "link.jsonl"))])
        assert "not a regular file" in error_text(out[(tool, str(root / "fifo.jsonl"))])
    assert not good.is_error


def test_text_that_looks_like_a_path_is_read_as_text_never_as_a_file(roots, tmp_path):
    """``text`` is the transcript itself: a path in it must not open a file (which would skip
    the folder check that ``transcript_path`` gets)."""
    root, outside = roots
    env = server_env({"CONTEXT_DISTILL_ROOTS": str(root), "HOME": str(tmp_path / "home")})
    secret = str(outside / "secret.jsonl")

    async def go(url):
        async with _client(url) as c:
            return {tool: await c.call_tool(tool, {"text": secret}) for tool in ("summarize", "context_status", "spawn_handoff")}

    with HttpServer(env=env) as srv:
        out = anyio.run(go, srv.url)
    for tool, r in out.items():
        body = json.dumps([c.model_dump() for c in r.content]) + json.dumps(result_fields(r) or {})
        assert "OUTSIDE-SECRET" not in body, (tool, body[:500])


def test_handoff_ids_cannot_name_paths_over_http(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "passwd-copy").write_text("root:x:0:0:root:/root:/bin/bash\n")
    env = server_env({"CONTEXT_DISTILL_DATA_DIR": str(data)})
    hostile = [
        "../../etc/passwd",
        "/etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        "..",
        "x" * 500,
        "UPPER",
        "a/b",
        "a\\b",
        "../passwd-copy",
        "../../passwd-copy",
    ]

    async def go(url):
        async with _client(url) as c:
            made = await c.call_tool("spawn_handoff", {"text": "user: fix the parser in src/parse.py\nassistant: on it"})
            out = {}
            for h in hostile:
                try:
                    r = await c.read_resource(f"handoff://{h}")
                    out[("resource", h)] = json.dumps(r.model_dump(mode="json"))
                except Exception as exc:  # noqa: BLE001 - an error answer is what we want
                    out[("resource", h)] = f"error: {exc}"
                try:
                    p = await c.get_prompt("resume_from_handoff", {"handoff_id": h})
                    out[("prompt", h)] = json.dumps(p.model_dump(mode="json"))
                except Exception as exc:  # noqa: BLE001
                    out[("prompt", h)] = f"error: {exc}"
            good = await c.read_resource(f"handoff://{result_fields(made)['id']}")
            return made, out, good

    with HttpServer(env=env) as srv:
        made, out, good = anyio.run(go, srv.url)
    assert not made.is_error and re.fullmatch(r"[0-9a-z-]{1,64}", result_fields(made)["id"])
    for key, text in out.items():
        assert "root:x:0:0" not in text, key
        assert text.startswith("error") or "isError" in text or "not found" in text.lower() or "invalid" in text.lower(), (key, text[:300])
    assert "src/parse.py" in json.dumps(good.model_dump(mode="json"))


def test_spawn_passes_a_hostile_goal_as_one_literal_argument_over_http(tmp_path):
    out_file = tmp_path / "argv.json"
    pwned = tmp_path / "PWNED"
    child = f"import json, sys; open({str(out_file)!r}, 'w').write(json.dumps(sys.argv[1:]))"
    template = [sys.executable, "-c", child, "--goal-prompt", "{prompt}"]
    goal = f"fix it; touch {pwned} && echo $(touch {pwned}) `touch {pwned}` | sh > {pwned} \"' \n$HOME"
    env = server_env({"CONTEXT_DISTILL_SPAWN_COMMAND": json.dumps(template), "CONTEXT_DISTILL_DATA_DIR": str(tmp_path / "data")})

    async def go(url):
        async with _client(url) as c:
            return await c.call_tool(
                "spawn_handoff", {"text": "user: fix the parser\nassistant: looking at src/parse.py", "goal": goal, "spawn": True}
            )

    with HttpServer(env=env) as srv:
        r = anyio.run(go, srv.url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not out_file.exists():
            time.sleep(0.2)
    assert not r.is_error, r.content[0].text
    argv = json.loads(out_file.read_text())
    assert argv[0] == "--goal-prompt" and len(argv) == 2
    assert f"touch {pwned} && echo $(touch {pwned})" in argv[1]  # the goal arrived literally
    assert not pwned.exists(), "a shell ran the goal"
    spawned = result_fields(r)["spawned"]
    assert spawned["argv"][:3] == template[:3]
    # the agent reads only the text: it says where the handoff is and that an agent was started
    head = r.content[0].text.splitlines()[:2]
    assert head[0].startswith("Handoff stored as handoff://") and head[1] == (
        f"Started the agent (pid {spawned['pid']}, log {spawned['log_path']})."
    )


def test_secrets_never_reach_the_cache_or_the_handoff_store_over_http(tmp_path):
    cache, data = tmp_path / "cache", tmp_path / "data"
    env = server_env({"CONTEXT_DISTILL_CACHE_DIR": str(cache), "CONTEXT_DISTILL_DATA_DIR": str(data)})
    lines = [f"INFO step {i} ok" for i in range(300)]
    lines[100] = f"DEBUG OPENAI_API_KEY={SECRET}"
    lines[200] = "ERROR step 200 failed: connection refused"
    text = "\n".join(lines) + "\n"
    session = f"user: deploy with key {SECRET} and fix the failing step\nassistant: the error is in deploy.py"

    async def go(url):
        async with _client(url) as c:
            r = await c.call_tool("compact", {"text": text, "ratio": 0.2, "query": "which step failed"})
            e = await c.call_tool("expand", {"handle": result_fields(r)["handle"], "lines": "95-105"})
            h = await c.call_tool("spawn_handoff", {"text": session})
            res = await c.read_resource(f"handoff://{result_fields(h)['id']}")
            return r, e, h, res

    with HttpServer(env=env) as srv:
        r, e, h, res = anyio.run(go, srv.url)
    assert not r.is_error and not e.is_error and not h.is_error
    assert SECRET not in result_fields(e)["text"] and "[REDACTED:openai-key]" in result_fields(e)["text"]
    assert SECRET not in json.dumps(res.model_dump(mode="json"))
    for folder in (cache, data):
        for p in folder.rglob("*"):
            if p.is_file():
                assert SECRET.encode() not in p.read_bytes(), p
