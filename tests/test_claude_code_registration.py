"""Real Claude Code (npm @anthropic-ai/claude-code@2.1.331) registers the server with
`claude mcp add context-distill -- <server command>` and `claude mcp list` shows it connected.
The health check needs no account; HOME points at a temporary folder so nothing of the user's
is read or written.

Claude Code comes from $CLAUDE_BIN, else is installed once with npm into a cache folder
(~/.cache/context-distill-tests/claude-code-2.1.331, or $CONTEXT_DISTILL_TEST_NPM_CACHE) that later
runs reuse. Skipped with the reason where npm is unavailable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from server_support import MODEL_PRESENT, ROOT, SERVER_CMD

VERSION = "2.1.331"
CACHE = Path(
    os.environ.get("CONTEXT_DISTILL_TEST_NPM_CACHE")
    or Path(os.path.expanduser("~")) / ".cache" / "context-distill-tests" / f"claude-code-{VERSION}"
)


@pytest.fixture(scope="module")
def claude_bin() -> str:
    explicit = os.environ.get("CLAUDE_BIN")
    if explicit and Path(explicit).is_file():
        return explicit
    installed = CACHE / "node_modules" / ".bin" / "claude"
    if installed.exists():
        return str(installed)
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, so Claude Code cannot be installed for this test")
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "package.json").exists():
        (CACHE / "package.json").write_text('{"name": "cd-claude-code-cache", "private": true}\n')
    p = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"@anthropic-ai/claude-code@{VERSION}"],
        cwd=str(CACHE),
        capture_output=True,
        timeout=600,
    )
    if p.returncode != 0 or not installed.exists():
        pytest.fail(f"npm install @anthropic-ai/claude-code@{VERSION} failed: {p.stderr.decode()[-1500:]}")
    return str(installed)


def _env(home: Path, extra_path: str | None = None) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "PATH": (extra_path + os.pathsep if extra_path else "") + os.environ.get("PATH", ""),
        "TMPDIR": str(home / "tmp"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    for key in ("LANG", "LC_ALL", "USER", "LOGNAME", "SHELL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _server_env_flags() -> list[str]:
    flags = ["-e", f"PYTHONPATH={ROOT}"]
    for key in ("CONTEXT_DISTILL_CACHE_DIR", "CONTEXT_DISTILL_DATA_DIR"):
        flags += ["-e", f"{key}={os.environ[key]}"]
    if not MODEL_PRESENT:
        flags += ["-e", "CONTEXT_DISTILL_SCORER=bm25"]
    return flags


def _claude(claude_bin: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([claude_bin, *args], capture_output=True, env=env, cwd=str(cwd), timeout=180)


def test_claude_mcp_add_then_list_shows_connected(claude_bin, tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir(parents=True)
    env = _env(home)
    add = _claude(
        claude_bin,
        ["mcp", "add", "--scope", "user", "context-distill", *_server_env_flags(), "--", *SERVER_CMD],
        env,
        project,
    )
    assert add.returncode == 0, add.stderr.decode() + add.stdout.decode()
    listed = _claude(claude_bin, ["mcp", "list"], env, project)
    out = listed.stdout.decode() + listed.stderr.decode()
    line = next((ln for ln in out.splitlines() if ln.startswith("context-distill")), "")
    assert "Connected" in line, out


@pytest.mark.parametrize("scope", [None, "user"])
def test_the_documented_lines_with_the_console_script(claude_bin, tmp_path, scope):
    """`claude mcp add context-distill -- context-distill serve`, exactly as the README says (local
    scope: listed from the same project), and `claude mcp add --scope user ...` as
    manifests/claude-code/README.md says (listed from another project), with the installed
    console script on PATH."""
    script_dir = Path(sys.executable).parent
    if not (script_dir / "context-distill").exists():
        pytest.skip("the context-distill console script is not installed in this environment (pip install .)")
    home, project, other = tmp_path / "home", tmp_path / "project", tmp_path / "other"
    project.mkdir(parents=True)
    other.mkdir(parents=True)
    env = _env(home, extra_path=str(script_dir))
    scope_flags = ["--scope", scope] if scope else []
    add = _claude(
        claude_bin,
        ["mcp", "add", *scope_flags, "context-distill", *_server_env_flags(), "--", "context-distill", "serve"],
        env,
        project,
    )
    assert add.returncode == 0, add.stderr.decode()
    listed = _claude(claude_bin, ["mcp", "list"], env, other if scope == "user" else project)
    out = listed.stdout.decode() + listed.stderr.decode()
    assert any(ln.startswith("context-distill") and "Connected" in ln for ln in out.splitlines()), out


def test_project_mcp_json_manifest_connects(claude_bin, tmp_path):
    """The shipped manifests/claude-code/.mcp.json, copied into a project (and the project's servers
    approved, as a person does on first run), connects."""
    import json

    script_dir = Path(sys.executable).parent
    if not (script_dir / "context-distill").exists():
        pytest.skip("the context-distill console script is not installed in this environment (pip install .)")
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir(parents=True)
    (project / ".mcp.json").write_text((ROOT / "manifests" / "claude-code" / ".mcp.json").read_text())
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"enableAllProjectMcpServers": True}))
    env = _env(home, extra_path=str(script_dir))
    for key in ("CONTEXT_DISTILL_CACHE_DIR", "CONTEXT_DISTILL_DATA_DIR"):
        env[key] = os.environ[key]
    if not MODEL_PRESENT:
        env["CONTEXT_DISTILL_SCORER"] = "bm25"  # Claude Code hands its environment to the server
    got = _claude(claude_bin, ["mcp", "get", "context-distill"], env, project)
    assert got.returncode == 0 and "Project config" in got.stdout.decode(), got.stdout.decode()
    listed = _claude(claude_bin, ["mcp", "list"], env, project)
    out = listed.stdout.decode() + listed.stderr.decode()
    assert "context-distill: context-distill serve - " in out and "Connected" in out, out


def test_claude_code_connects_over_streamable_http(claude_bin, tmp_path):
    from server_support import HttpServer

    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir(parents=True)
    env = _env(home)
    with HttpServer() as srv:
        add = _claude(claude_bin, ["mcp", "add", "--transport", "http", "context-distill", srv.url], env, project)
        assert add.returncode == 0, add.stderr.decode()
        listed = _claude(claude_bin, ["mcp", "list"], env, project)
    out = listed.stdout.decode() + listed.stderr.decode()
    assert f"context-distill: {srv.url} (HTTP) - " in out and "Connected" in out, out
