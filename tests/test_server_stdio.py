"""The MCP server as clients see it: a real subprocess (`python -m compaction serve`) driven by the
mcp SDK client over stdio. Lists tools, calls each, checks structured output against each tool's
outputSchema, error paths (and that the next call succeeds), progress, sampling, resources."""

from __future__ import annotations

import json
import os

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CreateMessageResult, TextContent
from server_support import (
    result_fields,
    FIXTURES,
    MODEL_PRESENT,
    ROOT,
    SERVER_CMD,
    TEXT_TOOLS,
    TOOLS,
    check_structured,
    error_text,
    kept_lines_match,
    observation,
    server_env,
)

import compaction


def params(extra: dict[str, str] | None = None, scorer: str | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=SERVER_CMD[0], args=SERVER_CMD[1:], env=server_env(extra, scorer=scorer), cwd=str(ROOT)
    )


def run(fn, *args, **kwargs):
    return anyio.run(lambda: fn(*args, **kwargs))


def test_tools_listed_with_schemas_titles_and_honest_annotations():
    async def go():
        async with Client(params()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            return tools

    tools = run(go)
    assert set(tools) == TOOLS
    for t in tools.values():
        assert t.title and len(t.description) > 150, t.name
        assert t.input_schema["type"] == "object"
        if t.name in TEXT_TOOLS:  # text for the agent; fields in _meta (see server/_app.py)
            assert not t.output_schema, t.name
        else:
            assert t.output_schema and t.output_schema["type"] == "object", t.name
        assert t.annotations is not None and t.annotations.open_world_hint is not None
    for name in ("compact", "expand", "status", "context_status"):
        a = tools[name].annotations
        assert a.read_only_hint is True and a.idempotent_hint is True and a.open_world_hint is False, name
    assert tools["spawn_handoff"].annotations.read_only_hint is False
    assert tools["spawn_handoff"].annotations.destructive_hint is False
    # the description tells an agent how to get omitted lines back
    assert "expand" in tools["compact"].description and "handle" in tools["compact"].description
    props = tools["compact"].input_schema["properties"]
    assert {"text", "messages", "ratio", "target_tokens", "query", "keep", "preserve_recent", "markers"} <= set(props)
    assert set(tools["expand"].input_schema.get("required", [])) == {"handle"}


def test_compact_then_expand_real_output_and_status():
    text = observation()

    async def go():
        async with Client(params()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            r = await c.call_tool("compact", {"text": text, "ratio": 0.3, "query": "why does test_accent fail?"})
            out = check_structured(tools["compact"], r)
            assert r.content[0].text == out["text"]
            omitted = out["omitted_line_ranges"]
            a, b = omitted[0]
            e = await c.call_tool("expand", {"handle": out["handle"], "lines": f"{a}-{b}"})
            ex = check_structured(tools["expand"], e)
            whole = await c.call_tool("expand", {"handle": out["handle"]})
            st = await c.call_tool("status", {})
            return tools, out, ex, check_structured(tools["expand"], whole), check_structured(tools["status"], st)

    tools, out, ex, whole, st = run(go)
    assert out["tokens_before"] > 1500
    assert out["tokens_after"] <= int(out["tokens_before"] * 0.3)
    kept_lines_match(text, out["kept_line_ranges"], out["text"])
    assert " omitted]" in out["text"] and out["handle"] in out["text"]
    a, b = out["omitted_line_ranges"][0]
    assert ex["text"] == "".join(text.splitlines(keepends=True)[a - 1 : b])
    assert whole["text"] == text
    assert st["tokenizer"]["name"] == "o200k_base" and st["tokenizer"]["verified"] is True
    assert st["tokenizer"]["sha256"] == compaction.get_tokenizer().sha256
    assert st["version"] == compaction.__version__
    assert st["cache_writable"] is True
    assert st["cache_dir"] == os.environ["CONTEXT_DISTILL_CACHE_DIR"]
    assert st["transport"] == "stdio"
    assert st["scorer"] == ("bm25" if not MODEL_PRESENT else st["scorer"])
    if MODEL_PRESENT:
        assert st["model"]["available"] is True
        assert st["model"].get("execution_provider") in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_expand_takes_a_line_number_and_marks_where_each_range_starts():
    text = observation()
    lines = text.splitlines(keepends=True)

    async def go():
        async with Client(params()) as c:
            r = result_fields(await c.call_tool("compact", {"text": text, "ratio": 0.3}))
            one = await c.call_tool("expand", {"handle": r["handle"], "lines": 3})  # a number, as models send
            two = await c.call_tool("expand", {"handle": r["handle"], "lines": "1-2,5-6"})
            odd = await c.call_tool("expand", {"handle": r["handle"], "lines": ",".join(str(i) for i in range(1, 60, 2))})
            return one, two, odd

    one, two, odd = run(go)
    n = len(lines)
    assert odd.content[0].text == "".join(f"[lines {i}-{i} of {n}]\n" + lines[i - 1] for i in range(1, 60, 2))
    assert not one.is_error and one.content[0].text == lines[2]  # one range: the line itself
    assert two.content[0].text == f"[lines 1-2 of {n}]\n" + "".join(lines[0:2]) + f"[lines 5-6 of {n}]\n" + "".join(lines[4:6])
    assert result_fields(two)["text"] == "".join(lines[0:2] + lines[4:6])  # the fields: the lines alone


def test_a_json_text_is_text():
    """The SDK parses as JSON every string argument whose type is not exactly str: a JSON tool output
    given as `text` (or a session as a JSON list) had arrived as a dict or list and been refused."""
    blob = json.dumps({"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(400)]}, indent=2)
    session = json.dumps([{"role": "user", "content": "fix the parser"}, {"role": "assistant", "content": "Fixed src/parse.py."}])

    async def go():
        async with Client(params()) as c:
            r = await c.call_tool("compact", {"text": blob, "ratio": 0.3, "query": '{"id": 7}'})
            null = await c.call_tool("compact", {"text": "null"})
            s = await c.call_tool("summarize", {"text": session})
            cs = await c.call_tool("context_status", {"text": session})
            # JSON that holds no session is plain text, as `text` says (it was refused with advice
            # to pass --format text, which an MCP caller cannot do)
            log = '{"level":"info","msg":"deploy started"}\n{"level":"error","msg":"migration 0042 failed"}\n'
            plain = [await c.call_tool(tool, {"text": t}) for tool in ("context_status", "summarize", "spawn_handoff")
                     for t in (log, "[1, 2, 3]")]
            return r, null, s, cs, plain

    r, null, s, cs, plain = run(go)
    assert [error_text(p) for p in plain if p.is_error] == []
    assert "migration 0042 failed" in plain[2].content[0].text
    assert not r.is_error, error_text(r)
    out = result_fields(r)
    assert out["tokens_after"] < out["tokens_before"] and compaction.verify_verbatim(blob, out["text"])
    assert out["query"] == '{"id": 7}'
    assert not null.is_error and result_fields(null)["text"] == "null"  # the text "null", too small to compact
    assert not s.is_error and "fix the parser" in result_fields(s)["text"]
    assert not cs.is_error


def test_expand_headers_after_a_line_that_ends_in_a_lone_cr():
    text = "a\rb\n\nc\n" + "".join(f"filler line {i}\n" for i in range(300))

    async def go():
        async with Client(params()) as c:
            r = result_fields(await c.call_tool("compact", {"text": text, "ratio": 0.1}))
            return await c.call_tool("expand", {"handle": r["handle"], "lines": "1,3"})

    e = run(go)
    assert e.content[0].text == "[lines 1-1 of 304]\na\r\n[lines 3-3 of 304]\n\n"


def test_bad_inputs_are_tool_errors_and_the_server_keeps_serving():
    text = observation()
    cases = [
        ("compact", {"text": ""}, "empty"),
        ("compact", {"text": "   \n\n  "}, "empty"),
        ("compact", {"text": "abc\x00def\n" * 10}, "NUL"),
        ("compact", {"text": text, "ratio": 0}, "ratio"),
        ("compact", {"text": text, "ratio": 1.5}, "invalid arguments for compact: ratio"),
        ("compact", {"text": text, "ratio": "lots"}, "ratio"),
        ("compact", {"text": text, "target_tokens": 0}, "target_tokens"),
        ("compact", {"text": text, "ratio": 0.5, "target_tokens": 100}, "not both"),
        ("compact", {}, "exactly one"),
        ("compact", {"text": text, "messages": [{"role": "user", "content": "x"}]}, "exactly one"),
        ("compact", {"messages": []}, "empty"),
        ("compact", {"messages": [{"content": "no role"}]}, "role"),
        ("compact", {"text": text, "keep": ["("]}, "keep"),
        ("compact", {"text": "a" * 60 + "!\n" + text, "keep": ["(a|aa)+$"]}, "catastrophic backtracking"),
        ("compact", {"text": text, "bogus": 1}, "unknown argument"),
        ("compact", {"messages": ["x"] * 3000}, "more)"),
        ("status", {"x": 1}, "valid arguments: none"),
        ("expand", {"handle": "0123456789abcdef"}, "no original"),
        ("expand", {"handle": "../../etc/passwd"}, "invalid handle"),
        ("expand", {}, "handle: Field required"),
        ("nonexistent_tool", {}, "nonexistent_tool"),
    ]

    async def go():
        results = []
        async with Client(params()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            for name, args, _ in cases:
                r = await c.call_tool(name, args)
                ok = await c.call_tool("compact", {"text": text, "ratio": 0.5})
                results.append((r, ok))
            return tools, results

    tools, results = run(go)
    for (name, args, needle), (r, ok) in zip(cases, results):
        msg = error_text(r)
        assert needle.lower() in msg.lower(), (name, args, msg)
        assert "Traceback" not in msg and len(msg.splitlines()) == 1 and len(msg) < 1000, msg
        check_structured(tools["compact"], ok)  # the next call succeeds


def test_compact_messages_and_keep_patterns():
    text = observation()
    messages = [
        {"role": "user", "content": "Fix the failing dbshell tests."},
        {"role": "assistant", "content": "Running the tests."},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": text}]},
        {"role": "assistant", "content": "Looking at the error."},
        {"role": "user", "content": "why does psql fail?"},
    ]

    async def go():
        async with Client(params()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            r = await c.call_tool("compact", {"messages": messages, "ratio": 0.3, "preserve_recent": 2})
            k = await c.call_tool("compact", {"text": text, "ratio": 0.1, "keep": [r"^Ran \d+ tests"]})
            tiny = await c.call_tool("compact", {"text": text, "target_tokens": 60})
            check_structured(tools["compact"], tiny)
            return check_structured(tools["compact"], r), check_structured(tools["compact"], k), tiny

    m, k, tiny = run(go)
    # a budget too small for the handle line: the text the agent reads still names the handle,
    # while structuredContent.text stays the compacted text itself
    shown = tiny.content[0].text
    handle = result_fields(tiny)["handle"]
    assert handle not in result_fields(tiny)["text"]
    assert shown.startswith(result_fields(tiny)["text"]) and shown.splitlines()[-1] == compaction.handle_line(handle)
    # each compacted part says which message it is in and names its handle on its last line
    assert [p["message"] for p in m["parts"]] == [2] and m["parts"][0]["handle"] == m["handles"][0]
    assert m["messages"][2]["content"][0]["content"].splitlines()[-1].count(m["handles"][0]) == 1
    assert m["tokens_after"] < m["tokens_before"]
    assert len(m["messages"]) == len(messages)
    assert m["messages"][-2:] == messages[-2:]
    assert m["messages"][0] == messages[0]
    # the default query: the assistant's last message, its earlier ones, the last user message
    assert m["query"] == "Looking at the error.\n\nEarlier: Running the tests.\n\nTask: why does psql fail?"
    assert m["handles"] and m["messages"][2]["content"][0]["tool_use_id"] == "t1"
    assert "Ran 13 tests in 0.134s" in k["text"]


def test_compact_messages_text_leaves_image_data_out():
    """The text the agent reads holds the messages as JSON: 300 KB of base64 image would be
    about 270,000 tokens of it. The result's messages keep the image for the caller."""
    image = "iVBORw0KGgo" + "A" * 300_000
    messages = [
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                                     {"type": "text", "text": "why does psql fail?"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": observation()}]},
        {"role": "assistant", "content": "Looking at it."},
    ]  # fmt: skip

    async def go():
        async with Client(params()) as c:
            return await c.call_tool("compact", {"messages": messages, "ratio": 0.3, "preserve_recent": 1})

    r = run(go)
    shown = r.content[0].text
    assert image not in shown and len(shown) < 20_000
    assert "300,011 characters of base64 data, not shown" in shown and "data left out of this text" in shown
    assert result_fields(r)["messages"][0]["content"][0]["source"]["data"] == image


def test_progress_notifications_on_long_input():
    long_text = "\n".join(f"{i:06d} INFO worker heartbeat ok queue=0" for i in range(20000)) + "\nERROR: disk full\n"
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def go():
        async with Client(params()) as c:
            r = await c.call_tool("compact", {"text": long_text, "ratio": 0.05}, progress_callback=on_progress)
            assert not r.is_error
            return result_fields(r)

    out = run(go)
    assert out["tokens_after"] < out["tokens_before"]
    assert len(seen) >= 3
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)
    assert seen[-1][0] == 100.0 and all(t == 100.0 for _, t, _ in seen)


def test_progress_notifications_for_messages_and_summarize():
    text = observation()
    messages = [{"role": "user", "content": "Fix the failing dbshell tests."}]
    for i in range(3):
        messages += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": text}]},
        ]
    messages.append({"role": "user", "content": "why does psql fail?"})
    seen: dict[str, list[tuple[float, str | None]]] = {"compact": [], "summarize": []}

    def recorder(name: str):
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen[name].append((progress, message))

        return on_progress

    async def go():
        async with Client(params()) as c:
            r = await c.call_tool(
                "compact", {"messages": messages, "ratio": 0.3, "preserve_recent": 1}, progress_callback=recorder("compact")
            )
            s = await c.call_tool("summarize", {"messages": messages}, progress_callback=recorder("summarize"))
            assert not r.is_error and not s.is_error
            return result_fields(r)

    out = run(go)
    assert len(out["handles"]) == 3
    compact = seen["compact"]
    assert [p for p, _ in compact] == sorted(p for p, _ in compact) and compact[-1][0] == 100.0
    assert any("message part 2 of 3" in (m or "") for _, m in compact), compact
    assert seen["summarize"] and seen["summarize"][-1] == (100.0, "summary written (embedded)")


def test_logs_go_to_stderr_and_stdout_is_pure_protocol(tmp_path):
    """Start the server by hand, speak JSON-RPC lines, and check every stdout line is JSON-RPC."""
    import subprocess

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    msgs = [
        init,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "compact", "arguments": {"text": ""}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "status", "arguments": {}}},
    ]
    proc = subprocess.Popen(
        SERVER_CMD,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env({"CONTEXT_DISTILL_LOG_LEVEL": "INFO"}),
        cwd=str(ROOT),
    )
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in msgs).encode())
        proc.stdin.flush()
        replies = []
        # Requests are served concurrently, so replies may come in any order: wait for both.
        while not {2, 3} <= {r.get("id") for r in replies}:
            line = proc.stdout.readline()
            assert line, "server closed stdout before answering"
            replies.append(json.loads(line))  # every stdout line is one JSON-RPC message
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        stderr = proc.stderr.read()
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert by_id[2]["result"]["isError"] is True
    assert by_id[3]["result"]["structuredContent"]["tokenizer"]["name"] == "o200k_base"
    assert proc.stdout.read() == b""
    assert b"engine ready" in stderr


def test_a_request_with_a_lone_surrogate_is_answered():
    """A Node client that cuts text inside an emoji sends "\\ud83d": valid JSON the SDK's parser
    refuses, and on stdio a refused line had no answer (the client waited for its timeout)."""
    import subprocess

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    call = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"compact","arguments":{"text":"cut \\ud83d here, a pair \\ud83d\\ude00"}}}'
    proc = subprocess.Popen(SERVER_CMD, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=server_env(), cwd=str(ROOT))  # fmt: skip
    try:
        proc.stdin.write((json.dumps(init) + "\n" + '{"jsonrpc":"2.0","method":"notifications/initialized"}\n' + call + "\n").encode())
        proc.stdin.flush()
        replies = [json.loads(line) for line in _read_lines(proc.stdout, 2, timeout=30)]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert len(replies) == 2, f"no answer to the call within 30 s: {replies}"
    reply = {r["id"]: r for r in replies}[2]
    fields = reply["result"]["_meta"]["io.github.context-distill/result"]
    assert fields["text"] == "cut \ufffd here, a pair \U0001f600"


