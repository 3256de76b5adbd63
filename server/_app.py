"""The MCP server: thin adapters from tool calls to the engine, and back.

Every tool runs its work through ``Runtime.run`` (a bounded worker pool), turns each
``ContextDistillError`` into a tool result with ``isError`` and a one-line message saying
what to do. The tools whose result is text for the agent to read (``compact``, ``expand``,
``summarize``, ``spawn_handoff``) return that text alone as content and their typed fields under
``_meta[RESULT_META_KEY]``: Claude Code and VS Code show a result's ``structuredContent``, as JSON,
instead of its text whenever it has one, which would put escaped lines and every field into the
agent's context. ``context_status`` and ``status`` are data: their ``structuredContent`` follows
their outputSchema.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError, WrapValidator

import compaction
from compaction._config import log_level_from_env
from compaction._exceptions import ContextDistillError, InputError, StoreError
from compaction._messages import without_binary_data
from compaction._paths import check_allowed_file
from compaction.cli import status_report

from ._models import (
    CompactedPartOut,
    CompactOutput,
    ContextStatusOutput,
    ExpandOutput,
    HandoffOutput,
    StatusOutput,
    SummarizeOutput,
)
from ._runtime import BusyError, Runtime, progress_bridge
from ._sampling import ReplayBackend, as_sampled_text, sampled_summary

__all__ = ["ContextDistillServer", "build_server"]

log = logging.getLogger("context_distill.server")

INSTRUCTIONS = """\
context-distill keeps your context small without losing anything.
- A tool output (log, test run, traceback, grep hits, file read) is too long? Call `compact` with it and a `query`
  saying what you are looking for: you get its important lines verbatim, the rest replaced by markers, and a
  `handle`. Call `expand` with that handle and line ranges whenever you need omitted lines back.
- The session is getting long? `context_status` says whether to compact or hand off; `summarize` distills the
  session; `spawn_handoff` writes a prompt for a fresh agent (stored as resource handoff://{id}).
"""


class ContextDistillServer(MCPServer):
    """MCPServer that also rejects unknown tool arguments instead of ignoring them."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is not None and isinstance(arguments, dict):
            known = set((tool.parameters or {}).get("properties", {}))
            unknown = sorted(k for k in arguments if k not in known)
            if unknown:
                valid = ", ".join(sorted(known)) or "none (call it with {})"
                raise ToolError(f"unknown argument(s) for {name}: {', '.join(unknown)[:300]}; valid arguments: {valid}")
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):  # one line per bad field, not pydantic's report
                parts = []
                errors = cause.errors()
                for err in errors[:3]:
                    where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
                    got = f" (got {err['input']!r})" if err.get("type") != "missing" and "input" in err else ""
                    parts.append(f"{where}: {err.get('msg', 'invalid')}{got}"[:200])
                more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
                raise ToolError(
                    f"invalid arguments for {name}: {'; '.join(parts)}{more}; see the tool's inputSchema"
                ) from cause
            raise


def _fail(exc: BaseException) -> ToolError:
    """A tool error whose text is one line that says what to do."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ToolError(msg)


def _none_or_text(value: Any, handler: Any) -> Any:
    return None if value is None else handler(value)


#: an optional text argument. Its type is plain ``str`` (None let through by a validator): the SDK
#: first parses, as JSON, every string argument whose type is not exactly ``str``, so a JSON tool
#: output given as ``text`` arrived as a dict and was refused ("Input should be a valid string").
OptionalText = Annotated[str, WrapValidator(_none_or_text)]


#: where a text tool's typed fields are, in its result's ``_meta`` (clients do not show ``_meta``
#: to the model; programs read it there)
RESULT_META_KEY = "io.github.context-distill/result"


def _text_result(text: str, fields: Any) -> CallToolResult:
    """``text`` for the agent to read, verbatim, then one line per warning (the agent sees no
    other field); ``fields`` (a model of ``_models``) for programs."""
    notes = [_warning_line(w) for w in getattr(fields, "warnings", None) or []]
    return CallToolResult(
        content=[TextContent(type="text", text=_with_lines(text, notes))],
        _meta={RESULT_META_KEY: fields.model_dump(mode="json")},
    )


def _warning_line(warning: object) -> str:
    return f"[... context-distill: warning: {' '.join(str(warning).split())} ...]"


def _with_lines(text: str, lines: list[str]) -> str:
    """``text`` and then ``lines``, each on a line of its own (never after an empty one)."""
    if not lines:
        return text
    return text + ("" if compaction.ends_a_line(text) else "\n") + "\n".join(lines) + "\n"


def _result(text: str, structured: Any) -> CallToolResult:
    """A data tool's result: readable text and structuredContent following its outputSchema."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json"),
    )


