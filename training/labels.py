"""Per-line "used" labels distilled from what real coding agents did after a tool call.

A tool output line is *used* when its distinctive content (paths, ``file:line``,
identifiers, error text, numbers) reappears in what the agent did LATER: its
thoughts, its commands (including the edit scripts it wrote) and its final patch.
Tokens are weighted by rarity across all tool outputs (IDF), so common tokens prove
nothing. See docs/labels.md for the rules, the traps handled and a hand-check.

Pipeline: ``read_*`` turn each source into :class:`Trajectory` objects (agent text
and tool calls in order, plus the final patch); :class:`DocFreq` counts in how many
tool outputs each word occurs; :func:`label_trajectory` yields one
:class:`Example` per tool output.

Evidence per line (``evidence`` >= ``THRESHOLD`` means used):

* words: every distinct word of the line (identifier >= 3 chars, number >= 3 digits)
  found in the later agent text contributes ``idf * discounts``; contributions are
  combined with decaying weights (1, 1/2, 1/4, ...) so that one rare word counts
  most and many common ones cannot add up to much. Discounts: a word of the command
  that produced the output counts 0 (a grep pattern is on every hit line); a word of
  the task or of the preceding thought counts half (the agent knew it already); a
  word on k lines of this output counts 1/(1+(k-1)/4) (shared path prefixes,
  project-wide names); numbers count half.
* quotes: the line (whitespace-collapsed, >= 20 chars, at least one rare word) occurs
  verbatim in a later action or among the +/- lines of the final patch.
* line references: the line carries a line number (``12:``, ``12→``, ``path:12:``,
  Aider's ``12│``) or comes from a view of a known file range, and the agent later
  refers to that line of that file (``sed -n '10,20p' f``, ``f.py:12``, ``line 12``,
  ``sed -i '12s/..'``, a patch hunk that removes it, a Read with offset/limit).
* whole-file rewrites: a later action that repeats >= 40 % (and >= 8) of this output's
  non-trivial lines verbatim is a bulk copy and is left out of the evidence for this
  output (the final patch's changed lines still count). Patch context lines never count.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import tarfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from compaction import agent_query
from compaction._query import without_earlier, without_thought  # noqa: F401  (training and evaluation use them from here)

__all__ = [
    "THRESHOLD",
    "VAL_REPOS",
    "ToolCall",
    "Trajectory",
    "Example",
    "DocFreq",
    "read_mini_swe",
    "read_aider",
    "aider_trajectory",
    "read_openhands",
    "read_claude_code",
    "read_all",
    "split_of",
    "label_trajectory",
    "line_features",
    "words",
]

#: evidence needed for label 1
THRESHOLD = 0.9
#: factor for a word found in the agent's very next message or in the final patch's changed lines
NEXT_BOOST = 1.25
#: weight of a plain (non-identifier) word found only in the agent's later prose
PROSE_WEIGHT = 0.35
#: a line found verbatim in at least this many tool outputs, with no rare word
#: (idf < 0.6), is boilerplate (``def deconstruct(self):``): quoting it proves nothing
GENERIC_LINE_DF = 15
#: repositories (in every source) that form the validation split
VAL_REPOS = frozenset({"sympy/sympy", "sphinx-doc/sphinx"})

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)*")
_WS = re.compile(r"\s+")
# line-number prefixes of file views: "  12\t", "12:", "   12→", Aider's "12│"/"12█", "12|"
_LNUM = re.compile(r"^\s*(\d{1,6})(?:\t|:|→|│|█|\s*\|)\s?")
# grep -n hits: "path/to/file.py:123:content" or "path:123-context"
_GREP = re.compile(r"^(\.?/?[\w.\-/]+\.[A-Za-z0-9_]+|[\w.\-]+/[\w.\-/]+):(\d{1,6})[:\-]")
_PATH = re.compile(r"(?:[\w.\-]+/)*[\w\-]+\.[A-Za-z][A-Za-z0-9_]{0,8}\b")


# ----------------------------------------------------------------------------- records
@dataclass
class ToolCall:
    thought: str
    command: str
    output: str
    #: files the command names (for views with line numbers)
    files: tuple[str, ...] = ()
    #: (first line, last line) of the file shown, when the command is a known range view
    view_range: tuple[int, int] | None = None


@dataclass
class Trajectory:
    source: str
    id: str
    repo: str
    task: str
    #: in order: ("agent", text) or ("tool", ToolCall)
    events: list[tuple[str, object]] = field(default_factory=list)
    #: final patch (unified diff) or "" when there is none
    patch: str = ""


@dataclass
class Example:
    id: str
    source: str
    repo: str
    query: str
    lines: list[str]
    labels: list[int]
    weights: list[float]
    soft: list[float]
    #: index of the tool call in its trajectory
    step: int


def words(text: str) -> list[str]:
    """Lower-cased distinctive words: identifiers of >= 3 chars, numbers of >= 3 chars."""
    out = []
    for w in _WORD.findall(text):
        if len(w) >= 3:
            out.append(w.lower())
    return out


def code_words(text: str) -> set[str]:
    """The lower-cased words of ``text`` that look like code rather than prose: they hold
    an underscore or a digit, or a capital letter after the first character."""
    out = set()
    for w in _WORD.findall(text):
        if len(w) >= 3 and ("_" in w or any(c.isdigit() for c in w) or any(c.isupper() for c in w[1:])):
            out.add(w.lower())
    return out


_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_TICK = re.compile(r"`[^`\n]+`")


def split_prose(text: str) -> tuple[str, str]:
    """(code, prose) parts of an agent message: fenced blocks and `backticked` spans are
    code, the rest is prose."""
    code = [m.group(0) for m in _FENCE.finditer(text)]
    rest = _FENCE.sub(" ", text)
    code += [m.group(0) for m in _TICK.finditer(rest)]
    rest = _TICK.sub(" ", rest)
    code += [p for p in _PATH.findall(rest) if "/" in p]  # paths named in prose
    return "\n".join(code), rest


def repo_of_instance(instance_id: str) -> str:
    # "django__django-11099" -> "django/django"
    return instance_id.rsplit("-", 1)[0].replace("__", "/", 1)


def split_of(repo: str) -> str:
    return "val" if repo in VAL_REPOS else "train"


# ----------------------------------------------------------------------------- commands
_SED_RANGE = re.compile(r"sed\s+-n\s+['\"]?(\d+)(?:\s*,\s*(\d+))?p['\"]?")
_HEAD = re.compile(r"head\s+-(?:n\s*)?(\d+)")


def _command_view(command: str) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """Files named by a shell command and, for ``sed -n 'A,Bp' f`` / ``cat f`` / ``head``
    views of a single file, the line range shown."""
    files = tuple(dict.fromkeys(p for p in _PATH.findall(command) if "/" in p or "." in p))
    rng = None
    if len(files) == 1 and "|" not in command.replace("| sed", "").replace("|sed", ""):
        m = _SED_RANGE.search(command)
        if m:
            a = int(m.group(1))
            rng = (a, int(m.group(2) or a))
        elif re.match(r"^\s*(cat|nl\s+-ba|cat\s+-n)\s+\S+\s*$", command):
            rng = (1, 10**9)
        else:
            h = _HEAD.search(command)
            if h and command.strip().startswith("head"):
                rng = (1, int(h.group(1)))
    return files, rng


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1].lower()


# ----------------------------------------------------------------------------- readers
_BASH = re.compile(r"```(?:bash|sh)?\s*\n(.*?)\n?```", re.S)
_MSWE_OUT = re.compile(r"^<returncode>-?\d+</returncode>\n<output>\n?(.*)</output>\s*$", re.S)
_MSWE_ELIDED = re.compile(r"<output_head>\n?(.*?)</output_head>.*?<output_tail>\n?(.*?)</output_tail>", re.S)


def _mswe_task(content: str) -> str:
    m = re.search(r"<pr_description>(.*?)</pr_description>", content, re.S)
    text = m.group(1) if m else content
    return text.replace("Consider the following PR description:", "", 1).strip()


def read_mini_swe(path: Path) -> Iterator[Trajectory]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for raw in f:
            t = json.loads(raw)
            ms = t["messages"]
            iid = t["instance_id"]
            traj = Trajectory("mini-swe-agent", iid, repo_of_instance(iid), _mswe_task(ms[1]["content"]))
            traj.patch = (t.get("info") or {}).get("submission") or ""
            for i in range(2, len(ms)):
                m = ms[i]
                content = m.get("content") or ""
                if m["role"] == "assistant":
                    traj.events.append(("agent", content))
                    continue
                if m["role"] != "user" or not content.startswith("<returncode>"):
                    continue  # format errors, timeouts, the final diff
                prev = ms[i - 1]["content"] if ms[i - 1]["role"] == "assistant" else ""
                blocks = _BASH.findall(prev)
                if len(blocks) != 1:
                    continue
                command = blocks[0].strip()
                thought = _BASH.split(prev)[0].replace("THOUGHT:", "", 1).strip()
                m_out = _MSWE_OUT.match(content)
                if m_out:
                    out = m_out.group(1)
                else:
                    m_el = _MSWE_ELIDED.search(content)
                    if not m_el:
                        continue
                    head, tail = m_el.group(1), m_el.group(2)
                    out = head.rstrip("\n") + "\n" + tail
                files, rng = _command_view(command)
                if not m_out:
                    rng = None  # the middle was elided: output lines no longer map to file lines
                traj.events.append(("tool", ToolCall(thought, command, out, files, rng)))
            yield traj


_AIDER_SKIP = re.compile(
    r"^(\d[\d,]* prompt tokens|Attempt to fix lint errors\?|Add these files to the chat\?|"
    r"Allow creation of new file|Allow edits to |Attempt to fix test errors\?|Only \d+ reflections allowed|Applied edit to |Commit [0-9a-f]{6,}|Git repo:|Repo-map:|Aider v|Models?:|Warning: For large repos)"
)


def _aider_blocks(md: str) -> Iterator[tuple[str, list[str]]]:
    """Yield ("agent", text) and ("tool", lines) in order. Tool blocks are the ``> ``
    lines (prefix and Aider's two trailing spaces stripped)."""
    agent: list[str] = []
    tool: list[str] = []
    for line in md.split("\n"):
        if line.startswith(">"):
            if agent:
                yield "agent", agent
                agent = []
            body = line[2:] if line.startswith("> ") else line[1:]
            tool.append(body.rstrip(" "))
        else:
            if tool:
                yield "tool", tool
                tool = []
            if line.startswith("# aider chat started"):
                continue
            agent.append(line)
    if tool:
        yield "tool", tool
    if agent:
        yield "agent", agent


def aider_trajectory(iid: str, md: str, result: dict | None = None) -> Trajectory:
    """One Aider chat history (``<instance_id>.md``) and its result JSON as a trajectory."""
    result = result or {}
    task_lines = [l[5:].rstrip() for l in md.split("\n") if l.startswith("#### ")]
    # the issue text of the first attempt (attempts repeat it)
    attempts = max(1, md.count("# aider chat started"))
    task = "\n".join(task_lines[: max(1, len(task_lines) // attempts)])
    traj = Trajectory("aider", iid, repo_of_instance(iid), task.strip())
    traj.patch = result.get("model_patch") or ""
    last_agent = ""
    for kind, block in _aider_blocks(md):
        if kind == "agent":
            text = "\n".join(l for l in block if not l.startswith("#### "))
            if text.strip():
                traj.events.append(("agent", text))
                last_agent = text
            continue
        body = [l for l in block if not _AIDER_SKIP.match(l)]
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        if len(body) < 2:
            continue
        command = ""
        for l in body:
            for prefix in ("## Running:", "Test Script:"):
                if l.startswith(prefix):
                    command = l[len(prefix) :].strip()
            if command:
                break
        files, _ = _command_view(command)
        thought = last_agent.strip()[-1500:]
        traj.events.append(("tool", ToolCall(thought, command, "\n".join(body), files, None)))
    return traj


def read_aider(tar_path: Path) -> Iterator[Trajectory]:
    with tarfile.open(tar_path) as tf:
        members = {m.name.split("/")[-1]: m for m in tf if "__" in m.name}
        for name in sorted(members):
            if not name.endswith(".md"):
                continue
            iid = name[:-3]
            md = tf.extractfile(members[name]).read().decode("utf-8", "replace")
            res = json.load(tf.extractfile(members[iid + ".json"])) if iid + ".json" in members else {}
            yield aider_trajectory(iid, md, res)


def _oh_patch(run: dict) -> str:
    return (run.get("test_result") or {}).get("git_patch") or run.get("git_patch") or ""


def read_openhands(tar_path: Path) -> Iterator[Trajectory]:
    with tarfile.open(tar_path) as tf:
        for member in ("openhands-examples/multi_swe_bench/output.jsonl", "openhands-examples/resolver_mock_output/output.jsonl"):
            for raw in tf.extractfile(member).read().decode("utf-8").splitlines():
                if not raw.strip():
                    continue
                run = json.loads(raw)
                iid = str(run.get("instance_id") or run.get("number") or "resolver")
                inst = run.get("instance") or {}
                repo = inst.get("repo") or (iid.rsplit("-", 1)[0].replace("__", "/") if "__" in iid else "openhands/" + iid)
                if "org" in inst and "repo" in inst:
                    repo = f"{inst['org']}/{inst['repo']}"
                task = inst.get("problem_statement") or run.get("instruction") or ""
                if isinstance(run.get("issue"), dict):
                    task = task or (run["issue"].get("title", "") + "\n" + run["issue"].get("body", ""))
                traj = Trajectory("openhands", f"{repo}#{iid}", repo, str(task))
                traj.patch = _oh_patch(run)
                history = run.get("history") or []
                actions: dict[object, dict] = {}
                last_action: dict | None = None
                for ev in history:
                    if isinstance(ev, list):  # very old format: [action, observation]
                        continue
                    if "action" in ev and "observation" not in ev:
                        args = ev.get("args") or ev
                        thought = args.get("thought") or ""
                        cmd = args.get("command") or args.get("code") or args.get("path") or ""
                        code = "\n".join(str(x) for x in (cmd, args.get("content") or "", args.get("old_str") or "", args.get("new_str") or "") if x)
                        text = thought + ("\n```\n" + code + "\n```" if code else "")
                        if text.strip():
                            traj.events.append(("agent", text))
                        last_action = {"thought": thought, "command": str(cmd)}
                        if "id" in ev:
                            actions[ev["id"]] = last_action
                    elif "observation" in ev:
                        if ev["observation"] not in ("run", "read", "run_ipython", "error", "edit"):
                            continue
                        act = actions.get(ev.get("cause")) or last_action or {"thought": "", "command": ""}
                        content = ev.get("content") or ""
                        if not isinstance(content, str) or not content.strip():
                            continue
                        files, rng = _command_view(act["command"])
                        traj.events.append(("tool", ToolCall(act["thought"], act["command"], content, files, rng)))
                yield traj


def _cc_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _cc_input_text(inp: dict) -> str:
    parts = []
    for k, v in inp.items():
        if isinstance(v, (str, int, float)) and k not in ("description", "run_in_background", "timeout"):
            parts.append(str(v))
    return "\n".join(parts)


def read_claude_code(folder: Path) -> Iterator[Trajectory]:
    files = sorted(folder.glob("*.jsonl")) + sorted(folder.glob("*/subagents/agent-a[0-9a-f]*.jsonl"))
    for path in files:
        recs = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                recs.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        traj = Trajectory("claude-code", path.stem, "marot/spotter", "")
        calls: dict[str, tuple[str, dict, str]] = {}
        pending_thought: list[str] = []
        task = ""
        for r in recs:
            if r.get("type") not in ("user", "assistant"):
                continue
            content = (r.get("message") or {}).get("content")
            if r["type"] == "user":
                if isinstance(content, str) or (
                    isinstance(content, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in content)
                ):
                    text = _cc_text(content)
                    if not r.get("isMeta") and not r.get("isCompactSummary") and not text.startswith("<") and "[Request interrupted" not in text:
                        task = text.strip()
                        if not traj.task:
                            traj.task = task
                    continue
                for b in content or []:
                    if not isinstance(b, dict) or b.get("type") != "tool_result":
                        continue
                    call = calls.get(b.get("tool_use_id"))
                    if call is None:
                        continue
                    name, inp, thought = call
                    out = _cc_text(b.get("content"))
                    if not out.strip():
                        continue
                    command = f"{name} " + json.dumps(inp, ensure_ascii=False)[:1000]
                    path_in = inp.get("file_path") or inp.get("path") or ""
                    files = (path_in,) if path_in else _command_view(str(inp.get("command", "")))[0]
                    rng = None
                    if name == "Read" and path_in:
                        off = int(inp.get("offset") or 1)
                        rng = (off, off + int(inp.get("limit") or 10**9) - 1)
                    tc = ToolCall(thought + ("\n\nTask: " + task if task and task != traj.task else ""), command, out, tuple(files), rng)
                    traj.events.append(("tool", tc))
                continue
            for b in content or []:
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "text" and b.get("text", "").strip():
                    traj.events.append(("agent", b["text"]))
                    pending_thought.append(b["text"])
                elif b.get("type") == "thinking" and b.get("thinking", "").strip():
                    traj.events.append(("agent", b["thinking"]))
                    pending_thought.append(b["thinking"])
                elif b.get("type") == "tool_use":
                    inp = b.get("input") or {}
                    traj.events.append(("agent", "```\n" + _cc_input_text(inp) + "\n```"))
                    calls[b.get("id")] = (b.get("name", "?"), inp, "\n".join(pending_thought)[-2000:])
                    pending_thought = []
        yield traj


def read_all(data: Path, *, claude_code: bool = True) -> Iterator[Trajectory]:
    tr = data / "trajectories"
    yield from read_mini_swe(tr / "mini-swe-agent-gemini3pro.jsonl.gz")
    yield from read_aider(tr / "aider-swebench-lite.tar.gz")
    yield from read_openhands(tr / "openhands-examples.tar.gz")
    if claude_code:
        yield from read_claude_code(data / "transcripts" / "claude-code")


# ----------------------------------------------------------------------------- features
@dataclass
class LineFeatures:
    text: str  # ANSI-stripped, line-number prefix removed
    norm: str  # whitespace collapsed, stripped
    words: list[str]
    lineno: int | None
    file: str | None  # basename of the file the line belongs to, when known


def line_features(lines: list[str], call: ToolCall) -> list[LineFeatures]:
    out = []
    single = _base(call.files[0]) if len(call.files) == 1 else None
    numbered = sum(1 for l in lines if _LNUM.match(l)) >= max(1, len(lines) // 2)
    for i, raw in enumerate(lines):
        text = _ANSI.sub("", raw)
        lineno = None
        file = None
        g = _GREP.match(text)
        if g:
            file, lineno = _base(g.group(1)), int(g.group(2))
            text = text[g.end() :]
        else:
            m = _LNUM.match(text) if numbered else None
            if m:
                lineno = int(m.group(1))
                text = text[m.end() :]
                file = single
            elif call.view_range and single:
                lineno = call.view_range[0] + i
                file = single
        norm = _norm_line(text)
        out.append(LineFeatures(text, norm, words(text), lineno, file))
    return out


def _norm_line(line: str) -> str:
    g = _GREP.match(line)
    if g:
        line = line[g.end() :]
    else:
        m = _LNUM.match(line)
        if m:
            line = line[m.end() :]
    return _WS.sub(" ", line).strip()


class DocFreq:
    """Document frequency of words over tool outputs (each output one document)."""

    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        #: in how many outputs each (normalized, >= 20 chars) line occurs, by hash
        self.line_df: Counter[int] = Counter()
        self.n = 0

    def add(self, text: str) -> None:
        self.n += 1
        clean = _ANSI.sub("", text)
        self.df.update(set(words(clean)))
        self.line_df.update({hash(n) for n in (_norm_line(l) for l in clean.splitlines()) if len(n) >= 20})

    def line_count(self, norm: str) -> int:
        return self.line_df.get(hash(norm), 0)

    def idf(self, w: str) -> float:
        """In [0, 1]: 1 for a word seen in one output, ~0 for a word in every output."""
        n = max(self.n, 2)
        return math.log((n + 1) / (self.df.get(w, 0) + 1)) / math.log(n + 1)


# ----------------------------------------------------------------------------- evidence
_REF_FILE_LINE = re.compile(r"([\w.\-/]+\.[A-Za-z][A-Za-z0-9_]{0,8}):(\d{1,6})\b")
_REF_LINE = re.compile(r"\blines?\s+(\d{1,6})(?:\s*(?:-|–|to|and|,)\s*(\d{1,6}))?", re.I)
_SED_EDIT = re.compile(r"sed\s+-i[^'\"]*['\"](\d+)(?:,(\d+))?[sdaic]")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


@dataclass
class LineRefs:
    #: basename -> list of (a, b, strength)
    by_file: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    #: refs with no file: (a, b, strength)
    loose: list[tuple[int, int, float]] = field(default_factory=list)

    def add(self, file: str | None, a: int, b: int, strength: float) -> None:
        if b < a:
            a, b = b, a
        refs = self.by_file.setdefault(_base(file), []) if file else self.loose
        if (a, b, strength) not in refs:  # the same reference twice is still one reference
            refs.append((a, b, strength))

    def strengths(self, file: str | None, lineno: int) -> tuple[float, list[float]]:
        """(strongest range reference, strengths of exact one-line references) to
        ``lineno`` of ``file``. A reference that names no file counts 0.8 for one line,
        0.5 for a range."""
        best_range = 0.0
        exact: list[float] = []
        for a, b, s in self.by_file.get(file, ()) if file else ():
            if a <= lineno <= b:
                if a == b:
                    exact.append(s)
                else:
                    best_range = max(best_range, s)
        for a, b, s in self.loose:
            if a <= lineno <= b:
                if a == b:
                    exact.append(0.8 * s)
                else:
                    best_range = max(best_range, 0.5 * s)
        return best_range, exact


def combine_refs(parts: list[tuple[float, list[float]]]) -> float:
    """Exact one-line references combine (noisy-or) with each other and with the
    strongest range reference; range references do not add up (viewing a region
    again and again says nothing about one line in it)."""
    best_range = max((r for r, _ in parts), default=0.0)
    miss = 1.0 - best_range
    for _, exact in parts:
        for s in exact:
            miss *= 1.0 - s
    return round(1.0 - miss, 3)


def _range_strength(a: int, b: int) -> float:
    span = abs(b - a) + 1
    return 1.0 if span <= 10 else (0.7 if span <= 40 else (0.4 if span <= 120 else 0.0))


def action_refs(text: str, refs: LineRefs) -> None:
    """Line references in one agent action (thought + command)."""
    for cmd_line in text.split("\n"):
        files = [p for p in _PATH.findall(cmd_line)]
        target = files[-1] if files else None
        for m in _SED_RANGE.finditer(cmd_line):
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            refs.add(target, a, b, _range_strength(a, b))
        for m in _SED_EDIT.finditer(cmd_line):
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            refs.add(target, a, b, 1.0)
    for m in _REF_FILE_LINE.finditer(text):
        n = int(m.group(2))
        refs.add(m.group(1), n, n, 1.0)
    for m in _REF_LINE.finditer(text):
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b - a <= 40:
            refs.add(None, a, b, 1.0)


def patch_evidence(patch: str, refs: LineRefs) -> str:
    """Add the patch's removed lines (old line numbers) to ``refs``; return the text of
    its changed lines (+ and -, without the diff markers); context lines are left out."""
    changed = []
    file = None
    old = 0
    for line in patch.split("\n"):
        if line.startswith("--- "):
            continue
        if line.startswith("+++ "):
            p = line[4:].strip()
            file = p[2:] if p.startswith("b/") else p
            continue
        if line.startswith("diff --git"):
            continue
        h = _HUNK.match(line)
        if h:
            old = int(h.group(1))
            continue
        if line.startswith("-"):
            changed.append(line[1:])
            if file:
                refs.add(file, old, old, 1.0)
            old += 1
        elif line.startswith("+"):
            changed.append(line[1:])
            if file:
                refs.add(file, max(1, old - 1), old, 0.5)  # insertion point
        elif line.startswith(" "):
            old += 1
    return "\n".join(changed)


@dataclass
class _Action:
    text: str
    norm: str
    line_set: frozenset[str]
    #: words inside code (fenced blocks, `spans`, commands, edits)
    words: frozenset[str]
    #: words of the prose around it
    prose_words: frozenset[str]
    refs: LineRefs


def _action(text: str) -> _Action:
    refs = LineRefs()
    action_refs(text, refs)
    lines = frozenset(n for n in (_WS.sub(" ", l).strip() for l in text.split("\n")) if len(n) >= 10)
    code, prose = split_prose(text)
    return _Action(text, _WS.sub(" ", text), lines, frozenset(words(code)), frozenset(words(prose)), refs)


def _combine(contribs: list[float]) -> float:
    contribs.sort(reverse=True)
    return sum(c * (0.5**i) for i, c in enumerate(contribs))


def make_query(call: ToolCall, task: str, history: Sequence[str] = ()) -> str:
    """What the agent was doing: its preceding thought and the command, its earlier
    messages (``history``, oldest first) and the task, in the layout the runtime builds
    (:func:`compaction.agent_query`)."""
    return agent_query(thought=call.thought, command=call.command, earlier=history, task=task)


def short_query(example_id: str, share: float) -> bool:
    """Whether this example trains with :func:`without_earlier`'s query: a fixed ``share`` of
    the examples, chosen by a hash of the id (the same in every run)."""
    return zlib.crc32(example_id.encode("utf-8")) % 10_000 < share * 10_000


def label_call(
    call: ToolCall,
    later: list[_Action],
    patch_text: str,
    patch_refs: LineRefs,
    known: set[str],
    df: DocFreq,
    explain: list[dict] | None = None,
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Labels, loss weights, soft labels and raw evidence for one tool output. With
    ``explain`` (a list), one dict per line saying which evidence fired is appended."""
    lines = call.output.splitlines()
    feats = line_features(lines, call)
    n = len(lines)
    cmd_words = set(words(call.command))
    # whole-file rewrites: drop later actions that copy a large part of this output
    nontrivial = [f.norm for f in feats if len(f.norm) >= 10]
    actions = later
    if len(nontrivial) >= 8:
        need = max(8, int(0.4 * len(nontrivial)))
        actions = [a for a in later if sum(1 for l in nontrivial if l in a.line_set) < need]
    later_words: set[str] = set()
    prose_words: set[str] = set()
    for a in actions:
        later_words |= a.words
        prose_words |= a.prose_words
    later_words |= set(words(patch_text))
    # the agent's very next message answers this output: its words count a little more
    next_words = (later[0].words | later[0].prose_words) if later and any(a is later[0] for a in actions) else frozenset()
    # ... and so do the words of the final patch's changed lines (what the agent delivered)
    next_words = next_words | set(words(patch_text))
    later_norm = "\n".join(a.norm for a in actions) + "\n" + _WS.sub(" ", patch_text)
    line_count: Counter[str] = Counter()
    for f in feats:
        line_count.update(set(f.words))

    labels, weights, soft, evid = [], [], [], []
    for f in feats:
        ev = 0.0
        why: dict = {"words": [], "quote": False, "ref": 0.0}
        if f.norm:
            contribs = []
            best_idf = 0.0
            codeish = code_words(f.text)
            for w in set(f.words):
                idf = df.idf(w)
                best_idf = max(best_idf, idf)
                if w in cmd_words:
                    continue
                if w in later_words:
                    c = idf
                elif w in prose_words:
                    # an identifier named in prose counts; a plain English word found only
                    # in the agent's prose ("then", "earlier") is weak evidence
                    c = idf if w in codeish else idf * PROSE_WEIGHT
                else:
                    continue
                if w in next_words:
                    c *= NEXT_BOOST
                if w in known:
                    c *= 0.5
                if w[0].isdigit():
                    c *= 0.5
                k = line_count[w]
                c /= 1 + (k - 1) / 4
                contribs.append(c)
                why["words"].append((w, round(c, 3)))
            ev = _combine(contribs)
            # verbatim quote in a later action or a changed patch line
            if (
                len(f.norm) >= 20
                and best_idf >= 0.35
                and ev >= 0.15
                and f.norm in later_norm
                and (best_idf >= 0.6 or df.line_count(f.norm) < GENERIC_LINE_DF)
            ):
                ev = max(ev, 1.0) + 0.3
                why["quote"] = True
            # line references
            if f.lineno is not None:
                s = combine_refs([patch_refs.strengths(f.file, f.lineno)] + [a.refs.strengths(f.file, f.lineno) for a in actions])
                if s > 0:
                    ev = max(ev, s) + 0.4 * min(ev, s)
                    why["ref"] = s
        lab = 1 if ev >= THRESHOLD else 0
        margin = abs(ev - THRESHOLD)
        labels.append(lab)
        weights.append(1.0 if margin >= 0.3 else round(0.5 + margin / 0.6, 3))
        soft.append(round(min(1.0, ev / THRESHOLD), 3))
        evid.append(round(ev, 3))
        if explain is not None:
            explain.append(why)
    return labels, weights, soft, evid


def tool_calls(traj: Trajectory) -> list[tuple[int, ToolCall]]:
    return [(i, ev) for i, (kind, ev) in enumerate(traj.events) if kind == "tool"]  # type: ignore[misc]


def label_trajectory(traj: Trajectory, df: DocFreq, *, with_evidence: bool = False) -> Iterator[Example]:
    """One :class:`Example` per tool output of ``traj`` (outputs without lines skipped)."""
    actions: list[_Action | None] = [(_action(ev) if kind == "agent" else None) for kind, ev in traj.events]  # type: ignore[arg-type]
    patch_refs = LineRefs()
    patch_text = patch_evidence(traj.patch, patch_refs)
    task_words = set(words(traj.task))
    step = 0
    agent_texts: list[str] = []  # the agent's messages so far
    for i, (kind, ev) in enumerate(traj.events):
        if kind == "agent":
            agent_texts.append(ev)  # type: ignore[arg-type]
            continue
        call: ToolCall = ev  # type: ignore[assignment]
        step += 1
        # the last message holds the call's thought (and command): the query's head already
        history = agent_texts[:-1]
        lines = call.output.splitlines()
        if not lines:
            continue
        later = [a for a in actions[i + 1 :] if a is not None]
        known = task_words | set(words(call.thought))
        why: list[dict] | None = [] if with_evidence else None
        labels, weights, soft, evid = label_call(call, later, patch_text, patch_refs, known, df, why)
        ex = Example(
            id=f"{traj.source}:{traj.id}:{step}",
            source=traj.source,
            repo=traj.repo,
            query=make_query(call, traj.task, history),
            lines=lines,
            labels=labels,
            weights=weights,
            soft=soft,
            step=step,
        )
        if with_evidence:
            ex.evidence = evid  # type: ignore[attr-defined]
            ex.why = why  # type: ignore[attr-defined]
            ex.later = [a.text for a in later] + ["<<PATCH>>\n" + traj.patch]  # type: ignore[attr-defined]
        yield ex


def doc_freq(trajs: Iterable[Trajectory]) -> DocFreq:
    df = DocFreq()
    for t in trajs:
        for _, call in tool_calls(t):
            df.add(call.output)
    return df