def _read_lines(stream, n: int, *, timeout: float) -> list[bytes]:
    """Up to ``n`` lines from ``stream``, as many as came within ``timeout`` seconds."""
    import queue
    import threading

    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(stream.readline()) for _ in range(n)], daemon=True).start()
    lines = []
    try:
        for _ in range(n):
            lines.append(q.get(timeout=timeout))
    except queue.Empty:
        pass
    return lines


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"a": "x\\ud83d"}\n', '{"a": "x\\ufffd"}\n'),
        ('{"a": "\\ud83d\\ude00"}\n', '{"a": "\\ud83d\\ude00"}\n'),  # a pair is a character: unchanged
        ('{"\\udc00": ["\\udfff", 1e400]}', '{"\\ufffd": ["\\ufffd", 1e400]}'),  # nothing else is rewritten
        ('{"a": "\\\\ud83d"}', '{"a": "\\\\ud83d"}'),  # an escaped backslash, then text: no escape
        ('{"a": "\\ude00\\ud83d"}', '{"a": "\\ufffd\\ufffd"}'),  # low then high: both lone
        ("not json \\ud800", "not json \\ufffd"),
        ('{"plain": "text"}', '{"plain": "text"}'),
    ],
)
def test_repair_line(line, expected):
    from server._stdio import repair_line

    assert repair_line(line) == expected


