"""Claude Code hooks: PreCompact writes a handoff, SessionStart injects it, PostToolUse shrinks
large tool outputs with the deletion model.

``run_hook(event, stdin_text) -> str`` is the whole contract: it reads the hook's JSON input
and returns what the hook command prints on stdout (often nothing). It never raises and
never blocks past its deadline: on any error, timeout or odd input it returns ``""``, so
Claude Code keeps the original tool output and context (fail open; no session is ever
lost). Problems go to ``<data_dir>/logs/hooks.log`` and one line to stderr, never stdout.

Events (Claude Code names or kebab-case): ``PreCompact`` / ``pre-compact``,
``SessionStart`` / ``session-start``, ``PostToolUse`` / ``post-tool-use``.

Knobs (environment):

    CONTEXT_DISTILL_HOOK_MIN_TOKENS        shrink tool outputs above this many tokens (default 3000)
    CONTEXT_DISTILL_HOOK_RATIO             fraction of tokens kept when shrinking (default 0.3)
    CONTEXT_DISTILL_HOOK_MIN_KEEP_TOKENS   never shrink below this many tokens (default 1000)
    CONTEXT_DISTILL_HOOK_MAX_AGE_HOURS     SessionStart injects handoffs younger than this (default 24)
    CONTEXT_DISTILL_HOOK_PRECOMPACT_ECHO   0: PreCompact prints nothing (default 1: one short line)
    CONTEXT_DISTILL_HOOKS                  off: every hook does nothing
    CONTEXT_DISTILL_SCORER                 model (default) or a baseline name, as for the CLI

``install(project_dir)`` merges the hooks block (``HOOKS_SETTINGS``, the same content as
``manifests/claude-code/settings.json``) into ``<project>/.claude/settings.json`` and the
server entry into ``<project>/.mcp.json``, keeping everything else; it is idempotent.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from ._atomic import atomic_write_text
from ._exceptions import InputError
from ._query import EARLIER_MESSAGES, agent_query
from ._store import _HANDLE

__all__ = [
    "run_hook",
    "install",
    "HookConfig",
    "HOOKS_SETTINGS",
    "MCP_SERVERS",
    "EVENTS",
    "canonical_event",
]

# -- the manifests, as installed into a project ------------------------------------------------
#: exactly the content of manifests/claude-code/settings.json (a test keeps them equal)
HOOKS_SETTINGS: dict[str, Any] = {
    "hooks": {
        "PreCompact": [
            {"hooks": [{"type": "command", "command": "context-distill hook PreCompact", "timeout": 60}]}
        ],
        "SessionStart": [
            {
                "matcher": "compact|clear",
                "hooks": [{"type": "command", "command": "context-distill hook SessionStart", "timeout": 20}],
            }
        ],
        "PostToolUse": [
            {
                # our own tools (expand must stay verbatim) do not even start the hook
                "matcher": "Bash|Grep|mcp__(?!context-distill__).*",
                "hooks": [{"type": "command", "command": "context-distill hook PostToolUse", "timeout": 30}],
            }
        ],
    }
}
#: the .mcp.json entry (manifests/claude-code/.mcp.json)
SERVER_NAME = "context-distill"
MCP_SERVERS: dict[str, Any] = {
    "mcpServers": {SERVER_NAME: {"type": "stdio", "command": "context-distill", "args": ["serve"], "env": {}}}
}
_OUR_COMMAND = "context-distill hook"

EVENTS = {"PreCompact": "PreCompact", "SessionStart": "SessionStart", "PostToolUse": "PostToolUse"}
_ALIASES = {
    "precompact": "PreCompact",
    "pre-compact": "PreCompact",
    "pre_compact": "PreCompact",
    "sessionstart": "SessionStart",
    "session-start": "SessionStart",
    "session_start": "SessionStart",
    "posttooluse": "PostToolUse",
    "post-tool-use": "PostToolUse",
    "post_tool_use": "PostToolUse",
}

#: each hook's own deadline (seconds), well inside the settings.json timeout
_DEADLINE_S = {"PreCompact": 45.0, "SessionStart": 12.0, "PostToolUse": 20.0}
#: Claude Code's limit for injected context is 10,000 characters
MAX_CONTEXT_CHARS = 9_500
#: Claude Code's preview of a persisted (>30,000-char) Bash output shows this many characters
PREVIEW_CHARS = 1_900
#: Claude Code saves a Grep result over 20,000 characters (its maxResultSizeChars in 2.1.331) to a
#: file and shows the model a 2 KB preview: a shrunk Grep result is kept under this many, so that
#: it reaches the model whole, with the line naming its handle
GREP_RESULT_CHARS = 18_000
#: a Grep result (shrunk or not) longer than this is fitted under GREP_RESULT_CHARS (a little under
#: Claude Code's 20,000, for what it adds around the content); a shorter one is not
GREP_SAVED_OVER_CHARS = 19_500
#: larger tool outputs are left alone (too slow to shrink inside the timeout)
MAX_SHRINK_CHARS = 2_000_000
#: how much of the transcript's end is read for the query (the agent's recent messages, the last prompt)
_TAIL_BYTES = 1024 * 1024


def canonical_event(event: object) -> str | None:
    if not isinstance(event, str):
        return None
    e = event.strip()
    return EVENTS.get(e) or _ALIASES.get(e.lower())


# -- configuration ---------------------------------------------------------------------------
def _num(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        _log("warning", f"{name}={raw!r} is not a number; using {default:g}")
        return default
    if not (lo <= v <= hi):
        _log("warning", f"{name}={raw!r} is outside [{lo:g}, {hi:g}]; using {default:g}")
        return default
    return v


@dataclass(frozen=True)
class HookConfig:
    min_tokens: int = 3000
    ratio: float = 0.3
    min_keep_tokens: int = 1000
    max_age_hours: float = 24.0
    precompact_echo: bool = True
    enabled: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "HookConfig":
        env = os.environ if env is None else env
        return cls(
            min_tokens=int(_num(env, "CONTEXT_DISTILL_HOOK_MIN_TOKENS", cls.min_tokens, 1, 10**9)),
            ratio=_num(env, "CONTEXT_DISTILL_HOOK_RATIO", cls.ratio, 0.01, 1.0),
            min_keep_tokens=int(_num(env, "CONTEXT_DISTILL_HOOK_MIN_KEEP_TOKENS", cls.min_keep_tokens, 1, 10**9)),
            max_age_hours=_num(env, "CONTEXT_DISTILL_HOOK_MAX_AGE_HOURS", cls.max_age_hours, 0, 24 * 365 * 10),
            precompact_echo=_switch(env, "CONTEXT_DISTILL_HOOK_PRECOMPACT_ECHO"),
            enabled=_switch(env, "CONTEXT_DISTILL_HOOKS"),
        )


_ON = ("", "1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "disabled", "disable", "none")


def _switch(env: Mapping[str, str], name: str) -> bool:
    """An on/off setting, on by default; a value that is neither reads as off (someone set it
    to turn the feature off), with a warning on stderr."""
    value = env.get(name, "on").strip().lower()
    if value in _ON:
        return True
    if value not in _OFF:
        print(f"context-distill: warning: {name}={value!r} is neither on nor off; taken as off", file=sys.stderr)
    return False


# -- logging (a file and stderr; never stdout) -------------------------------------------------
_LOG_MAX_BYTES = 1_000_000


def _log_path() -> Path | None:
    try:
        from ._config import default_settings

        return default_settings().data_dir / "logs" / "hooks.log"
    except Exception:  # noqa: BLE001
        return None


def _log(level: str, msg: str, *, stderr: bool | None = None) -> None:
    """Append one line to hooks.log; errors and warnings also go to stderr. Never raises."""
    line = f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {level} {msg}".replace("\n", " ")
    try:
        from ._redact import redact_secrets

        line = redact_secrets(line)
    except Exception:  # noqa: BLE001
        pass
    if stderr is None:
        stderr = level in ("error", "warning")
    if stderr:
        try:
            print(f"context-distill hook: {msg}", file=sys.__stderr__)
        except Exception:  # noqa: BLE001
            pass
    path = _log_path()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _append_log_line(path, line[:4000] + "\n")
    except Exception:  # noqa: BLE001 - an unwritable data dir must not break the hook
        pass


def _append_log_line(path: Path, line: str) -> None:
    """Append ``line``; a log over ``_LOG_MAX_BYTES`` first becomes ``hooks.log.1``.

    Hooks run as many processes at once. Where ``fcntl`` exists the rotation happens under an
    exclusive lock on the log itself, and only by a writer whose open file still is the log:
    two writers that both saw a full log no longer rotate twice (the second rename put a
    nearly empty log over the rotated one). A writer that opened the log just before it was
    rotated appends to the rotated file, which loses nothing.
    """
    with open(path, "a", encoding="utf-8") as f:
        lock = _lock_file(f)
        try:
            size = os.fstat(f.fileno()).st_size
            if size > _LOG_MAX_BYTES and _same_file(f, path):
                os.replace(path, path.with_suffix(".log.1"))
                f.close()
                with open(path, "a", encoding="utf-8") as fresh:
                    fresh.write(line)
                return
            f.write(line)
        finally:
            if lock is not None:
                lock()


def _lock_file(f) -> Any:
    """Hold an exclusive lock on ``f`` (POSIX); return the unlock function, or None."""
    try:
        import fcntl
    except ImportError:  # Windows: rotation may race there (logs only, never tool output)
        return None
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    return lambda: None if f.closed else fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _same_file(f, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except OSError:
        return False


# -- the entry point ---------------------------------------------------------------------------
def run_hook(
    event: str,
    stdin_text: str,
    *,
    engine: Any = None,
    store: Any = None,
    config: HookConfig | None = None,
    deadline_s: float | None = None,
) -> str:
    """Run one Claude Code hook; return its stdout text ("" for nothing). Never raises.

    ``engine`` (a ``compaction.Engine``), ``store`` (a ``HandoffStore``) and ``config`` are
    for tests and embedding; by default they come from the environment."""
    try:
        name = canonical_event(event)
        if name is None:
            _log("warning", f"unknown hook event {event!r}; expected PreCompact, SessionStart or PostToolUse")
            return ""
        cfg = config or HookConfig.from_env()
        if not cfg.enabled:
            return ""
        if isinstance(stdin_text, bytes):
            stdin_text = stdin_text.decode("utf-8", "replace")
        if not isinstance(stdin_text, str) or not stdin_text.strip():
            _log("warning", f"{name}: empty hook input; nothing done")
            return ""
        try:
            data = json.loads(stdin_text)
        except (json.JSONDecodeError, RecursionError) as exc:
            _log("warning", f"{name}: hook input is not JSON ({type(exc).__name__}); nothing done")
            return ""
        if not isinstance(data, dict):
            _log("warning", f"{name}: hook input is not a JSON object; nothing done")
            return ""
        handler: Callable[..., str] = _HANDLERS[name]
        limit = deadline_s if deadline_s is not None else _DEADLINE_S[name]
        out = _with_deadline(lambda: handler(data, cfg, engine=engine, store=store), limit, name)
        return out if isinstance(out, str) else ""
    except BaseException as exc:  # noqa: BLE001 - fail open, whatever happened
        with contextlib.suppress(BaseException):
            _log("error", f"{event}: failed open: {type(exc).__name__}: {exc}")
        return ""


def _with_deadline(fn: Callable[[], str], seconds: float, name: str) -> str:
    """Run ``fn`` in a daemon thread; give up (return "") after ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stray prints must not corrupt our JSON
                box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["exc"] = exc

    t0 = time.monotonic()
    th = threading.Thread(target=target, name=f"hook-{name}", daemon=True)
    th.start()
    th.join(seconds)
    if th.is_alive():
        _log("error", f"{name}: gave up after {seconds:g} s; the agent keeps its original context")
        return ""
    if "exc" in box:
        exc = box["exc"]
        _log("error", f"{name}: failed open: {type(exc).__name__}: {exc}")
        return ""
    _log("info", f"{name}: done in {time.monotonic() - t0:.2f} s", stderr=False)
    return box.get("out") or ""


