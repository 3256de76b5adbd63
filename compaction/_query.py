"""The query layout the deletion model was trained on, built from what an agent is doing.

The deletion model learned which lines an agent goes on to use from queries of one
shape (``training/labels.py`` builds its training queries with :func:`agent_query`):

    <the agent's latest thought>
    $ <the command or tool call that produced the output>

    Earlier: <the agent's earlier messages, the most recent first>

    Task: <the task, or the user's latest request>

Every part is optional and cut to a token budget. The earlier messages matter: lines
holding names the agent has been talking about are the lines it goes on to use (on the
validation split they are about twice as often used as lines that share a name with the
latest thought alone). The PostToolUse hook and ``compact_messages`` build their default
queries here; a caller of ``compact`` may pass any text.
"""

from __future__ import annotations

from typing import Sequence

from ._tokenizer import get_tokenizer

__all__ = ["agent_query", "without_earlier", "without_thought", "ACTION_TOKENS", "EARLIER_MESSAGES", "EARLIER_TOKENS", "TASK_TOKENS"]

ACTION_TOKENS = 300  # the latest thought and the command
EARLIER_MESSAGES = 12  # how many earlier messages are looked at
EARLIER_TOKENS = 1200  # ... and how much of them is kept (the most recent first)
TASK_TOKENS = 200
_EARLIER = "Earlier: "
_TASK = "Task: "


def _cut(text: str, n: int) -> str:
    tok = get_tokenizer()
    ids = tok.encode(text)
    return text if len(ids) <= n else tok.decode(ids[:n]) + " ..."


def agent_query(
    *,
    thought: str = "",
    command: str = "",
    earlier: Sequence[str] = (),
    task: str = "",
) -> str:
    """The model's query: ``thought`` and ``command`` (what the agent did to get the output),
    ``earlier`` (its earlier messages, oldest first), ``task`` (what it was asked to do)."""
    head = thought.strip()
    if command.strip():
        head = (head + "\n" if head else "") + "$ " + command.strip()
    head = _cut(head, ACTION_TOKENS) if head else ""
    recent = [m.strip() for m in reversed(list(earlier)[-EARLIER_MESSAGES:]) if m.strip()]
    before = _cut("\n".join(recent), EARLIER_TOKENS) if recent else ""
    task = _cut(task.strip(), TASK_TOKENS) if task.strip() else ""
    parts = [head] if head else []
    if before:
        parts.append(_EARLIER + before)
    if task:
        parts.append(_TASK + task)
    return "\n\n".join(parts)


def without_earlier(query: str) -> str:
    """A query of :func:`agent_query`'s layout with its ``Earlier:`` part left out: what a
    caller who passes only what it is doing now would give (training and evaluation use it)."""
    head, sep, rest = ("\n\n" + query if query.startswith(_EARLIER) else query).partition("\n\n" + _EARLIER)
    if not sep:
        return query
    _, sep, task = rest.rpartition("\n\n" + _TASK)
    return (head + ("\n\n" + _TASK + task if sep else "")).lstrip("\n")



def without_thought(query: str) -> str:
    """A query of :func:`agent_query`'s layout without the agent's latest thought (the text
    before the ``$`` command, however many paragraphs it has): what Claude Code's PostToolUse
    hook usually has, since the current turn is not yet in the transcript when the hook runs
    (evaluation uses it)."""
    cuts = [k for k in (query.find("\n\n" + _EARLIER), query.find("\n\n" + _TASK)) if k >= 0]
    if query.startswith((_EARLIER, _TASK)):
        return query
    end = min(cuts) if cuts else len(query)
    head, rest = query[:end], query[end:]
    lines = head.split("\n")
    commands = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    if not commands:
        return rest.lstrip("\n")
    return "\n".join(lines[commands[-1] :]) + rest