def _needs(name: str) -> None:
    if not hasattr(compaction, name):
        pytest.skip(f"compaction.{name} has not landed in this build yet")


def test_session_tools_over_stdio(tmp_path):
    for name in ("summarize", "make_handoff", "context_status"):
        _needs(name)
    transcript = FIXTURES / "claude-code-short.jsonl"

    async def go():
        async with Client(params()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            s = await c.call_tool("summarize", {"transcript_path": str(transcript)})
            h = await c.call_tool("spawn_handoff", {"transcript_path": str(transcript), "goal": "finish the work"})
            cs = await c.call_tool("context_status", {"transcript_path": str(transcript), "limit_tokens": 200000})
            outside = await c.call_tool("summarize", {"transcript_path": "/etc/passwd"})
            both = await c.call_tool("context_status", {"text": "x", "transcript_path": str(transcript)})
            spawn_off = await c.call_tool("spawn_handoff", {"text": "user: do the thing", "spawn": True})
            hout = check_structured(tools["spawn_handoff"], h)
            res = await c.read_resource(hout["uri"])
            listed = (await c.list_resources()).resources
            prompt = await c.get_prompt("resume_from_handoff", {"handoff_id": hout["id"]})
            bad = await c.call_tool("compact", {"text": "fine\n" * 50, "ratio": 0.5})
            return tools, s, hout, cs, outside, both, spawn_off, res, listed, prompt, bad

    tools, s, hout, cs, outside, both, spawn_off, res, listed, prompt, ok = run(go)
    sout = check_structured(tools["summarize"], s)
    assert sout["backend"] == "embedded" and sout["tokens"] > 0 and sout["transcript_tokens"] > 0
    assert hout["id"] and hout["uri"] == f"handoff://{hout['id']}" and len(hout["text"]) < 10_000
    assert hout["goal"] == "finish the work"
    csout = check_structured(tools["context_status"], cs)
    assert csout["limit_tokens"] == 200000 and csout["recommendation"] in ("fine", "compact", "handoff")
    assert "outside the folders" in error_text(outside)
    assert "exactly one" in error_text(both)
    assert "CONTEXT_DISTILL_SPAWN_COMMAND" in error_text(spawn_off)
    assert res.contents[0].text == hout["text"]
    assert any(str(r.uri) == hout["uri"] for r in listed)
    assert hout["text"] in prompt.messages[0].content.text
    assert not ok.is_error


def test_context_status_reports_skipped_records():
    _needs("context_status")
    lines = (FIXTURES / "claude-code-short.jsonl").read_text().splitlines()
    text = "\n".join(lines[:3] + ['{"type": "user", "message": {"role": "user", "content": "cut off'] + lines[3:]) + "\n"

    async def go():
        async with Client(params()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            r = await c.call_tool("context_status", {"text": text})
            return tools, r

    tools, r = run(go)
    out = check_structured(tools["context_status"], r)
    assert any("skipped" in w for w in out["warnings"]), out
    assert "[... context-distill: warning:" in r.content[0].text


def _sampling_callback(seen: list):
    async def cb(context, params):
        seen.append(params)
        return CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=_fake_summary()),
            model="test-model",
        )

    return cb


