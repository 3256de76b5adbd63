"""Frozen settings: limits and directories, read once from the environment.

Every knob has a default and an environment variable:

    CONTEXT_DISTILL_MAX_INPUT_BYTES   largest input accepted (default 64 MiB)
    CONTEXT_DISTILL_MAX_INPUT_LINES   most lines in one text to compact (default 500,000)
    CONTEXT_DISTILL_CACHE_DIR         where originals are kept for `expand`
                                      (default $XDG_CACHE_HOME/context-distill, else ~/.cache/context-distill)
    CONTEXT_DISTILL_DATA_DIR          where handoffs are kept
                                      (default $XDG_DATA_HOME/context-distill, else ~/.local/share/context-distill)
    CONTEXT_DISTILL_CACHE_MAX_BYTES   size bound of the originals cache (default 512 MiB)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "Settings", "default_settings", "log_level_from_env"]

_MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_input_bytes: int = 64 * _MiB
    #: most lines in one text to compact: time and memory grow with lines as well as tokens
    #: (500,000 one-character lines: 5.8 s and 0.45 GB; a 16 MiB real log of 465,000 lines:
    #: 19.5 s and 1.4 GB; 2.5 million short lines had taken 42 s and 1.6 GB)
    max_input_lines: int = 500_000
    #: a line longer than this many tokens is compacted as sub-line segments
    long_line_tokens: int = 256
    #: target size of one sub-line segment, in tokens
    segment_tokens: int = 48
    #: time one search of a caller-given ``keep`` pattern may take, in seconds; all of them
    #: together get this much per MiB of input, plus this much, plus 5 µs per line and pattern (a pattern that backtracks
    #: catastrophically is stopped with an error instead of holding a worker)
    keep_pattern_seconds: float = 2.0


def _user_dir(env_var: str, xdg_var: str, fallback: str, windows_var: str) -> Path:
    explicit = os.environ.get(env_var)
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32" and os.environ.get(windows_var):
        return Path(os.environ[windows_var]) / "context-distill"
    base = os.environ.get(xdg_var)
    return (Path(base) if base else Path.home() / fallback) / "context-distill"


@dataclass(frozen=True)
class Settings:
    limits: Limits = field(default_factory=Limits)
    cache_dir: Path = field(
        default_factory=lambda: _user_dir("CONTEXT_DISTILL_CACHE_DIR", "XDG_CACHE_HOME", ".cache", "LOCALAPPDATA")
    )
    data_dir: Path = field(
        default_factory=lambda: _user_dir("CONTEXT_DISTILL_DATA_DIR", "XDG_DATA_HOME", ".local/share", "APPDATA")
    )
    cache_max_bytes: int = 512 * _MiB

    @classmethod
    def from_env(cls) -> "Settings":
        limits = Limits(
            max_input_bytes=_int_env("CONTEXT_DISTILL_MAX_INPUT_BYTES", Limits.max_input_bytes),
            max_input_lines=_int_env("CONTEXT_DISTILL_MAX_INPUT_LINES", Limits.max_input_lines),
        )
        return cls(
            limits=limits,
            cache_max_bytes=_int_env("CONTEXT_DISTILL_CACHE_MAX_BYTES", 512 * _MiB),
        )


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def default_settings() -> Settings:
    return Settings.from_env()


_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "WARN": "WARNING", "ERROR": "ERROR",
           "CRITICAL": "CRITICAL", "NOTSET": "DEBUG"}


def log_level_from_env(default: str = "INFO") -> str:
    """``CONTEXT_DISTILL_LOG_LEVEL`` as a level name that logging and the MCP SDK accept
    (``WARN`` and ``NOTSET`` mapped); a bad value is a warning on stderr and ``default``,
    never a command or server that does not start."""
    raw = os.environ.get("CONTEXT_DISTILL_LOG_LEVEL", "").strip()
    if not raw:
        return default
    level = _LEVELS.get(raw.upper())
    if level is None:
        print(
            f"context-distill: warning: CONTEXT_DISTILL_LOG_LEVEL={raw!r} is not a log level "
            f"(DEBUG, INFO, WARNING, ERROR); using {default}",
            file=sys.stderr,
        )
        return default
    return level
