"""The ``context-distill`` command line: the engine for people and scripts.

Exit codes: 0 ok, 2 usage or bad input, 1 internal error. Errors are one line on
stderr. ``--json`` prints one JSON object on stdout. This module never imports ``mcp``
except inside ``serve``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import compaction
from compaction._config import log_level_from_env
from compaction._exceptions import ContextDistillError, HandleNotFoundError, InputError
from compaction._spawn import SpawnNotConfiguredError
from compaction.transcripts import FORMATS as _TRANSCRIPT_FORMATS

__all__ = ["SCORER_ENV", "engine_from_env", "main", "status_report"]

log = logging.getLogger("context_distill")

SCORER_ENV = "CONTEXT_DISTILL_SCORER"

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2


# -- shared with the server (which imports these; they never touch mcp) -----------------
def engine_from_env(**kwargs: Any) -> compaction.Engine:
    """An Engine whose scorer follows CONTEXT_DISTILL_SCORER: unset or ``model`` gives the
    deletion model; a baseline name (bm25, head+tail, tail, error-regex, random) gives that
    baseline, a debugging and fallback option."""
    name = os.environ.get(SCORER_ENV, "").strip().lower()
    if name and name not in ("model", "default"):
        from compaction.baselines import BASELINES

        if name not in BASELINES:
            raise InputError(
                f"{SCORER_ENV}={name!r} is not a known scorer; use 'model' or one of: {', '.join(sorted(BASELINES))}"
            )
        kwargs.setdefault("scorer", BASELINES[name])
    return compaction.Engine(**kwargs)


def _jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return _jsonable(dataclasses.asdict(obj))
    return str(obj)


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True):
            pass
        return True
    except OSError:
        return False


def status_report(engine: compaction.Engine, scorer_error: str | None = None) -> dict[str, Any]:
    """What this installation runs with: version, tokenizer, model, limits, folders."""
    tok = engine.tokenizer
    model: dict[str, Any] = {"available": False}
    try:
        from compaction import _model

        info = getattr(_model, "model_info", None)
        if info is not None:
            model.update(_jsonable(info()) or {})
            model.setdefault("available", True)
    except ImportError:
        model["error"] = "the deletion model is not part of this build"
    except ContextDistillError as exc:
        model["error"] = str(exc)
    except Exception as exc:  # status must never fail
        model["error"] = f"model info unavailable: {exc}"
    scorer = "unavailable"
    if scorer_error is None:
        try:
            s = engine.scorer
            scorer = getattr(s, "name", type(s).__name__)
        except ContextDistillError as exc:
            scorer_error = str(exc)
        except ImportError:
            scorer_error = _NO_MODEL
    if scorer_error:
        model["available"] = False
        model["error"] = scorer_error
    settings = engine.settings
    cache_dir = Path(settings.cache_dir)
    return {
        "version": compaction.__version__,
        "tokenizer": {"name": tok.name, "sha256": getattr(tok, "sha256", ""), "verified": True},
        "model": model,
        "scorer": scorer,
        "limits": {
            "max_input_bytes": settings.limits.max_input_bytes,
            "max_input_lines": settings.limits.max_input_lines,
            "cache_max_bytes": settings.cache_max_bytes,
        },
        "cache_dir": str(cache_dir),
        "cache_writable": engine.store is not None and _writable(cache_dir / "originals"),
        "data_dir": str(settings.data_dir),
    }


# -- reading input ------------------------------------------------------------------------
_NO_MODEL = (
    "the deletion model is not part of this build; reinstall context-distill, "
    "or set CONTEXT_DISTILL_SCORER=bm25 to compact with a baseline ranker"
)


class _Usage(Exception):
    """A usage mistake: exit 2."""


def _read_bytes(path: str) -> bytes:
    """Read a file or stdin, but never more than the input limit allows (plus one byte, so
    that the engine can say the input is too large without a huge read first)."""
    from ._config import default_settings

    cap = default_settings().limits.max_input_bytes + 1
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise _Usage("nothing on standard input: give a file, or pipe the output in (e.g. pytest 2>&1 | context-distill compact -)")
        return sys.stdin.buffer.read(cap)
    p = Path(path).expanduser()
    if p.is_dir():
        raise _Usage(f"{path} is a folder; give a file, or - for standard input")
    if p.exists() and not p.is_file():
        raise _Usage(f"{path} is not a regular file; give a file, or - for standard input")
    try:
        with p.open("rb") as f:
            return f.read(cap)
    except FileNotFoundError:
        raise _Usage(f"no such file: {path}") from None
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror or exc}") from None


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Usage(f"{what} is not valid UTF-8 text (byte {exc.start}); this looks like a binary file") from None


def _transcript_source(arg: str, fmt: str = "auto") -> Any:
    """A transcript path as a Path; stdin as a list of messages, a temp .jsonl, or text (as
    bytes, read in the format ``fmt`` says, when it is not ``auto``)."""
    if arg != "-":
        p = Path(arg).expanduser()
        if not p.exists():
            raise _Usage(f"no such file: {arg}")
        if not p.is_file():
            raise _Usage(f"{arg} is not a regular file")
        return p
    if sys.stdin is None or sys.stdin.isatty():
        raise _Usage("nothing on standard input: give --transcript PATH, or pipe the transcript in")
    text = _decode(sys.stdin.buffer.read(), "standard input")
    if not text.strip():
        raise _Usage("standard input is empty: pipe a transcript in, or give --transcript PATH")
    if fmt != "auto":
        return text.encode("utf-8", "surrogatepass")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, list):
            from .transcripts import is_conversation

            if is_conversation(data):
                return data  # messages or Claude Code records; other JSON is refused, as from a file
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and all(ln.lstrip().startswith("{") for ln in lines[:5]):
        fd, name = tempfile.mkstemp(prefix="context-distill-stdin-", suffix=".jsonl")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        _TEMP_FILES.append(Path(name))
        return Path(name)
    return text


_TEMP_FILES: list[Path] = []


def _format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=_TRANSCRIPT_FORMATS,
        default="auto",
        help="how to read the transcript (default: auto, from its content); text reads any file as plain text",
    )


def _need(name: str) -> Any:
    fn = getattr(compaction, name, None)
    if fn is None:
        raise ContextDistillError(f"this build of context-distill has no {name} yet; upgrade context-distill")
    return fn


def _emit(text: str) -> None:
    """Write ``text`` to stdout as UTF-8 bytes, whatever the locale's encoding: kept lines and
    expanded lines must reach the reader byte for byte (no re-encoding, no newline translation)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # stdout replaced by a text-only stream
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8", "surrogatepass"))
    buffer.flush()