# -- helpers -----------------------------------------------------------------------------------
def _get_engine(engine: Any) -> Any:
    if engine is not None:
        return engine
    name = os.environ.get("CONTEXT_DISTILL_SCORER", "").strip().lower()
    if name and name not in ("model", "default"):
        import compaction
        from .baselines import BASELINES

        if name not in BASELINES:
            raise InputError(f"CONTEXT_DISTILL_SCORER={name!r} is not a known scorer")
        return compaction.Engine(scorer=BASELINES[name])
    import compaction

    return compaction.get_engine()


def _get_store(store: Any) -> Any:
    if store is not None:
        return store
    from ._config import default_settings
    from ._handoff_store import HandoffStore

    return HandoffStore(default_settings().data_dir)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


@dataclass(frozen=True)
class _RecentTurns:
    """What the tail of a Claude Code transcript says the agent was doing."""

    prompt: str | None  # the last real user prompt
    thought: str  # the assistant's text since its last tool call (what led to this one)
    earlier: tuple[str, ...]  # the assistant's earlier texts and tool inputs, oldest first


def _tail_lines(path: str) -> list[bytes]:
    """The JSONL lines of a transcript's last ``_TAIL_BYTES`` (none when unreadable)."""
    try:
        p = Path(path)
        if p.suffix != ".jsonl" or not p.is_file():
            return []
        size = p.stat().st_size
        with open(p, "rb") as f:
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read(_TAIL_BYTES)
    except OSError:
        return []
    lines = tail.split(b"\n")
    return lines[1:] if size > _TAIL_BYTES else lines  # the first may be cut


