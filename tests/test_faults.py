"""Faults (issue 5): writers killed mid-write, unwritable folders, corrupt shipped files, LLM
backends that hang or talk nonsense, clients that vanish mid-call. The server keeps serving,
loses nothing, and says what went wrong."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

import compaction
from compaction._handoff_store import HandoffStore
from compaction._store import OriginalStore, handle_for
from compaction.baselines import BM25Scorer
from server_support import (
    FIXTURES,
    MODEL_PRESENT,
    ROOT,
    SERVER_CMD,
    HttpServer,
    error_text,
    observation,
    result_fields,
    server_env,
)

SEED = Path(__file__).parent / "fixtures" / "fuzz" / "claude-code-tool-heavy.jsonl"


def stdio(env_extra: dict[str, str] | None = None, *, cwd: Path = ROOT, pythonpath: Path | None = None) -> StdioServerParameters:
    env = server_env(env_extra)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return StdioServerParameters(command=SERVER_CMD[0], args=SERVER_CMD[1:], env=env, cwd=str(cwd))


# -- a writer killed mid-write leaves no partial file --------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, sys, random
    sys.path.insert(0, {root!r})
    from types import SimpleNamespace
    from compaction._store import OriginalStore
    from compaction._handoff_store import HandoffStore
    originals = OriginalStore({cache!r})
    handoffs = HandoffStore({data!r})
    rng = random.Random({seed})
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        size = rng.randint(200_000, 3_000_000)
        line = f"writer {seed} item {{i}} " + "x" * 60 + "\\n"
        originals.put(line * (size // len(line)))
        handoffs.save(SimpleNamespace(text=f"handoff {{i}}\\n" + line * 2000, files=[], cwd="/proj"), project="/proj")
    """
)