def _fake_summary() -> str:
    from compaction._summarize import SECTIONS

    return "\n".join(f"## {s}\n- written by the client's model through MCP sampling\n" for s in SECTIONS)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_summarize_uses_mcp_sampling_when_the_client_offers_it(mode):
    _needs("summarize")
    transcript = FIXTURES / "claude-code-short.jsonl"
    seen: list = []

    async def go():
        async with Client(params(), sampling_callback=_sampling_callback(seen), mode=mode) as c:
            # legacy: 2025-11-25, a mid-call sampling/createMessage request;
            # auto: 2026-07-28, an InputRequiredResult the client answers and retries
            assert c.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
            r = await c.call_tool("summarize", {"transcript_path": str(transcript)})
            plain = await c.call_tool("status", {})
            return r, plain

    r, st = run(go)
    assert not r.is_error, r.content[0].text
    out = result_fields(r)
    assert result_fields(st)["sampling"] is True
    if not seen:
        pytest.skip("this summarize build never asks an LLM backend, so there is nothing to sample")
    assert out["backend"] == "mcp-sampling:test-model", out
    assert "written by the client's model through MCP sampling" in out["text"]
    assert seen[0].max_tokens > 0 and seen[0].messages[0].content.text


def test_default_scorer_is_the_deletion_model():
    if not MODEL_PRESENT:
        pytest.skip("compaction/assets/deletion-model.onnx has not shipped yet (the model helper's deliverable)")
    text = observation()

    async def go():
        async with Client(params(scorer="model")) as c:
            r = await c.call_tool("compact", {"text": text, "ratio": 0.3, "query": "psql"})
            st = await c.call_tool("status", {})
            return result_fields(r), result_fields(st)

    out, st = run(go)
    assert out["scorer"] not in ("bm25", "head+tail", "tail", "random", "error-regex")
    assert st["model"]["available"] is True and st["model"]["sha256"]