def _recent_turns(transcript_path: Any, tool_use_id: Any = None) -> _RecentTurns:
    """The last typed user prompt and the assistant's recent messages, read from the
    transcript's tail only. The tool call being answered (``tool_use_id``) is left out: it is
    the command, and what follows it did not lead to it."""
    from ._session_facts import request_body, typed_requests
    from .transcripts.claude_code import parse_claude_code_lines
    from .transcripts._render import tool_input_text

    path = _str(transcript_path)
    t = parse_claude_code_lines(_tail_lines(path) if path else [])
    prompts = [r for r in typed_requests(t) if not r.label]  # slash commands are not a task
    agent: list[tuple[str, str]] = []  # ("text" | "tool", text), in order
    for e in t.events:
        if e.kind in ("assistant", "thinking") and e.text.strip():
            agent.append(("text", e.text))
        elif e.kind == "tool_call":
            if tool_use_id is not None and e.id == tool_use_id:
                break
            agent.append(("tool", tool_input_text(e.name, e.input)))
    k = len(agent)
    while k and agent[k - 1][0] == "text":
        k -= 1
    thought = "\n".join(text for _, text in agent[k:])[-2000:]
    earlier = tuple(text for _, text in agent[:k][-EARLIER_MESSAGES:] if text.strip())
    return _RecentTurns(request_body(prompts[-1])[:2000] if prompts else None, thought, earlier)


