"""Every client manifest parses and starts the same command, `context-distill serve`; the MCP
Registry's server.json has the fields the 2025-12-11 schema requires; the command it names exists."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

import compaction

ROOT = Path(__file__).resolve().parent.parent
M = ROOT / "manifests"
COMMAND = ["context-distill", "serve"]


def _load(path: Path):
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text(encoding="utf-8"))
    return json.loads(path.read_text(encoding="utf-8"))


CLIENTS = {
    # file: (path to the servers map, extra checks)
    "claude-code/.mcp.json": ("mcpServers",),
    "cursor/.cursor/mcp.json": ("mcpServers",),
    "vscode/.vscode/mcp.json": ("servers",),
    "codex/config.toml": ("mcp_servers",),
    "claude-desktop/claude_desktop_config.json": ("mcpServers",),
    "windsurf/mcp_config.json": ("mcpServers",),
    "zed/settings.json": ("context_servers",),
}


@pytest.mark.parametrize("rel", sorted(CLIENTS))
def test_client_manifest_starts_context_distill_serve(rel):
    data = _load(M / rel)
    (key,) = CLIENTS[rel]
    servers = data[key]
    assert list(servers) == ["context-distill"], rel
    entry = servers["context-distill"]
    assert [entry["command"], *entry.get("args", [])] == COMMAND, rel
    assert isinstance(entry.get("env", {}), dict)
    if "type" in entry:
        assert entry["type"] == "stdio"


def test_vscode_uses_servers_key_and_stdio_type():
    data = _load(M / "vscode/.vscode/mcp.json")
    assert "mcpServers" not in data and data["servers"]["context-distill"]["type"] == "stdio"


def test_zed_entry_is_a_custom_context_server():
    assert _load(M / "zed/settings.json")["context_servers"]["context-distill"]["source"] == "custom"


def test_every_manifest_file_is_covered():
    found = {
        str(p.relative_to(M))
        for p in M.rglob("*")
        if p.is_file() and p.suffix in (".json", ".toml") and p.name != "server.json"
    }
    found.discard("claude-code/settings.json")  # the hooks block, not a server registration
    assert found == set(CLIENTS)


def test_claude_code_readme_has_the_add_line():
    text = (M / "claude-code" / "README.md").read_text(encoding="utf-8")
    assert "claude mcp add --scope user context-distill -- context-distill serve" in text  # user scope, as it says


def test_claude_code_hooks_call_the_cli_from_path():
    path = M / "claude-code" / "settings.json"
    if not path.exists():
        pytest.skip("the hooks block has not landed yet")
    hooks = _load(path)["hooks"]
    commands = [h["command"] for groups in hooks.values() for g in groups for h in g["hooks"]]
    assert commands and all(c.startswith("context-distill hook ") for c in commands)


def test_registry_server_json():
    d = _load(M / "server.json")
    assert d["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", d["name"]) and d["name"].count("/") == 1
    assert 1 <= len(d["description"]) <= 100
    assert d["version"] == compaction.__version__
    assert d["repository"]["url"].startswith("https://") and d["repository"]["source"]
    (pkg,) = d["packages"]
    assert pkg["registryType"] == "pypi" and pkg["identifier"] == "context-distill"
    assert pkg["version"] == compaction.__version__ and pkg["version"] != "latest"
    assert pkg["transport"] == {"type": "stdio"}
    args = [a["value"] for a in pkg.get("packageArguments", [])]
    assert args == ["serve"]  # `uvx context-distill serve`
    for env in pkg.get("environmentVariables", []):
        assert env["name"].startswith("CONTEXT_DISTILL_") and env["description"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == pkg["identifier"]
    assert pyproject["project"]["version"] == pkg["version"]
    assert pyproject["project"]["scripts"]["context-distill"] == "compaction.cli:main"