def _expanded_text(r: Any, chunks: list[str]) -> str:
    """The lines ``expand`` gives back, as the agent reads them: one range verbatim; several
    ranges (``chunks``: each range's lines) each after a ``[lines a-b of N]`` line, or the agent
    could not tell where one ends."""
    if len(r.line_ranges) <= 1:
        return r.text
    parts: list[str] = []
    for (a, b), chunk in zip(r.line_ranges, chunks):
        if parts and not parts[-1].endswith("\n"):  # a header starts a line for every reader, \r or not
            parts.append("\n")
        parts.append(f"[lines {a}-{b} of {r.total_lines}]\n")
        parts.append(chunk)
    return "".join(parts)


def _client_progress(ctx: Context | None) -> Callable[[float, str], Any] | None:
    """An async progress reporter when the client sent a progressToken, else None."""
    if ctx is None:
        return None
    try:
        meta = getattr(ctx.request_context, "meta", None)
    except ValueError:
        return None
    token = None
    if isinstance(meta, dict):
        token = meta.get("progress_token", meta.get("progressToken"))
    elif meta is not None:
        token = getattr(meta, "progress_token", None)
    if token is None:
        return None

    async def report(fraction: float, message: str) -> None:
        await ctx.report_progress(round(fraction * 100, 1), 100.0, message)

    return report


def _transcript_source(
    transcript_path: str | None, messages: list[dict[str, Any]] | None, text: str | None
) -> Any:
    given = [x is not None for x in (transcript_path, messages, text)]
    if sum(given) != 1:
        raise InputError("give exactly one of transcript_path, messages or text")
    if transcript_path is not None:
        return check_allowed_file(transcript_path)
    if messages is not None:
        if not messages:
            raise InputError("messages is empty: there is nothing to read")
        return messages
    assert text is not None
    if not text.strip():
        raise InputError("text is empty: there is nothing to read")
    # as bytes, so that read_transcript never takes text that looks like a path for a path:
    # files are read only through transcript_path and its folder check
    return text.encode("utf-8", "surrogatepass")


def _session(source: Any) -> Any:
    """What the session tools read. Inline ``text`` is "the session as plain text": a session
    given as JSON is read as one, but JSON that holds no session (a JSON log, a number list)
    is plain text, not the CLI's "not recognised, use --format text" error, which an MCP
    caller has no way to follow. Runs in the worker: parsing a large text takes time."""
    if not isinstance(source, bytes):
        return source
    try:
        return compaction.read_transcript(source)
    except compaction.TranscriptError:
        return compaction.read_transcript(source, fmt="text")


def _need(name: str) -> Any:
    fn = getattr(compaction, name, None)
    if fn is None:
        raise ContextDistillError(f"this build of context-distill has no {name} yet; upgrade context-distill")
    return fn


