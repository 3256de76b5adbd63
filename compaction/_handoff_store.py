"""Durable store of handoffs: one JSON file per handoff under ``<data_dir>/handoffs/``.

Ids look like ``20261125-001402-123456-3f9a1c0b`` (UTC time, microseconds, random suffix):
lowercase letters, digits and ``-`` only, at most 64 characters, checked on every call, so an
id can never name a path. Files are written atomically; every text field is passed through
``redact_secrets`` before it touches the disk. The store keeps at most ``max_items`` handoffs
(oldest pruned first). Unreadable or corrupt files are skipped (and logged), never fatal.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field

from ._atomic import atomic_write_bytes
from ._exceptions import HandleNotFoundError, InputError, StoreUnavailableError
from ._redact import redact_secrets

__all__ = [
    "HandoffStore",
    "StoredHandoff",
    "StoredHandoffInfo",
    "StoredHandoffFile",
    "HandoffNotFoundError",
    "HANDOFF_ID_RE",
    "DEFAULT_MAX_HANDOFFS",
    "check_handoff_id",
    "normalize_project",
]

log = logging.getLogger("context_distill")

HANDOFF_ID_RE = re.compile(r"[0-9a-z-]{1,64}")
DEFAULT_MAX_HANDOFFS = 500
_SUFFIX = ".json"
_FORMAT = 1


class HandoffNotFoundError(HandleNotFoundError):
    """No handoff is stored under that id."""


class StoredHandoffFile(BaseModel):
    model_config = ConfigDict(frozen=True)
    path: str
    reasons: list[str] = Field(default_factory=list)
    score: float = 0.0


class StoredHandoffInfo(BaseModel):
    """One line of a listing: enough to choose a handoff, without its text."""

    model_config = ConfigDict(frozen=True)
    id: str
    created: str = Field(description="UTC time the handoff was stored, ISO 8601.")
    project: str | None = Field(description="The project folder (the agent's cwd) it belongs to.")
    session_id: str | None = None
    goal: str | None = None
    files: int = Field(0, description="How many files the handoff lists.")
    tokens: int = 0
    chars: int = 0


class StoredHandoff(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    created: str = Field(description="UTC time the handoff was stored, ISO 8601.")
    created_ts: float = Field(description="The same time as a Unix timestamp.")
    project: str | None = None
    session_id: str | None = None
    goal: str | None = None
    latest_request: str | None = None
    files: list[StoredHandoffFile] = Field(default_factory=list)
    text: str
    tokens: int = 0
    warnings: list[str] = Field(default_factory=list)

    def info(self) -> StoredHandoffInfo:
        return StoredHandoffInfo(
            id=self.id,
            created=self.created,
            project=self.project,
            session_id=self.session_id,
            goal=_clip(self.goal, 300),
            files=len(self.files),
            tokens=self.tokens,
            chars=len(self.text),
        )


def check_handoff_id(handoff_id: object) -> str:
    """Return ``handoff_id`` if it is a valid id, else raise InputError (one line)."""
    if not isinstance(handoff_id, str) or not HANDOFF_ID_RE.fullmatch(handoff_id):
        if isinstance(handoff_id, str):
            shown = repr(handoff_id) if len(handoff_id) <= 80 else f"{handoff_id[:40]!r}... ({len(handoff_id):,} characters)"
        else:
            shown = f"of type {type(handoff_id).__name__}"
        raise InputError(
            f"invalid handoff id {shown}: ids are 1-64 lowercase letters, digits and '-' (the stored ones are the MCP "
            "server's handoff:// resources, resources/list)"
        )
    return handoff_id


def normalize_project(project: object) -> str | None:
    """A project folder as stored and compared: the path text without trailing separators."""
    if project is None:
        return None
    if isinstance(project, os.PathLike):
        project = os.fspath(project)
    if not isinstance(project, str) or not project.strip():
        return None
    p = os.path.normpath(project.strip())
    return p


def _clip(text: str | None, n: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= n else text[: n - 1] + "…"


#: the largest handoff record written or read (a handoff is a prompt: a few thousand tokens)
MAX_RECORD_BYTES = 16 * 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(value: Any) -> str:
    """``value`` as text that can be written as UTF-8 (a lone surrogate becomes U+FFFD), with
    its secrets redacted."""
    return redact_secrets(_SURROGATE.sub("\ufffd", str(value)))


def _red(value: Any) -> str | None:
    if value is None:
        return None
    return _clean(value)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class HandoffStore:
    """``HandoffStore(data_dir)``: handoffs in ``data_dir/handoffs``; ``save``, ``get``, ``list``, ``latest``."""

    def __init__(self, data_dir: str | os.PathLike[str], *, max_items: int = DEFAULT_MAX_HANDOFFS) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise InputError(f"max_items must be a whole number >= 1, got {max_items!r}")
        self.root = Path(data_dir).expanduser() / "handoffs"
        self.max_items = max_items

    def __repr__(self) -> str:
        return f"HandoffStore({str(self.root)!r}, max_items={self.max_items})"

    # -- writing ---------------------------------------------------------------------
    def _new_id(self, now: float) -> str:
        stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        return f"{stamp}-{secrets.token_hex(4)}"

    def save(
        self, result: Any, *, project: str | os.PathLike[str] | None = None, session_id: str | None = None
    ) -> StoredHandoff:
        """Store a ``HandoffResult`` (or anything with its fields: text, goal, latest_request,
        files, tokens, session_id, cwd). ``project`` defaults to the result's ``cwd``,
        ``session_id`` to the result's."""
        text = _get(result, "text")
        if not isinstance(text, str) or not text.strip():
            raise InputError("a handoff needs a non-empty text to be stored")
        proj = _red(normalize_project(project) if project is not None else normalize_project(_get(result, "cwd")))
        files = []
        for f in _get(result, "files", None) or []:
            path = _get(f, "path")
            if not isinstance(path, str) or not path:
                continue
            reasons = [_clean(r) for r in (_get(f, "reasons", None) or [])]
            score = _get(f, "score", 0.0)
            try:
                score = float(score)
            except (TypeError, ValueError):
                score = 0.0
            files.append(StoredHandoffFile(path=_clean(path), reasons=reasons, score=score))
        tokens = _get(result, "tokens", 0)
        now = time.time()
        stored = StoredHandoff(
            id=self._new_id(now),
            created=datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            created_ts=now,
            project=proj,
            session_id=_red(session_id if session_id else _get(result, "session_id")),
            goal=_red(_get(result, "goal")),
            latest_request=_red(_get(result, "latest_request")),
            files=files,
            text=_clean(text),
            tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else 0,
            warnings=[_clean(w) for w in (_get(result, "warnings", None) or [])],
        )
        record = {"format": _FORMAT, **stored.model_dump(mode="json")}
        data = json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")
        if len(data) > MAX_RECORD_BYTES:
            raise InputError(
                f"the handoff is {len(data):,} bytes, over the {MAX_RECORD_BYTES:,} a stored handoff may have; "
                "give a smaller budget_tokens"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.root / f"{stored.id}{_SUFFIX}", data)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot write handoffs to {self.root}: {exc.strerror or exc}; set CONTEXT_DISTILL_DATA_DIR to a writable folder"
            ) from None
        self._prune()
        return stored

    def _prune(self) -> None:
        try:
            names = self._names()
            for name in names[: max(0, len(names) - self.max_items)]:
                try:
                    (self.root / name).unlink()
                except OSError:
                    pass
            # leftovers of writers killed mid-write (older than an hour)
            cutoff = time.time() - 3600
            for p in self.root.glob(".*.tmp"):
                try:
                    if p.stat().st_mtime < cutoff:
                        p.unlink()
                except OSError:
                    pass
        except OSError as exc:  # pruning is housekeeping, never a failure of save
            log.warning("could not prune handoffs in %s: %s", self.root, exc)

    # -- reading ---------------------------------------------------------------------
    def _names(self) -> list[str]:
        """Handoff file names, oldest first (ids start with their UTC time)."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailableError(f"cannot read handoffs in {self.root}: {exc.strerror or exc}") from None
        return sorted(
            n for n in entries if n.endswith(_SUFFIX) and HANDOFF_ID_RE.fullmatch(n[: -len(_SUFFIX)])
        )

    def _load(self, path: Path) -> StoredHandoff | None:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_RECORD_BYTES + 1)
            if len(raw) > MAX_RECORD_BYTES:
                raise ValueError(f"over {MAX_RECORD_BYTES:,} bytes")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not an object")
            data.pop("format", None)
            item = StoredHandoff.model_validate(data)
            if item.id != path.name[: -len(_SUFFIX)]:
                raise ValueError("id does not match the file name")
            return item
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a corrupt file is skipped, never fatal
            log.warning("skipping unreadable handoff %s: %s", path.name, exc)
            return None

    def _iter_newest(self) -> Iterator[StoredHandoff]:
        for name in reversed(self._names()):
            item = self._load(self.root / name)
            if item is not None:
                yield item

    def get(self, handoff_id: str) -> StoredHandoff:
        check_handoff_id(handoff_id)
        item = self._load(self.root / f"{handoff_id}{_SUFFIX}")
        if item is None:
            raise HandoffNotFoundError(
                f"no handoff {handoff_id!r} in {self.root} (it may have been pruned; list the stored ones)"
            )
        return item

    def list(self, project: str | os.PathLike[str] | None = None, limit: int = 50) -> list[StoredHandoffInfo]:
        """Stored handoffs, newest first; only ``project``'s when given."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"limit must be a whole number >= 1, got {limit!r}")
        want = normalize_project(project)
        out: list[StoredHandoffInfo] = []
        for item in self._iter_newest():
            if want is not None and item.project != want:
                continue
            out.append(item.info())
            if len(out) >= limit:
                break
        return out

    def latest(self, project: str | os.PathLike[str] | None, *, session_id: str | None = None) -> StoredHandoff | None:
        """The newest handoff of ``project`` (of ``session_id`` too, when given), or None."""
        want = normalize_project(project)
        for item in self._iter_newest():
            if want is not None and item.project != want:
                continue
            if session_id is not None and item.session_id != session_id:
                continue
            return item
        return None