_INPUT_KEYS = ("description", "command", "pattern", "path", "file_path", "query", "prompt", "url")


def _input_parts(tool_input: dict) -> list[str]:
    return [v for v in (tool_input.get(k) for k in _INPUT_KEYS) if isinstance(v, str) and v]


def _tool_query(data: Mapping[str, Any]) -> str:
    """The deletion model's query for a tool output: the agent's thought before the call,
    the call itself, its earlier messages and the user's last prompt
    (:func:`compaction.agent_query`)."""
    tool_input = data.get("tool_input")
    parts: list[str] = []
    if isinstance(tool_input, dict):
        parts = _input_parts(tool_input)
        if not parts:
            with contextlib.suppress(Exception):
                parts.append(json.dumps(tool_input, ensure_ascii=False)[:1000])
    elif isinstance(tool_input, str):
        parts.append(tool_input[:1000])
    tool = data.get("tool_name")
    command = (f"{tool} " if isinstance(tool, str) and tool != "Bash" else "") + "\n".join(parts)
    turns = _recent_turns(data.get("transcript_path"), data.get("tool_use_id"))
    return agent_query(thought=turns.thought, command=command, earlier=turns.earlier, task=turns.prompt or "")


# -- PostToolUse -------------------------------------------------------------------------------
def _shrink(text: Any, query: str, cfg: HookConfig, engine: Any) -> str | None:
    """The compacted text, or None when ``text`` is small, too big, or would not get smaller."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_SHRINK_CHARS:
        return None
    if len(text) < cfg.min_tokens:  # a token is at least one character: cheap early exit
        return None
    eng = _get_engine(engine)
    tokens = eng.tokenizer.count(text)
    if tokens <= cfg.min_tokens:
        return None
    target = max(int(tokens * cfg.ratio), cfg.min_keep_tokens)
    if target >= tokens:
        return None
    res = _compact_or_none(eng, text, target, query)
    if res is None:
        return None
    if res.tokens_after >= tokens or not res.omitted_line_ranges:
        return None
    if res.handle is None:  # the original could not be stored: lines removed now could never come back
        _log("warning", "PostToolUse: the originals cache cannot be written; the output is left whole")
        return None
    _log("info", f"PostToolUse: {tokens} -> {res.tokens_after} tokens ({len(text)} -> {len(res.text)} chars) scorer={res.scorer}", stderr=False)
    return res.text


def _read_persisted(path: str) -> str | None:
    """The full output Claude Code saved for a >30,000-char Bash result (None if unreadable)."""
    try:
        p = Path(path)
        if not p.is_file() or p.stat().st_size > MAX_SHRINK_CHARS:
            return None
        return p.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _compact_or_none(eng: Any, text: str, target: int, query: str) -> Any:
    """The compaction the hook shows, or None when ``compact`` refuses the text as input
    (binary data, over a limit): then the output stays as it is, which is no hook failure."""
    try:
        return eng.compact(text, target_tokens=target, query=query or None, name_handle=True)
    except InputError as exc:
        _log("info", f"PostToolUse: output left whole: {exc}", stderr=False)
        return None


def _shrink_to_chars(text: Any, query: str, engine: Any, limit: int) -> str | None:
    """Compact ``text`` until it fits ``limit`` characters (a few tries), or None."""
    if not isinstance(text, str) or len(text) <= limit or len(text) > MAX_SHRINK_CHARS:
        return None
    eng = _get_engine(engine)
    tokens = eng.tokenizer.count(text)
    target = min(tokens - 1, max(1, limit // 4))
    best = None
    for _ in range(5):
        if target < 40:
            break
        res = _compact_or_none(eng, text, target, query)
        if res is None:
            return None
        if res.handle is None and res.omitted_line_ranges:  # not stored: nothing removed could come back
            _log("warning", "PostToolUse: the originals cache cannot be written; the output is left whole")
            return None
        if len(res.text) <= limit:
            if best is None or len(res.text) > len(best.text):
                best = res
            if len(res.text) >= 0.8 * limit or best is not res:
                break
            target = min(tokens - 1, int(target * limit / max(len(res.text), 1) * 0.9))  # room left: grow once
        else:
            if best is not None:
                break
            target = int(target * limit / len(res.text) * 0.9)
    if best is None:
        return None
    _log("info", f"PostToolUse: persisted output {tokens} -> {best.tokens_after} tokens ({len(text)} -> {len(best.text)} chars) scorer={best.scorer}", stderr=False)
    return best.text


def _is_ours(data: Mapping[str, Any]) -> bool:
    """Whether the tool is this project's own MCP server (its ``expand`` must stay verbatim),
    under the default name, a plugin's name, or any name a user gave it: our answers are
    recognised by their shape too."""
    tool = data.get("tool_name") or ""
    server = data.get("mcp_server")
    sname = server.get("name") if isinstance(server, dict) else None
    if isinstance(sname, str) and (sname == SERVER_NAME or sname.endswith(":" + SERVER_NAME)):
        return True
    if tool.startswith((f"mcp__{SERVER_NAME}__", "mcp__context_distill__")) or (
        tool.startswith("mcp__plugin_") and f"_{SERVER_NAME}__" in tool
    ):
        return True
    return (
        tool.startswith("mcp__")
        and tool.endswith("__expand")
        and (_expand_call(data.get("tool_input")) or _looks_like_expand(data.get("tool_response")))
    )


def _expand_call(tool_input: Any) -> bool:
    """A call of our ``expand``: a 16-hex-digit ``handle`` and at most ``lines`` besides. (Its
    answer is the restored lines alone, as content blocks: Claude Code gives the hook neither
    ``_meta`` nor anything else to recognise it by.)"""
    return (
        isinstance(tool_input, dict)
        and isinstance(tool_input.get("handle"), str)
        and _HANDLE.match(tool_input["handle"].strip().lower()) is not None
        and set(tool_input) <= {"handle", "lines"}
    )


def _looks_like_expand(resp: Any) -> bool:
    """An ``expand`` answer of an older server of ours: structured content with a 16-hex-digit
    handle, the restored text and its line ranges (as a JSON string, or content blocks holding it)."""
    texts: list[str] = []
    if isinstance(resp, str):
        texts = [resp]
    elif isinstance(resp, list):
        texts = [b.get("text") for b in resp if isinstance(b, dict) and isinstance(b.get("text"), str)]
    for t in texts:
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(t)
            if isinstance(value, dict) and isinstance(value.get("structuredContent"), dict):
                value = value["structuredContent"]
            if (
                isinstance(value, dict)
                and isinstance(value.get("handle"), str)
                and _HANDLE.match(value["handle"])
                and "line_ranges" in value
            ):
                return True
    return False


def _mcp_text(resp: str) -> str:
    """An MCP tool's response (a JSON string): the text of its content blocks, or the string itself."""
    try:
        value = json.loads(resp)
    except (ValueError, RecursionError):
        return resp
    blocks = value.get("content") if isinstance(value, dict) and isinstance(value.get("content"), list) else value
    if isinstance(blocks, list) and blocks and all(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
        return "\n".join(str(b.get("text", "")) for b in blocks)
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)) and "\n" not in resp.strip():
        # one-line JSON: one line per key/item so that lines can be chosen
        with contextlib.suppress(Exception):
            return json.dumps(value, indent=1, ensure_ascii=False)
    return resp


