"""Claude Code hooks fed the real hook-input JSON that Claude Code 2.1.331 sent (recorded with
claude-loop), real tool outputs and a real Claude Code transcript. The deletion model is
exercised where it is installed; the other tests use the BM25 baseline scorer."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

import compaction
from compaction import hooks
from compaction._handoff_store import HandoffStore
from compaction.baselines import BM25Scorer
from compaction.hooks import HookConfig, run_hook

FIX = Path(__file__).resolve().parent / "fixtures" / "hooks"
INPUTS = FIX / "claude-code-2.1.331-hook-inputs.jsonl"


def _inputs() -> list[dict]:
    return [json.loads(line) for line in INPUTS.read_text().splitlines() if line.strip()]


def hook_input(event: str, key: str, **changes) -> dict:
    """A recorded hook input (event + tool name / source / trigger), with fields changed. A test
    that moves ``cwd`` gets a transcript path with no transcript behind it (the recorded one names
    the recording's project), unless it gives one."""
    for d in _inputs():
        if d["hook_event_name"] == event and key in (d.get("tool_name"), d.get("source"), d.get("trigger")):
            if "cwd" in changes and "transcript_path" not in changes:
                d["transcript_path"] = str(Path(changes["cwd"]) / "no-transcript-here.jsonl")
            d.update(changes)
            return d
    raise KeyError((event, key))


@pytest.fixture
def engine():
    return compaction.Engine(scorer=BM25Scorer())


@pytest.fixture
def project(tmp_path):
    p = tmp_path / "proj"
    p.mkdir()
    return p


@pytest.fixture
def transcript(tmp_path):
    t = tmp_path / "session.jsonl"
    shutil.copy(FIX / "claude-code-tool-heavy.jsonl", t)
    return t


def _post(engine, data, **kw) -> dict | None:
    out = run_hook("PostToolUse", json.dumps(data), engine=engine, **kw)
    return json.loads(out) if out else None


def _kept_lines_are_verbatim(original: str, shrunk: str) -> None:
    lines = original.splitlines()
    pos = 0
    for line in shrunk.splitlines():
        if compaction.is_marker_line(line):
            continue
        pos = lines.index(line, pos) + 1  # ValueError if not an original line, in order


# -- PostToolUse ---------------------------------------------------------------------------------
def test_real_bash_input_is_shrunk_in_bash_shape(engine, transcript):
    data = hook_input("PostToolUse", "Bash", transcript_path=str(transcript))
    original = data["tool_response"]
    assert len(original["stdout"]) > 20_000
    out = _post(engine, data)
    hso = out["hookSpecificOutput"]
    assert hso["hookEventName"] == "PostToolUse"
    new = hso["updatedToolOutput"]
    assert set(new) == set(original)  # stdout, stderr, interrupted, isImage, noOutputExpected
    assert {k: v for k, v in new.items() if k != "stdout"} == {k: v for k, v in original.items() if k != "stdout"}
    before = engine.tokenizer.count(original["stdout"])
    after = engine.tokenizer.count(new["stdout"])
    assert after <= max(int(before * 0.3), 1000) + 5 and after < before / 2
    _kept_lines_are_verbatim(original["stdout"], new["stdout"])
    assert "context-distill: kept" in new["stdout"]  # the trailer says how to get lines back


def test_small_bash_output_is_left_alone(engine):
    data = hook_input("PostToolUse", "Bash")
    data["tool_response"] = dict(data["tool_response"], stdout="1\n2\n3\n4\n5")
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""


def test_threshold_is_configurable(engine):
    data = hook_input("PostToolUse", "Bash")
    cfg = HookConfig(min_tokens=50_000)
    assert run_hook("PostToolUse", json.dumps(data), engine=engine, config=cfg) == ""
    cfg = HookConfig.from_env({"CONTEXT_DISTILL_HOOK_MIN_TOKENS": "100", "CONTEXT_DISTILL_HOOK_RATIO": "0.5"})
    assert cfg.min_tokens == 100 and cfg.ratio == 0.5
    assert HookConfig.from_env({"CONTEXT_DISTILL_HOOK_RATIO": "7"}).ratio == 0.3  # out of range: default


def test_hooks_can_be_switched_off(engine, monkeypatch):
    monkeypatch.setenv("CONTEXT_DISTILL_HOOKS", "off")
    assert run_hook("PostToolUse", json.dumps(hook_input("PostToolUse", "Bash")), engine=engine) == ""


def test_real_mcp_content_blocks_are_shrunk_as_blocks(engine):
    data = hook_input("PostToolUse", "mcp__bigout__show_file")
    assert isinstance(data["tool_response"], list)  # what Claude Code sent for a text result
    data["tool_response"].append({"type": "image", "data": "AAAA", "mimeType": "image/png"})
    out = _post(engine, data)
    new = out["hookSpecificOutput"]["updatedToolOutput"]
    assert [b["type"] for b in new] == ["text", "image"]
    original = data["tool_response"][0]["text"]
    assert len(new[0]["text"]) < len(original) / 2
    _kept_lines_are_verbatim(original, new[0]["text"])


def test_mcp_json_string_response_becomes_a_string(engine):
    data = hook_input("PostToolUse", "mcp__bigout__show_file")
    text = (FIX / "ponyc-command-parser.view.txt").read_text()
    data["tool_response"] = json.dumps({"content": [{"type": "text", "text": text}]})
    new = _post(engine, data)["hookSpecificOutput"]["updatedToolOutput"]
    assert isinstance(new, str) and len(new) < len(text) / 2
    _kept_lines_are_verbatim(text, new)


def test_our_own_mcp_tools_are_never_shrunk(engine):
    data = hook_input("PostToolUse", "mcp__bigout__show_file")
    data["tool_name"] = "mcp__context-distill__expand"
    data["mcp_server"] = {"name": "context-distill", "source": "project"}
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""


@pytest.mark.parametrize(
    "server, tool",
    [
        ({"name": "plugin:cd:context-distill", "source": "plugin"}, "mcp__plugin_cd_context-distill__expand"),
        ({"name": "distill", "source": "project"}, "mcp__distill__expand"),
    ],
)
def test_our_expand_under_another_name_is_never_shrunk(engine, server, tool):
    text = (FIX / "ponyc-command-parser.view.txt").read_text()
    data = hook_input("PostToolUse", "mcp__bigout__show_file", tool_name=tool, mcp_server=server)
    data["tool_response"] = json.dumps({"handle": "0123456789abcdef", "text": text, "line_ranges": [[1, 600]], "total_lines": 600})
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""
    # what Claude Code 2.1.331 really sends for it (seen with claude-loop): the lines alone as content
    # blocks (its fields are in _meta, which the hook never sees); the call's input says it is ours
    data["tool_response"] = [{"type": "text", "text": text}]
    data["tool_input"] = {"handle": "0123456789abcdef", "lines": "1-600"}
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""


def test_another_servers_expand_tool_is_shrunk_like_any_tool(engine):
    text = (FIX / "ponyc-command-parser.view.txt").read_text()
    data = hook_input("PostToolUse", "mcp__bigout__show_file", tool_name="mcp__files__expand")
    data["mcp_server"] = {"name": "files", "source": "project"}
    data["tool_response"] = [{"type": "text", "text": text}]
    data["tool_input"] = {"path": "src/parser.c"}
    assert run_hook("PostToolUse", json.dumps(data), engine=engine)


def test_bash_output_that_claude_code_sends_as_an_image_is_left_alone(engine):
    data = hook_input("PostToolUse", "Bash")
    png = "data:image/png;base64," + "iVBORw0KGgoAAAANSUhEUgAA" * 4000
    data["tool_response"] = {"stdout": png, "stderr": "", "interrupted": False, "isImage": True}
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""
    data["tool_response"] = {"stdout": png, "stderr": "", "interrupted": False}
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""


def test_one_line_json_in_mcp_content_blocks_is_cut_between_whole_lines(engine):
    rows = [{"id": i, "name": f"item-{i}", "status": "ok" if i % 50 else "FAILED", "detail": "x" * 20} for i in range(600)]
    one_line = json.dumps({"rows": rows})
    data = hook_input("PostToolUse", "mcp__bigout__show_file")
    data["tool_response"] = [{"type": "text", "text": one_line}]
    [block] = _post(engine, data)["hookSpecificOutput"]["updatedToolOutput"]
    pretty = json.dumps({"rows": rows}, indent=1, ensure_ascii=False)
    assert len(block["text"]) < len(pretty) / 2 and block["text"].count("\n") > 10
    _kept_lines_are_verbatim(pretty, block["text"])


def test_grep_content_keeps_grep_shape(engine):
    text = (FIX / "ponyc-parser-c.view.txt").read_text()
    content = "\n".join(f"src/libponyc/ast/parser.c:{i}:{line}" for i, line in enumerate(text.splitlines(), 1))
    data = hook_input("PostToolUse", "Bash", tool_name="Grep", tool_input={"pattern": "match", "output_mode": "content"})
    data["tool_response"] = {"mode": "content", "numFiles": 0, "filenames": [], "content": content, "numLines": 628, "appliedLimit": 250}
    new = _post(engine, data)["hookSpecificOutput"]["updatedToolOutput"]
    assert {k: v for k, v in new.items() if k != "content"} == {k: v for k, v in data["tool_response"].items() if k != "content"}
    assert len(new["content"]) < len(content) / 2


def test_a_large_grep_result_is_shrunk_under_claude_codes_grep_limit(engine):
    """Claude Code saves a Grep result over 20,000 chars to a file and shows a 2 KB preview: the
    shrunk result must stay under it, with its handle line, or no marker could be expanded."""
    text = (FIX / "ponyc-parser-c.view.txt").read_text()
    content = "\n".join(f"src/libponyc/ast/parser{k}.c:{i}:{line}" for k in range(5) for i, line in enumerate(text.splitlines(), 1))
    assert len(content) > 90_000
    data = hook_input("PostToolUse", "Bash", tool_name="Grep", tool_input={"pattern": "match", "output_mode": "content"})
    data["tool_response"] = {"mode": "content", "numFiles": 5, "filenames": [], "content": content, "numLines": 3140}
    new = _post(engine, data)["hookSpecificOutput"]["updatedToolOutput"]["content"]
    assert 0.5 * hooks.GREP_RESULT_CHARS < len(new) <= hooks.GREP_RESULT_CHARS
    assert 'expand(handle="' in new.splitlines()[-1]
    _kept_lines_are_verbatim(content, new)


def test_a_grep_result_of_few_tokens_but_many_characters_is_fitted_too(engine):
    """Long indentation: under the 3,000-token threshold, over Claude Code's 20,000-char Grep limit."""
    content = "\n".join(f"src/app/mod{i % 7}.py:{i}:" + " " * 120 + f"call_{i}()" for i in range(170))
    assert len(content) > 20_000
    data = hook_input("PostToolUse", "Bash", tool_name="Grep", tool_input={"pattern": "call_", "output_mode": "content"})
    data["tool_response"] = {"mode": "content", "numFiles": 7, "filenames": [], "content": content, "numLines": 170}
    assert hooks._get_engine(engine).tokenizer.count(content) < HookConfig().min_tokens
    new = _post(engine, data)["hookSpecificOutput"]["updatedToolOutput"]["content"]
    assert len(new) <= hooks.GREP_RESULT_CHARS and 'expand(handle="' in new.splitlines()[-1]
    # under Claude Code's limit and under min_tokens: left alone
    data["tool_response"]["content"] = content[:19_000]
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""


def test_binary_output_is_left_alone_without_an_error(engine, isolated_user_dirs):
    """NUL bytes: not text to compact; the output stays, and nothing is logged as a failure."""
    content = "\n".join(f"src/a.c:{i}:\x00binary\x00" + " " * 150 for i in range(200))
    data = hook_input("PostToolUse", "Bash", tool_name="Grep", tool_input={"pattern": "x", "output_mode": "content"})
    data["tool_response"] = {"mode": "content", "numFiles": 1, "filenames": [], "content": content, "numLines": 200}
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""
    data = hook_input("PostToolUse", "Bash")
    data["tool_response"]["stdout"] = "\x00" + "line of output\n" * 3000
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""
    log = (isolated_user_dirs / "data" / "logs" / "hooks.log").read_text()
    assert "failed open" not in log and "left whole" in log


def test_read_output_is_left_alone(engine):
    """Claude Code numbers Read lines itself from startLine: deleting lines would make its numbers lie."""
    text = (FIX / "ponyc-parser-c.view.txt").read_text()
    data = hook_input("PostToolUse", "Bash", tool_name="Read", tool_input={"file_path": "/x/parser.c"})
    data["tool_response"] = {"type": "text", "file": {"filePath": "/x/parser.c", "content": text, "numLines": 628, "startLine": 1, "totalLines": 628}}
    assert run_hook("PostToolUse", json.dumps(data), engine=engine) == ""


def test_persisted_bash_output_is_distilled_into_the_preview(engine, tmp_path):
    """Over 30,000 chars Claude Code shows only a 2,000-char preview of the replacement: fit it."""
    full = "".join((FIX / n).read_text() for n in ("ponyc-parser-c.view.txt", "ponyc-match-c.view.txt", "ponyc-command-parser.view.txt"))
    saved = tmp_path / "tool-results" / "b1.txt"
    saved.parent.mkdir()
    saved.write_text(full)
    data = hook_input("PostToolUse", "Bash")
    data["tool_response"] = dict(
        data["tool_response"], stdout=full[:30_000], persistedOutputPath=str(saved), persistedOutputSize=len(full)
    )
    new = _post(engine, data)["hookSpecificOutput"]["updatedToolOutput"]
    assert 1000 < len(new["stdout"]) <= hooks.PREVIEW_CHARS
    assert new["persistedOutputPath"] == str(saved)
    _kept_lines_are_verbatim(full, new["stdout"])
    # the lines come from the whole output, not only its first 30,000 characters
    tail_lines = set(full[30_000:].splitlines()) - set(full[:30_000].splitlines())
    assert any(line in tail_lines for line in new["stdout"].splitlines())


def test_query_uses_tool_input_and_last_user_prompt(transcript):
    data = hook_input("PostToolUse", "Bash", transcript_path=str(transcript))
    q = hooks._tool_query(data)
    assert "cat ponyc-parser-c.view.txt" in q and "Show parser.c" in q
    turns = hooks._recent_turns(str(transcript))
    assert turns.prompt and q.endswith("Task: " + turns.prompt)
    assert not turns.prompt.startswith(("<", "[Request interrupted"))


def _record(kind: str, content) -> dict:
    return {"type": kind, "message": {"role": kind, "content": content}}


def test_query_holds_the_thought_before_the_call_and_earlier_messages(tmp_path):
    """The query is laid out as in training (compaction.agent_query): the text that led to
    this call, the call, the agent's earlier messages (most recent first), the user's prompt.
    What the transcript holds after this call is not part of it."""
    recs = [
        _record("user", "Why does parse_header crash on empty input?"),
        _record("assistant", [{"type": "thinking", "thinking": "Maybe ParseState is not reset."}]),
        _record("assistant", [{"type": "tool_use", "id": "t1", "name": "Grep", "input": {"pattern": "ParseState"}}]),
        _record("user", [{"type": "tool_result", "tool_use_id": "t1", "content": "src/parse.c:10: ParseState s;"}]),
        _record("assistant", [{"type": "text", "text": "Let me read reset_state in src/parse.c."}]),
        _record("assistant", [{"type": "tool_use", "id": "t2", "name": "Read", "input": {"file_path": "src/parse.c"}}]),
        _record("assistant", [{"type": "text", "text": "written after the call"}]),
    ]
    t = tmp_path / "s.jsonl"
    t.write_text("".join(json.dumps(r) + "\n" for r in recs))
    data = {"tool_name": "Read", "tool_input": {"file_path": "src/parse.c"}, "tool_use_id": "t2", "transcript_path": str(t)}
    q = hooks._tool_query(data)
    assert q == (
        "Let me read reset_state in src/parse.c.\n$ Read src/parse.c\n\n"
        "Earlier: pattern: ParseState\nMaybe ParseState is not reset.\n\n"
        "Task: Why does parse_header crash on empty input?"
    )
    # no transcript: the call alone
    assert hooks._tool_query({**data, "transcript_path": str(tmp_path / "missing.jsonl")}) == "$ Read src/parse.c"


def test_default_engine_path(monkeypatch):
    """With the deletion model installed the default path shrinks; without it, it fails open."""
    monkeypatch.delenv("CONTEXT_DISTILL_SCORER", raising=False)
    data = hook_input("PostToolUse", "Bash")
    try:
        compaction.Engine().scorer
        model_ok = True
    except (compaction.AssetError, ImportError):
        model_ok = False
    out = run_hook("PostToolUse", json.dumps(data))
    if model_ok:
        new = json.loads(out)["hookSpecificOutput"]["updatedToolOutput"]
        assert len(new["stdout"]) < len(data["tool_response"]["stdout"]) / 2
    else:
        assert out == ""


def test_scorer_env_selects_a_baseline(monkeypatch):
    monkeypatch.setenv("CONTEXT_DISTILL_SCORER", "bm25")
    out = run_hook("PostToolUse", json.dumps(hook_input("PostToolUse", "Bash")))
    assert json.loads(out)["hookSpecificOutput"]["updatedToolOutput"]["stdout"]


# -- PreCompact and SessionStart ----------------------------------------------------------------
def test_precompact_writes_a_handoff_and_sessionstart_injects_it(engine, project, transcript, tmp_path):
    store = HandoffStore(tmp_path / "data")
    pre = hook_input("PreCompact", "manual", cwd=str(project), transcript_path=str(transcript))
    out = run_hook("PreCompact", json.dumps(pre), engine=engine, store=store)
    [info] = store.list()
    stored = store.get(info.id)
    # the project is where the session started (the transcript's first cwd), not the hook's cwd
    assert stored.project == "/home/marco/projects/spotter" and stored.session_id == pre["session_id"]
    assert "Goal" in stored.text
    # one short plain line (appended to Claude Code's summarizer prompt), never JSON
    assert out.count("\n") == 1 and f"handoff://{info.id}" in out and not out.lstrip().startswith("{")
    assert len(out) <= 1001
    ss = hook_input("SessionStart", "compact", cwd=str(project), transcript_path=str(transcript))
    res = json.loads(run_hook("SessionStart", json.dumps(ss), engine=engine, store=store))
    hso = res["hookSpecificOutput"]
    assert hso["hookEventName"] == "SessionStart"
    ctx = hso["additionalContext"]
    assert len(ctx) < 10_000 and stored.text[:2000] in ctx and info.id in ctx


def test_precompact_echo_can_be_silenced(engine, project, transcript, tmp_path):
    store = HandoffStore(tmp_path / "data")
    pre = hook_input("PreCompact", "manual", cwd=str(project), transcript_path=str(transcript), trigger="auto")
    assert run_hook("PreCompact", json.dumps(pre), engine=engine, store=store, config=HookConfig(precompact_echo=False)) == ""
    assert len(store.list()) == 1


def test_sessionstart_other_sources_print_nothing(engine, project, tmp_path):
    store = HandoffStore(tmp_path / "data")
    store.save({"text": "## Goal\nx"}, project=str(project))
    for source in ("startup", "resume"):
        data = hook_input("SessionStart", source, cwd=str(project))
        assert run_hook("SessionStart", json.dumps(data), engine=engine, store=store) == ""


def test_sessionstart_clear_injects_the_projects_latest(engine, project, tmp_path):
    store = HandoffStore(tmp_path / "data")
    store.save({"text": "old one", "session_id": "a"}, project=str(project))
    store.save({"text": "other project"}, project=str(tmp_path))
    store.save({"text": "newest one", "session_id": "b"}, project=str(project))
    data = hook_input("SessionStart", "startup", cwd=str(project), source="clear", session_id="new-session")
    ctx = json.loads(run_hook("SessionStart", json.dumps(data), engine=engine, store=store))["hookSpecificOutput"]["additionalContext"]
    assert ctx.endswith("newest one") and "/clear" in ctx


def test_sessionstart_compact_prefers_this_sessions_handoff(engine, project, tmp_path):
    store = HandoffStore(tmp_path / "data")
    data = hook_input("SessionStart", "compact", cwd=str(project))
    store.save({"text": "this session"}, project=str(project), session_id=data["session_id"])
    store.save({"text": "a parallel session"}, project=str(project), session_id="other")
    ctx = json.loads(run_hook("SessionStart", json.dumps(data), engine=engine, store=store))["hookSpecificOutput"]["additionalContext"]
    assert ctx.endswith("this session")


def test_sessionstart_after_compact_never_injects_another_sessions_handoff(engine, project, tmp_path):
    """PreCompact wrote nothing for this session (it timed out, say): a parallel session's
    handoff must not be injected as if it came from this compaction."""
    store = HandoffStore(tmp_path / "data")
    data = hook_input("SessionStart", "compact", cwd=str(project))
    store.save({"text": "a parallel session"}, project=str(project), session_id="other")
    assert run_hook("SessionStart", json.dumps(data), engine=engine, store=store) == ""


def _session_transcript(path: Path, start_cwd: Path) -> Path:
    recs = [
        {"type": "user", "cwd": str(start_cwd), "sessionId": "s1", "message": {"role": "user", "content": "Fix the parser"}},
        {"type": "assistant", "cwd": str(start_cwd / "sub"), "sessionId": "s1",
         "message": {"role": "assistant", "content": [{"type": "text", "text": "Done in sub/parse.py"}]}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def test_a_handoff_saved_after_cd_belongs_to_the_project_and_clear_finds_it(engine, project, tmp_path, monkeypatch):
    """Claude Code's hook cwd follows the agent's cd: a handoff written from project/sub is
    stored under the project (where the session started), so /clear at the project root
    injects it instead of an older handoff of another session."""
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    (project / "sub").mkdir()
    store = HandoffStore(tmp_path / "data")
    store.save({"text": "OLD TASK of another session", "session_id": "old"}, project=str(project))
    time.sleep(0.01)
    t = _session_transcript(tmp_path / "s1.jsonl", project)
    pre = hook_input("PreCompact", "manual", cwd=str(project / "sub"), transcript_path=str(t), session_id="s1")
    run_hook("PreCompact", json.dumps(pre), engine=engine, store=store)
    assert [i.project for i in store.list()] == [str(project), str(project)]
    after = hook_input("SessionStart", "compact", cwd=str(project / "sub"), transcript_path=str(t), session_id="s1")
    ctx = json.loads(run_hook("SessionStart", json.dumps(after), engine=engine, store=store))["hookSpecificOutput"]["additionalContext"]
    assert "Fix the parser" in ctx
    clear = hook_input("SessionStart", "compact", source="clear", cwd=str(project), session_id="s2")
    ctx = json.loads(run_hook("SessionStart", json.dumps(clear), engine=engine, store=store))["hookSpecificOutput"]["additionalContext"]
    assert "Fix the parser" in ctx and "OLD TASK" not in ctx


def test_claude_project_dir_names_the_project(engine, project, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    (project / "sub").mkdir()
    store = HandoffStore(tmp_path / "data")
    t = _session_transcript(tmp_path / "s1.jsonl", tmp_path)  # a transcript that says otherwise
    pre = hook_input("PreCompact", "manual", cwd=str(project / "sub"), transcript_path=str(t), session_id="s1")
    run_hook("PreCompact", json.dumps(pre), engine=engine, store=store)
    assert [i.project for i in store.list()] == [str(project)]


def test_sessionstart_skips_stale_handoffs(engine, project, tmp_path):
    store = HandoffStore(tmp_path / "data")
    data = hook_input("SessionStart", "compact", cwd=str(project))
    store.save({"text": "yesterday's"}, project=str(project), session_id=data["session_id"])
    assert run_hook("SessionStart", json.dumps(data), engine=engine, store=store, config=HookConfig(max_age_hours=1e-9)) == ""


def test_long_handoff_is_cut_below_claude_codes_limit(engine, project, tmp_path):
    store = HandoffStore(tmp_path / "data")
    data = hook_input("SessionStart", "compact", cwd=str(project))
    store.save({"text": "line of handoff\n" * 2000}, project=str(project), session_id=data["session_id"])
    ctx = json.loads(run_hook("SessionStart", json.dumps(data), engine=engine, store=store))["hookSpecificOutput"]["additionalContext"]
    assert len(ctx) < 10_000


def test_event_names_accepted(engine, project, tmp_path):
    store = HandoffStore(tmp_path / "data")
    d = hook_input("SessionStart", "compact", cwd=str(project))
    store.save({"text": "h"}, project=str(project), session_id=d["session_id"])
    data = json.dumps(d)
    for name in ("SessionStart", "session-start", "sessionstart", "session_start"):
        assert run_hook(name, data, engine=engine, store=store), name
    assert hooks.canonical_event("pre-compact") == "PreCompact"
    assert hooks.canonical_event("PostToolUse") == "PostToolUse"
    assert hooks.canonical_event("Stop") is None


# -- failing open -------------------------------------------------------------------------------
@pytest.mark.parametrize("event", ["PreCompact", "SessionStart", "PostToolUse", "pre-compact", "Bogus", ""])
@pytest.mark.parametrize(
    "stdin", ["", "   ", "not json", "[1, 2]", "null", '{"tool_response": ', "\x00\xff", "[" * 100_000, '{"cwd": 5, "source": []}']
)
def test_garbage_stdin_fails_open(engine, event, stdin, tmp_path):
    assert run_hook(event, stdin, engine=engine, store=HandoffStore(tmp_path)) == ""


def test_wrong_types_fail_open(engine, tmp_path):
    store = HandoffStore(tmp_path)
    assert run_hook(None, "{}") == ""  # type: ignore[arg-type]
    assert run_hook("PostToolUse", b'{"tool_name": "Bash"}', engine=engine) == ""  # type: ignore[arg-type]
    bad = hook_input("PostToolUse", "Bash")
    bad["tool_response"] = {"stdout": 5, "stderr": None}
    assert run_hook("PostToolUse", json.dumps(bad), engine=engine) == ""
    bad["tool_response"] = "x" * 50_000
    assert run_hook("PostToolUse", json.dumps(bad), engine=engine) == ""
    ss = hook_input("SessionStart", "compact")
    ss.pop("cwd")
    assert run_hook("SessionStart", json.dumps(ss), store=store) == ""


def test_missing_transcript_fails_open(engine, project, tmp_path):
    store = HandoffStore(tmp_path / "data")
    pre = hook_input("PreCompact", "manual", cwd=str(project), transcript_path=str(tmp_path / "gone.jsonl"))
    assert run_hook("PreCompact", json.dumps(pre), engine=engine, store=store) == ""
    pre["transcript_path"] = str(tmp_path)  # a folder
    assert run_hook("PreCompact", json.dumps(pre), engine=engine, store=store) == ""
    assert store.list() == []


def test_garbage_transcript_fails_open(engine, project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\x00\x01garbage\n{not json\n")
    pre = hook_input("PreCompact", "manual", cwd=str(project), transcript_path=str(bad))
    assert run_hook("PreCompact", json.dumps(pre), engine=engine, store=HandoffStore(tmp_path / "d")) == ""


def test_unwritable_data_dir_fails_open(engine, project, transcript, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("CONTEXT_DISTILL_DATA_DIR", str(blocker / "data"))
    pre = hook_input("PreCompact", "manual", cwd=str(project), transcript_path=str(transcript))
    assert run_hook("PreCompact", json.dumps(pre), engine=engine) == ""
    ss = hook_input("SessionStart", "compact", cwd=str(project))
    assert run_hook("SessionStart", json.dumps(ss), engine=engine) == ""
    # PostToolUse still works (it needs no data dir)
    assert run_hook("PostToolUse", json.dumps(hook_input("PostToolUse", "Bash")), engine=engine)


class _MissingModel:
    name = "deletion-model"

    def score(self, inp):
        raise compaction.AssetMissingError("deletion model not found; reinstall context-distill")


def test_missing_model_fails_open_leaving_output_unchanged():
    eng = compaction.Engine(scorer=_MissingModel())
    assert run_hook("PostToolUse", json.dumps(hook_input("PostToolUse", "Bash")), engine=eng) == ""


class _SlowEngine:
    def __init__(self):
        self.inner = compaction.Engine(scorer=BM25Scorer())
        self.tokenizer = self.inner.tokenizer

    def compact(self, *a, **k):
        time.sleep(5)
        return self.inner.compact(*a, **k)


def test_deadline_fails_open_quickly():
    t0 = time.monotonic()
    out = run_hook("PostToolUse", json.dumps(hook_input("PostToolUse", "Bash")), engine=_SlowEngine(), deadline_s=0.5)
    assert out == "" and time.monotonic() - t0 < 3


def test_errors_are_logged_to_the_data_dir_not_stdout(engine, capsys, isolated_user_dirs):
    assert run_hook("PostToolUse", "not json", engine=engine) == ""
    captured = capsys.readouterr()
    assert captured.out == ""
    log = (isolated_user_dirs / "data" / "logs" / "hooks.log").read_text()
    assert "not JSON" in log


def _write_log_lines(path: str, tag: str, n: int) -> None:
    for i in range(n):
        hooks._append_log_line(Path(path), f"{tag} {i}\n")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork (POSIX)")
def test_writers_racing_over_a_full_log_rotate_it_once(tmp_path, monkeypatch):
    """Many hook processes find the log full at once: the log rotates once, and every line
    (the old log's and each writer's) is still in hooks.log or hooks.log.1."""
    import multiprocessing

    import os

    monkeypatch.setattr(hooks, "_LOG_MAX_BYTES", 10_000)
    real_replace = os.replace

    def slow_replace(src, dst):  # widen the window between seeing a full log and rotating it
        time.sleep(0.3)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", slow_replace)
    log = tmp_path / "hooks.log"
    old = [f"old {i:05d}" for i in range(1_000)]  # about 10 KB: over the limit
    log.write_text("\n".join(old) + "\n", encoding="utf-8")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_log_lines, args=(str(log), f"w{k}", 20)) for k in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    lines = log.read_text().splitlines() + (tmp_path / "hooks.log.1").read_text().splitlines()
    assert sorted(lines) == sorted(old + [f"w{k} {i}" for k in range(8) for i in range(20)])


# -- install ------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


def test_manifest_is_exactly_the_installed_block():
    manifest = json.loads((ROOT / "manifests" / "claude-code" / "settings.json").read_text())
    assert manifest == hooks.HOOKS_SETTINGS
    for event, groups in manifest["hooks"].items():
        for g in groups:
            for h in g["hooks"]:
                assert h["command"] == f"context-distill hook {event}"
                assert 0 < h["timeout"] <= 60 and hooks._DEADLINE_S[event] < h["timeout"]
    mcp = json.loads((ROOT / "manifests" / "claude-code" / ".mcp.json").read_text())
    assert mcp == hooks.MCP_SERVERS  # install() writes exactly the shipped .mcp.json entry
    assert mcp["mcpServers"]["context-distill"]["command"] == "context-distill"


def test_install_into_a_fresh_project(project):
    written = hooks.install(project)
    assert written == [project / ".claude" / "settings.json", project / ".mcp.json"]
    assert json.loads(written[0].read_text()) == hooks.HOOKS_SETTINGS
    assert json.loads(written[1].read_text()) == hooks.MCP_SERVERS
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask for p in written)  # project files, not private ones


def test_install_merges_and_is_idempotent(project):
    (project / ".claude").mkdir()
    mine = {"type": "command", "command": "./my-formatter.sh"}
    settings = {
        "permissions": {"allow": ["Bash(ls:*)"]},
        "model": "opus",
        "hooks": {
            "PostToolUse": [{"matcher": "Edit", "hooks": [mine]}],
            "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
            "PreCompact": [{"hooks": [{"type": "command", "command": "context-distill hook PreCompact", "timeout": 5}]}],
        },
    }
    (project / ".claude" / "settings.json").write_text(json.dumps(settings))
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}, "context-distill": {"command": "old"}}}))
    hooks.install(project)
    first = [(p, p.read_text()) for p in (project / ".claude" / "settings.json", project / ".mcp.json")]
    inodes = [p.stat().st_ino for p, _ in first]
    assert hooks.install(project) == []  # idempotent: nothing written the second time
    assert [(p, p.read_text()) for p, _ in first] == first
    assert [p.stat().st_ino for p, _ in first] == inodes
    got = json.loads(first[0][1])
    assert got["permissions"] == settings["permissions"] and got["model"] == "opus"
    assert got["hooks"]["Stop"] == settings["hooks"]["Stop"]
    assert got["hooks"]["PostToolUse"][0] == {"matcher": "Edit", "hooks": [mine]}
    assert got["hooks"]["PostToolUse"][1:] == hooks.HOOKS_SETTINGS["hooks"]["PostToolUse"]
    assert got["hooks"]["PreCompact"] == hooks.HOOKS_SETTINGS["hooks"]["PreCompact"]  # old entry replaced
    servers = json.loads(first[1][1])["mcpServers"]
    assert servers["other"] == {"command": "x"} and servers["context-distill"]["args"] == ["serve"]