@pytest.mark.slow
def test_writers_killed_at_random_points_leave_only_whole_files(tmp_path):
    cache, data = tmp_path / "cache", tmp_path / "data"
    rng = random.Random(7)
    kills = 0
    for seed in range(8):
        script = WRITER.format(root=str(ROOT), cache=str(cache), data=str(data), seed=seed)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        time.sleep(rng.uniform(0.05, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -9
        kills += 1
    # every original the store shows is whole: its name is the hash of its content
    store = OriginalStore(cache)
    visible = sorted((cache / "originals").glob("*/*.txt"))
    assert visible, "the writers wrote nothing before being killed; the test proves nothing"
    for p in visible:
        text = p.read_bytes().decode("utf-8")
        assert handle_for(text) == p.stem, f"{p} is a partial write"
        assert store.get(p.stem) == text
        assert text.endswith("\n")
    # every handoff the store lists is readable and whole
    hs = HandoffStore(data)
    items = hs.list(limit=1000)
    for info in items:
        h = hs.get(info.id)
        assert h.text.startswith("handoff ") and h.text.rstrip().endswith("x")
    for p in (data / "handoffs").rglob("*.json"):
        json.loads(p.read_text())
    # temporary files of killed writers are never shown as entries, and a prune clears old ones
    tmps = list((cache / "originals").glob("*/.*.tmp"))
    for p in tmps:
        assert p.stem not in {v.stem for v in visible}
        old = time.time() - OriginalStore.STALE_TMP_SECONDS - 60
        os.utime(p, (old, old))
    store.prune()
    assert not list((cache / "originals").glob("*/.*.tmp"))
    assert kills == 8


def test_a_fresh_temp_file_of_a_live_writer_survives_prune(tmp_path):
    store = OriginalStore(tmp_path)
    h = store.put("a\nb\n")
    live = store.root / h[:2] / f".{h}.txt.abcd.tmp"
    live.write_bytes(b"partial")
    store.prune()
    assert live.exists() and store.get(h) == "a\nb\n"


# -- unwritable cache / data dir -------------------------------------------------------------------


def test_unwritable_cache_through_the_engine_warns_once_and_keeps_working(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    eng = compaction.Engine(
        scorer=BM25Scorer(), settings=compaction.Settings(cache_dir=blocker / "sub", data_dir=tmp_path / "d")
    )
    text = observation()
    with caplog.at_level("WARNING", logger="context_distill"):
        r1 = eng.compact(text, ratio=0.3)
        r2 = eng.compact(text + "\nmore\n", ratio=0.3)
    assert r1.handle is None and r2.handle is None
    assert any("cannot be expanded" in w for w in r1.warnings)
    assert "the original was not stored" in r1.text
    assert compaction.verify_verbatim(text, r1.text)
    assert sum("compaction goes on without handles" in m for m in caplog.messages) == 1
    with pytest.raises(compaction.ContextDistillError):
        eng.expand("0123456789abcdef")


def test_unwritable_cache_and_data_dir_through_the_real_server(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {
        "CONTEXT_DISTILL_CACHE_DIR": str(blocker / "cache"),
        "CONTEXT_DISTILL_DATA_DIR": str(blocker / "data"),
        "CONTEXT_DISTILL_ROOTS": str(FIXTURES.parent),
    }

    async def go():
        async with Client(stdio(env)) as c:
            r = await c.call_tool("compact", {"text": observation(), "ratio": 0.3, "query": "psql"})
            st = await c.call_tool("status", {})
            e = await c.call_tool("expand", {"handle": "0123456789abcdef"})
            h = await c.call_tool("spawn_handoff", {"transcript_path": str(SEED)})
            again = await c.call_tool("compact", {"text": observation(), "target_tokens": 200})
            return r, st, e, h, again

    r, st, e, h, again = anyio.run(go)
    assert not r.is_error, r.content[0].text
    out = result_fields(r)
    assert out["handle"] is None and any("cache" in w for w in out["warnings"])
    assert out["tokens_after"] < out["tokens_before"]
    assert result_fields(st)["cache_writable"] is False
    assert e.is_error and "\n" not in error_text(e).strip()
    # a handoff that cannot be stored is still handed back, with a warning and no id
    assert not h.is_error, h.content[0].text
    assert result_fields(h)["text"] and result_fields(h)["id"] is None
    assert any("not stored" in w for w in result_fields(h)["warnings"])
    assert not again.is_error and result_fields(again)["tokens_after"] <= 200


# -- corrupt shipped files -----------------------------------------------------------------------------


def _package_copy(tmp_path: Path) -> Path:
    """A copy of the package (engine + server) whose assets a test may damage."""
    dest = tmp_path / "pkg"
    for name in ("compaction", "server"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _flip_bytes(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * where)
    data[i : i + 16] = bytes(b ^ 0xFF for b in data[i : i + 16])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "missing"])
def test_corrupt_tokenizer_is_detected_at_startup_with_one_clear_line(tmp_path, damage):
    pkg = _package_copy(tmp_path)
    asset = pkg / "compaction" / "assets" / "o200k_base.tiktoken.gz"
    if damage == "flip":
        _flip_bytes(asset)
    elif damage == "truncate":
        asset.write_bytes(asset.read_bytes()[: 100_000])
    elif damage == "empty":
        asset.write_bytes(b"")
    else:
        asset.unlink()
    env = server_env({"CONTEXT_DISTILL_SCORER": "bm25"})
    env["PYTHONPATH"] = str(pkg)
    serve = subprocess.run(
        [sys.executable, "-m", "compaction", "serve"], env=env, cwd=str(tmp_path), capture_output=True, timeout=120, stdin=subprocess.DEVNULL
    )
    cli = subprocess.run(
        [sys.executable, "-m", "compaction", "compact", "-"], env=env, cwd=str(tmp_path), input=b"a\nb\n" * 100, capture_output=True, timeout=120
    )
    for proc in (serve, cli):
        assert proc.returncode != 0
        err = proc.stderr.decode().strip()
        assert "Traceback" not in err, err
        last = err.splitlines()[-1]
        assert "tokenizer" in last and ("reinstall" in last or "sha256" in last or "missing" in last), err
    assert serve.stdout == b""  # stdout belongs to the protocol


def test_the_real_tokenizer_asset_matches_its_pinned_hash():
    tok = compaction.Tokenizer.from_file(ROOT / "compaction" / "assets" / "o200k_base.tiktoken.gz")
    assert tok.count("hello world") == 2


@pytest.mark.skipif(not MODEL_PRESENT, reason="the deletion model (compaction/assets/deletion-model.onnx) has not shipped in this checkout")
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_model_is_detected_and_status_says_so(tmp_path, damage):
    pkg = _package_copy(tmp_path)
    asset = pkg / "compaction" / "assets" / "deletion-model.onnx"
    if damage == "flip":
        _flip_bytes(asset, 0.7)
    else:
        asset.write_bytes(asset.read_bytes()[: len(asset.read_bytes()) // 3])
    env = server_env()
    env.pop("CONTEXT_DISTILL_SCORER", None)
    params = StdioServerParameters(command=sys.executable, args=["-m", "compaction", "serve"], env={**env, "PYTHONPATH": str(pkg)}, cwd=str(tmp_path))

    async def go():
        async with Client(params) as c:
            st = await c.call_tool("status", {})
            r = await c.call_tool("compact", {"text": observation(), "ratio": 0.3})
            st2 = await c.call_tool("status", {})
            return st, r, st2

    st, r, st2 = anyio.run(go)
    assert not st.is_error
    model = result_fields(st)["model"]
    assert model.get("available") is False
    assert "sha256" in json.dumps(model).lower() or "corrupt" in json.dumps(model).lower()
    assert r.is_error and "\n" not in error_text(r).strip()
    assert not st2.is_error  # and it keeps serving


# -- LLM backends that hang or answer garbage ----------------------------------------------------------


BAD_MODES = ["hang", "garbage", "wrong-shape", "html", "huge"]


class _Bad(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that goes wrong a different way on each request."""

    def log_message(self, *a):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        with self.server.lock:
            mode = BAD_MODES[self.server.count % len(BAD_MODES)]
            self.server.count += 1
            self.server.seen.append(mode)
        if mode == "hang":
            time.sleep(30)
            return
        body = {
            "garbage": b"\x00\xffnot json at all{{{",
            "wrong-shape": json.dumps({"choices": [{"message": {"content": None}}], "content": 5}).encode(),
            "html": b"<html><body>502 Bad Gateway</body></html>",
            "huge": b'{"choices": [{"message": {"content": "' + b"A" * 3_000_000 + b'"}}]}',
        }[mode]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


@contextmanager
def bad_llm():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    srv.daemon_threads = True
    srv.count, srv.seen, srv.lock = 0, [], threading.Lock()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()


def test_llm_that_hangs_or_talks_nonsense_falls_back_to_embedded_through_the_server():
    with bad_llm() as (srv, url):
        env = {
            "CONTEXT_DISTILL_LLM": "openai",
            "CONTEXT_DISTILL_LLM_BASE_URL": url,
            "CONTEXT_DISTILL_LLM_MODEL": "m",
            "CONTEXT_DISTILL_LLM_TIMEOUT": "2",
            "CONTEXT_DISTILL_ROOTS": str(SEED.parent),
        }

        async def go():
            out = []
            async with Client(stdio(env)) as c:
                for _ in BAD_MODES:
                    t0 = time.monotonic()
                    r = await c.call_tool("summarize", {"transcript_path": str(SEED), "budget_tokens": 400})
                    out.append((r, time.monotonic() - t0))
                ok = await c.call_tool("compact", {"text": observation(), "ratio": 0.5})
            return out, ok

        results, ok = anyio.run(go)
        seen = list(srv.seen)
    assert set(seen) == set(BAD_MODES), seen  # every kind of failure was served
    for r, dt in results:
        assert not r.is_error, r.content[0].text
        out = result_fields(r)
        assert out["backend"] == "embedded"
        assert out["warnings"] and any("embedded" in w or "LLM" in w or "openai" in w.lower() for w in out["warnings"])
        assert out["text"].strip()
        assert dt < 60
    assert not ok.is_error


# -- a client that disconnects mid-call does not wedge the server ---------------------------------------

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}


def _call(i: int, text: str, ratio: float = 0.3) -> dict:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "compact", "arguments": {"text": text, "ratio": ratio}}}


def _abandon(url: str, payload: dict, after: float) -> None:
    """Send a call and drop the connection before the answer comes."""
    body = json.dumps(payload).encode()
    host, port = url.split("//")[1].split("/")[0].split(":")
    s = socket.create_connection((host, int(port)))
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"accept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-06-18\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    s.sendall(head + body)
    time.sleep(after)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    s.close()


@pytest.mark.slow
def test_clients_that_disconnect_mid_call_do_not_wedge_the_server():
    big = "\n".join(f"INFO worker {i % 97} processed batch {i} in {i % 13} ms status=ok" for i in range(25_000))
    small = observation()
    with HttpServer(["--stateless"]) as srv:
        with httpx.Client(timeout=120) as h:
            t0 = time.monotonic()
            r = h.post(srv.url, headers=HEADERS, json=_call(1, big))
            t_big = time.monotonic() - t0
            assert r.status_code == 200 and '"isError":false' in r.text.replace(" ", "")
            # drop three long calls mid-way (more than the two workers), then ask again
            threads = [threading.Thread(target=_abandon, args=(srv.url, _call(10 + k, big), 0.3)) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            t1 = time.monotonic()
            r2 = h.post(srv.url, headers=HEADERS, json=_call(2, small))
            t_small = time.monotonic() - t1
            assert r2.status_code == 200 and '"isError":false' in r2.text.replace(" ", "")
            # the abandoned work drains; after that a call is as quick as ever
            t2 = time.monotonic()
            r3 = h.post(srv.url, headers=HEADERS, json=_call(3, small))
            t_after = time.monotonic() - t2
            st = h.post(srv.url, headers=HEADERS, json={"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "status", "arguments": {}}})
        assert srv.proc.poll() is None
    assert r3.status_code == 200
    # at worst the new call waits for the abandoned work (bounded), never forever
    assert t_small < 3 * t_big + 15, (t_small, t_big)
    assert t_after < 10, t_after
    import re

    m = re.search(r'"in_flight"\s*:\s*(\d+)', st.text)
    assert m and int(m.group(1)) <= 2, st.text[:500]  # the status call itself, and at most one straggler


@pytest.mark.slow
def test_precompact_hook_and_server_killed_mid_call_leave_only_whole_handoffs(tmp_path):
    """The real hook command and the real server, SIGKILLed while they write handoffs."""
    data = tmp_path / "data"
    env = server_env({"CONTEXT_DISTILL_DATA_DIR": str(data), "CONTEXT_DISTILL_ROOTS": str(SEED.parent)})
    hook_input = json.dumps(
        {"session_id": "s1", "transcript_path": str(SEED), "cwd": "/proj", "hook_event_name": "PreCompact", "trigger": "auto"}
    ).encode()
    rng = random.Random(3)
    finished = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "compaction", "hook", "PreCompact"],
            env=env, cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        proc.stdin.write(hook_input)
        proc.stdin.close()
        time.sleep(rng.uniform(0.2, 2.5))
        if proc.poll() is None:
            proc.kill()
        else:
            finished += 1
        proc.wait(10)
    # the server, killed while spawn_handoff calls are in flight
    for _ in range(3):
        proc = subprocess.Popen(
            [*SERVER_CMD], env=env, cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        msgs = [
            INIT_LINE,
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            *({"jsonrpc": "2.0", "id": 10 + k, "method": "tools/call", "params": {"name": "spawn_handoff", "arguments": {"transcript_path": str(SEED)}}} for k in range(4)),
        ]  # fmt: skip
        proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))
        proc.stdin.flush()
        time.sleep(rng.uniform(1.0, 4.0))
        proc.kill()
        proc.wait(10)
    # one last hook run, left to finish: the store still works and holds it
    done = subprocess.run(
        [sys.executable, "-m", "compaction", "hook", "PreCompact"], env=env, cwd=str(ROOT), input=hook_input, capture_output=True, timeout=120
    )
    assert done.returncode == 0
    store = HandoffStore(data)
    items = store.list(limit=1000)
    assert len(items) >= 1 + finished
    for info in items:
        assert store.get(info.id).text.strip()
    for p in (data / "handoffs").rglob("*.json"):
        json.loads(p.read_text())


INIT_LINE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


# -- inference under concurrency ---------------------------------------------------------------------


@pytest.mark.skipif(not MODEL_PRESENT, reason="the deletion model has not shipped in this checkout")
def test_model_scores_are_reproducible_single_threaded_under_concurrent_callers():
    """With one intra-op thread the deletion model gives bit-identical scores from any calling
    thread, whatever the concurrency (what the load test relies on when it compares server answers
    with direct engine calls). With two intra-op threads scores are not always bit-reproducible
    across calling threads; scripts/load_test.py shows it on real inputs (docs/load.md)."""
    import numpy as np

    from compaction._compact import _build_units
    from compaction._model import ModelScorer
    from compaction._scoring import ScoringInput

    tok = compaction.get_tokenizer()
    scorer = ModelScorer(threads=1)
    inputs = []
    texts = [observation()] + [p.read_text(encoding="utf-8") for p in sorted((FIXTURES.parent / "hooks").glob("*.txt"))]
    texts += [json.dumps(json.loads(line).get("toolUseResult", ""))[:20000] for line in SEED.read_text().splitlines()[:12]]
    for text in texts:
        if not text.strip():
            continue
        lines, bodies = text.splitlines(keepends=True), text.splitlines()
        u = _build_units(lines, bodies, tok, compaction.Limits())
        inputs.append(ScoringInput(u.texts, u.tokens, u.line_of, "which step failed", tok.encode("which step failed")))
    base = [scorer.logits(i) for i in inputs]
    bad: list[int] = []

    def run():
        for _ in range(3):
            for k, inp in enumerate(inputs):
                if not np.array_equal(scorer.logits(inp), base[k]):
                    bad.append(k)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad, f"scores changed between identical runs for inputs {sorted(set(bad))}"