def _dump(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    return dict(obj)


def build_server(runtime: Runtime | None = None, *, transport: str = "stdio") -> ContextDistillServer:
    """The MCP server with every tool, resource and prompt registered. Loads the engine now."""
    rt = runtime or Runtime()
    mcp = ContextDistillServer(
        name="context-distill",
        title="context-distill",
        description="Verbatim, reversible compaction of tool output, session summaries and handoffs, all local.",
        instructions=INSTRUCTIONS,
        version=compaction.__version__,
        website_url="https://github.com/context-distill/context-distill",
        log_level=log_level_from_env("INFO"),  # type: ignore[arg-type]
    )
    mcp.runtime = rt  # type: ignore[attr-defined]

    async def work(fn: Callable[[], Any]) -> Any:
        try:
            return await rt.run(fn)
        except BusyError as exc:
            raise ToolError(str(exc)) from None
        except ContextDistillError as exc:
            raise _fail(exc) from None

    # -- compact -------------------------------------------------------------------------
    @mcp.tool(
        name="compact",
        title="Compact a tool output",
        annotations=ToolAnnotations(
            title="Compact a tool output",
            read_only_hint=True,
            idempotent_hint=True,
            destructive_hint=False,
            open_world_hint=False,
        ),
        description=(
            "Shrink a long tool output (test log, build log, traceback, grep hits, file read, JSON) or an old chat "
            "history so it fits your context, keeping its important lines byte-for-byte. Call it whenever a tool "
            "output is longer than you need, with `query` saying what you are looking for (for example 'why does "
            "test_parse fail'). Give `text` (one output) or `messages` (a chat history; the last `preserve_recent` "
            "messages stay whole). Budget: `ratio` (fraction of tokens kept, default 0.5) or `target_tokens`. "
            "Returns the compacted text, where each run of omitted lines is one marker like "
            "'[10-21 omitted]' (input lines 10 to 21), and a last line naming its `handle`. Nothing is lost: call "
            "`expand` with the handle and line ranges (e.g. '10-21') to get omitted "
            "lines back verbatim. Lines matching a `keep` regex, or inside <keep>...</keep>, always survive."
        ),
    )
    async def compact_tool(
        text: Annotated[
            OptionalText, Field(description="The tool output to compact. Give this or `messages`, not both.")
        ] = None,
        messages: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description="A chat history in OpenAI or Anthropic message shape (role/content, tool results "
                "included). Older messages' text is compacted; roles, ids and tool calls are kept."
            ),
        ] = None,
        ratio: Annotated[
            float | None,
            Field(
                gt=0,
                le=1,
                description="Fraction of tokens to keep, 0 < ratio <= 1 (default 0.5); for messages, of each compacted part.",
            ),
        ] = None,
        target_tokens: Annotated[
            int | None,
            Field(ge=1, description="Token budget for the result (for messages: all their text); use instead of ratio."),
        ] = None,
        query: Annotated[
            OptionalText,
            Field(description="What you are doing and looking for; relevant lines are kept first. Best: your "
            "current thought, the command that made the output, then the names (files, functions, errors) you "
            "have been working with. For messages, defaults to your recent messages and the last user message."),
        ] = None,
        keep: Annotated[
            list[str] | None, Field(description="Regular expressions; matching lines always survive.")
        ] = None,
        preserve_recent: Annotated[
            int, Field(ge=0, description="messages only: how many of the last messages stay whole.")
        ] = 2,
        markers: Annotated[
            bool, Field(description="Replace each omitted run with one marker line (default true).")
        ] = True,
        ctx: Context | None = None,
    ) -> CallToolResult:
        if (text is None) == (messages is None):
            raise ToolError("give exactly one of `text` (a tool output) or `messages` (a chat history)")
        if ratio is not None and target_tokens is not None:
            raise ToolError("give either `ratio` or `target_tokens`, not both")
        if rt.scorer_error:
            raise ToolError(rt.scorer_error)
        keep_t = tuple(keep or ())
        if text is not None:
            on_progress = progress_bridge(_client_progress(ctx) if len(text) > 20_000 else None)
            r = await work(
                lambda: rt.engine.compact(
                    text,
                    ratio=ratio,
                    target_tokens=target_tokens,
                    query=query,
                    keep=keep_t,
                    markers=markers,
                    on_progress=on_progress,
                )
            )
            out = CompactOutput(
                text=r.text,
                kept_line_ranges=r.kept_line_ranges,
                omitted_line_ranges=r.omitted_line_ranges,
                partial_lines=r.partial_lines,
                tokens_before=r.tokens_before,
                tokens_after=r.tokens_after,
                handle=r.handle,
                handles=[r.handle] if r.handle else [],
                query=r.query,
                scorer=r.scorer,
                warnings=r.warnings,
            )
            # a small budget left the handle out of the text: the agent still needs it
            named = markers and r.handle and r.handle not in r.text
            return _text_result(_with_lines(r.text, [compaction.handle_line(r.handle)] if named else []), out)
        m = await work(
            lambda: rt.engine.compact_messages(
                messages,
                ratio=ratio,
                target_tokens=target_tokens,
                query=query,
                preserve_recent=preserve_recent,
                keep=keep_t,
                markers=markers,
                on_progress=progress_bridge(_client_progress(ctx)),
            )
        )
        out = CompactOutput(
            messages=m.messages,
            tokens_before=m.tokens_before,
            tokens_after=m.tokens_after,
            handle=m.handles[0] if m.handles else None,
            handles=m.handles,
            parts=[CompactedPartOut(**p.model_dump()) for p in m.parts],
            query=m.query,
            scorer=rt.scorer_name,
            warnings=m.warnings,
        )
        shown = without_binary_data(m.messages)  # base64 is no text for a model: 300 KB of it is 270k tokens
        summary = (
            f"Compacted {m.compacted_parts} message part(s): {m.tokens_before} -> {m.tokens_after} tokens. "
            + (f"Originals: {', '.join(m.handles)} (call `expand` with a handle to get lines back). " if m.handles else "")
            + "The compacted messages follow as JSON"
            + (" (image, audio and file data left out of this text; the result's messages keep it)" if shown != m.messages else "")
            + ".\n"
            + json.dumps(shown, ensure_ascii=False)
        )
        return _text_result(summary, out)

    # -- expand --------------------------------------------------------------------------
    @mcp.tool(
        name="expand",
        title="Expand omitted lines",
        annotations=ToolAnnotations(
            title="Expand omitted lines",
            read_only_hint=True,
            idempotent_hint=True,
            destructive_hint=False,
            open_world_hint=False,
        ),
        description=(
            "Get lines that `compact` omitted back, verbatim. Call it when a marker like "
            "'[10-21 omitted]' (input lines 10 to 21) hides something you need: pass the `handle` from compact's result "
            "and `lines` such as '10-21' or '10-21,40-45' (1-based, inclusive, line numbers of the original). Omit "
            "`lines` to get the whole original. Returns the lines (several ranges each start with a "
            "'[lines a-b of N]' line). Handles live in a bounded "
            "local cache; if one has been evicted, re-run the original tool."
        ),
    )
    async def expand_tool(
        handle: Annotated[str, Field(description="The handle from compact's result (16 hex digits).")],
        lines: Annotated[
            str | int | None,
            Field(description="Line ranges of the original, e.g. '10-20,31' (1-based, inclusive), or one line number. Default: all."),
        ] = None,
    ) -> CallToolResult:
        spec = str(lines) if isinstance(lines, int) and not isinstance(lines, bool) else lines  # models send 42
        def expand() -> tuple[Any, list[str]]:
            r = rt.engine.expand(handle, spec)
            if len(r.line_ranges) <= 1:
                return r, []
            # each range from the original's lines (splitting r.text again would misread a line ending
            # in a lone \r); the original is read once more, not once per range
            lines = rt.engine.expand(r.handle).text.splitlines(keepends=True)
            return r, ["".join(lines[a - 1 : b]) for a, b in r.line_ranges]

        r, chunks = await work(expand)
        out = ExpandOutput(handle=r.handle, text=r.text, line_ranges=r.line_ranges, total_lines=r.total_lines)
        return _text_result(_expanded_text(r, chunks), out)

    # -- summarize -----------------------------------------------------------------------
    @mcp.tool(
        name="summarize",
        title="Summarize a session",
        annotations=ToolAnnotations(
            title="Summarize a session",
            read_only_hint=True,
            idempotent_hint=True,
            destructive_hint=False,
            open_world_hint=True,
        ),
        description=(
            "Distill a whole agent session into a structured summary with fixed sections: primary request and intent; "
            "key files and code; errors and how they were fixed; decisions and constraints; every user message; "
            "pending tasks; current work; next step. Call it when the conversation is long and older turns can be "
            "replaced by their essence. Give the session as `transcript_path` (a Claude Code .jsonl or messages "
            ".json under the allowed folders), or inline `messages` or `text`. Returns markdown `text`, each "
            "section, which backend wrote it ('embedded' = extractive, verbatim lines, nothing invented; or an LLM: "
            "your client's model via MCP sampling when offered, else one configured on the server) and sizes in tokens."
        ),
    )
    async def summarize_tool(
        transcript_path: Annotated[
            OptionalText, Field(description="Path of a transcript file (Claude Code .jsonl, messages .json, .txt).")
        ] = None,
        messages: Annotated[
            list[dict[str, Any]] | None, Field(description="The session as OpenAI or Anthropic messages.")
        ] = None,
        text: Annotated[OptionalText, Field(description="The session as plain text.")] = None,
        budget_tokens: Annotated[
            int | None,
            Field(ge=100, description="Size of the summary in tokens (default: 10% of the transcript, 300-6,000)."),
        ] = None,
        recent_turns: Annotated[
            int | None, Field(ge=0, description="How many last turns to keep at full fidelity.")
        ] = None,
        sampled: Annotated[Any, Resolve(sampled_summary)] = None,
        ctx: Context | None = None,
    ) -> CallToolResult:
        summarize = _wrap_missing(lambda: _need("summarize"))
        source = _wrap_input(lambda: _transcript_source(transcript_path, messages, text))
        sampled = as_sampled_text(sampled)
        backend = None
        config_warning = None
        if sampled is not None and sampled.text:
            backend = ReplayBackend(sampled.text, sampled.name)
        else:
            backend, config_warning = _env_backend_or_warning()
        kwargs: dict[str, Any] = {"backend": backend, "engine": rt.engine}
        if budget_tokens is not None:
            kwargs["budget_tokens"] = budget_tokens
        if recent_turns is not None:
            kwargs["recent_turns"] = recent_turns
        kwargs["on_progress"] = progress_bridge(_client_progress(ctx))
        r = await work(lambda: summarize(_session(source), **kwargs))
        data = _dump(r)
        warnings = list(data.get("warnings") or [])
        if sampled is not None and sampled.error:
            warnings.append(f"MCP sampling failed ({sampled.error}); used the {data.get('backend', 'embedded')} summarizer")
        if config_warning:
            warnings.append(config_warning)
        out = SummarizeOutput(
            text=data["text"],
            sections=data.get("sections") or {},
            backend=data.get("backend", "embedded"),
            tokens=data.get("tokens", 0),
            transcript_tokens=data.get("transcript_tokens", 0),
            warnings=warnings,
        )
        return _text_result(out.text, out)

    # -- spawn_handoff -------------------------------------------------------------------
    @mcp.tool(
        name="spawn_handoff",
        title="Hand off to a fresh agent",
        annotations=ToolAnnotations(
            title="Hand off to a fresh agent",
            read_only_hint=False,
            idempotent_hint=False,
            destructive_hint=False,
            open_world_hint=True,
        ),
        description=(
            "Write a handoff: a prompt that lets a fresh agent thread continue this session's work with exactly what "
            "it needs (the goal, the latest request, relevant files ranked with why: edited / read / failing, "
            "decisions and constraints, current state with verbatim errors and test results, next steps), under "
            "10,000 characters. Call it when the context is nearly full (see `context_status`) or the task changes "
            "direction. Give the session as `transcript_path`, `messages` or `text`, and optionally the `goal`. "
            "The handoff is stored: the result carries its `id` and `uri` (handoff://{id}, readable as a resource; "
            "the `resume_from_handoff` prompt starts from it). With `spawn: true` the server also starts the agent "
            "command configured in CONTEXT_DISTILL_SPAWN_COMMAND with the handoff as its prompt (off unless configured)."
        ),
    )
    async def spawn_handoff_tool(
        transcript_path: Annotated[
            OptionalText, Field(description="Path of a transcript file (Claude Code .jsonl, messages .json, .txt).")
        ] = None,
        messages: Annotated[
            list[dict[str, Any]] | None, Field(description="The session as OpenAI or Anthropic messages.")
        ] = None,
        text: Annotated[OptionalText, Field(description="The session as plain text.")] = None,
        goal: Annotated[OptionalText, Field(description="Goal for the next agent (default: from the session).")] = None,
        budget_tokens: Annotated[
            int, Field(ge=200, le=2500, description="Size bound of the handoff in tokens (default 2000).")
        ] = 2000,
        spawn: Annotated[
            bool, Field(description="Also start the configured agent command with this handoff (default false).")
        ] = False,
    ) -> CallToolResult:
        make_handoff = _wrap_missing(lambda: _need("make_handoff"))
        source = _wrap_input(lambda: _transcript_source(transcript_path, messages, text))
        template = _wrap_input(_spawn_template) if spawn else None

        def run() -> dict[str, Any]:
            r = make_handoff(_session(source), goal=goal, budget_tokens=budget_tokens, engine=rt.engine)
            data = _dump(r)
            try:
                stored = rt.handoff_store().save(r, project=data.get("cwd"))
                data["id"] = getattr(stored, "id", None)
            except StoreError as exc:  # an unwritable data dir: hand the text back anyway, unstored
                data["id"] = None
                data["warnings"] = [*(data.get("warnings") or []), f"the handoff was not stored ({exc})"]
            if template is not None:
                from compaction._spawn import SpawnError, spawn_agent

                try:
                    sp = spawn_agent(
                        r.text, template, data.get("cwd") or os.getcwd(), Path(rt.engine.settings.data_dir) / "spawn-logs"
                    )
                except SpawnError as exc:  # the handoff is made (and stored): hand it back, say why no agent
                    data["warnings"] = [*(data.get("warnings") or []), f"no agent was started: {exc}"]
                else:
                    data["spawned"] = {"pid": sp.pid, "log_path": str(sp.log_path), "argv": list(sp.argv)}
            return data

        data = await work(run)
        hid = data.get("id")
        out = HandoffOutput(
            id=hid,
            uri=f"handoff://{hid}" if hid else None,
            text=data["text"],
            goal=data.get("goal"),
            latest_request=data.get("latest_request"),
            files=[
                {"path": str(f.get("path")), "reasons": list(f.get("reasons") or []), "score": float(f.get("score") or 0)}
                for f in (data.get("files") or [])
            ],
            tokens=data.get("tokens", 0),
            session_id=data.get("session_id"),
            cwd=data.get("cwd"),
            spawned=data.get("spawned"),
            warnings=list(data.get("warnings") or []),
        )
        head = f"Handoff stored as {out.uri} (id {hid}).\n" if hid else "The handoff was not stored.\n"
        if out.spawned is not None:
            head += f"Started the agent (pid {out.spawned.pid}, log {out.spawned.log_path}).\n"
        return _text_result(head + "\n" + out.text, out)

    # -- context_status ------------------------------------------------------------------
    @mcp.tool(
        name="context_status",
        title="How full is the context?",
        annotations=ToolAnnotations(
            title="How full is the context?",
            read_only_hint=True,
            idempotent_hint=True,
            destructive_hint=False,
            open_world_hint=False,
        ),
        description=(
            "Check how full a session's context window is. Give the session as `transcript_path`, `messages` or "
            "`text`, and optionally `limit_tokens` (the context window). Returns tokens used, the limit, the fraction "
            "and a recommendation: 'fine' (carry on), 'compact' (compact long tool outputs with `compact`) or "
            "'handoff' (call `spawn_handoff` now and continue in a fresh thread)."
        ),
    )
    async def context_status_tool(
        transcript_path: Annotated[
            OptionalText, Field(description="Path of a transcript file (Claude Code .jsonl, messages .json, .txt).")
        ] = None,
        messages: Annotated[
            list[dict[str, Any]] | None, Field(description="The session as OpenAI or Anthropic messages.")
        ] = None,
        text: Annotated[OptionalText, Field(description="The session as plain text.")] = None,
        limit_tokens: Annotated[
            int | None, Field(ge=1, description="Context window in tokens (default: the model's, e.g. 200000).")
        ] = None,
    ) -> Annotated[CallToolResult, ContextStatusOutput]:
        context_status = _wrap_missing(lambda: _need("context_status"))
        source = _wrap_input(lambda: _transcript_source(transcript_path, messages, text))
        r = await work(lambda: context_status(_session(source), limit_tokens=limit_tokens))
        data = _dump(r)
        out = ContextStatusOutput(**{k: data[k] for k in ContextStatusOutput.model_fields if k in data})
        return _result(_with_lines(out.message, [_warning_line(w) for w in out.warnings]), out)

    # -- status --------------------------------------------------------------------------
    @mcp.tool(
        name="status",
        title="Server status",
        annotations=ToolAnnotations(
            title="Server status",
            read_only_hint=True,
            idempotent_hint=True,
            destructive_hint=False,
            open_world_hint=False,
        ),
        description=(
            "Report what this context-distill server runs with: version, tokenizer (name and verified sha256), the "
            "deletion model (name, sha256, execution provider such as CUDAExecutionProvider or CPUExecutionProvider, "
            "or why it is unavailable), the scorer compact uses, limits, the cache folder and whether it is "
            "writable, and how many calls are in flight. Call it to diagnose errors."
        ),
    )
    async def status_tool(ctx: Context | None = None) -> Annotated[CallToolResult, StatusOutput]:
        out = await _status(rt, transport, ctx)
        lines = [
            f"context-distill {out.version}; tokenizer {out.tokenizer.name} (sha256 {out.tokenizer.sha256[:12]}..., "
            f"verified); scorer {out.scorer}",
            "model: "
            + (
                f"{out.model.get('name', 'deletion model')} on {out.model.get('execution_provider', '?')}"
                if out.model.get("available")
                else f"unavailable ({out.model.get('error', 'unknown')})"
            ),
            f"cache: {out.cache_dir} ({'writable' if out.cache_writable else 'not writable: no handles'})",
        ]
        return _result("\n".join(lines), out)

    @mcp.resource(
        "context-distill://status",
        name="status",
        title="Server status",
        description="Version, tokenizer, model and execution provider, limits, folders (JSON).",
        mime_type="application/json",
    )
    async def status_resource() -> str:
        out = await _status(rt, transport, None)
        return out.model_dump_json(indent=2)

    # -- handoffs as resources, and a prompt to resume ------------------------------------
    @mcp.resource(
        "handoff://{handoff_id}",
        name="handoff",
        title="Stored handoff",
        description="A handoff written by spawn_handoff (or the PreCompact hook): the prompt for a fresh agent.",
        mime_type="text/markdown",
    )
    async def handoff_resource(handoff_id: str) -> str:
        return await _read_handoff(rt, handoff_id)

    @mcp.prompt(
        name="resume_from_handoff",
        title="Resume from a handoff",
        description="Start a fresh thread from a stored handoff (id from spawn_handoff; default: the latest).",
    )
    async def resume_prompt(handoff_id: str = "") -> list[UserMessage]:
        from mcp.server.mcpserver.exceptions import ResourceError
        from mcp.shared.exceptions import MCPError
        from mcp_types import INVALID_PARAMS

        try:
            text = await _read_handoff(rt, handoff_id or None)
        except ResourceError as exc:  # the SDK passes only an MCPError's message on to the client
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        return [
            UserMessage(
                "You are continuing work that another agent session started. Its handoff follows; treat it as "
                "your briefing, check the current state of the files it names, then carry on with the next step.\n\n"
                + text
            )
        ]

    _register_handoff_listing(mcp, rt)
    return mcp


