"""Shared fixtures. Every test runs with its own cache and data folders (never the user's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CONTEXT_DISTILL_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Point every user folder at a fresh temporary one, like simonw/llm's user_path fixture."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("CONTEXT_DISTILL_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("CONTEXT_DISTILL_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)  # set when the tests run inside Claude Code
    yield base


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (the real trajectories and transcripts); skipped only where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not present (set CONTEXT_DISTILL_SHARED_DATA)")
    return SHARED_DATA


def mini_swe_trajectory(shared_data: Path, instance_id: str) -> dict:
    """One mini-swe-agent trajectory (``{"info", "messages", ...}``) of the real data, by instance id."""
    import gzip
    import json

    with gzip.open(shared_data / "trajectories" / "mini-swe-agent-gemini3pro.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            if f'"instance_id": "{instance_id}"' in line[-300:] or instance_id in line[-300:]:
                rec = json.loads(line)
                if rec.get("instance_id") == instance_id:
                    return rec
    raise LookupError(f"no trajectory {instance_id!r} in the real data")


@pytest.fixture
def mini_swe(shared_data):
    """``mini_swe("django__django-11099")``: that real mini-swe-agent trajectory."""
    return lambda instance_id: mini_swe_trajectory(shared_data, instance_id)