def _updated(output: Any) -> str:
    return json.dumps(
        {"hookSpecificOutput": {"hookEventName": "PostToolUse", "updatedToolOutput": output}}, ensure_ascii=False
    )


def _post_tool_use(data: dict, cfg: HookConfig, *, engine: Any, store: Any) -> str:
    tool = data.get("tool_name")
    if not isinstance(tool, str) or _is_ours(data):
        return ""
    resp = data.get("tool_response")
    query = None

    def q() -> str:
        nonlocal query
        if query is None:
            query = _tool_query(data)
        return query

    if tool == "Bash" or (
        isinstance(resp, dict) and isinstance(resp.get("stdout"), str) and isinstance(resp.get("stderr"), str)
    ):
        if not (isinstance(resp, dict) and isinstance(resp.get("stdout"), str)):
            return ""
        if resp.get("isImage") or resp["stdout"].lstrip().startswith("data:image/"):
            return ""  # Claude Code sends this stdout as an image: cutting it would break the image
        new = dict(resp)
        changed = False
        persisted = resp.get("persistedOutputPath")
        for key in ("stdout", "stderr"):
            if key == "stdout" and isinstance(persisted, str) and persisted:
                # Over 30,000 chars Claude Code shows the model only a 2,000-char preview of our
                # replacement (inside <persisted-output>), so the whole output is distilled to fit it.
                full = _read_persisted(persisted)
                shrunk = _shrink_to_chars(full if full is not None else resp["stdout"], q(), engine, PREVIEW_CHARS)
            else:
                shrunk = _shrink(resp.get(key), q(), cfg, engine)
            if shrunk is not None:
                new[key] = shrunk
                changed = True
        if not changed:
            return ""
        new.setdefault("stderr", "")
        new.setdefault("interrupted", False)
        return _updated(new)
    if tool == "Grep" and isinstance(resp, dict) and resp.get("mode") == "content" and isinstance(resp.get("content"), str):
        shrunk = _shrink(resp["content"], q(), cfg, engine)
        if len(shrunk if shrunk is not None else resp["content"]) > GREP_SAVED_OVER_CHARS:
            # what Claude Code would save to a file (even a result under min_tokens, of long lines): fit it
            fitted = _shrink_to_chars(resp["content"], q(), engine, GREP_RESULT_CHARS)
            shrunk = fitted if fitted is not None else shrunk  # could not fit: the shrunk result still beats the original
        if shrunk is None:
            return ""
        new = dict(resp)
        new["content"] = shrunk
        return _updated(new)
    if tool.startswith("mcp__") and isinstance(resp, str):
        # structured content arrives as a JSON string; a string answer is accepted
        shrunk = _shrink(_mcp_text(resp), q(), cfg, engine)
        return _updated(shrunk) if shrunk is not None else ""
    if tool.startswith("mcp__") and isinstance(resp, list) and resp and all(isinstance(b, dict) for b in resp):
        # text content arrives as the MCP content blocks; answer in the same shape: the text
        # blocks become one shrunk text block, other blocks (images, resources) stay
        texts = [b for b in resp if b.get("type") == "text" and isinstance(b.get("text"), str)]
        if not texts:
            return ""
        shrunk = _shrink("\n".join(_mcp_text(b["text"]) for b in texts), q(), cfg, engine)
        if shrunk is None:
            return ""
        new_blocks: list[Any] = []
        for b in resp:
            if b is texts[0]:
                new_blocks.append({**b, "text": shrunk})
            elif all(b is not t for t in texts):
                new_blocks.append(b)
        return _updated(new_blocks)
    return ""  # other tools: their output shapes are left alone