def _register_handoff_listing(mcp: ContextDistillServer, rt: Runtime) -> None:
    """List stored handoffs in resources/list (templates alone are not enumerable)."""
    original = mcp.list_resources

    async def list_resources() -> list[Any]:
        from mcp_types import Resource as MCPResource

        items = list(await original())
        try:
            infos = rt.handoff_store().list(limit=50)
        except Exception:  # no store yet, or an unreadable data dir: list nothing, never fail
            return items
        for info in infos:
            hid = getattr(info, "id", None)
            if not hid:
                continue
            label = getattr(info, "goal", None) or getattr(info, "title", None) or hid
            created = getattr(info, "created_at", None) or getattr(info, "created", None)
            items.append(
                MCPResource(
                    uri=f"handoff://{hid}",
                    name=f"handoff-{hid}",
                    title=str(label)[:120],
                    description=f"handoff {hid}" + (f", written {created}" if created else ""),
                    mime_type="text/markdown",
                )
            )
        return items

    mcp.list_resources = list_resources  # type: ignore[method-assign]


async def _read_handoff(rt: Runtime, handoff_id: str | None) -> str:
    from mcp.server.mcpserver.exceptions import ResourceError

    def read() -> str:
        store = rt.handoff_store()
        if handoff_id:
            stored = store.get(handoff_id)
        else:
            stored = store.latest(None)
            if stored is None:
                infos = store.list(limit=1)
                stored = store.get(infos[0].id) if infos else None
            if stored is None:
                raise InputError("no handoff is stored yet; call spawn_handoff first")
        for attr in ("text", "handoff_text"):
            value = getattr(stored, attr, None)
            if isinstance(value, str):
                return value
        result = getattr(stored, "result", None)
        if result is not None and isinstance(getattr(result, "text", None), str):
            return result.text
        raise InputError(f"handoff {handoff_id} has no text")

    try:
        return await rt.run(read)
    except (ContextDistillError, KeyError, ValueError, BusyError) as exc:
        raise ResourceError(str(exc).strip().splitlines()[0] if str(exc).strip() else "handoff not found") from None


