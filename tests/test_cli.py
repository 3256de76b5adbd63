"""The `context-distill` command line, run as a real subprocess (`python -m compaction ...`):
outputs, --json shapes, exit codes (0 ok, 2 usage/bad input, 1 internal), one-line errors, --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from server_support import FIXTURES, ROOT, kept_lines_match, observation, server_env

import compaction

CLI = [sys.executable, "-m", "compaction"]


def cli(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        env=env or server_env(),
        cwd=str(ROOT),
        timeout=120,
    )


def one_line_error(p: subprocess.CompletedProcess) -> str:
    err = p.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_compact_file_json_shape_and_verbatim_ranges():
    path = FIXTURES / "observation.txt"
    text = observation()
    p = cli("compact", str(path), "--ratio", "0.3", "--query", "why does test_accent fail?", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for key in ("text", "kept_line_ranges", "tokens_before", "tokens_after", "handle", "omitted_line_ranges"):
        assert key in out
    assert out["tokens_before"] == compaction.count_tokens(text)
    assert out["tokens_after"] <= int(out["tokens_before"] * 0.3)
    kept_lines_match(text, out["kept_line_ranges"], out["text"])
    # the ranges are 1-based inclusive over str.splitlines() and cover kept + omitted exactly
    covered = set()
    for a, b in out["kept_line_ranges"] + out["omitted_line_ranges"]:
        covered |= set(range(a, b + 1))
    assert covered == set(range(1, len(text.splitlines()) + 1))
    # expand gives omitted lines back verbatim
    a, b = out["omitted_line_ranges"][0]
    e = cli("expand", out["handle"], "--lines", f"{a}-{b}")
    assert e.returncode == 0 and e.stdout.decode() == "".join(text.splitlines(keepends=True)[a - 1 : b])
    ej = json.loads(cli("expand", out["handle"], "--json").stdout)
    assert ej["text"] == text and ej["total_lines"] == len(text.splitlines())


def test_compact_stdin_text_and_options():
    text = observation()
    p = cli("compact", "-", "--target-tokens", "400", "--keep", r"^FAILED", "--no-markers", stdin=text.encode())
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "FAILED (errors=6, skipped=2)" in out
    assert " omitted]" not in out
    assert compaction.count_tokens(out) <= 401
    lines = set(text.splitlines())
    assert all(ln in lines for ln in out.splitlines())
    # default path is stdin
    d = cli("compact", stdin=text.encode())
    assert d.returncode == 0 and " omitted]" in d.stdout.decode()


@pytest.mark.parametrize(
    "args,stdin,needle",
    [
        (["compact", "-", "--ratio", "0"], b"x\n", "ratio"),
        (["compact", "-", "--ratio", "1.5"], b"x\n", "ratio"),
        (["compact", "-", "--ratio", "abc"], b"x\n", "number"),
        (["compact", "-", "--ratio", "0.3", "--target-tokens", "10"], b"x\n", "not allowed"),
        (["compact", "-"], b"", "empty"),
        (["compact", "-"], b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "UTF-8"),
        (["compact", "-"], b"text with a NUL \x00 byte\n", "NUL"),
        (["compact", "/no/such/file.log"], None, "no such file"),
        (["compact", "."], None, "folder"),
        (["compact", "-", "--keep", "("], b"a\nb\n" * 50, "keep"),
        (["compact", "-", "--query", "caf\udce9"], b"a\nb\n" * 50, "invalid Unicode"),  # argv byte 0xe9, not UTF-8
        (["expand", "0123456789abcdef"], None, "no original"),
        (["expand", "../etc/passwd"], None, "invalid handle"),
        (["expand", "0123456789abcdef", "--lines", "x-y"], None, ""),
        (["frobnicate"], None, "invalid choice"),
        (["compact", "--bogus"], None, "unrecognized"),
        (["serve", "--port", "99999"], None, "port"),
    ],
)
def test_bad_input_exit_2_with_one_clear_line(args, stdin, needle):
    p = cli(*args, stdin=stdin)
    assert p.returncode == 2, (p.returncode, p.stderr)
    err = one_line_error(p)
    assert needle.lower() in err.lower()
    assert p.stdout == b""


def test_line_limit_is_configurable():
    p = cli("compact", "-", stdin=b"x\n" * 300, env=server_env({"CONTEXT_DISTILL_MAX_INPUT_LINES": "200"}))
    assert p.returncode == 2 and "CONTEXT_DISTILL_MAX_INPUT_LINES" in one_line_error(p)
    st = json.loads(cli("status", "--json", env=server_env({"CONTEXT_DISTILL_MAX_INPUT_LINES": "200"})).stdout)
    assert st["limits"]["max_input_lines"] == 200


def test_text_output_is_the_result_byte_for_byte():
    """A result that ends with a line break other than \\n is printed as it is (no \\n added)."""
    p = cli("compact", "-", stdin=b"hello world\r")
    assert p.returncode == 0 and p.stdout == b"hello world\r", (p.stdout, p.stderr)
    p = cli("compact", "-", stdin=b"no line break at the end")
    assert p.stdout == b"no line break at the end\n"  # a shell prompt must not follow on the same line


def test_a_keep_pattern_re_warns_about_prints_no_python_warning():
    p = cli("compact", "-", "--ratio", "0.3", "--keep", "[[a]", stdin=b"".join(b"line %d [a]\n" % i for i in range(300)))
    assert p.returncode == 0, p.stderr
    assert b"FutureWarning" not in p.stderr and b"Warning:" not in p.stderr


def test_input_size_limit_is_configurable():
    env = server_env({"CONTEXT_DISTILL_MAX_INPUT_BYTES": "1000"})
    p = cli("compact", "-", stdin=b"a line of text\n" * 200, env=env)
    assert p.returncode == 2 and "CONTEXT_DISTILL_MAX_INPUT_BYTES" in one_line_error(p)


def test_missing_model_without_override_is_exit_1_with_advice(tmp_path):
    import shutil

    pkg = tmp_path / "pkg"  # a copy of the package without the model file
    for name in ("compaction", "server"):
        shutil.copytree(ROOT / name, pkg / name, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "compaction" / "assets" / "deletion-model.onnx").unlink(missing_ok=True)
    env = {**server_env(scorer="model"), "PYTHONPATH": str(pkg)}
    p = subprocess.run(
        [sys.executable, "-m", "compaction", "compact", "-"],
        input=observation().encode(),
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 1
    assert "CONTEXT_DISTILL_SCORER" in one_line_error(p)


def test_unknown_scorer_override_is_a_usage_error():
    p = cli("compact", "-", stdin=b"x\n" * 10, env=server_env(scorer="magic"))
    assert p.returncode == 2 and "bm25" in one_line_error(p)


def test_status_json_and_text():
    p = cli("status", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["version"] == compaction.__version__
    assert st["tokenizer"] == {"name": "o200k_base", "sha256": compaction.get_tokenizer().sha256, "verified": True}
    assert st["cache_writable"] is True and st["limits"]["max_input_bytes"] > 0
    t = cli("status")
    assert t.returncode == 0 and b"o200k_base" in t.stdout


def test_help_explains_each_command_with_an_example():
    top = cli("--help")
    assert top.returncode == 0
    for cmd in ("compact", "expand", "summarize", "handoff", "context-status", "status", "serve", "hook", "install-hooks"):
        assert cmd.encode() in top.stdout
        h = cli(cmd, "--help")
        assert h.returncode == 0, cmd
        assert b"example" in h.stdout, cmd
    assert cli().returncode == 2  # no command: usage on stderr


def test_hook_always_exits_0_even_on_garbage():
    for stdin in (b"", b"not json", b"\xff\xfe\x00", b'{"hook_event_name": "PostToolUse"}'):
        p = cli("hook", "PostToolUse", stdin=stdin)
        assert p.returncode == 0, p.stderr
    p = cli("hook", "NoSuchEvent", stdin=b"{}")
    assert p.returncode == 0


def test_cli_does_not_import_mcp():
    code = (
        "import sys, compaction.cli as c\n"
        "c.build_parser()\n"
        "assert not [m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')], 'mcp imported'\n"
        "print('ok')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=server_env(), cwd=str(ROOT), timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == b"ok", p.stderr


def _needs(name: str) -> None:
    if not hasattr(compaction, name):
        pytest.skip(f"compaction.{name} has not landed in this build yet")


def test_session_commands_on_a_real_transcript():
    for name in ("summarize", "make_handoff", "context_status"):
        _needs(name)
    t = str(FIXTURES / "claude-code-short.jsonl")
    s = cli("summarize", "--transcript", t, "--json")
    assert s.returncode == 0, s.stderr
    sj = json.loads(s.stdout)
    assert sj["backend"] == "embedded" and sj["text"] and sj["tokens"] > 0
    h = cli("handoff", "--transcript", t, "--goal", "finish it", "--json", "--save")
    assert h.returncode == 0, h.stderr
    hj = json.loads(h.stdout)
    assert "text" in hj and "files" in hj and hj["id"] and hj["uri"] == f"handoff://{hj['id']}"
    assert len(hj["text"]) < 10_000
    c = cli("context-status", "--transcript", t, "--limit", "200000", "--json")
    assert c.returncode == 0, c.stderr
    cj = json.loads(c.stdout)
    assert cj["limit_tokens"] == 200000 and cj["recommendation"] in ("fine", "compact", "handoff")
    # the transcript through stdin reads the same
    with open(t, "rb") as fh:
        c2 = cli("context-status", "--transcript", "-", "--limit", "200000", "--json", stdin=fh.read())
    assert c2.returncode == 0 and json.loads(c2.stdout)["tokens_used"] == cj["tokens_used"]
    missing = cli("summarize", "--transcript", "/no/such.jsonl")
    assert missing.returncode == 2 and "no such file" in one_line_error(missing)
    spawn = cli("handoff", "--transcript", t, "--spawn", env={**server_env(), "CONTEXT_DISTILL_SPAWN_COMMAND": ""})
    assert spawn.returncode != 0 and "CONTEXT_DISTILL_SPAWN_COMMAND" in spawn.stderr.decode()


def test_install_hooks_writes_the_project_files(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    p = cli("install-hooks", str(project))
    assert p.returncode == 0, p.stderr
    mcp = json.loads((project / ".mcp.json").read_text())
    entry = mcp["mcpServers"]["context-distill"]
    assert [entry["command"], *entry["args"]] == ["context-distill", "serve"]
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    assert "PostToolUse" in settings["hooks"]
    missing = cli("install-hooks", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a folder" in one_line_error(missing)


@pytest.mark.parametrize(
    "extra,args,needle",
    [
        ({"CONTEXT_DISTILL_MAX_CONCURRENT": "abc"}, [], "CONTEXT_DISTILL_MAX_CONCURRENT"),
        ({"CONTEXT_DISTILL_SCORER": "magic"}, [], "not a known scorer"),
        ({"CONTEXT_DISTILL_HTTP_MAX_BODY_BYTES": "10"}, ["--http"], "too small"),
        ({}, ["--http", "--host", "0.0.0.0"], "CONTEXT_DISTILL_HTTP_TOKEN"),
    ],
)
def test_serve_refuses_bad_settings_with_one_line(extra, args, needle):
    p = cli("serve", *args, stdin=b"", env=server_env(extra))
    assert p.returncode == 2
    assert needle in one_line_error(p)


def test_expand_and_compact_write_utf8_bytes_whatever_the_locale(tmp_path):
    """Kept and expanded lines must come out byte for byte, even where stdout's encoding is
    not UTF-8 (a latin-1 locale would turn U+0085 into one byte, ASCII would fail)."""
    text = "".join(f"row {i} caf\u00e9 \u2603 value\n" for i in range(200)) + "tail \u0085 end\n"
    src = tmp_path / "in.txt"
    src.write_bytes(text.encode("utf-8"))
    for enc in ("latin-1", "ascii"):
        env = server_env({"PYTHONIOENCODING": enc, "CONTEXT_DISTILL_SCORER": "bm25", "CONTEXT_DISTILL_CACHE_DIR": str(tmp_path / "c")})
        p = subprocess.run(CLI + ["compact", str(src), "--ratio", "0.3", "--json"], capture_output=True, env=env, cwd=str(ROOT), timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        handle = json.loads(p.stdout.decode("utf-8"))["handle"]
        p = subprocess.run(CLI + ["expand", handle], capture_output=True, env=env, cwd=str(ROOT), timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        assert p.stdout == text.encode("utf-8")


def test_handoff_spawn_that_cannot_start_still_prints_the_saved_handoff(tmp_path):
    t = str(FIXTURES / "claude-code-short.jsonl")  # its cwd is a folder that does not exist here
    env = server_env({"CONTEXT_DISTILL_DATA_DIR": str(tmp_path / "data"), "CONTEXT_DISTILL_CACHE_DIR": str(tmp_path / "c"),
                      "CONTEXT_DISTILL_SPAWN_COMMAND": json.dumps(["/bin/echo", "{prompt}"])})  # fmt: skip
    p = cli("handoff", "--transcript", t, "--spawn", "--json", env=env)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout)
    assert out["id"] and out["text"].startswith("# Handoff") and "spawned" not in out
    assert any(w.startswith("no agent was started: cannot start the agent in") for w in out["warnings"])
    # without an agent command nothing is saved and the error says how to set one
    env.pop("CONTEXT_DISTILL_SPAWN_COMMAND")
    before = sorted((tmp_path / "data").rglob("*"))
    p = cli("handoff", "--transcript", t, "--spawn", env=env)
    assert p.returncode == 2 and "CONTEXT_DISTILL_SPAWN_COMMAND" in one_line_error(p)
    assert sorted((tmp_path / "data").rglob("*")) == before


def test_summarize_recent_turns_zero_is_accepted():
    p = cli("summarize", "--transcript", str(FIXTURES / "claude-code-short.jsonl"), "--recent-turns", "0", "--json")
    assert p.returncode == 0, p.stderr.decode()
    assert "## Recent turns" not in json.loads(p.stdout)["text"]


def test_a_json_list_of_non_messages_reads_the_same_from_a_file_and_from_stdin(tmp_path):
    data = json.dumps([{"event": "start", "t": 1}, {"event": "stop", "t": 2}]).encode()
    f = tmp_path / "ev.json"
    f.write_bytes(data)
    env = server_env({"CONTEXT_DISTILL_ROOTS": str(tmp_path)})
    from_file = cli("context-status", "--transcript", str(f), "--json", env=env)
    from_stdin = cli("context-status", "--transcript", "-", "--json", stdin=data, env=env)
    # no session in it: the same clear error either way
    assert from_file.returncode == from_stdin.returncode == 2, from_stdin.stderr.decode()
    assert one_line_error(from_file) == one_line_error(from_stdin)
    # read as text on request, the same either way
    from_file = cli("context-status", "--transcript", str(f), "--json", "--format", "text", env=env)
    from_stdin = cli("context-status", "--transcript", "-", "--json", "--format", "text", stdin=data, env=env)
    assert from_file.returncode == from_stdin.returncode == 0, from_stdin.stderr.decode()
    assert json.loads(from_file.stdout)["tokens_used"] == json.loads(from_stdin.stdout)["tokens_used"] > 0


def test_json_that_is_no_session_is_exit_2_and_format_text_reads_it(tmp_path):
    """Another framework's JSONL (an OpenHands run) was summarized as raw JSON fragments, and
    context-status called it 100% full; now it is a clear error, and --format text reads it anyway."""
    _needs("summarize")
    recs = [{"instance_id": f"repo__issue-{i}", "test_result": {"git_patch": "diff --git a/x b/x\n+fix " * 50}} for i in range(20)]
    p = tmp_path / "output.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    for cmd in ("summarize", "handoff", "context-status"):
        r = cli(cmd, "--transcript", str(p))
        assert r.returncode == 2, (cmd, r.returncode, r.stdout[:200], r.stderr)
        err = one_line_error(r)
        assert "not recognised" in err and "--format text" in err
    # stdin reads the same: a JSON list of such records, and JSONL
    r = cli("context-status", "--transcript", "-", stdin=json.dumps(recs).encode())
    assert r.returncode == 2 and "not recognised" in one_line_error(r)
    r = cli("context-status", "--transcript", "-", stdin=p.read_bytes())
    assert r.returncode == 2 and "not recognised" in one_line_error(r)
    # asked for, it is read as plain text
    r = cli("context-status", "--transcript", str(p), "--format", "text", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["source"] == "counted"
    r = cli("summarize", "--transcript", "-", "--format", "text", "--json", stdin=json.dumps(recs).encode())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"].startswith("# Session summary")
    r = cli("summarize", "--transcript", str(p), "--format", "yaml")
    assert r.returncode == 2 and "invalid choice" in one_line_error(r)


def test_skipped_records_are_a_warning_and_a_bad_byte_in_messages_jsonl_is_one_line(tmp_path):
    _needs("context_status")
    p = tmp_path / "msgs.jsonl"
    p.write_bytes(
        b'{"role": "user", "content": "Fix src/a.py please"}\n'
        b'{"role": "assistant", "content": "caf\xe9 first"}\n'
        b'{"role": "assistant", "content": "Fixed src/a.py."}\n'
    )
    r = cli("context-status", "--transcript", str(p))
    assert r.returncode == 0, r.stderr  # was exit 2: "transcript is not valid UTF-8 (byte 85)"
    assert "1 unreadable record was skipped (invalid-utf8: 1)" in one_line_error(r)
    r = cli("context-status", "--transcript", str(p), "--json")
    assert r.returncode == 0 and "invalid-utf8: 1" in json.loads(r.stdout)["warnings"][0]
    s = cli("summarize", "--transcript", str(p), "--json")
    assert s.returncode == 0 and any("invalid-utf8: 1" in w for w in json.loads(s.stdout)["warnings"])