def test_missing_model_is_a_clear_tool_error_not_a_crash(tmp_path):
    """Without the model (and no override) compact says what to do; status says why; the server serves."""
    if MODEL_PRESENT:
        pytest.skip("the model ships in this build; covered by test_default_scorer_is_the_deletion_model")

    async def go():
        async with Client(params(scorer="model")) as c:
            r = await c.call_tool("compact", {"text": observation(), "ratio": 0.3})
            st = await c.call_tool("status", {})
            e = await c.call_tool("expand", {"handle": "0123456789abcdef"})
            return r, st, e

    r, st, e = run(go)
    assert "model" in error_text(r).lower()
    assert result_fields(st)["model"]["available"] is False and result_fields(st)["scorer"] == "unavailable"
    assert "no original" in error_text(e)


def test_a_failing_sampler_falls_back_to_the_embedded_summarizer():
    _needs("summarize")
    from mcp_types import ErrorData

    transcript = FIXTURES / "claude-code-short.jsonl"

    async def refuse(context, params):
        return ErrorData(code=-1, message="user rejected sampling")

    async def go():
        async with Client(params(), sampling_callback=refuse, mode="legacy") as c:
            r = await c.call_tool("summarize", {"transcript_path": str(transcript)})
            ok = await c.call_tool("status", {})
            return r, ok

    r, ok = run(go)
    assert not r.is_error, r.content[0].text
    assert result_fields(r)["backend"] == "embedded"
    assert any("sampling" in w for w in result_fields(r)["warnings"])
    assert not ok.is_error


