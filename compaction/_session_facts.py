"""What a session is about, read from its structure: the analysis behind summarize and handoff.

Everything here is *extractive*: each candidate line is a verbatim piece of the transcript
(a user message, a sentence of the agent's text, a line of an edit, an error line of a
tool result), tagged with the section it belongs to and a structural prior. The summarizer
then chooses lines under a token budget by the names they cover (paths, identifiers, task
ids the session keeps using) and the deletion model's score.

Structure used:
* user messages (typed by a person: not ``isMeta``, not command output) -> requests;
* Edit / Write / MultiEdit / NotebookEdit inputs, and text-editor tools' create / str_replace /
  insert / undo_edit -> files changed, and their new lines;
* Read and text-editor ``view`` -> files read; paths in text -> files mentioned; errors naming a file -> failing;
* ``is_error`` results and error lines of tool output -> errors; the agent's next words
  after an error -> how it was fixed;
* TodoWrite inputs -> pending tasks; open-status lines (todo, pending, ready, blocked);
* the last agent messages -> current work and next step.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from ._names import extract_names, is_task_id, looks_like_file
from .transcripts import EDIT_TOOLS, TEXT_EDITOR_TOOLS, Transcript, file_action
from .transcripts._render import tool_input_text

__all__ = [
    "SECTIONS",
    "Candidate",
    "Request",
    "FileFact",
    "SessionFacts",
    "analyze",
    "typed_requests",
    "clip_line",
    "ELLIPSIS",
]

SECTIONS = (
    "Primary request and intent",
    "Key files and code",
    "Errors and fixes",
    "Decisions and constraints",
    "All user messages",
    "Pending tasks",
    "Current work",
    "Next step",
)
PRIMARY, FILES, ERRORS, DECISIONS, USERS, PENDING, CURRENT, NEXT = SECTIONS

#: appended to a line cut short (a label, not transcript text)
ELLIPSIS = " […]"
MAX_LINE_CHARS = 240
#: lines of a multi-line candidate shown under its first
MAX_RENDERED_LINES = 8

_ERROR_LINE = re.compile(
    r"(?i)(\berror\b|\berrors\b|exception|traceback|\bfailed\b|\bfailure|\bfailures\b|undefined|\bcannot\b|"
    r"could not|not found|\bpanic|\*\* \(|✗|✘|\bFAIL\b|denied|invalid|unexpected|no such|warning:)"
)
#: error lines in the output of a command that did not report failure: stricter
_STRICT_ERROR_LINE = re.compile(
    r"(?m)^[ \t]*(?:\*\* \(|error\b|fatal\b|FAIL(?:ED)?\b|failed\b|traceback\b|panic|E[ \t]{2,}|\w+(?:Error|Exception)\b)|"
    r"(?i:\berror:|: error\b|\bwarning:|\btests? failed|\b[1-9]\d* (?:failures?|errors?)\b)"
)
_SHELLS = frozenset({"bash", "shell", "run", "execute_command", "terminal", "run_command", "exec", "command", "sh"})
#: literal prefilters (fast to scan for) of the patterns around them
_PRE_ERROR = re.compile(r"error|exception|traceback|fail|undefined|cannot|could not|not found|panic|\*\* \(|✗|✘|denied|invalid|unexpected|no such|warning:")
_PRE_STRICT = re.compile(r"error|exception|fail|fatal|traceback|panic|\*\* \(|warning:|e  |e\t")
_PRE_TEST = re.compile(r"test|pass|fail|error|doctest|example|=====")
_PRE_OPEN = re.compile(r"todo|pending|in[_ ]progress|ready|blocked|remaining|open|not |\[ \]|next|still|left to|unresolved")
_TEST_RESULT = re.compile(
    r"(?i)(\b\d+ (tests?|passed|failed|failures?|errors?|doctests?|examples?)(?![\w/.-])|\ball tests pass|\btests? (passed|failed)\b|"
    r"\bok\b.*\d+ tests?|=+ .*(passed|failed).* =+)"
)
_DECISION = re.compile(
    r"(?i)\b(instead|decid\w*|chose|choos\w*|rather than|should(?:n't| not)?|must(?:n't| not)?|"
    r"never|always|don't|do not|won't|avoid|prefer\w*|constraint|require[sd]?|because|so that|false positive|"
    r"the (?:fix|issue|problem|cause|root cause) (?:is|was)|the real issue|turns out|works? around|workaround)\b"
)
_OPEN = re.compile(
    r"(?i)(\btodo\b|\bpending\b|\bin[_ ]progress\b|\bready\b|\bblocked\b|\bremaining\b|\bopen\b|\bnot (?:yet )?(?:done|committed|fixed)|"
    r"\[ \]|\bnext\b|\bstill\b|\bleft to\b|\bunresolved\b)"
)
_FUTURE = re.compile(
    r"(?i)(\bnext\b|\blet me\b|\bi'll\b|\bi will\b|\bnow (?:i|we|let)\b|\bthen (?:i|we)\b|\bshould\b|\bneed to\b|\bgoing to\b|\bremaining\b|\bcontinue\b|\bafter that\b)"
)
_DEFINITION = re.compile(
    r"^\s*(def|defp|defmacro|defmodule|defstruct|class|function|async function|fn|func|module|interface|type|struct|enum|impl|"
    r"const|let|var|export|import|from|use|alias|require|config|@spec|@type|@callback|public|private|protected|static|"
    r"#\s*\w|\w+\s*[:=]\s)"
)
_TASK_REF = r"([A-Za-z][A-Za-z0-9]*-[A-Za-z0-9]+(?:\.\d+)*|#\d+)"
#: a task id said to be closed: `bd close X`, `✓ Closed X`, `X is done`, `X --status closed`, `mark X as done`
#: (group 1: the verb, group 2: the id)
_CLOSED_BEFORE_ID = re.compile(
    r"(?i)\b(close[ds]?|closing|resolve[ds]?|finish(?:e[ds])?|complete[ds]?|mark(?:ed)? (?:as )?(?:done|complete[d]?|closed))"
    r"[\s*`:]+(?:(?:task|issue|bead|ticket)\s+)?" + _TASK_REF
)
#: starts only where a token starts (unanchored, the scan tried every character of a long
#: alphanumeric run and read to its end each time: quadratic, 6.5 s for 40,000 letters)
_CLOSED_AFTER_ID = re.compile(
    r"(?<![A-Za-z0-9_.#-])" + _TASK_REF + r"[*`]*:?\s+(?:(?:is|was|has been|are|now|as)\s+)*(?:--status[= ])?(?:closed|done|complete[d]?|finished|resolved)\b",
    re.IGNORECASE,
)
#: in text (not a command), a close is a fact only in the past tense: "close X" / "closing X" is a plan
_PAST_CLOSE_VERB = re.compile(r"(?i)^(?:closed|resolved|finished|completed|marked\b.*)$")
#: before a close in its clause: it did not happen (negated, conditional, planned, asked)
_NOT_A_CLOSE_BEFORE = re.compile(
    r"(?i)(?:\bnot\b|n't\b|\bnever\b|\bcannot\b|\bunable\b|\bfail(?:ed|s)? to\b|\bno longer\b|"
    r"\bif\b|\bwhen(?:ever)?\b|\bonce\b|\buntil\b|\bunless\b|\bbefore\b|\bafter\b|\bwhether\b|"
    r"\bwill\b|'ll\b|\bgoing to\b|\bneeds? to\b|\bshould\b|\bmust\b|\bwants? to\b|\bplan(?:s|ning)? to\b|"
    r"\babout to\b|\bready to\b|\blet me\b|\blet's\b|\bcan\b|\bcould\b|\bwould\b|\bmight\b|\bto be\b|"
    r"^\W*(?:is|are|was|were|has|have|did|does|do)\b)"
)
#: after a close in its clause: a question, or not yet
_NOT_A_CLOSE_AFTER = re.compile(r"(?i)\?|\byet\b|\bnot\b|\blater\b|\bnext\b|\bonce\b|\bwhen\b|\bif\b")
#: where a clause ends: sentence punctuation followed by a space, a newline
_CLAUSE_END = re.compile(r"[.!?;](?=\s|$)|\n|,\s+(?:but|and|so|then)\b")
#: a final message that says the work is finished: nothing is pending after it
_ALL_DONE = re.compile(
    r"(?im)^[^\w\n]*(?:all (?:done|set|finished|complete)|everything(?:'s| is) (?:done|complete|finished))\b|"
    r"\b(?:all|every) (?:the )?(?:tasks?|work|items?|steps?|subtasks?) (?:is |are |have been )?(?:now )?(?:done|complete[d]?|finished|closed)\b|"
    r"\bnothing (?:left|remaining|more) to do\b"
)
#: right after "all done" in its clause: it is not the whole work (``All done with step 1``,
#: ``... except the migration``, ``All set up``), or a question
_NOT_ALL_DONE_AFTER = re.compile(
    r"(?i)^\s*(?:with|for|on|in|up|to|here|there|apart)\b|\bexcept\b|\bbut\b|\bapart from\b|\bother than\b|"
    r"\bbesides\b|\bsave for\b|\bexcluding\b|\bonly\b|\?|\byet\b|\bnot\b"
)
#: after "all done": work still ahead (then it was not all done)
_STILL_TO_DO = re.compile(
    r"(?i)\b(?:next|let me(?! know)|let's|i'll|i will|we'll|we will|i'm going to|going to|needs? to|have to|still|remain\w*|"
    r"todo|pending|in[_ ]progress|blocked|open|not (?:yet )?(?:done|finished|complete[d]?|closed|fixed)|left to|unresolved|"
    r"follow[- ]up|then i|now i|now let)\b|\[ \]"
)
_PRE_CLOSED = re.compile(r"(?i)clos|done|complete|finish|resolve")
#: a line that only wraps output (mini-swe-agent's `<returncode>1</returncode>`, `<output>`)
_WRAPPER_TAG = re.compile(r"^\s*</?\w+>(?:-?\d*</\w+>)?\s*$")
_CMD_NAME = re.compile(r"<command-name>\s*(/?[^<\s]+)\s*</command-name>")
_CMD_ARGS = re.compile(r"<command-args>(.*?)</command-args>", re.DOTALL)
_NOT_TYPED = ("<local-command-stdout>", "<local-command-caveat>", "<local-command-stderr>", "[Request interrupted")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*\"'(\[])")
_LIST_MARK = re.compile(r"^(?:[-*+]\s+|#{1,6}\s+|\d+[.)]\s+)+")


def matching_lines(pat: re.Pattern[str], text: str, pre: re.Pattern[str] | None = None, low: str | None = None) -> list[str]:
    """The lines of ``text`` holding a match of ``pat``, in order, each once. ``pre``, a
    cheap lower-case literal pattern that every match of ``pat`` contains, finds the lines
    to check, scanning ``low`` (``text.lower()``, same length) when given."""
    out: list[str] = []
    last_start = -1
    if pre is None:
        scan = pat.finditer(text)
    elif low is not None and len(low) == len(text):
        scan = pre.finditer(low)
    else:
        scan = re.compile(pre.pattern, re.IGNORECASE).finditer(text)
    for m in scan:
        start = text.rfind("\n", 0, m.start()) + 1
        if start == last_start:
            continue
        last_start = start
        end = text.find("\n", m.end())
        line = text[start : end if end >= 0 else len(text)].rstrip("\r")
        if pre is None or pat.search(line):
            out.append(line)
    return out


def clip_line(line: str, limit: int = MAX_LINE_CHARS) -> str:
    """A line cut to ``limit`` characters (at a space if one is near), marked with ``ELLIPSIS``."""
    line = line.rstrip()
    if len(line) <= limit:
        return line
    cut = line.rfind(" ", int(limit * 0.7), limit)
    return line[: cut if cut > 0 else limit].rstrip() + ELLIPSIS


@dataclass
class Candidate:
    section: str
    #: the verbatim piece of the transcript
    text: str
    #: the label shown before it (``[error Bash]``), or "" (labels are not transcript text)
    label: str
    #: event index (order in the transcript)
    event: int
    prior: float
    names: frozenset[str] = frozenset()
    tokens: int = 0
    #: lines of one file are shown under that file's entry
    group: str | None = None
    #: always shown (the user's messages)
    forced: bool = False
    indent: bool = False
    #: the deletion model's percentile rank, once computed
    rank: float | None = None
    #: order among the candidates taken from one event (its lines in transcript order)
    seq: int = 0

    @property
    def position(self) -> tuple[int, int]:
        """Where the line stands in the transcript: event, then line within the event."""
        return (self.event, self.seq)

    def render(self) -> str:
        """The line as shown: a bullet (``- [label] text``) or, for a file's lines, indented.
        A text of several lines keeps them, each indented under the first (a bare newline
        would end the list)."""
        first, *more = [ln for ln in self.text.strip().splitlines() if ln.strip()] or [self.text]
        rest = [f"  {clip_line(ln.strip())}" for ln in more[:MAX_RENDERED_LINES]]
        if len(more) > MAX_RENDERED_LINES:
            rest.append("  […]")
        body = clip_line(first)
        if self.indent:
            return "\n".join(["    " + body.strip()] + ["  " + ln for ln in rest])
        body = _LIST_MARK.sub("", body.strip()) or body
        head = f"- [{self.label}] {body.strip()}" if self.label else f"- {body.strip()}"
        return "\n".join([head] + rest)


@dataclass
class Request:
    event: int
    #: the message as typed (slash commands: ``/name args``)
    text: str
    #: the verbatim pieces it is made of, and a label for the command, if any
    label: str = ""


@dataclass
class FileFact:
    path: str
    reasons: list[str] = field(default_factory=list)
    edits: int = 0
    reads: int = 0
    mentions: int = 0
    failures: int = 0
    last_event: int = 0
    score: float = 0.0


@dataclass
class SessionFacts:
    transcript: Transcript
    requests: list[Request]
    files: list[FileFact]
    #: files the session changed (Edit / Write / ...), display form
    edited: list[str]
    weights: dict[str, float]
    candidates: list[Candidate]
    todos: list[tuple[str, str]]
    last_assistant: int | None
    n_events: int


def _rel(path: str, cwd: str | None) -> str:
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return path


def _typed_user_message(e: Any) -> Request | None:
    if e.kind != "user" or e.is_meta:
        return None
    text = e.text.strip()
    if not text or text.startswith(_NOT_TYPED):
        return None
    m = _CMD_NAME.search(text)
    if m:
        args = _CMD_ARGS.search(text)
        a = args.group(1).strip() if args else ""
        return Request(event=0, text=(m.group(1) + (" " + a if a else "")), label=m.group(1))
    if text.startswith("<") and re.match(r"^<(system-reminder|bash-|task-notification|user-prompt-submit)", text):
        return None
    return Request(event=0, text=text)


def typed_requests(t: Transcript) -> list[Request]:
    """The messages a person typed, in order (cheap: no other analysis)."""
    out = []
    for i, e in enumerate(t.events):
        if e.kind == "user":
            r = _typed_user_message(e)
            if r is not None:
                r.event = i
                out.append(r)
    return out


#: what a line is wrapped in that is not its content: quote marks, list marks, heading marks, emphasis
_MARKUP_LEAD = re.compile(r"^(?:>\s*|[-*+]\s+|\d+[.)]\s+|#{1,6}\s+)*")
_CODE_CLOSERS = frozenset({"end", "do", "else", "{", "}", "});", "]", ")", "[", "(", "},", "],"})


_BOLD_LABEL = re.compile(r"^\*\*[^*]+:\*\*$|^\*\*[^*]+\*\*:$")


#: a markdown heading mark (``#41`` and ``#!/bin/bash`` are not headings)
_HEADING = re.compile(r"^#{1,6}\s")
#: Chinese, Japanese and Korean characters: each says about as much as a word
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CODE_CHARS = re.compile(r"[\d=<>+*/%&|^~!]")


def has_content(line: str) -> bool:
    """A line that says something: not blank markdown (a fence, a rule, a bare quote mark),
    not a lone code closer (``end``, ``}``), not a single bare word (``continue``; a numbered
    step such as ``1. Deploy`` is kept), not a bare label or short heading (``**Steps:**``,
    ``## Rabbit Holes``). A line of CJK text (no spaces between words) is content."""
    unquoted = line.strip().lstrip("> ").strip()
    bare = _MARKUP_LEAD.sub("", unquoted).strip()
    core = bare.strip("*_").strip()
    if not core or core.startswith(("```", "~~~")) or set(core) <= set("-*_=|: ") or core in _CODE_CLOSERS:
        return False
    if _BOLD_LABEL.match(bare) or (_HEADING.match(unquoted) and len(core.split()) <= 3):
        return False
    if len(_CJK.findall(core)) >= 2:
        return True
    alnum = sum(ch.isalnum() for ch in core)
    if len(core.split()) > 1:
        return alnum >= 2
    word = core.rstrip(":").strip("*_` ")
    if word.isalpha():
        return any(ch.isdigit() for ch in unquoted)  # a numbered step ("1. Deploy"), not a lone word
    return alnum >= 3 or (alnum >= 1 and bool(_CODE_CHARS.search(core)))


def _clause_around(text: str, start: int, end: int) -> tuple[str, str]:
    """The part of ``start``'s clause before it, and of ``end``'s clause after it (up to
    200 characters each way)."""
    lo = max(0, start - 200)
    before = text[lo:start]
    cuts = [m.end() for m in _CLAUSE_END.finditer(before)]
    before = before[cuts[-1] :] if cuts else before
    after = text[end : end + 200]
    m = _CLAUSE_END.search(after)
    if m is not None:
        after = after[: m.end()] if m.group(0).startswith("?") else after[: m.start()]
    return before, after


def closed_task_ids(text: str, *, command: bool = False) -> set[str]:
    """The task ids that ``text`` says are closed or done. In a ``command`` (``bd close X``,
    whose result the caller checks) any close counts; in text only a close stated as done:
    past tense (``Closed X``, ``X is done``), not negated, conditional, planned or asked
    (``Don't close X yet``, ``when X is complete``, ``Is X done?``)."""
    found: set[str] = set()
    for pat, verb_group, id_group in ((_CLOSED_BEFORE_ID, 1, 2), (_CLOSED_AFTER_ID, 0, 1)):
        for m in pat.finditer(text):
            x = m.group(id_group)
            if x in found or not is_task_id(x):
                continue
            if not command:
                if verb_group and not _PAST_CLOSE_VERB.match(m.group(verb_group)):
                    continue
                before, after = _clause_around(text, m.start(), m.end())
                if _NOT_A_CLOSE_BEFORE.search(before) or _NOT_A_CLOSE_AFTER.search(after):
                    continue
            found.add(x)
    return found


#: tool-input keys holding text the call writes or hands on (file contents, edits, a
#: sub-agent's prompt): what they say is no close, whatever words they hold
_WRITTEN_KEYS = frozenset({"old_string", "new_string", "content", "new_source", "old_str", "new_str",
                           "file_text", "edits", "prompt", "description", "todos"})


def _closing_text(name: str, inp: dict[str, Any]) -> str:
    """The part of a tool call that closes tasks once the call succeeds: a shell command
    (``bd close X``), the completed items of a todo list, or another tool's own arguments
    (a tracker's ``{"close": "X"}``); never text written into a file or handed to a sub-agent
    (``- [ ] Close PROJ-7 once ...`` in a Write, ``Don't close PROJ-8`` in an Edit)."""
    if isinstance(inp.get("command"), str) and name not in TEXT_EDITOR_TOOLS:
        return inp["command"]
    if isinstance(inp.get("todos"), list):
        return "\n".join(str(td.get("content", "")) for td in inp["todos"] if isinstance(td, dict) and td.get("status") == "completed")
    rest = {k: v for k, v in inp.items() if k not in _WRITTEN_KEYS}
    return json.dumps(rest, ensure_ascii=False, default=str) if rest else ""


def _command_failed(e: Any, text: str) -> bool:
    """A tool result saying its call failed or was refused: an error result, a rejection,
    or output that opens with / holds an error line."""
    if e.is_error or was_rejected(text):
        return True
    head = text[:4000]
    return head.lstrip().lower().startswith(("error", "fatal", "failed", "usage:")) or bool(_STRICT_ERROR_LINE.search(head))


def says_all_done(text: str) -> bool:
    """A final message that says all the work is finished (``All done.``, ``all tasks are
    complete``): said plainly (not ``Not all tasks are done yet``, ``Once all tasks are
    complete ...``, ``All done with step 1``, ``Everything is done except ...``, ``All set
    up``), and with nothing after it that looks ahead or names open work (``Now I'll start
    step 2``, ``PROJ-7 remains blocked``)."""
    for m in _ALL_DONE.finditer(text):
        before, after = _clause_around(text, m.start(), m.end())
        if _NOT_A_CLOSE_BEFORE.search(before) or _NOT_ALL_DONE_AFTER.search(after):
            continue
        rest = text[m.end() + len(after) :]
        if _STILL_TO_DO.search(rest):
            return False
        return True
    return False


def _settled(c: Candidate, closed_at: dict[str, int]) -> bool:
    """A pending candidate whose task ids were all closed after it was said."""
    ids = [n for n in c.names if is_task_id(n)]
    return bool(ids) and all(closed_at.get(x, -1) > c.event for x in ids)


#: how a harness says the user refused a tool call (Claude Code's text, its toolUseResult)
_REJECTED = ("The user doesn't want to proceed with this tool use", "User rejected tool use", "The user rejected")


def was_rejected(result_text: str) -> bool:
    """A tool result saying the user refused the call: it never ran."""
    return result_text.lstrip().startswith(_REJECTED)


def _split_text(text: str) -> list[str]:
    """Lines of a message that have content (``has_content``); long lines split into
    sentences (each piece is verbatim)."""
    out: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if not has_content(s):
            continue
        if len(s) > 300:
            out.extend(p.strip() for p in _SENTENCE_END.split(s) if p.strip())
        else:
            out.append(s)
    return out


def analyze(t: Transcript, *, history_end: int | None = None) -> SessionFacts:
    """Read the structure of ``t``. Candidate lines come from events before
    ``history_end`` (the older history); requests, files and the end-of-session
    sections use the whole transcript."""
    events = t.events
    n = len(events)
    end = n if history_end is None else max(0, min(n, history_end))
    cwd = t.cwd

    requests: list[Request] = []
    files: dict[str, FileFact] = {}
    calls: dict[str, Any] = {}
    agent_names: Counter[str] = Counter()
    output_names: Counter[str] = Counter()
    cands: list[Candidate] = []
    todos: list[tuple[str, str]] = []
    todo_event = -1
    last_assistant: int | None = None
    closed_at: dict[str, int] = {}  # task id -> the latest event that closed it

    call_closes: dict[str, set[str]] = {}  # call id -> the task ids its command closes, once it succeeds

    def note_closed(text: str, i: int) -> None:
        if _PRE_CLOSED.search(text):
            for x in closed_task_ids(text):
                closed_at[x] = i

    def file(path: str, i: int) -> FileFact:
        key = _rel(path, cwd)
        f = files.get(key)
        if f is None:
            f = files[key] = FileFact(path=key)
        f.last_event = max(f.last_event, i)
        return f

    def add(section: str, text: str, label: str, i: int, prior: float, **kw: Any) -> None:
        if section in (CURRENT, PENDING):
            prior += 0.8 * (i / max(1, end)) ** 2  # what the session is doing now is at its end
        if i < end and text.strip():
            cands.append(Candidate(section, text, label, i, prior, **kw))

    fail_mentions: Counter[str] = Counter()
    last_result: tuple[int, str, str] | None = None  # the latest test-result line
    pending_error: tuple[int, str] | None = None  # (event, tool) of the last error awaiting the agent's reaction
    # calls the user refused: they never ran (no edit, no command, no current work)
    rejected_calls = {
        e.tool_use_id for e in events if e.kind == "tool_result" and e.is_error and was_rejected(e.text or "")
    }
    for i, e in enumerate(events):
        k = e.kind
        if k == "user":
            r = _typed_user_message(e)
            if r is not None:
                r.event = i
                requests.append(r)
                agent_names.update(extract_names(r.text))
                body = r.text[len(r.label) :].strip() if r.label else r.text
                for piece in _split_text(body):
                    if _DECISION.search(piece):
                        add(DECISIONS, piece, "user", i, 1.2)
                for p in extract_names(r.text):
                    if looks_like_file(p):
                        file(p, i).mentions += 1
        elif k == "assistant":
            if getattr(e, "model", None) == "<synthetic>":  # Claude Code's own notices ("Prompt is too long")
                continue
            if not e.text.strip():  # a blank text block (Claude Code 2.1 writes one before thinking) says nothing
                continue
            last_assistant = i
            note_closed(e.text, i)
            names = extract_names(e.text)
            agent_names.update(names)
            for p in names:
                if looks_like_file(p):
                    file(p, i).mentions += 1
            after_error = pending_error is not None and i - pending_error[0] <= 8
            for j, piece in enumerate(_split_text(e.text)):
                pn = frozenset(extract_names(piece))
                decision = bool(_DECISION.search(piece))
                if after_error and j < 3:
                    add(ERRORS, piece, "fix", i, (0.8 if decision else 0.3) - 0.2 * j, names=pn)
                if decision:
                    add(DECISIONS, piece, "", i, 0.5 if pn else 0.1, names=pn)
                if _OPEN.search(piece):
                    add(PENDING, piece, "", i, 0.2 if pn else -0.3, names=pn)
                add(CURRENT, piece, "", i, 0.0, names=pn)
            if after_error:
                pending_error = None
        elif k == "tool_call":
            calls[e.id] = e
            inp = e.input if isinstance(e.input, dict) else {}
            call_text = tool_input_text(e.name, inp)
            agent_names.update(extract_names(call_text))
            closing = _closing_text(e.name, inp)
            if _PRE_CLOSED.search(closing):
                call_closes[e.id] = closed_task_ids(closing, command=True)
            if e.id in rejected_calls:
                continue
            fp = inp.get("file_path") or inp.get("path") or inp.get("notebook_path")
            action = file_action(e.name, inp) if isinstance(fp, str) else None
            if action in ("edit", "write"):
                f = file(fp, i)
                f.edits += 1
                if action == "write" and f.reads == 0 and f.edits == 1:
                    f.reasons.append("written")
                rel = f.path
                new_texts: list[str] = []
                for key in ("new_string", "content", "new_source", "new_str", "file_text"):
                    if isinstance(inp.get(key), str):
                        new_texts.append(inp[key])
                for ed in inp.get("edits") or []:
                    if isinstance(ed, dict) and isinstance(ed.get("new_string"), str):
                        new_texts.append(ed["new_string"])
                old_lines: set[str] = set()
                for key in ("old_string", "old_str"):
                    if isinstance(inp.get(key), str):
                        old_lines.update(x.strip() for x in inp[key].splitlines())
                for ed in inp.get("edits") or []:
                    if isinstance(ed, dict) and isinstance(ed.get("old_string"), str):
                        old_lines.update(x.strip() for x in ed["old_string"].splitlines())
                first_change = True
                for txt in new_texts:
                    for line in txt.splitlines():
                        s = line.strip()
                        if len(s) < 4 or s in ("end", "do", "{", "}", "});", "]", ")", "else"):
                            continue
                        ln_names = extract_names(s)
                        prior = (0.35 if _DEFINITION.match(line) else 0.0) - (0 if ln_names else 0.3)
                        if s in old_lines:
                            prior -= 0.4  # context the edit kept, not what it changed
                        elif first_change:
                            prior += 0.6  # the first changed line says what the edit did
                            first_change = False
                        else:
                            prior += 0.2
                        add(FILES, line, "", i, prior, names=frozenset(ln_names), group=rel, indent=True)
            elif action == "read":
                file(fp, i).reads += 1
            elif e.name == "TodoWrite" and isinstance(inp.get("todos"), list):
                todo_event = i
                todos = [
                    (str(td.get("status", "")), str(td.get("content", "")))
                    for td in inp["todos"]
                    if isinstance(td, dict) and td.get("content")
                ]
            if isinstance(inp.get("command"), str) and e.name not in TEXT_EDITOR_TOOLS:  # an editor's command is `view`, `create`, ...
                cmd = inp["command"].strip().splitlines()[0] if inp["command"].strip() else ""
                if cmd:
                    add(CURRENT, cmd, e.name, i, 0.1, names=frozenset(extract_names(cmd)))
        elif k == "tool_result":
            call = calls.get(e.tool_use_id)
            tool = e.tool_name or (call.name if call else "tool")
            text = e.text or ""
            names = extract_names(text) if len(text) < 200_000 else extract_names(text[:200_000])
            output_names.update(names)
            head = text[:400_000]
            low = head.lower()
            closes = call_closes.pop(e.tool_use_id, None)
            if closes and not _command_failed(e, text):
                for x in closes:
                    closed_at[x] = i
            note_closed(head, i)
            lines = head.splitlines() if e.is_error else []
            pat, pre = (_ERROR_LINE, _PRE_ERROR) if e.is_error else (_STRICT_ERROR_LINE, _PRE_STRICT)
            err_lines = [ln for ln in matching_lines(pat, head, pre, low) if len(ln.strip()) > 3]
            is_shell = str(tool).lower() in _SHELLS or (
                call is not None and call.name not in TEXT_EDITOR_TOOLS and isinstance(call.input.get("command"), str)
            )
            rejected = e.is_error and was_rejected(text)
            if e.is_error or (is_shell and err_lines and len(err_lines) <= 40):
                pending_error = (i, tool)
                shown = 0
                firsts = [ln for ln in lines if ln.strip() and not _WRAPPER_TAG.match(ln)][:2] if e.is_error else []
                if file_action(str(tool), call.input if call is not None else {}) or tool in EDIT_TOOLS or tool in ("Read", "NotebookRead"):
                    # an edit's error quotes the text it looked for: only its first line is the error
                    firsts, err_lines = firsts[:1], []
                for ln in firsts + [x for x in err_lines if x not in firsts]:
                    if shown >= 6:
                        break
                    shown += 1
                    add(
                        ERRORS,
                        ln,
                        f"{'rejected' if rejected else 'error'} {tool}",
                        i,
                        (1.0 if e.is_error else 0.5) - 0.1 * shown,
                        names=frozenset(extract_names(ln)),
                    )
                    for p in extract_names(ln):
                        if "/" in p and looks_like_file(p):
                            fail_mentions[_rel(p, cwd)] += 1
                if call is not None and isinstance(call.input, dict):
                    fp = call.input.get("file_path")
                    if isinstance(fp, str) and e.is_error and not rejected:
                        file(fp, i).failures += 1
                    cmd = call.input.get("command") if call.name not in TEXT_EDITOR_TOOLS else None
                    if isinstance(cmd, str) and cmd.strip():
                        label = "rejected command, not run" if rejected else "failed command"
                        add(ERRORS, cmd.strip().splitlines()[0], label, i, 0.3)
            for ln in matching_lines(_TEST_RESULT, head, _PRE_TEST, low)[:50]:
                if len(ln.strip()) >= 4:
                    add(ERRORS, ln, f"result {tool}", i, 0.3, names=frozenset(extract_names(ln)))
                    if i < end:
                        last_result = (i, ln, tool)
            file_view = tool in ("Read", "NotebookRead", "Grep", "Glob", "WebFetch", "WebSearch", "LS") or tool in TEXT_EDITOR_TOOLS
            for ln in [] if file_view else matching_lines(_OPEN, head, _PRE_OPEN, low)[:200]:
                ln_names = frozenset(extract_names(ln)) if len(ln.strip()) >= 4 else frozenset()
                if ln_names:
                    add(PENDING, ln, f"{tool} output", i, -0.1, names=ln_names)
        elif k == "compact_summary":
            for piece in _split_text(e.text):
                add(CURRENT, piece, "earlier summary", i, -0.6, names=frozenset(extract_names(piece)))

    # weights of names: used by the agent (its words, its tool inputs, the user) count most
    weights: dict[str, float] = {}
    for name in set(agent_names) | set(output_names):
        w = math.log1p(agent_names.get(name, 0)) + 0.25 * math.log1p(output_names.get(name, 0))
        if agent_names.get(name, 0) == 0:
            w = min(w, 0.3)
        weights[name] = min(3.0, w)

    # files: score and reasons (a path in an error line counts only for files the session touched)
    for key, count in fail_mentions.items():
        f = files.get(key)
        if f is not None and (f.edits or f.reads):
            f.failures += count
    for f in files.values():
        reasons = []
        if f.edits:
            reasons.append("edited")
        if "written" in f.reasons:
            reasons.append("written")
        if f.failures:
            reasons.append("failing")
        if f.reads:
            reasons.append("read")
        if f.mentions and not reasons:
            reasons.append("mentioned")
        f.reasons = reasons
        recency = f.last_event / max(1, n)
        f.score = round(
            6.0 * min(f.edits, 5) ** 0.5 * (1 if f.edits else 0)
            + 3.0 * min(f.failures, 3) ** 0.5
            + 1.5 * min(f.reads, 4) ** 0.5
            + 0.5 * min(f.mentions, 9) ** 0.5
            + 2.0 * recency,
            3,
        )
    ranked = sorted(files.values(), key=lambda f: (-f.score, f.path))
    # a mentioned-only "file" must look like a real path (has a folder) to be kept
    ranked = [f for f in ranked if f.edits or f.reads or f.failures or ("/" in f.path and f.mentions >= 2)]
    edited = [f.path for f in ranked if f.edits]

    # user messages and the primary request
    for r in requests:
        body = r.text[len(r.label) :].strip() if r.label else r.text
        cands.append(Candidate(USERS, body or r.text, r.label or "", r.event, 10.0, forced=True))
    if requests:
        first = requests[0]
        body = first.text[len(first.label) :].strip() if first.label else first.text
        cands.append(Candidate(PRIMARY, body or first.text, first.label or "", first.event, 10.0, forced=True))

    # the latest test result is the current state: always worth its line
    if last_result is not None:
        i, ln, tool = last_result
        cands.append(Candidate(ERRORS, ln, f"latest result {tool}", i, 2.5, names=frozenset(extract_names(ln))))

    # pending: nothing the session closed later; after a final "all done", nothing said before it
    # of that work (lines naming no task, tasks closed or named in that message), but a task it
    # never closed nor named (another epic's, still in progress) stays
    final = events[last_assistant].text if last_assistant is not None else ""
    all_done = last_assistant is not None and says_all_done(final)
    named_at_end = {x for x in extract_names(final) if is_task_id(x)} if all_done else set()

    def of_finished_work(c: Candidate) -> bool:
        if not all_done or c.event > (last_assistant or 0):
            return False
        ids = [x for x in c.names if is_task_id(x)]
        return all(x in closed_at or any(x == y or x.startswith(y + ".") for y in named_at_end) for x in ids)

    cands = [c for c in cands if c.section != PENDING or not (_settled(c, closed_at) or of_finished_work(c))]
    # pending tasks from the last todo list
    if not (all_done and todo_event < (last_assistant or 0)):
        for status, content in todos:
            if status != "completed":
                cands.append(Candidate(PENDING, content, status or "todo", n, 3.0, names=frozenset(extract_names(content))))

    # next step: a request the agent has not answered (always shown), and the last agent
    # message's forward-looking lines (not its recap of what was done)
    if requests and (last_assistant is None or requests[-1].event > last_assistant):
        r = requests[-1]
        body = r.text[len(r.label) :].strip() if r.label else r.text
        label = "latest request" + (f" {r.label}" if r.label else "")
        cands.append(Candidate(NEXT, body or r.text, label, r.event, 5.0, forced=True))
    # (a plan whose tool call the user rejected is not the next step)
    refused = last_assistant is not None and any(
        ev.kind == "tool_call" and ev.id in rejected_calls for ev in events[last_assistant + 1 :]
    )
    if last_assistant is not None and not refused:
        pieces = [p for p in _split_text(events[last_assistant].text) if _FUTURE.search(p)]
        for j, piece in enumerate(pieces):
            cands.append(Candidate(NEXT, piece, "", last_assistant, 2.0 - 0.01 * j, names=frozenset(extract_names(piece))))

    for k, c in enumerate(cands):  # the lines of one event were proposed in their order
        c.seq = k
    return SessionFacts(
        transcript=t,
        requests=requests,
        files=ranked,
        edited=edited,
        weights=weights,
        candidates=cands,
        todos=todos,
        last_assistant=last_assistant,
        n_events=n,
    )


def request_body(r: Request) -> str:
    return r.text[len(r.label) :].strip() if r.label else r.text


def unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def short_path(path: str) -> str:
    return path if len(path) < 120 else "…" + path[-110:]

