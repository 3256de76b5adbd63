"""HandoffStore: durable, atomic, redacted, id-validated, bounded, newest first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from compaction import InputError, StoreError, StoreUnavailableError
from compaction._handoff_store import HandoffNotFoundError, HandoffStore, StoredHandoff

ROOT = Path(__file__).resolve().parent.parent


def _result(text="## Goal\nFix the parser\n", *, cwd="/home/u/proj", session="s-1", goal="Fix the parser", files=()):
    return SimpleNamespace(
        text=text,
        goal=goal,
        latest_request="make the tests pass",
        files=[SimpleNamespace(path=p, reasons=["edited"], score=1.0) for p in files],
        tokens=12,
        session_id=session,
        cwd=cwd,
        warnings=[],
    )


def test_save_get_roundtrip(tmp_path):
    store = HandoffStore(tmp_path)
    s = store.save(_result(files=["lib/parser.py", "tests/test_parser.py"]), project="/home/u/proj")
    assert isinstance(s, StoredHandoff)
    assert s.project == "/home/u/proj" and s.session_id == "s-1" and s.goal == "Fix the parser"
    assert [f.path for f in s.files] == ["lib/parser.py", "tests/test_parser.py"]
    assert s.files[0].reasons == ["edited"]
    path = tmp_path / "handoffs" / f"{s.id}.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["id"] == s.id and on_disk["text"] == s.text and on_disk["project"] == "/home/u/proj"
    assert on_disk["created"].endswith("Z")
    again = HandoffStore(tmp_path).get(s.id)  # a fresh object: durable
    assert again == s


def test_project_defaults_to_cwd_and_is_normalized(tmp_path):
    store = HandoffStore(tmp_path)
    s = store.save(_result(cwd="/home/u/proj/"))
    assert s.project == "/home/u/proj"
    assert store.latest("/home/u/proj/").id == s.id


def test_dict_results_are_accepted(tmp_path):
    store = HandoffStore(tmp_path)
    s = store.save({"text": "hello", "files": [{"path": "a.py", "reasons": ["read"], "score": "0.5"}]}, project=None)
    assert s.project is None and s.files[0].score == 0.5


def test_secrets_are_redacted_before_they_touch_disk(tmp_path):
    key = "sk-proj-" + "abcdefghijklmnopqrstuvwxyz0123"
    gh = "ghp_" + "A" * 36
    text = f"export OPENAI_API_KEY={key}\nAuthorization: Bearer abc.def.ghi.jkl.mno\ntoken {gh}\n"
    store = HandoffStore(tmp_path)
    s = store.save(_result(text=text, goal=f"use {key}"), project="/p")
    raw = (tmp_path / "handoffs" / f"{s.id}.json").read_text()
    assert key not in raw and gh not in raw and "abc.def.ghi" not in raw
    assert "[REDACTED:openai-key]" in s.text and "[REDACTED:github-token]" in s.text
    assert s.goal == "use [REDACTED:openai-key]"


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "a/b", "ABC", "", "x" * 65, "a.json", "..", "/tmp/x", "a\x00b", 7, None, "é"]
)
def test_ids_can_never_name_paths(tmp_path, bad):
    store = HandoffStore(tmp_path)
    with pytest.raises(InputError, match="invalid handoff id") as info:
        store.get(bad)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300 and "resources/list" in msg
    if not isinstance(bad, str):
        assert f"of type {type(bad).__name__}" in msg


def test_a_long_bad_id_is_shown_cut_short(tmp_path):
    with pytest.raises(InputError, match=r"invalid handoff id 'xxxxxxxxxx.*'\.\.\. \(200 characters\)"):
        HandoffStore(tmp_path).get("x" * 200)


def test_missing_id_is_a_clear_not_found(tmp_path):
    store = HandoffStore(tmp_path)
    with pytest.raises(HandoffNotFoundError, match="no handoff") as ei:
        store.get("20260101-000000-000000-deadbeef")
    assert isinstance(ei.value, StoreError) and isinstance(ei.value, KeyError)


def test_list_newest_first_and_latest_per_project(tmp_path):
    store = HandoffStore(tmp_path)
    a1 = store.save(_result(text="a1"), project="/a")
    b1 = store.save(_result(text="b1", session="s-2"), project="/b")
    a2 = store.save(_result(text="a2"), project="/a")
    assert [i.id for i in store.list()] == [a2.id, b1.id, a1.id]
    assert [i.id for i in store.list(project="/a")] == [a2.id, a1.id]
    assert [i.id for i in store.list(limit=1)] == [a2.id]
    info = store.list(project="/b")[0]
    assert info.chars == 2 and info.session_id == "s-2"
    assert store.latest("/a").text == "a2"
    assert store.latest("/b").text == "b1"
    assert store.latest("/c") is None
    assert store.latest("/a", session_id="s-2") is None
    assert store.latest("/b", session_id="s-2").id == b1.id
    assert len({a1.id, a2.id, b1.id}) == 3


def test_bounded_count_prunes_oldest(tmp_path):
    store = HandoffStore(tmp_path, max_items=3)
    ids = [store.save(_result(text=f"h{i}"), project="/p").id for i in range(5)]
    left = [i.id for i in store.list(limit=50)]
    assert left == ids[:1:-1]  # the newest three, newest first
    assert len(list((tmp_path / "handoffs").glob("*.json"))) == 3


def test_corrupt_files_are_skipped_not_fatal(tmp_path):
    store = HandoffStore(tmp_path)
    good = store.save(_result(text="good"), project="/p")
    (tmp_path / "handoffs" / "29990101-000000-000000-ffffffff.json").write_text("{not json")
    (tmp_path / "handoffs" / "29990101-000000-000001-ffffffff.json").write_text('{"id": "other", "text": "x"}')
    (tmp_path / "handoffs" / "notes.txt").write_text("ignored")
    assert [i.id for i in store.list()] == [good.id]
    assert store.latest("/p").id == good.id


def test_empty_text_is_refused(tmp_path):
    with pytest.raises(InputError, match="non-empty"):
        HandoffStore(tmp_path).save(_result(text="  "), project="/p")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_dir_is_store_unavailable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StoreUnavailableError, match="CONTEXT_DISTILL_DATA_DIR"):
            HandoffStore(ro).save(_result(), project="/p")
    finally:
        ro.chmod(0o700)


def test_data_dir_that_is_a_file_is_store_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailableError, match="cannot write handoffs"):
        HandoffStore(blocker).save(_result(), project="/p")
    with pytest.raises(StoreUnavailableError, match="cannot read handoffs"):
        HandoffStore(blocker).list()


def test_writer_killed_mid_write_leaves_no_partial_handoff(tmp_path):
    """A writer SIGKILLed while writing leaves only whole handoffs (the atomic write's temp file at most)."""
    script = textwrap.dedent(
        f"""
        import os, sys, signal
        sys.path.insert(0, {str(ROOT)!r})
        from types import SimpleNamespace
        import compaction._atomic as atomic
        from compaction._handoff_store import HandoffStore
        real_fsync = os.fsync
        def die(fd):
            os.kill(os.getpid(), signal.SIGKILL)
        store = HandoffStore({str(tmp_path)!r})
        store.save(SimpleNamespace(text="first", files=[], cwd="/p"), project="/p")
        os.fsync = die
        store.save(SimpleNamespace(text="second " * 10000, files=[], cwd="/p"), project="/p")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    store = HandoffStore(tmp_path)
    items = store.list()
    assert [store.get(i.id).text for i in items] == ["first"]
    for p in (tmp_path / "handoffs").glob("*.json"):
        json.loads(p.read_text())  # every visible record is whole


def test_every_field_is_redacted_and_lone_surrogates_do_not_lose_the_handoff(tmp_path):
    key = "sk-proj-" + "abcdefghijklmnopqrstuvwxyz0123"
    store = HandoffStore(tmp_path)
    s = store.save(
        {"text": "emoji half \ud83d here\n", "files": [{"path": "a.py", "reasons": [f"read with {key}"], "score": 1}]},
        project=f"/home/u/{key}",
    )
    raw = (tmp_path / "handoffs" / f"{s.id}.json").read_bytes().decode("utf-8")
    assert key not in raw
    back = store.get(s.id)
    assert back.text == s.text == "emoji half \ufffd here\n"
    assert back.files[0].reasons == ["read with [REDACTED:openai-key]"]


def test_a_handoff_that_is_saved_can_be_read_back_or_is_refused(tmp_path):
    from compaction._handoff_store import MAX_RECORD_BYTES

    store = HandoffStore(tmp_path)
    big = store.save(_result(text="é" * 600_000))  # over the old 1,000,000-byte read
    assert store.get(big.id).text == "é" * 600_000
    assert store.latest("/home/u/proj").id == big.id
    with pytest.raises(InputError, match="over the"):
        store.save(_result(text="x" * (MAX_RECORD_BYTES + 10)))