# -- the project a session belongs to -----------------------------------------------------------
def _project_dir(data: dict) -> str | None:
    """The folder handoffs are stored and looked up under: the project, not the hook's ``cwd``.

    Claude Code's hook ``cwd`` follows the agent's ``cd``: a session that compacts after
    ``cd sub`` would store its handoff under ``sub``, and a ``/clear`` at the project root would
    then inject an older handoff of another session. In order: ``$CLAUDE_PROJECT_DIR`` (set by
    Claude Code for hook commands, though not by every version), the first ``cwd`` recorded in
    the session's transcript (where the session started), the hook input's ``cwd``.
    """
    env = os.environ.get("CLAUDE_PROJECT_DIR")
    if env and os.path.isabs(env) and os.path.isdir(env):
        return env
    return _first_transcript_cwd(_str(data.get("transcript_path"))) or _str(data.get("cwd"))


def _first_transcript_cwd(path: str | None, *, max_lines: int = 200) -> str | None:
    """The first ``cwd`` field among the first records of a Claude Code JSONL transcript."""
    if not path or not path.endswith(".jsonl"):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f):
                if n >= max_lines:
                    break
                if '"cwd"' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("cwd"), str) and os.path.isabs(rec["cwd"]):
                    return rec["cwd"]
    except OSError:
        return None
    return None