async def _status(rt: Runtime, transport: str, ctx: Context | None) -> StatusOutput:
    # outside the worker pool: status must answer while every worker is busy (that is when it is needed)
    report = await anyio.to_thread.run_sync(lambda: status_report(rt.engine, rt.scorer_error))
    report["limits"] = {
        **report["limits"],
        "max_concurrent": rt.config.max_concurrent,
        "max_queue": rt.config.max_queue,
    }
    sampling = False
    if ctx is not None:
        try:
            caps = ctx.client_capabilities
            sampling = caps is not None and caps.sampling is not None
        except ValueError:
            sampling = False
    backend = None
    try:
        b = _env_backend()
        backend = getattr(b, "name", None) if b is not None else None
    except Exception as exc:  # a broken LLM configuration is worth seeing, not fatal
        backend = f"misconfigured: {exc}"
    return StatusOutput(
        **report, transport=transport, in_flight=rt.in_flight, sampling=sampling, llm_backend=backend
    )


def _env_backend() -> Any:
    """The LLM backend configured in the environment, or None. Raises LLMError when misconfigured."""
    try:
        from compaction import llm
    except ImportError:
        return None
    factory = getattr(llm, "backend_from_env", None)
    return factory() if factory else None


def _env_backend_or_warning() -> tuple[Any, str | None]:
    try:
        return _env_backend(), None
    except Exception as exc:  # LLMError: a bad configuration falls back to the embedded summarizer
        return None, f"LLM backend not used ({exc}); used the embedded summarizer"


def _spawn_template() -> list[str]:
    from compaction._spawn import spawn_template_from_env

    return spawn_template_from_env()


def _wrap_input(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ContextDistillError as exc:
        raise _fail(exc) from None


def _wrap_missing(fn: Callable[[], Any]) -> Any:
    return _wrap_input(fn)
