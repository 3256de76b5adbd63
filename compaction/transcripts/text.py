"""Reader for plain-text transcripts (a pasted chat, an agent log, a markdown export).

Lines that start a turn, ``User:`` / ``Human:`` / ``Assistant:`` / ``AI:`` / ``System:``
(or a markdown heading ``## User``), split the text into turns. Text before the first
such line, or a text with none, becomes one assistant turn.
"""

from __future__ import annotations

import re

from ._model import AssistantText, SystemText, Transcript, UserText

__all__ = ["parse_text"]

_TURN = re.compile(
    r"^(?:#{1,6}\s*)?(?P<role>user|human|you|assistant|ai|claude|model|system)\s*(?::|$)\s?(?P<rest>.*)$",
    re.IGNORECASE,
)
_ROLES = {"user": "user", "human": "user", "you": "user", "system": "system"}


def parse_text(text: str, *, path: str | None = None) -> Transcript:
    events = []
    role = "assistant"
    buf: list[str] = []
    start = 1

    def flush() -> None:
        body = "\n".join(buf).strip("\n")
        if body.strip():
            cls = {"user": UserText, "system": SystemText}.get(role, AssistantText)
            events.append(cls(record=start, text=body))

    for n, line in enumerate(text.splitlines(), start=1):
        m = _TURN.match(line)
        if m:
            flush()
            role = _ROLES.get(m.group("role").lower(), "assistant")
            buf = [m.group("rest")] if m.group("rest") else []
            start = n
        else:
            buf.append(line)
    flush()
    return Transcript(format="text", events=events, path=path)
