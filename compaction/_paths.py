"""Which files the tools may read: regular files under configured roots, nothing else.

A path given by an MCP caller is resolved (symlinks followed) and must land inside one
of the roots, themselves resolved. Default roots: the Claude Code projects folder
(``~/.claude/projects``) and the current project (the working directory). Extra roots
come from ``CONTEXT_DISTILL_ROOTS`` (``os.pathsep``-separated).

:func:`check_allowed_file` also closes the window between the check and the read: the
:class:`CheckedFile` it returns remembers which file passed (device and inode), and its
``read`` opens the resolved path without following a final symlink and refuses a file
that is not the one checked (a path component swapped for a link to elsewhere).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ._exceptions import InputError, InputTooLargeError

__all__ = ["CheckedFile", "check_allowed_file", "default_roots", "resolve_allowed_file"]


def default_roots() -> list[Path]:
    roots: list[Path] = []
    try:
        roots.append(Path.home() / ".claude" / "projects")
    except (RuntimeError, KeyError, OSError):  # no home folder known
        pass
    try:
        roots.append(Path.cwd())
    except OSError:  # the working directory was removed
        pass
    extra = os.environ.get("CONTEXT_DISTILL_ROOTS", "")
    for p in extra.split(os.pathsep):
        if p.strip() and "\x00" not in p:
            try:
                roots.append(Path(p.strip()).expanduser())
            except (RuntimeError, KeyError, OSError):
                continue
    return roots


@dataclass(frozen=True)
class CheckedFile:
    """A regular file inside the allowed roots, as it was when checked."""

    path: Path  # resolved
    device: int
    inode: int

    def read(self, max_bytes: int) -> bytes:
        """The file's bytes, if it is still the file that was checked and at most ``max_bytes``."""
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.path, flags)
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (self.device, self.inode) or not stat.S_ISREG(st.st_mode):
                raise InputError(f"{self.path} changed between the folder check and the read; try again")
            if st.st_size > max_bytes:
                raise InputTooLargeError(
                    f"{self.path} is {st.st_size:,} bytes, over the limit of {max_bytes:,}; "
                    "raise CONTEXT_DISTILL_MAX_INPUT_BYTES"
                )
            chunks, total = [], 0
            while total <= max_bytes:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            if total > max_bytes:  # it grew after the size check
                raise InputTooLargeError(f"{self.path} is over the limit of {max_bytes:,} bytes")
            return b"".join(chunks)
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)


def check_allowed_file(path: str | os.PathLike[str], roots: Sequence[Path] | None = None) -> CheckedFile:
    """:func:`resolve_allowed_file`, remembering which file passed so that reading it later
    cannot be redirected elsewhere."""
    real = resolve_allowed_file(path, roots)
    try:
        st = real.stat()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return CheckedFile(real, st.st_dev, st.st_ino)


def resolve_allowed_file(path: str | os.PathLike[str], roots: Sequence[Path] | None = None) -> Path:
    """Return the resolved path if it is a regular file inside a root; raise InputError otherwise."""
    if isinstance(path, os.PathLike) and not isinstance(path, Path):
        path = os.fspath(path)
    if not isinstance(path, (str, Path)):
        raise InputError(f"a file path must be text, got {type(path).__name__}")
    if not str(path).strip():
        raise InputError("a file path is required")
    if "\x00" in str(path):
        raise InputError("the path contains a NUL byte")
    if len(str(path)) > 4096:
        raise InputError("the path is too long (over 4096 characters)")
    roots = default_roots() if roots is None else list(roots)
    try:
        raw = Path(path).expanduser()
    except (RuntimeError, KeyError, OSError):  # "~user" that does not exist
        raise InputError(f"cannot expand {str(path)!r}: no such user folder") from None
    try:
        real = raw.resolve(strict=True)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot resolve {path}: {exc}") from None
    allowed = []
    for r in roots:
        try:
            allowed.append(r.expanduser().resolve())
        except (OSError, RuntimeError):
            continue
    if not any(real == r or r in real.parents for r in allowed):
        names = ", ".join(str(r) for r in allowed) or "(none)"
        raise InputError(
            f"{path} is outside the folders this server may read ({names}); "
            "add its folder to CONTEXT_DISTILL_ROOTS to allow it"
        )
    try:
        mode = real.stat().st_mode
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path} is not a regular file")
    return real
