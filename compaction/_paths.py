"""Which files the tools may read: regular files under configured roots, nothing else.

A path given by an MCP caller is resolved (symlinks followed) and must land inside one
of the roots, themselves resolved. Default roots: the Claude Code projects folder
(``~/.claude/projects``) and the current project (the working directory). Extra roots
come from ``CONTEXT_DISTILL_ROOTS`` (``os.pathsep``-separated).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Sequence

from ._exceptions import InputError

__all__ = ["default_roots", "resolve_allowed_file"]


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