@pytest.mark.parametrize("content", ["{not json", "[1]", '{"hooks": []}', '{"hooks": {"PostToolUse": {}}}'])
def test_install_refuses_broken_settings_and_changes_nothing(project, content):
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text(content)
    (project / ".mcp.json").write_text('{"mcpServers": {}}')
    with pytest.raises(compaction.InputError, match="fix"):
        hooks.install(project)
    assert (project / ".claude" / "settings.json").read_text() == content
    assert (project / ".mcp.json").read_text() == '{"mcpServers": {}}'


def test_install_needs_a_folder(tmp_path):
    with pytest.raises(compaction.InputError, match="not a folder"):
        hooks.install(tmp_path / "nope")


@pytest.mark.parametrize("value, on", [("on", True), ("1", True), ("", True), ("off", False), ("disabled", False), ("nope", False)])
def test_the_hooks_switch(value, on, capsys):
    assert HookConfig.from_env({"CONTEXT_DISTILL_HOOKS": value}).enabled is on
    assert ("neither on nor off" in capsys.readouterr().err) is (value == "nope")


def test_install_keeps_a_symlinked_settings_file_and_its_permissions(tmp_path):
    import os
    import stat

    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "settings.json"
    real.write_text('{"model": "opus"}\n')
    os.chmod(real, 0o644)
    project = tmp_path / "proj"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").symlink_to(real)
    hooks.install(project)
    assert (project / ".claude" / "settings.json").is_symlink()
    data = json.loads(real.read_text())
    assert data["model"] == "opus" and "PostToolUse" in data["hooks"]
    assert stat.S_IMODE(real.stat().st_mode) == 0o644


def test_an_unwritable_originals_cache_leaves_tool_output_whole(tmp_path):
    """Lines removed without a stored original could never be expanded: the hook shrinks nothing."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    eng = compaction.Engine(
        scorer=BM25Scorer(), settings=compaction.Settings(cache_dir=blocker / "cache", data_dir=tmp_path / "data")
    )
    data = hook_input("PostToolUse", "Bash")
    assert run_hook("PostToolUse", json.dumps(data), engine=eng) == ""
    full = (FIX / "ponyc-parser-c.view.txt").read_text() * 3
    saved = tmp_path / "tool-results" / "b1.txt"
    saved.parent.mkdir()
    saved.write_text(full)
    data["tool_response"] = dict(
        data["tool_response"], stdout=full[:30_000], persistedOutputPath=str(saved), persistedOutputSize=len(full)
    )
    assert run_hook("PostToolUse", json.dumps(data), engine=eng) == ""
    # the same inputs with a writable cache are shrunk (so the two checks above test the cache, not the input)
    ok = compaction.Engine(scorer=BM25Scorer(), settings=compaction.Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d"))
    assert run_hook("PostToolUse", json.dumps(data), engine=ok)