def test_a_client_that_never_answers_sampling_gets_the_embedded_summary():
    _needs("summarize")
    transcript = FIXTURES / "claude-code-short.jsonl"

    async def never(context, params):
        await anyio.sleep_forever()

    async def go():
        async with Client(params(extra={"CONTEXT_DISTILL_SAMPLING_TIMEOUT": "1"}), sampling_callback=never, mode="legacy") as c:
            with anyio.fail_after(60):
                return await c.call_tool("summarize", {"transcript_path": str(transcript)})

    r = run(go)
    assert not r.is_error and result_fields(r)["backend"] == "embedded"
    assert any("sampling" in w for w in result_fields(r)["warnings"])


def test_a_failed_spawn_still_returns_the_stored_handoff_and_a_bad_log_level_is_a_warning(tmp_path):
    """The handoff is made and stored before the agent is started: a spawn that fails must not
    turn the call into an error (its id would be lost, and each retry would store a copy)."""
    env = {
        "CONTEXT_DISTILL_SPAWN_COMMAND": json.dumps(["/nonexistent/agent", "{prompt}"]),
        "CONTEXT_DISTILL_DATA_DIR": str(tmp_path / "data"),
        "CONTEXT_DISTILL_LOG_LEVEL": "WARN",
    }
    msgs = [{"role": "user", "content": "Fix the date parser in src/dates.py"}, {"role": "assistant", "content": "Looking at src/dates.py now."}]

    async def go():
        async with Client(params(env)) as c:
            r = await c.call_tool("spawn_handoff", {"messages": msgs, "spawn": True})
            p = None
            try:
                await c.get_prompt("resume_from_handoff", {"handoff_id": "nope"})
            except Exception as exc:  # noqa: BLE001 - the client raises the server's error
                p = str(exc)
            return r, p

    r, prompt_error = run(go)
    assert not r.is_error, error_text(r)
    sc = result_fields(r)
    assert sc["id"] and not sc.get("spawned")
    assert any("no agent was started" in w for w in sc["warnings"])
    assert len(list((tmp_path / "data" / "handoffs").glob("*.json"))) == 1
    assert prompt_error and "nope" in prompt_error


def test_text_tools_put_their_warnings_in_the_text_the_agent_reads():
    text = "\n".join(f"line {i} of a long log with some words in it" for i in range(400))

    async def go():
        async with Client(params()) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            r = await c.call_tool("compact", {"text": text, "target_tokens": 3})
            return check_structured(tools["compact"], r), r.content[0].text

    fields, shown = run(go)
    assert fields["warnings"]
    for w in fields["warnings"]:
        assert f"[... context-distill: warning: {w} ...]" in shown.splitlines()
    assert all(compaction.is_marker_line(ln) for ln in shown.splitlines())  # markers, handle and warnings only


def test_an_added_line_never_makes_an_empty_line_after_an_input_line_break():
    text = "\x0c".join(f"line {i} ERROR" for i in range(30)) + "\x0c"

    async def go():
        async with Client(params()) as c:
            r = await c.call_tool("compact", {"text": text, "target_tokens": 3, "keep": ["ERROR"]})
            return result_fields(r), r.content[0].text

    fields, shown = run(go)
    assert fields["warnings"] and compaction.verify_verbatim(text, shown), shown[-300:]
