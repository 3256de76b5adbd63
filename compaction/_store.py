"""Originals of compacted texts, kept so that every deletion can be undone.

Content-addressed (the handle is the first 16 hex digits of the *stored* text's sha256),
bounded in size (oldest files go first), written atomically. Secrets (API keys, tokens,
private keys, auth headers) are redacted before anything touches the disk, so the stored
original, and what ``expand`` gives back, is the redacted text; redaction keeps every line
(and line ending) in place, so line numbers from ``compact`` stay valid. Layout:
``<cache_dir>/originals/<handle[:2]>/<handle>.txt``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

from ._atomic import atomic_write_bytes
from ._exceptions import HandleNotFoundError, InputError, StoreUnavailableError
from ._redact import redact_secrets

__all__ = ["OriginalStore", "handle_for"]

_HANDLE = re.compile(r"^[0-9a-f]{16}$")


def handle_for(text: str) -> str:
    return _handle_of(text.encode("utf-8", "surrogatepass"))


def _handle_of(data: bytes) -> str:
    """The handle naming stored bytes: the first 16 hex digits of their sha256."""
    return hashlib.sha256(data).hexdigest()[:16]


class OriginalStore:
    #: prune after this many new files, or this share of ``max_bytes`` written, in one process
    PRUNE_EVERY_FILES = 32
    PRUNE_EVERY_SHARE = 0.125
    #: a stored original this young is never evicted: its handle was just given to a caller
    GRACE_SECONDS = 120

    def __init__(self, root: Path, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.root = Path(root) / "originals"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._writes_since_prune = 0
        self._bytes_since_prune = 0
        self._pruned_once = False  # a short-lived process (CLI, hook) prunes on its first write

    def _path(self, handle: str) -> Path:
        if not _HANDLE.match(handle or ""):
            raise InputError(f"invalid handle {handle!r}: a handle is 16 lowercase hex digits, as returned by compact")
        return self.root / handle[:2] / f"{handle}.txt"

    def put(self, text: str) -> str:
        """Store ``text`` with its secrets redacted; returns the handle of the stored text.
        Raises StoreUnavailableError if the folder is not writable."""
        text = redact_secrets(text)
        handle = handle_for(text)
        path = self._path(handle)
        data = text.encode("utf-8", "surrogatepass")
        try:
            if self._intact(path, handle):
                if self._touch(path):
                    return handle
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot write the originals cache at {self.root}: {exc.strerror or exc}; "
                "set CONTEXT_DISTILL_CACHE_DIR to a writable folder"
            ) from None
        with self._lock:
            self._writes_since_prune += 1
            self._bytes_since_prune += len(data)
            due = (
                not self._pruned_once
                or self._writes_since_prune >= self.PRUNE_EVERY_FILES
                or self._bytes_since_prune >= self.max_bytes * self.PRUNE_EVERY_SHARE
            )
            if due:
                self._writes_since_prune = self._bytes_since_prune = 0
                self._pruned_once = True
        if due:
            self.prune(keep=path)
        return handle

    @staticmethod
    def _touch(path: Path) -> bool:
        """Mark a stored original as just used (pruning evicts the least recently used); False
        when it vanished meanwhile (another process pruned it) and must be written again. Any
        other failure (a read-only file, another owner) is ignored: the original is intact."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            pass
        return True

    @staticmethod
    def _intact(path: Path, handle: str) -> bool:
        """Whether ``path`` holds the original named ``handle`` (a damaged file is rewritten)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        return _handle_of(data) == handle

    def get(self, handle: str) -> str:
        handle = handle.strip().lower() if isinstance(handle, str) else handle
        path = self._path(handle)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise HandleNotFoundError(
                f"no original stored under handle {handle!r} (it may have been evicted from the cache); "
                "re-run the tool to get the full output"
            ) from None
        except OSError as exc:
            raise StoreUnavailableError(f"cannot read {path}: {exc.strerror or exc}") from None
        if _handle_of(data) != handle:  # damaged on disk: never serve it
            try:
                path.unlink()
            except OSError:
                pass
            raise HandleNotFoundError(
                f"the original stored under handle {handle!r} was damaged on disk and has been removed; "
                "re-run the tool to get the full output"
            )
        try:
            os.utime(path)  # recently expanded originals are evicted last
        except OSError:
            pass
        return data.decode("utf-8", "surrogatepass")

    #: a temporary file older than this was left by a writer that died mid-write
    STALE_TMP_SECONDS = 900

    def _remove_stale_tmp(self) -> None:
        import time

        cutoff = time.time() - self.STALE_TMP_SECONDS
        try:
            for p in self.root.glob("*/.*.tmp"):
                try:
                    if p.stat().st_mtime < cutoff:
                        p.unlink()
                except OSError:
                    pass
        except OSError:
            pass

    def prune(self, keep: Path | None = None) -> int:
        """Delete the least recently used originals until the store fits ``max_bytes``, and the
        temporary files of writers killed mid-write. Originals younger than ``GRACE_SECONDS``
        (and ``keep``) stay: their handles were just handed out. Returns originals removed."""
        import time

        self._remove_stale_tmp()
        files = []
        try:
            paths = list(self.root.glob("*/*.txt"))
        except OSError:
            return 0
        for p in paths:
            try:
                st = p.stat()
            except OSError:  # removed meanwhile by another process
                continue
            files.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in files)
        young = time.time() - self.GRACE_SECONDS
        removed = 0
        for mtime, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if mtime >= young or path == keep:
                continue
            try:
                if path.stat().st_mtime != mtime:  # used again since listed
                    continue
                path.unlink()
                total -= size
                removed += 1
            except OSError:
                pass
        return removed
