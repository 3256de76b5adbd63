"""make_handoff: goal, latest request, ranked files, size limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compaction import Engine, HandoffResult, InputError, get_tokenizer, make_handoff, read_transcript
from compaction.baselines import BM25Scorer
from compaction.transcripts import EDIT_TOOLS

FIX = Path(__file__).parent / "fixtures" / "claude-code"
MAIN = "transcripts/claude-code/ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl"


@pytest.fixture
def engine():
    return Engine(scorer=BM25Scorer(), store=False)


def edited(t) -> set[str]:
    cwd = t.cwd.rstrip("/") + "/"
    out = set()
    for e in t.events:
        if e.kind == "tool_call" and e.name in EDIT_TOOLS and isinstance(e.input.get("file_path"), str):
            out.add(e.input["file_path"].removeprefix(cwd))
    return out


def test_fixture_handoff_carries_goal_and_latest_request(engine):
    h = make_handoff(FIX / "tool_heavy.jsonl", engine=engine)
    assert isinstance(h, HandoffResult)
    assert h.goal == "start phoenix in background"
    assert h.latest_request.startswith("scrolling back in xterm.js still does not work")
    assert "## Goal\nstart phoenix in background" in h.text
    assert h.latest_request in h.text
    assert len(h.text) < 10_000 and h.tokens == get_tokenizer().count(h.text) <= 2000
    assert h.cwd == "/home/marco/projects/spotter" and h.session_id


def test_explicit_goal_wins(engine):
    h = make_handoff(FIX / "short.jsonl", goal="Make `mix phx.server` start again", engine=engine)
    assert h.goal == "Make `mix phx.server` start again"
    assert "## Goal\nMake `mix phx.server` start again" in h.text
    with pytest.raises(InputError):
        make_handoff(FIX / "short.jsonl", budget_tokens=10, engine=engine)


def test_main_session_files_ranked_short_and_complete(shared_data, engine):
    t = read_transcript(shared_data / MAIN)
    h = make_handoff(t, engine=engine)
    want = edited(t)
    got = [f.path for f in h.files]
    assert len(want) >= 15
    assert len(want & set(got)) / len(want) >= 0.9
    assert len(got) <= 25  # a short list, not the 100+ paths the session touched
    assert all("edited" in f.reasons for f in h.files if f.path in want)
    assert [f.score for f in h.files] == sorted((f.score for f in h.files), reverse=True)
    assert len(h.text) < 10_000 and h.tokens <= 2000
    assert "Work on bead spotter-4te" in h.text and "continue implementation" in h.text


@pytest.mark.parametrize("budget", [200, 2000, 50_000])
def test_never_over_10000_chars_even_for_huge_messages(engine, budget):
    big = "\n".join(f"line {i}: " + "x" * 150 for i in range(400))
    msgs = []
    for k in range(30):
        msgs += [
            {"role": "user", "content": f"request {k}:\n{big}"},
            {"role": "assistant", "content": f"Working on request {k}. I decided to keep the API stable.\n{big}"},
        ]
    h = make_handoff(msgs, budget_tokens=budget, engine=engine)
    assert len(h.text) < 10_000
    assert h.goal.startswith("request 0:")


def test_secret_in_goal_is_redacted(engine, tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps([{"role": "user", "content": "use token ghp_" + "a" * 36 + " to push"}]), encoding="utf-8")
    h = make_handoff(p, engine=engine)
    assert "ghp_" + "a" * 36 not in h.text and "[REDACTED:github-token]" in h.text


def test_current_state_carries_verbatim_errors_and_test_results(engine):
    msgs = [
        {"role": "user", "content": "make test_add pass in calc/ops.py"},
        {"role": "assistant", "content": "Running the tests first.", "tool_calls": [
            {"id": "c1", "function": {"name": "bash", "arguments": '{"command": "pytest -q tests/test_ops.py"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "..F.\n=== FAILURES ===\n    def test_add():\n>       assert add(1, 2) == 3\nE       assert -1 == 3\nFAILED tests/test_ops.py::test_add - assert -1 == 3\n1 failed, 3 passed in 0.02s"},
        {"role": "assistant", "content": "The bug is a minus sign instead of a plus. I will fix calc/ops.py next.", "tool_calls": [
            {"id": "c2", "function": {"name": "str_replace_based_edit_tool", "arguments": '{"path": "calc/ops.py", "old_str": "a - b", "new_str": "a + b"}'}}]},
    ]
    h = make_handoff(msgs, engine=engine)
    assert "FAILED tests/test_ops.py::test_add - assert -1 == 3" in h.text
    assert "1 failed, 3 passed in 0.02s" in h.text
    assert [f.path for f in h.files][0] == "calc/ops.py" and "edited" in h.files[0].reasons
    assert "The bug is a minus sign instead of a plus." in h.text


def test_a_long_goal_is_cut_with_plain_ellipses_not_markers_that_promise_an_expand(engine, tmp_path):
    from compaction import Settings, is_marker_line

    eng = Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"))
    task = "Please fix the parser.\n" + "\n".join(f"context line {i}: parser state {i * 7}" for i in range(200))
    h = make_handoff([{"role": "user", "content": task + "\nThe failing test is test_parse_nested"},
                      {"role": "assistant", "content": "Looking."}], engine=eng)
    assert "\n[…]\n" in h.text and not any(is_marker_line(ln) for ln in h.text.splitlines())
    assert h.text.count("Please fix the parser.") == 1  # the latest request is the goal: shown once
    assert not (tmp_path / "cache").exists()  # nothing was stored for handles nobody can see


@pytest.mark.parametrize("budget", [200, 500])
def test_cjk_text_stays_within_the_budget(engine, budget):
    goal = "修复登录页面的错误并确保所有测试通过" * 100
    h = make_handoff([{"role": "user", "content": goal}, {"role": "assistant", "content": "好的"},
                      {"role": "user", "content": "继续" * 200}], engine=engine, budget_tokens=budget)
    assert h.tokens <= budget and not h.warnings


def test_a_handoff_over_its_budget_says_so(engine, tmp_path):
    cwd = "/" + "/".join(f"very-long-folder-name-{i}" for i in range(120))  # never cut: a path must stay whole
    rows = [json.loads(x) for x in (FIX / "short.jsonl").read_text().splitlines() if x.strip()]
    for row in rows:
        if "cwd" in row:
            row["cwd"] = cwd
    path = tmp_path / "long-cwd.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    h = make_handoff(path, engine=engine, budget_tokens=200)
    assert h.cwd == cwd and f"Working directory: {cwd}" in h.text
    assert h.tokens > 200 and any("over budget_tokens=200" in w for w in h.warnings), (h.tokens, h.warnings)


def test_claude_codes_own_notices_are_not_the_next_step(engine, tmp_path):
    recs = [
        {"type": "user", "sessionId": "s", "cwd": "/w", "message": {"role": "user", "content": "fix the flaky test in tests/test_io.py"}},
        {"type": "assistant", "sessionId": "s", "message": {"id": "a1", "model": "claude-opus-4-6", "role": "assistant",
         "content": [{"type": "text", "text": "Next I will rerun tests/test_io.py with -x to see the failure."}]}},
        {"type": "user", "sessionId": "s", "message": {"role": "user", "content": "here is the full log ..."}},
        {"type": "assistant", "sessionId": "s", "isApiErrorMessage": True, "message": {"id": "e1", "model": "<synthetic>",
         "role": "assistant", "content": [{"type": "text", "text": "Prompt is too long"}]}},
    ]  # fmt: skip
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    h = make_handoff(p, engine=engine)
    assert "Prompt is too long" not in h.text
    assert "rerun tests/test_io.py" in h.text


def test_dot_slash_paths_are_listed_once_as_relative_paths(mini_swe, engine):
    # the agent writes `./django/...` in commands and `django/...` in the diff: one file, never `/django/...`
    h = make_handoff(mini_swe("django__django-11099"), engine=engine)
    paths = [f.path for f in h.files]
    assert "django/contrib/auth/validators.py" in paths
    assert not [p for p in paths if p.startswith(("/django", "/tests"))]
    assert len({p.lstrip("/") for p in paths}) == len(paths)


def _editor_session(tool: str) -> list[dict]:
    calls = [
        {"command": "view", "path": "/repo/app/auth.py"},
        {"command": "view", "path": "/repo/app/models.py", "view_range": [1, 20]},
        {"command": "str_replace", "path": "/repo/app/auth.py", "old_str": "return 401", "new_str": "return 200"},
        {"command": "insert", "path": "/repo/app/auth.py", "insert_line": 3, "new_str": "log_login_attempt(user)"},
        {"command": "create", "path": "/repo/app/audit_log.py", "file_text": "def log_login_attempt(user):\n    pass\n"},
        {"command": "undo_edit", "path": "/repo/app/auth.py"},
    ]
    msgs: list[dict] = [{"role": "user", "content": "Fix the login bug in app/auth.py"}]
    for k, inp in enumerate(calls):
        msgs.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{k}", "type": "function", "function": {"name": tool, "arguments": json.dumps(inp)}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{k}", "content": f"ok {k}"})
    msgs.append({"role": "assistant", "content": "Fixed the status code."})
    return msgs


@pytest.mark.parametrize("tool", ["str_replace_based_edit_tool", "str_replace_editor"])
def test_text_editor_views_are_reads_and_its_changes_are_edits(tool, engine):
    h = make_handoff(_editor_session(tool), engine=engine)
    files = {f.path: f.reasons for f in h.files}
    assert files["/repo/app/models.py"] == ["read"]
    assert files["/repo/app/audit_log.py"] == ["edited", "written"]
    assert "- /repo/app/auth.py [edited x3, read]" in h.text  # str_replace, insert, undo_edit; the view is a read
    assert "$ view" not in h.text and "] view" not in h.text


def test_text_editor_calls_render_their_command_path_and_text():
    from compaction.transcripts._render import tool_input_text

    assert tool_input_text("str_replace_editor", {"command": "view", "path": "/r/a.py"}) == "view /r/a.py"
    text = tool_input_text(
        "str_replace_based_edit_tool", {"command": "str_replace", "path": "/r/a.py", "old_str": "x = 1", "new_str": "x = 2"}
    )
    assert text.splitlines()[0] == "str_replace /r/a.py" and "x = 1" in text and "x = 2" in text
    assert tool_input_text("Bash", {"command": "ls", "description": "list"}) == "$ ls"


def test_tasks_closed_later_are_not_next_steps(shared_data, engine):
    # the session lists spotter-4te.4/.5/.6 as OPEN, then closes each (`✓ Closed spotter-4te.6`) and ends
    # "All done. The entire spotter-4te epic ... is complete"
    h = make_handoff(shared_data / MAIN, engine=engine)
    nxt = h.text.split("## Next steps", 1)[1].split("## Full transcript")[0] if "## Next steps" in h.text else ""
    assert "spotter-4te." not in nxt and "OPEN" not in nxt


def _tracker_session(final: str) -> list[dict]:
    listing = "○ PROJ-41 · Add retries   [● P1 · OPEN]\n○ PROJ-42 · Add metrics   [● P1 · OPEN]"
    msgs = [{"role": "user", "content": "Work through the open PROJ tasks"}]
    steps = [("bd ready", listing), ("bd close PROJ-41", "✓ Closed PROJ-41: Closed")]
    for k, (cmd, out) in enumerate(steps):
        msgs.append({"role": "assistant", "content": f"Step {k}: running the tracker.", "tool_calls": [
            {"id": f"c{k}", "type": "function", "function": {"name": "bash", "arguments": json.dumps({"command": cmd})}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{k}", "content": out})
    msgs.append({"role": "assistant", "content": final})
    return msgs


def test_a_task_closed_later_is_not_pending_and_all_done_leaves_nothing():
    from compaction._session_facts import NEXT, PENDING, analyze

    def pending(final: str) -> list[str]:
        facts = analyze(read_transcript(_tracker_session(final)))
        return [c.text for c in facts.candidates if c.section in (PENDING, NEXT)]

    left = pending("PROJ-41 is fixed. Next I will start on PROJ-42.")
    assert not [x for x in left if "PROJ-41" in x and "OPEN" in x]
    assert [x for x in left if "PROJ-42" in x and "OPEN" in x]
    assert "PROJ-41 is fixed. Next I will start on PROJ-42." in left
    assert pending("All done. Both tasks are finished:\n- PROJ-41: retries\n- PROJ-42: metrics") == []


def test_a_large_budget_fits_10000_chars_without_a_cut(shared_data, engine):
    # 12,000 tokens hold far more than 10,000 characters: before, 8 shrinks by 0.85 stayed over the
    # character cap and the text was cut, losing "## Next steps" and "## Full transcript"
    t = read_transcript(shared_data / MAIN, before_boundary=-1)
    h = make_handoff(t, budget_tokens=12_000, engine=engine)
    assert len(h.text) < 10_000 and not [w for w in h.warnings if "cut" in w]
    assert "## Next steps" in h.text and h.text.rstrip().endswith(f"## Full transcript\n- {t.path}")


def test_a_cut_handoff_keeps_the_transcript_path(engine, tmp_path):
    goal = "\n".join(f"requirement {i}: " + "the parser must accept this exact input form " * 6 for i in range(300))
    p = tmp_path / "long.json"
    p.write_text(json.dumps([{"role": "user", "content": goal}, {"role": "assistant", "content": "Next I will start."}]))
    h = make_handoff(p, budget_tokens=50_000, engine=engine)
    assert len(h.text) < 10_000
    assert h.text.rstrip().endswith(f"## Full transcript\n- {p}")


def test_a_failed_rejected_or_planned_close_does_not_close_the_task():
    """A close that did not happen counted: a `bd close` answered by an error, a rejected one,
    and close words that are negated, conditional, planned or asked all dropped the task from
    Pending. Only a close stated as done, or a close command that succeeded, counts."""
    from compaction._session_facts import PENDING, analyze, closed_task_ids

    def pending_ids(close_out: str, final: str, *, is_error: bool = False) -> list[str]:
        listing = "○ PROJ-7 · Add retries   [● P1 · OPEN]"
        msgs = [
            {"role": "user", "content": "Work through the open PROJ tasks"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c0", "name": "Bash", "input": {"command": "bd ready"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c0", "content": listing}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "Bash", "input": {"command": "bd close PROJ-7"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": close_out, "is_error": is_error}]},
            {"role": "assistant", "content": final},
        ]
        facts = analyze(read_transcript(msgs))
        return [c.text for c in facts.candidates if c.section == PENDING and "PROJ-7" in c.text]

    ok = "Updated issue PROJ-7"
    assert pending_ids(ok, "Moving on.") == []  # a close command that succeeded
    assert pending_ids("Error: cannot close PROJ-7: it has open blockers (PROJ-8)", "It is blocked.") != []
    assert pending_ids("failed", "It is blocked.", is_error=True) != []
    rejected = "The user doesn't want to proceed with this tool use. The tool use was rejected."
    assert pending_ids(rejected, "Waiting for you.", is_error=True) != []
    never = [
        "Don't close PROJ-12 yet", "I need to complete PROJ-7 next", "Before closing PROJ-3, run the tests",
        "when PROJ-8 is complete we ship", "Is PROJ-9 done?", "Error: cannot close PROJ-7: it has open blockers",
        "PROJ-4 is not done", "I haven't closed PROJ-5", "If PROJ-6 is closed, merge", "Closing PROJ-11 now",
    ]
    assert [x for x in never if closed_task_ids(x)] == []
    assert closed_task_ids("✓ Closed PROJ-1. PROJ-2 is complete, and PROJ-3 is next; I closed PROJ-20.") == {"PROJ-1", "PROJ-2", "PROJ-20"}
    assert closed_task_ids("bd close PROJ-7", command=True) == {"PROJ-7"}


def test_text_a_call_writes_closes_no_task():
    """A close in a file's contents or a sub-agent's prompt is no close: a Write of
    '- [ ] Close PROJ-7 once the review is in' and an Edit writing "Don't close PROJ-8" dropped
    both from Pending once the call succeeded. A shell command and a completed todo still close."""
    from compaction._session_facts import PENDING, analyze

    def pending_ids(name: str, inp: dict) -> set[str]:
        listing = "○ PROJ-7 · Add retries   [● P1 · OPEN]\n○ PROJ-8 · Add metrics   [● P1 · OPEN]"
        msgs = [
            {"role": "user", "content": "Work through the open PROJ tasks"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c0", "name": "Bash", "input": {"command": "bd ready"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c0", "content": listing}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": name, "input": inp}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "ok"}]},
            {"role": "assistant", "content": "Moving on."},
        ]
        facts = analyze(read_transcript(msgs))
        return {x for c in facts.candidates if c.section == PENDING for x in ("PROJ-7", "PROJ-8") if x in c.text}

    both = {"PROJ-7", "PROJ-8"}
    assert pending_ids("Write", {"file_path": "NOTES.md", "content": "- [ ] Close PROJ-7 once the review is in\n"}) == both
    assert pending_ids("Edit", {"file_path": "README.md", "old_string": "x", "new_string": "Don't close PROJ-8 until CI is green"}) == both
    assert pending_ids("Task", {"description": "close tasks", "prompt": "Close PROJ-7 and PROJ-8"}) == both
    assert pending_ids("Bash", {"command": "bd close PROJ-7"}) == {"PROJ-8"}
    todos = [{"content": "Close PROJ-7", "status": "completed"}, {"content": "Close PROJ-8", "status": "pending"}]
    assert "PROJ-7" not in pending_ids("TodoWrite", {"todos": todos})


def test_all_done_only_when_the_final_message_says_the_whole_work_is_finished(shared_data):
    """'All done' anywhere in the last message cleared every pending item: also 'All done with
    step 1. Now I'll start step 2', 'Not all tasks are done yet', 'Once all tasks are complete
    ...', 'Everything is done except the migration', 'All set up. Next I need to ...'. And a
    real 'All done' cleared tasks of another epic that the session never closed."""
    from compaction._session_facts import PENDING, analyze, says_all_done

    not_done = [
        "All done with step 1. Now I'll start step 2", "Not all tasks are done yet",
        "Once all tasks are complete I'll open the PR", "Everything is done except the migration",
        "All set up. Next I need to backfill users_v2", "All done. PROJ-7 remains blocked by PROJ-8.", "Are all tasks done?",
    ]
    assert [x for x in not_done if says_all_done(x)] == []
    assert says_all_done("All done. Both tasks are finished:\n- PROJ-41: retries\n- PROJ-42: metrics")
    assert says_all_done("Fixed the bug.\nAll tasks are now complete.")
    assert says_all_done("All done! Let me know if you want anything else.")  # the usual last line

    def pending(final: str) -> list[str]:
        todos = [{"content": "Step 1: add the users_v2 table", "status": "completed"},
                 {"content": "Step 2: backfill users_v2 from users", "status": "pending"}]
        msgs = [
            {"role": "user", "content": "Implement the migration plan in app/db/migrate.py"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "TodoWrite", "input": {"todos": todos}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "Todos have been modified successfully"}]},
            {"role": "assistant", "content": "Step 1 is in place; PROJ-9 is still in progress and the backfill is pending."},
            {"role": "assistant", "content": final},
        ]
        return [c.text for c in analyze(read_transcript(msgs)).candidates if c.section == PENDING]

    for final in not_done[:5]:
        assert "Step 2: backfill users_v2 from users" in pending(final), final
    # a real "all done": the todo list is finished, a task it never closed nor named stays
    assert pending("All done.") == ["Step 1 is in place; PROJ-9 is still in progress and the backfill is pending."]
    assert pending("All done. PROJ-9 is finished too.") == []
    # ae4a77f8 ends "All done. The entire spotter-4te epic ... is complete": spotter-y5l.3 / .4, in progress
    # in another epic and never closed, are still pending
    facts = analyze(read_transcript(shared_data / MAIN))
    left = [c.text for c in facts.candidates if c.section == PENDING]
    assert any("spotter-y5l.3" in x for x in left) and not any("spotter-4te" in x for x in left)


def test_a_rejected_call_is_no_edit_no_current_work_and_its_plan_no_next_step(engine):
    """A rejected Edit showed as '[edited, failing] app/accounts.py' with the text it never
    wrote under Key files, the handoff's Next steps repeated the refused plan, and a rejected
    Bash stayed under Current work as '[Bash] mix phx.server ...'. A recap ('the tests now
    pass') was a next step because 'now' / 'then' counted as looking ahead."""
    from compaction import summarize
    from compaction._session_facts import CURRENT, FILES, NEXT, analyze

    refusal = ("The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, "
               "the new_string was NOT written to the file).")
    plan = "I'll add an index and drop the users table cache."
    msgs = [
        {"role": "user", "content": "Speed up the login query in app/accounts.py"},
        {"role": "assistant", "content": [{"type": "text", "text": plan}, {"type": "tool_use", "id": "t1", "name": "Edit", "input": {
            "file_path": "app/accounts.py", "old_string": "cache = UserCache()", "new_string": "cache = None  # drop the cache entirely"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": refusal}]},
        {"role": "user", "content": "No, keep the cache; only add the index."},
    ]
    facts = analyze(read_transcript(msgs))
    assert facts.edited == [] and not [c for c in facts.candidates if c.section == FILES]
    assert not [f for f in facts.files if "failing" in f.reasons or "edited" in f.reasons]
    assert not [c for c in facts.candidates if c.section == NEXT and not c.forced]
    h = make_handoff(msgs, engine=engine)
    assert "drop the cache entirely" not in h.text and plan not in h.text.split("## Next steps")[-1]
    s = summarize(FIX / "short.jsonl", engine=engine, recent_turns=0, budget_tokens=1000)
    assert "[Bash] mix phx.server" not in s.text
    assert not [c for c in analyze(read_transcript(FIX / "short.jsonl")).candidates if c.section == CURRENT and c.label == "Bash"]
    recap = analyze(read_transcript("User: fix the login bug in app/auth.py\nAssistant: Fixed the session expiry check in app/auth.py; the tests now pass."))
    assert not [c for c in recap.candidates if c.section == NEXT]