# -- PreCompact --------------------------------------------------------------------------------
def _pre_compact(data: dict, cfg: HookConfig, *, engine: Any, store: Any) -> str:
    tp = _str(data.get("transcript_path"))
    if not tp or not Path(tp).is_file():
        _log("warning", f"PreCompact: no transcript at {tp!r}; no handoff written")
        return ""
    if Path(tp).suffix != ".jsonl":  # Claude Code transcripts are JSONL; nothing else is read and stored
        _log("warning", f"PreCompact: {tp!r} is not a Claude Code .jsonl transcript; no handoff written")
        return ""
    import compaction

    make_handoff = getattr(compaction, "make_handoff", None)
    if make_handoff is None:
        _log("warning", "PreCompact: this build has no make_handoff; no handoff written")
        return ""
    result = make_handoff(Path(tp), engine=_get_engine(engine))
    cwd = _project_dir(data) or _str(getattr(result, "cwd", None))
    st = _get_store(store)
    stored = st.save(result, project=cwd, session_id=_str(data.get("session_id")))
    _log(
        "info",
        f"PreCompact ({data.get('trigger')}): saved handoff {stored.id} for {cwd} "
        f"({len(stored.text)} chars, {len(stored.files)} files)",
        stderr=False,
    )
    if not cfg.precompact_echo:
        return ""
    # Plain stdout of PreCompact is appended to Claude Code's summarizer prompt ("Additional
    # Instructions"); one short line that keeps the files we ranked in its summary.
    files = [f.path for f in stored.files[:8]]
    line = "context-distill saved a handoff of this session (handoff://" + stored.id + "); it is re-injected after compaction."
    if files:
        line += " Keep these files, with what happened to them, in the summary: " + ", ".join(files) + "."
    return line[:1000] + "\n"