def _print_json(obj: Any) -> None:
    _emit(json.dumps(_jsonable(obj), ensure_ascii=False, indent=2) + "\n")


def _print_text(text: str) -> None:
    _emit(text if compaction.ends_a_line(text) else text + "\n")  # "a\r" stays "a\r", not "a\r\n"


# -- commands ------------------------------------------------------------------------------
def _cmd_compact(args: argparse.Namespace) -> int:
    raw = _read_bytes(args.path)
    engine = engine_from_env()
    try:
        _ = engine.scorer
    except ImportError:
        raise ContextDistillError(_NO_MODEL) from None
    except compaction.AssetError as exc:
        raise compaction.AssetError(
            f"{exc}; until then CONTEXT_DISTILL_SCORER=bm25 compacts with a baseline ranker"
        ) from None
    result = engine.compact(
        raw,
        ratio=args.ratio,
        target_tokens=args.target_tokens,
        query=args.query,
        keep=tuple(args.keep or ()),
        markers=not args.no_markers,
    )
    if args.json:
        data = result.model_dump(mode="json")
        data["ratio_kept"] = round(result.ratio_kept, 4)
        _print_json(data)
    else:
        _print_text(result.text)
        for w in result.warnings:
            print(f"context-distill: warning: {w}", file=sys.stderr)
        if result.handle and result.handle not in result.text:  # a small budget left its line out
            print(f"context-distill: omitted lines: context-distill expand {result.handle} LINES", file=sys.stderr)
    return EXIT_OK


