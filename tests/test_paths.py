"""Which files a tool may read: regular files under the allowed roots, nothing else (issue 5)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from compaction import InputError
from compaction._paths import default_roots, resolve_allowed_file


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "proj" / "sub").mkdir(parents=True)
    (root / "proj" / "session.jsonl").write_text('{"type": "user"}\n')
    (root / "proj" / "sub" / "deep.txt").write_text("deep\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read me\n")
    return root, outside


def test_file_inside_a_root_is_allowed(tree):
    root, _ = tree
    got = resolve_allowed_file(root / "proj" / "session.jsonl", [root])
    assert got == (root / "proj" / "session.jsonl").resolve()
    assert resolve_allowed_file(str(root / "proj" / "sub" / "deep.txt"), [root]).read_text() == "deep\n"


def test_dotdot_that_stays_inside_is_allowed(tree):
    root, _ = tree
    got = resolve_allowed_file(f"{root}/proj/sub/../session.jsonl", [root])
    assert got == (root / "proj" / "session.jsonl").resolve()


@pytest.mark.parametrize("rel", ["../outside/secret.txt", "proj/../../outside/secret.txt", "proj/sub/../../../outside/secret.txt"])
def test_dotdot_traversal_out_of_the_root_is_rejected(tree, rel):
    root, outside = tree
    with pytest.raises(InputError, match="outside the folders this server may read"):
        resolve_allowed_file(f"{root}/{rel}", [root])


def test_absolute_path_elsewhere_is_rejected(tree):
    root, _ = tree
    for p in ("/etc/passwd", "/etc/hostname", "/proc/self/environ"):
        if Path(p).exists():
            with pytest.raises(InputError, match="outside"):
                resolve_allowed_file(p, [root])


def test_symlink_inside_a_root_pointing_outside_is_rejected(tree):
    root, outside = tree
    link = root / "proj" / "innocent.jsonl"
    link.symlink_to(outside / "secret.txt")
    with pytest.raises(InputError, match="outside"):
        resolve_allowed_file(link, [root])
    # a symlinked folder inside the root, pointing outside, is no way out either
    (root / "proj" / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="outside"):
        resolve_allowed_file(root / "proj" / "escape" / "secret.txt", [root])


def test_symlink_to_etc_passwd_is_rejected(tree):
    root, _ = tree
    (root / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="outside"):
        resolve_allowed_file(root / "passwd", [root])


def test_symlink_inside_pointing_inside_is_allowed(tree):
    root, _ = tree
    (root / "latest.jsonl").symlink_to(root / "proj" / "session.jsonl")
    assert resolve_allowed_file(root / "latest.jsonl", [root]) == (root / "proj" / "session.jsonl").resolve()


def test_root_that_is_itself_a_symlink_works(tree, tmp_path):
    root, _ = tree
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert resolve_allowed_file(alias / "proj" / "session.jsonl", [alias]) == (root / "proj" / "session.jsonl").resolve()


def test_symlink_loop_is_a_clear_error(tree):
    root, _ = tree
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    with pytest.raises(InputError):
        resolve_allowed_file(root / "a", [root])


def test_a_directory_is_rejected(tree):
    root, _ = tree
    with pytest.raises(InputError, match="not a regular file"):
        resolve_allowed_file(root / "proj", [root])
    with pytest.raises(InputError, match="not a regular file"):
        resolve_allowed_file(root, [root])


def test_a_fifo_is_rejected_without_blocking(tree):
    root, _ = tree
    fifo = root / "proj" / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        resolve_allowed_file(fifo, [root])


def test_a_device_is_rejected(tree):
    root, _ = tree
    # /dev/null through a root that contains it, and a device node made inside the root
    with pytest.raises(InputError, match="not a regular file"):
        resolve_allowed_file("/dev/null", [Path("/dev")])
    node = root / "proj" / "null.jsonl"
    try:
        os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError):
        return  # not allowed to make device nodes here; /dev/null above covered it
    with pytest.raises(InputError, match="not a regular file"):
        resolve_allowed_file(node, [root])


def test_a_unix_socket_is_rejected(tree):
    import socket

    root, _ = tree
    path = root / "proj" / "s.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))
        with pytest.raises(InputError, match="not a regular file"):
            resolve_allowed_file(path, [root])
    finally:
        s.close()


def test_nul_byte_is_rejected(tree):
    root, _ = tree
    with pytest.raises(InputError, match="NUL"):
        resolve_allowed_file(f"{root}/proj/session.jsonl\x00.txt", [root])


def test_missing_file_is_a_clear_error(tree):
    root, _ = tree
    with pytest.raises(InputError, match="no such file") as exc:
        resolve_allowed_file(root / "proj" / "nope.jsonl", [root])
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("bad", ["", "   ", None, 42, b"/etc/passwd", ["x"]])
def test_empty_or_non_text_paths_are_rejected(bad):
    with pytest.raises(InputError):
        resolve_allowed_file(bad, [Path("/")])  # type: ignore[arg-type]


def test_overlong_path_is_rejected(tree):
    root, _ = tree
    with pytest.raises(InputError):
        resolve_allowed_file(str(root) + "/" + "a" * 5000, [root])
    with pytest.raises(InputError):  # one component over NAME_MAX
        resolve_allowed_file(str(root) + "/" + "b" * 300, [root])


def test_prefix_sibling_is_not_inside(tmp_path):
    """/x/root-evil is not inside /x/root although the string starts the same."""
    root = tmp_path / "root"
    root.mkdir()
    evil = tmp_path / "root-evil"
    evil.mkdir()
    (evil / "f.txt").write_text("x")
    with pytest.raises(InputError, match="outside"):
        resolve_allowed_file(evil / "f.txt", [root])


def test_no_roots_allows_nothing(tree):
    root, _ = tree
    with pytest.raises(InputError, match=r"\(none\)"):
        resolve_allowed_file(root / "proj" / "session.jsonl", [])


def test_default_roots_are_cwd_claude_projects_and_env(tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "t.txt").write_text("x")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "extra")
    monkeypatch.setenv("CONTEXT_DISTILL_ROOTS", os.pathsep.join(["", str(tmp_path / "more"), "  "]))
    roots = default_roots()
    assert roots[0] == tmp_path / "home" / ".claude" / "projects"
    assert Path.cwd() in roots and tmp_path / "more" in roots
    assert len(roots) == 3
    # the default (roots=None) uses them: cwd is allowed, its parent is not
    assert resolve_allowed_file("t.txt") == (extra / "t.txt").resolve()
    (tmp_path / "up.txt").write_text("x")
    with pytest.raises(InputError, match="CONTEXT_DISTILL_ROOTS"):
        resolve_allowed_file("../up.txt")


def test_default_roots_survive_a_removed_working_directory(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    roots = default_roots()  # must not raise
    assert all(isinstance(r, Path) for r in roots)
