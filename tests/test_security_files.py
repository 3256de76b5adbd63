"""Files a hostile transcript folder could use to read outside the allowed roots or to hang
the reader (issue 5, "Files"): sub-agent files are read only when they are regular files
inside the session's own folder."""

from __future__ import annotations

import json
import os
import threading

import compaction


def _record(text: str, session: str = "s1") -> str:
    return json.dumps(
        {
            "type": "user",
            "sessionId": session,
            "uuid": f"u-{abs(hash(text)) % 10**8}",
            "cwd": "/p",
            "message": {"role": "user", "content": text},
        }
    )


def _session(tmp_path):
    root = tmp_path / "projects" / "-p"
    (root / "sess" / "subagents").mkdir(parents=True)
    path = root / "sess.jsonl"
    path.write_text(_record("please fix the parser") + "\n")
    (root / "sess" / "subagents" / "agent-good.jsonl").write_text(_record("sub-agent work", "s2") + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.jsonl").write_text(_record("TOP-SECRET-OUTSIDE-THE-ROOT", "s3") + "\n")
    return root, path, outside


def _all_text(t) -> str:
    parts = [e.text for e in t.events if hasattr(e, "text")]
    for sub in (t.subagents or {}).values():
        parts += [e.text for e in sub.events if hasattr(e, "text")]
    return "\n".join(parts)


def test_subagent_files_inside_the_session_are_read(tmp_path):
    _, path, _ = _session(tmp_path)
    t = compaction.read_transcript(path)
    assert "good" in (t.subagents or {})
    assert "sub-agent work" in _all_text(t)


def test_subagent_symlink_out_of_the_folder_is_not_followed(tmp_path):
    root, path, outside = _session(tmp_path)
    (root / "sess" / "subagents" / "agent-evil.jsonl").symlink_to(outside / "private.jsonl")
    t = compaction.read_transcript(path)
    assert "evil" not in (t.subagents or {})
    assert "TOP-SECRET" not in _all_text(t)
    assert "good" in (t.subagents or {})


def test_subagents_folder_that_is_a_symlink_out_is_not_followed(tmp_path):
    root, path, outside = _session(tmp_path)
    (outside / "agent-x.jsonl").write_text(_record("TOP-SECRET-VIA-FOLDER-LINK", "s4") + "\n")
    real = root / "sess" / "subagents"
    for f in real.iterdir():
        f.unlink()
    real.rmdir()
    real.symlink_to(outside, target_is_directory=True)
    t = compaction.read_transcript(path)
    assert "TOP-SECRET" not in _all_text(t)


def test_a_fifo_among_subagent_files_does_not_hang_the_reader(tmp_path):
    root, path, _ = _session(tmp_path)
    os.mkfifo(root / "sess" / "subagents" / "agent-pipe.jsonl")
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("t", compaction.read_transcript(path)), daemon=True)
    th.start()
    th.join(20)
    assert not th.is_alive(), "read_transcript blocked on a FIFO"
    assert "pipe" not in (box["t"].subagents or {})
    assert "good" in (box["t"].subagents or {})


def test_summary_of_a_session_with_a_planted_link_leaks_nothing(tmp_path):
    from compaction import Engine, Settings
    from compaction.baselines import BM25Scorer

    root, path, outside = _session(tmp_path)
    (root / "sess" / "subagents" / "agent-evil.jsonl").symlink_to(outside / "private.jsonl")
    eng = Engine(scorer=BM25Scorer(), settings=Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d"))
    s = compaction.summarize(path, engine=eng)
    h = compaction.make_handoff(path, engine=eng)
    assert "TOP-SECRET" not in s.text and "TOP-SECRET" not in h.text


def test_stored_originals_and_handoffs_are_private_files(tmp_path):
    """Other local users cannot read what is stored: files are created 0600 (mkstemp), whatever the umask."""
    import stat
    from types import SimpleNamespace

    from compaction._handoff_store import HandoffStore
    from compaction._store import OriginalStore

    old = os.umask(0o022)
    try:
        h = OriginalStore(tmp_path / "cache").put("line\n" * 10)
        HandoffStore(tmp_path / "data").save(SimpleNamespace(text="a handoff", files=[], cwd="/p"), project="/p")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.stem == h for p in files) and any(p.parent.name == "handoffs" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))


def test_a_checked_transcript_swapped_for_a_link_after_the_check_is_not_read(tmp_path):
    """The time-of-check/time-of-use window: the path passes the folder check, then the file
    (or a folder on its path) is replaced by a link to a file outside the roots."""
    import shutil

    import pytest

    from compaction._paths import check_allowed_file

    root, path, outside = _session(tmp_path)
    checked = check_allowed_file(path, roots=[tmp_path / "projects"])
    assert "please fix the parser" in _all_text(compaction.read_transcript(checked))
    assert "sub-agent work" in _all_text(compaction.read_transcript(checked))  # sub-agents still read

    path.unlink()
    path.symlink_to(outside / "private.jsonl")  # the file itself becomes a link
    with pytest.raises(compaction.InputError, match="cannot read|changed"):
        compaction.read_transcript(checked)

    root2 = tmp_path / "projects" / "-q"
    root2.mkdir()
    p2 = root2 / "sess.jsonl"
    p2.write_text(_record("checked text") + "\n")
    checked2 = check_allowed_file(p2, roots=[tmp_path / "projects"])
    shutil.move(str(root2), str(tmp_path / "moved"))
    (outside / "sess.jsonl").write_text(_record("TOP-SECRET-OUTSIDE-THE-ROOT") + "\n")
    root2.symlink_to(outside, target_is_directory=True)  # a folder on the path becomes a link
    with pytest.raises(compaction.InputError, match="changed between the folder check and the read"):
        compaction.read_transcript(checked2)


def test_a_checked_transcript_that_grew_past_the_limit_is_refused(tmp_path):
    import pytest

    from compaction._paths import check_allowed_file

    _, path, _ = _session(tmp_path)
    checked = check_allowed_file(path, roots=[tmp_path / "projects"])
    assert checked.read(10_000).startswith(b'{"type": "user"')
    with pytest.raises(compaction.InputTooLargeError):
        checked.read(10)


def test_sub_agents_of_a_checked_session_cannot_be_moved_out_by_a_folder_swap(tmp_path):
    """The session file was read; then its folder is swapped for a link to a look-alike tree
    outside the roots before the sub-agent files are listed: none of those may be read."""
    import shutil

    from compaction._paths import check_allowed_file
    from compaction.transcripts.claude_code import read_claude_code

    root, path, outside = _session(tmp_path)
    (outside / "sess" / "subagents").mkdir(parents=True)
    (outside / "sess" / "subagents" / "agent-x.jsonl").write_text(_record("TOP-SECRET-OUTSIDE-THE-ROOT", "s9") + "\n")
    checked = check_allowed_file(path, roots=[tmp_path / "projects"])
    data = checked.read(1 << 20)
    shutil.move(str(root), str(tmp_path / "moved"))
    root.symlink_to(outside, target_is_directory=True)
    text = _all_text(read_claude_code(checked.path, data, resolved=True))
    assert "please fix the parser" in text
    assert "TOP-SECRET" not in text