# -- SessionStart ------------------------------------------------------------------------------
def _session_start(data: dict, cfg: HookConfig, *, engine: Any, store: Any) -> str:
    source = data.get("source")
    if source not in ("compact", "clear"):
        return ""
    cwd = _project_dir(data)
    if not cwd:
        _log("warning", "SessionStart: no cwd in the hook input; nothing injected")
        return ""
    st = _get_store(store)
    item = None
    sid = _str(data.get("session_id"))
    if source == "compact":
        # only the handoff PreCompact just wrote for this session: another session's would
        # be injected as if it came from this one's compaction
        item = st.latest(cwd, session_id=sid) if sid else None
    else:
        item = st.latest(cwd)
    if item is None:
        _log("info", f"SessionStart ({source}): no handoff stored for {cwd}" + (f" and session {sid}" if source == "compact" else ""), stderr=False)
        return ""
    age_h = (time.time() - item.created_ts) / 3600
    if cfg.max_age_hours and age_h > cfg.max_age_hours:
        _log("info", f"SessionStart ({source}): latest handoff {item.id} is {age_h:.1f} h old; not injected", stderr=False)
        return ""
    header = (
        f"context-distill handoff {item.id} (saved {item.created}, before the "
        f"{'compaction' if source == 'compact' else '/clear'}); full text: resource handoff://{item.id}\n\n"
    )
    text = item.text
    room = MAX_CONTEXT_CHARS - len(header)
    if len(text) > room:
        text = text[: room - 40].rstrip() + "\n[... handoff cut to fit ...]"
    context = header + text
    _log("info", f"SessionStart ({source}): injected handoff {item.id} ({len(context)} chars)", stderr=False)
    return json.dumps(
        {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": context}}, ensure_ascii=False
    )


_HANDLERS: dict[str, Callable[..., str]] = {
    "PreCompact": _pre_compact,
    "SessionStart": _session_start,
    "PostToolUse": _post_tool_use,
}


# -- install -----------------------------------------------------------------------------------
def _read_json_object(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}; fix or move it, then run install-hooks again") from None
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} is not valid JSON (line {exc.lineno}); fix it, then run install-hooks again (nothing was changed)"
        ) from None
    if not isinstance(value, dict):
        raise InputError(f"{path} does not hold a JSON object; fix it, then run install-hooks again (nothing was changed)")
    return value


def _is_our_group(group: Any) -> bool:
    if not isinstance(group, dict):
        return False
    hooks = group.get("hooks")
    return isinstance(hooks, list) and any(
        isinstance(h, dict) and isinstance(h.get("command"), str) and _OUR_COMMAND in h["command"] for h in hooks
    )


def _member(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """``obj[key]`` (an empty ``kind`` when absent), refusing a value of another type."""
    value = obj.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        what = "an object" if kind is dict else "a list"
        raise InputError(f"the project's {where} value that is not {what}; fix it first")
    return value


def merged_settings(existing: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` settings with our hooks block merged in: our previous groups replaced,
    everything else kept in order."""
    out = copy.deepcopy(dict(existing))
    hooks = _member(out, "hooks", dict, ".claude/settings.json has a 'hooks'")
    for event, groups in HOOKS_SETTINGS["hooks"].items():
        current = _member(hooks, event, list, f".claude/settings.json has hooks.{event}, a")
        hooks[event] = [g for g in current if not _is_our_group(g)] + copy.deepcopy(groups)
    out["hooks"] = hooks
    return out


def merged_mcp(existing: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` .mcp.json with our server entry added (or replaced), everything else kept."""
    out = copy.deepcopy(dict(existing))
    servers = _member(out, "mcpServers", dict, ".mcp.json has an 'mcpServers'")
    servers[SERVER_NAME] = copy.deepcopy(MCP_SERVERS["mcpServers"][SERVER_NAME])
    out["mcpServers"] = servers
    return out


def install(project_dir: str | os.PathLike[str]) -> list[Path]:
    """Merge the hooks into ``<project>/.claude/settings.json`` and the server into
    ``<project>/.mcp.json`` (atomic writes, other settings and servers kept). Returns the paths
    written: a file that already holds the merged content is left alone (so running it again
    writes nothing)."""
    root = Path(project_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the project folder to install into")
    settings_path = root / ".claude" / "settings.json"
    if settings_path.is_symlink():  # a settings file kept elsewhere (dotfiles): update it there
        settings_path = settings_path.resolve()
    mcp_path = root / ".mcp.json"
    # read and merge both before writing either: a broken file changes nothing
    settings = merged_settings(_read_json_object(settings_path))
    mcp = merged_mcp(_read_json_object(mcp_path))
    written = []
    try:
        for path, value in ((settings_path, settings), (mcp_path, mcp)):
            text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if path.read_text(encoding="utf-8") == text:
                    continue
            atomic_write_text(path, text, private=False)  # project files, not private ones
            written.append(path)
    except OSError as exc:
        raise InputError(f"cannot write into {root}: {exc.strerror or exc}") from None
    return written