def _cmd_expand(args: argparse.Namespace) -> int:
    engine = engine_from_env(scorer=_NoScorer())
    result = engine.expand(args.handle, args.lines)
    if args.json:
        _print_json(result)
    else:
        _emit(result.text)
    return EXIT_OK


class _NoScorer:
    """expand never scores; this keeps it from loading the model."""

    name = "none"

    def score(self, inp: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("expand does not score lines")


def _llm_backend() -> Any:
    try:
        from compaction import llm
    except ImportError:
        return None
    factory = getattr(llm, "backend_from_env", None)
    if factory is None:
        return None
    try:
        return factory()
    except Exception as exc:  # LLMError: say so, and summarize with the embedded summarizer
        print(f"context-distill: warning: LLM backend not used ({exc}); using the embedded summarizer", file=sys.stderr)
        return None


def _cmd_summarize(args: argparse.Namespace) -> int:
    summarize = _need("summarize")
    source = _transcript_source(args.transcript, args.format)
    kwargs: dict[str, Any] = {"backend": _llm_backend(), "engine": engine_from_env(), "fmt": args.format}
    if args.budget_tokens is not None:
        kwargs["budget_tokens"] = args.budget_tokens
    if args.recent_turns is not None:
        kwargs["recent_turns"] = args.recent_turns
    result = summarize(source, **kwargs)
    if args.json:
        _print_json(result)
    else:
        _print_text(result.text)
        for w in getattr(result, "warnings", []) or []:
            print(f"context-distill: warning: {w}", file=sys.stderr)
    return EXIT_OK


def _cmd_handoff(args: argparse.Namespace) -> int:
    make_handoff = _need("make_handoff")
    source = _transcript_source(args.transcript, args.format)
    kwargs: dict[str, Any] = {"goal": args.goal, "engine": engine_from_env(), "fmt": args.format}
    if args.budget_tokens is not None:
        kwargs["budget_tokens"] = args.budget_tokens
    template = None
    if args.spawn:  # a missing or bad agent command is the caller's error: say so before saving anything
        from compaction import _spawn

        template = _spawn.spawn_template_from_env()
    result = make_handoff(source, **kwargs)
    out: dict[str, Any] = {**_jsonable(result)}
    if args.save or args.spawn:
        from compaction._handoff_store import HandoffStore

        store = HandoffStore(engine_from_env(scorer=_NoScorer()).settings.data_dir)
        project = getattr(result, "cwd", None)
        stored = store.save(result, project=project)
        handoff_id = getattr(stored, "id", None)
        out["id"] = handoff_id
        out["uri"] = f"handoff://{handoff_id}" if handoff_id else None
    if template is not None:
        from compaction import _spawn

        log_dir = engine_from_env(scorer=_NoScorer()).settings.data_dir / "spawn-logs"
        try:
            spawned = _spawn.spawn_agent(result.text, template, getattr(result, "cwd", None) or os.getcwd(), log_dir)
        except _spawn.SpawnError as exc:  # the handoff is made and saved: hand it back, say why no agent
            out["warnings"] = [*(out.get("warnings") or []), f"no agent was started: {exc}"]
        else:
            out["spawned"] = _jsonable(spawned)
    if args.json:
        _print_json(out)
    else:
        _print_text(result.text)
        if out.get("id"):
            print(f"context-distill: saved handoff {out['id']} ({out['uri']})", file=sys.stderr)
        if out.get("spawned"):
            sp = out["spawned"]
            print(f"context-distill: started agent pid {sp.get('pid')}, log {sp.get('log_path')}", file=sys.stderr)
        for w in out.get("warnings") or []:
            print(f"context-distill: warning: {w}", file=sys.stderr)
    return EXIT_OK


def _cmd_context_status(args: argparse.Namespace) -> int:
    context_status = _need("context_status")
    source = _transcript_source(args.transcript, args.format)
    result = context_status(source, limit_tokens=args.limit, fmt=args.format)
    if args.json:
        _print_json(result)
    else:
        _print_text(result.message)
        for w in getattr(result, "warnings", []) or []:
            print(f"context-distill: warning: {w}", file=sys.stderr)
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    engine = engine_from_env()
    report = status_report(engine)
    if args.json:
        _print_json(report)
    else:
        m = report["model"]
        lines = [
            f"context-distill {report['version']}",
            f"tokenizer: {report['tokenizer']['name']} (sha256 {report['tokenizer']['sha256'][:12]}..., verified)",
            f"scorer:    {report['scorer']}",
            "model:     "
            + (
                f"{m.get('name', 'deletion model')} (sha256 {str(m.get('sha256', ''))[:12]}..., "
                f"provider {m.get('execution_provider', m.get('provider', '?'))})"
                if m.get("available")
                else f"unavailable: {m.get('error', 'unknown')}"
            ),
            f"max input: {report['limits']['max_input_bytes']:,} bytes",
            f"cache:     {report['cache_dir']} ({'writable' if report['cache_writable'] else 'NOT writable'})",
            f"data:      {report['data_dir']}",
        ]
        _print_text("\n".join(lines))
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from server import serve  # the only place the CLI touches mcp

    return serve(
        http=args.http,
        host=args.host,
        port=args.port,
        stateless=args.stateless,
        path=args.path,
        json_response=args.json_response,
    )


def _cmd_hook(args: argparse.Namespace) -> int:
    try:
        stdin_text = sys.stdin.buffer.read().decode("utf-8", "replace")
        from compaction.hooks import run_hook

        out = run_hook(args.event, stdin_text)
        if out:
            _emit(out)
    except BaseException as exc:  # hooks fail open: never block the agent
        if isinstance(exc, KeyboardInterrupt):
            pass
        print(f"context-distill: hook {args.event} skipped: {exc}", file=sys.stderr)
    import threading

    if any(t.name.startswith("hook-") and t.is_alive() for t in threading.enumerate()):
        # the hook gave up on work still running in native code (the model): exiting the
        # interpreter around that thread can abort the process, so leave at once, with 0
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(EXIT_OK)
    return EXIT_OK


def _cmd_install_hooks(args: argparse.Namespace) -> int:
    from compaction.hooks import install

    project = Path(args.project_dir).expanduser()
    written = install(project)
    for p in written:
        print(f"wrote {p}")
    if not written:
        print(f"unchanged: {project} already has context-distill's hooks and server")
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------
def _ratio(value: str) -> float:
    try:
        r = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; use a fraction like 0.3") from None
    if not (0.0 < r <= 1.0):
        raise argparse.ArgumentTypeError(f"ratio is the fraction of tokens to keep and must be in (0, 1], got {value}")
    return r


def _whole_at_least(minimum: int, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return n


def _positive(value: str) -> int:
    return _whole_at_least(1, value)


def _non_negative(value: str) -> int:
    return _whole_at_least(0, value)


def _port(value: str) -> int:
    n = _positive(value)
    if n > 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value}")
    return n


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


_FMT = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="context-distill",
        formatter_class=_FMT,
        description=(
            "Keep coding agents' context small: verbatim, reversible compaction of tool output,\n"
            "session summaries and handoffs, all local. Also an MCP server (`serve`)."
        ),
        epilog=(
            "examples:\n"
            "  pytest -x 2>&1 | context-distill compact - --ratio 0.3 --query 'why does test_parse fail?'\n"
            "  context-distill expand 3f2a9c1e0b7d4a65 --lines 120-180\n"
            "  context-distill handoff --transcript ~/.claude/projects/my-proj/SESSION.jsonl\n"
            "  claude mcp add context-distill -- context-distill serve\n\n"
            "exit codes: 0 ok, 2 usage or bad input, 1 internal error"
        ),
    )
    p.add_argument("--version", action="version", version=f"context-distill {compaction.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser(
        "compact",
        help="delete low-signal lines of a tool output, keeping the rest verbatim",
        formatter_class=_FMT,
        description=(
            "Delete the low-signal lines of a tool output (log, traceback, grep hits, file read)\n"
            "so it fits a token budget. Kept lines are byte-for-byte from the input; each omitted\n"
            "run becomes one marker line, and the original is cached so `expand` gives it back."
        ),
        epilog=(
            "examples:\n"
            "  context-distill compact build.log --ratio 0.3\n"
            "  pytest 2>&1 | context-distill compact - --target-tokens 2000 --query 'failing test' --json\n"
            "  context-distill compact out.txt --keep 'ERROR|FAILED' --no-markers"
        ),
    )
    c.add_argument("path", nargs="?", default="-", help="file to compact, or - for standard input (default)")
    budget = c.add_mutually_exclusive_group()
    budget.add_argument("--ratio", type=_ratio, help="fraction of tokens to keep, 0 < R <= 1 (default 0.5)")
    budget.add_argument("--target-tokens", type=_positive, metavar="N", help="token budget for the result")
    c.add_argument("--query", help="what you are looking for; lines relevant to it are kept first")
    c.add_argument(
        "--keep", action="append", metavar="REGEX", help="lines matching this regex always survive (repeatable)"
    )
    c.add_argument("--no-markers", action="store_true", help="drop the '[a-b omitted]' marker lines")
    c.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: text, kept_line_ranges (1-based inclusive), tokens_before, tokens_after, handle, ...",
    )
    c.set_defaults(func=_cmd_compact)

    e = sub.add_parser(
        "expand",
        help="give back omitted lines of a compacted output, verbatim",
        formatter_class=_FMT,
        description="Print lines of the original behind a handle that `compact` returned.",
        epilog="examples:\n  context-distill expand 3f2a9c1e0b7d4a65 --lines 10-20,31\n  context-distill expand 3f2a9c1e0b7d4a65",
    )
    e.add_argument("handle", help="the handle from compact (16 hex digits)")
    e.add_argument("--lines", help="1-based inclusive ranges like 10-20,31 (default: the whole original)")
    e.add_argument("--json", action="store_true", help="print one JSON object: handle, text, line_ranges, total_lines")
    e.set_defaults(func=_cmd_expand)

    s = sub.add_parser(
        "summarize",
        help="summarize a whole agent session into fixed sections",
        formatter_class=_FMT,
        description=(
            "Summarize a session transcript (Claude Code .jsonl, OpenAI/Anthropic messages .json,\n"
            "or plain text) into fixed sections: request and intent, key files, errors and fixes,\n"
            "decisions, every user message, pending tasks, current work, next step. Uses the\n"
            "embedded extractive summarizer unless CONTEXT_DISTILL_LLM configures an LLM."
        ),
        epilog="example:\n  context-distill summarize --transcript ~/.claude/projects/my-proj/SESSION.jsonl --json",
    )
    s.add_argument("--transcript", required=True, metavar="PATH", help="transcript file, or - for standard input")
    _format_argument(s)
    s.add_argument("--budget-tokens", type=_positive, metavar="N", help="size bound of the summary in tokens")
    s.add_argument("--recent-turns", type=_non_negative, metavar="N", help="last turns kept at full fidelity (0: none)")
    s.add_argument("--json", action="store_true", help="print one JSON object: text, sections, backend, tokens, ...")
    s.set_defaults(func=_cmd_summarize)

    h = sub.add_parser(
        "handoff",
        help="draft a prompt that starts a fresh agent with what it needs",
        formatter_class=_FMT,
        description=(
            "Draft a handoff prompt from a session transcript: the goal, the latest request,\n"
            "relevant files ranked with why, decisions, current state with verbatim errors, next\n"
            "steps. Under 10,000 characters. --save stores it (readable as handoff://ID over\n"
            "MCP); --spawn also starts CONTEXT_DISTILL_SPAWN_COMMAND with it as the prompt."
        ),
        epilog=(
            "examples:\n"
            "  context-distill handoff --transcript SESSION.jsonl --goal 'finish the parser fix'\n"
            "  context-distill handoff --transcript SESSION.jsonl --json --save"
        ),
    )
    h.add_argument("--transcript", required=True, metavar="PATH", help="transcript file, or - for standard input")
    _format_argument(h)
    h.add_argument("--goal", help="the goal for the next agent (default: taken from the session)")
    h.add_argument("--budget-tokens", type=_positive, metavar="N", help="size bound in tokens (default 2000)")
    h.add_argument("--json", action="store_true", help="print one JSON object: text, files, goal, ...")
    h.add_argument("--save", action="store_true", help="store the handoff in the data folder and print its id")
    h.add_argument("--spawn", action="store_true", help="also start the configured agent command (implies --save)")
    h.set_defaults(func=_cmd_handoff)

    cs = sub.add_parser(
        "context-status",
        help="how full a session's context is, and whether to compact or hand off",
        formatter_class=_FMT,
        description="Report tokens used by a session, its limit, and a recommendation: fine, compact or handoff.",
        epilog="example:\n  context-distill context-status --transcript SESSION.jsonl --limit 200000 --json",
    )
    cs.add_argument("--transcript", required=True, metavar="PATH", help="transcript file, or - for standard input")
    _format_argument(cs)
    cs.add_argument("--limit", type=_positive, metavar="N", help="context window in tokens (default: the model's)")
    cs.add_argument("--json", action="store_true", help="print one JSON object")
    cs.set_defaults(func=_cmd_context_status)

    st = sub.add_parser(
        "status",
        help="version, tokenizer, model, execution provider, limits and folders",
        formatter_class=_FMT,
        description="Show what this installation runs with, and whether its files check out.",
        epilog="example:\n  context-distill status --json",
    )
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=_cmd_status)

    sv = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default, or streamable HTTP)",
        formatter_class=_FMT,
        description=(
            "Run the MCP server. stdio by default (what clients launch). --http serves streamable\n"
            "HTTP on 127.0.0.1; binding any other address needs CONTEXT_DISTILL_HTTP_TOKEN, and\n"
            "every request must then carry 'Authorization: Bearer <token>'. Logs go to stderr."
        ),
        epilog=(
            "examples:\n"
            "  context-distill serve\n"
            "  context-distill serve --http --port 8765\n"
            "  CONTEXT_DISTILL_HTTP_TOKEN=... context-distill serve --http --host 0.0.0.0 --stateless"
        ),
    )
    sv.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=_port, default=8765, help="port (default 8765)")
    sv.add_argument("--stateless", action="store_true", help="no sessions: for replicas behind a load balancer")
    sv.add_argument("--path", default="/mcp", help="URL path of the MCP endpoint (default /mcp)")
    sv.add_argument("--json-response", action="store_true", help="answer with JSON instead of SSE streams")
    sv.set_defaults(func=_cmd_serve)

    hk = sub.add_parser(
        "hook",
        help="run a Claude Code hook (reads the hook JSON on stdin; always exits 0)",
        formatter_class=_FMT,
        description="Entry point for Claude Code hooks. Fails open: on any error the agent keeps its context.",
        epilog="example (in .claude/settings.json):\n  \"command\": \"context-distill hook PostToolUse\"",
    )
    hk.add_argument("event", help="PreCompact, SessionStart or PostToolUse")
    hk.set_defaults(func=_cmd_hook)

    ih = sub.add_parser(
        "install-hooks",
        help="install the MCP server and hooks into a project's .mcp.json and .claude/settings.json",
        formatter_class=_FMT,
        description="Merge context-distill's .mcp.json entry and hooks block into a project.",
        epilog="example:\n  context-distill install-hooks ~/src/my-project",
    )
    ih.add_argument("project_dir", nargs="?", default=".", help="project folder (default: the current one)")
    ih.set_defaults(func=_cmd_install_hooks)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) != "serve":  # serve sets up its own (timestamped) stderr logging
        logging.basicConfig(stream=sys.stderr, level=log_level_from_env("WARNING"), format="context-distill: %(message)s")
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except _Usage as exc:
        print(f"context-distill {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (InputError, HandleNotFoundError, SpawnNotConfiguredError) as exc:
        print(f"context-distill {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ContextDistillError as exc:
        print(f"context-distill {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except ValueError as exc:  # bad environment settings (e.g. CONTEXT_DISTILL_MAX_INPUT_BYTES=abc)
        print(f"context-distill {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(
            f"context-distill {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set CONTEXT_DISTILL_LOG_LEVEL=DEBUG for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        for tmp in _TEMP_FILES:
            try:
                tmp.unlink()
            except OSError:
                pass
        _TEMP_FILES.clear()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
