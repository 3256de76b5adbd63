"""Redaction of secrets (API keys, tokens, private keys, auth headers, credentials assigned
to environment variables) from text we store.

Used on everything written to disk or handed to another agent: the originals cache,
stored handoffs and summaries. Each secret is replaced by ``[REDACTED:<kind>]``; the
text around it (a header's name, ``Bearer``, a ``KEY=`` prefix) stays.

Redaction never changes the line structure: the result has exactly the lines of the
input (``str.splitlines()``), with the same line endings, so that line numbers given
out by ``compact`` stay valid for the stored, redacted original. A private key block
keeps its ``BEGIN``/``END`` lines and each of its body lines becomes one marker.

Patterns are chosen to leave ordinary tool output alone: git SHAs, UUIDs, hashes,
base64 blobs and code that merely *names* an ``authorization`` variable are not
touched; only values that have the shape of a credential are.
"""

from __future__ import annotations

import bisect
import re

__all__ = ["redact_secrets", "SECRET_PATTERNS", "REDACTION_MARK"]

REDACTION_MARK = "[REDACTED:"

# Every character that str.splitlines() treats as a line break; no match may span one.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_NOT_BREAK = f"[^{_LINE_BREAKS}]"
_LINE_BREAK = f"[{_LINE_BREAKS}]"
_SP = r"[ \t]"  # horizontal space only: a match never joins two lines


def _ci(word: str) -> str:
    """Case-insensitive literal as character classes (a leading ``(?i:...)`` defeats the
    regex engine's fast scan; ``[Aa][Uu]...`` keeps it)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


_AUTH = _ci("authorization")  # "Proxy-" before it is left alone anyway

# HTTP auth schemes whose credential follows after a space.
_SCHEMES = r"(?:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|key)"
_CRED = r"[A-Za-z0-9\-._~+/]"  # RFC 6750 token68 characters (padding '=' added below)

# (kind, pattern, trigger, check). A pattern may have groups ``pre`` and ``post``: text
# kept before and after the marker. Patterns start with a literal where they can (Python's
# regex engine then scans fast); word boundaries and line starts are checked afterwards by
# ``check``. ``trigger``: cheap lowercase substrings, the regex only runs when one occurs.
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _word_start(m: re.Match[str]) -> bool:
    """The match does not start in the middle of a word."""
    i = m.start()
    return i == 0 or m.string[i - 1] not in _WORD


def _before_on_line(m: re.Match[str], limit: int) -> str | None:
    """What comes before the match on its line, or None when that is more than ``limit`` characters."""
    s, i = m.string, m.start()
    j = i
    while j > 0 and s[j - 1] not in _LINE_BREAKS and i - j <= limit:
        j -= 1
    return s[j:i] if j == 0 or s[j - 1] in _LINE_BREAKS else None


def _line_start(m: re.Match[str]) -> bool:
    """Only spaces (and one quote) come before the match on its line."""
    before = _before_on_line(m, 64)
    return before is not None and before.strip(" \t\"'").lower() in ("", "proxy-")


def _scheme_before(m: re.Match[str]) -> bool:
    """``://`` follows a URL scheme (letters, then letters, digits, + . -)."""
    s, i = m.string, m.start()
    j = i
    while j > 0 and i - j < 20 and (s[j - 1].isascii() and (s[j - 1].isalnum() or s[j - 1] in "+.-")):
        j -= 1
    return j < i and s[j].isalpha() and (j == 0 or s[j - 1] not in _WORD)


def _always(m: re.Match[str]) -> bool:
    return True


# what may come before an assignment on its line: a `grep -n` location, a file view's line
# number, a diff marker, then `export`, `set`, `declare -x` (export -p), Dockerfile `ENV`/`ARG`,
# `env`, systemd's `Environment=`, `docker run -e`, a YAML `-`, and a quote
_ASSIGNMENT_LEAD = re.compile(
    r"(?:[^\s:]{1,256}:(?:\d+[:-])?)?(?:\d+(?:\t|→|:|\s)\s*)?[-+]?\s*"
    r"(?:(?:export|set|declare\s+-x|ENV|ARG|env|Environment=)\s*|-\s+|(?:docker\s+run\s+)?(?:-e|--env)\s+)?[\"']?"
)


def _assignment_start(m: re.Match[str]) -> bool:
    """The assignment starts its line: only the leads above come before it (not code that
    merely uses the name)."""
    s, i = m.string, m.start()
    before = _before_on_line(m, 320)
    if before is None or _ASSIGNMENT_LEAD.fullmatch(before.lstrip(" \t")) is None:
        return False
    end = m.end()
    if end < len(s) and s[end] in "\"'":
        end += 1
    if s[i - 1 : i] in ("\"", "'") and end > m.end():  # "DB_PASSWORD=x", in a JSON array: a string, not code
        return True
    # code passes the name as an argument (settings.configure(SECRET_KEY='fake-key', ...)),
    # a shell or .env line does not: a value that ends with, or is followed by , ) ] } is code
    return m.group(0)[-1] not in ",)]};" and (end >= len(s) or s[end] not in ",)]}")


# Names of environment variables that hold a credential: the name *ends* with one of these
# (DB_PASSWORD, GITHUB_TOKEN, OPENAI_API_KEY), so TOKEN_URL or MAX_TOKENS are left alone.
_SECRET_NAME = (
    r"[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|SECRET_KEY|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|AUTH_KEY|CREDENTIALS)"
)


SECRET_PATTERNS: list[tuple[str, re.Pattern[str], tuple[str, ...], object]] = [
    (
        # the block's start; its body is redacted piece by piece in _redact_private_keys
        "private-key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        ("private key",),
        _always,
    ),
    (
        # Authorization: Bearer <x> / Basic <x> / token <x> ... anywhere (headers, curl -H, JSON)
        "authorization-header",
        re.compile(
            rf"(?P<pre>{_AUTH}[\"']?{_SP}*[:=]{_SP}*[\"']?(?i:{_SCHEMES}){_SP}+)"
            rf"(?!\[REDACTED){_CRED}{{6,}}=*"
        ),
        ("authorization",),
        _word_start,
    ),
    (
        # Authorization: <raw token> as a whole header line (no scheme)
        "authorization-header",
        re.compile(
            rf"(?<![^\s\"'\-])(?P<pre>{_AUTH}[\"']?{_SP}*:{_SP}*[\"']?)"
            rf"(?!\[REDACTED)(?!(?i:{_SCHEMES}){_SP})(?=[A-Za-z\-._~+/:]{{0,256}}\d)[A-Za-z0-9\-._~+/:]{{16,}}+=*+"
            rf"(?P<post>[\"']?,?{_SP}*(?={_LINE_BREAK}|\Z))"
        ),
        ("authorization",),
        _line_start,
    ),
    (
        "bearer-token",
        re.compile(rf"(?P<pre>[Bb](?i:earer){_SP}+)(?!\[REDACTED){_CRED}{{16,}}=*"),
        ("bearer",),
        _word_start,
    ),
    ("anthropic-key", re.compile(r"sk-ant-(?:[a-z]+\d\d-)?[A-Za-z0-9_\-]{20,}"), ("sk-ant-",), _word_start),
    (
        # sk-..., sk-proj-..., sk-svcacct-...: at least 20 characters, one of them a digit
        "openai-key",
        re.compile(r"sk-(?:proj-|svcacct-|admin-|None-)?(?=[A-Za-z_\-]{0,64}\d)[A-Za-z0-9_\-]{20,}"),
        ("sk-",),
        _word_start,
    ),
    ("github-token", re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}"), ("gh",), _word_start),
    ("github-token", re.compile(r"github_pat_[A-Za-z0-9_]{40,}"), ("github_pat_",), _word_start),
    ("gitlab-token", re.compile(r"glpat-[A-Za-z0-9_\-]{20,}"), ("glpat-",), _word_start),
    (
        "aws-access-key",
        re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}(?![A-Za-z0-9_])"),
        ("akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa"),
        _word_start,
    ),
    (
        "aws-secret-key",
        re.compile(
            rf"(?P<pre>{_ci('secret')}_?(?:{_ci('access')}_?)?{_ci('key')}[\"']?{_SP}*[:=]{_SP}*[\"']?)"
            r"(?!\[REDACTED)[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
        ),
        ("secret",),
        _always,
    ),
    (
        "aws-session-token",
        re.compile(
            rf"(?P<pre>{_ci('session')}_?{_ci('token')}[\"']?{_SP}*[:=]{_SP}*[\"']?)"
            r"(?!\[REDACTED)[A-Za-z0-9/+=]{100,}"
        ),
        ("session",),
        _always,
    ),
    ("slack-token", re.compile(r"xox[abprse]-[A-Za-z0-9\-]{10,}"), ("xox",), _word_start),
    (
        "slack-webhook",
        re.compile(r"(?P<pre>https://hooks\.slack\.com/services/)[A-Za-z0-9_/]{20,}"),
        ("hooks.slack.com",),
        _always,
    ),
    ("stripe-key", re.compile(r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), ("_live_", "_test_"), _word_start),
    ("google-api-key", re.compile(r"AIza[0-9A-Za-z_\-]{35}"), ("aiza",), _word_start),
    ("huggingface-token", re.compile(r"hf_[A-Za-z]{30,}(?![A-Za-z0-9_])"), ("hf_",), _word_start),
    ("npm-token", re.compile(r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])"), ("npm_",), _word_start),
    (
        # DB_PASSWORD=... / export GITHUB_TOKEN=... / YAML "API_KEY: ...": a .env file, `env`
        # output, a shell line, docker-compose. The value has at least 8 characters (a quoted
        # one may hold spaces) and is not a reference ($VAR, ${VAR}, <placeholder>, %s), a
        # path, a call or a URL.
        "env-secret",
        re.compile(
            rf"(?<![A-Za-z0-9_])(?P<pre>{_SECRET_NAME}(?:=|:{_SP}+)[\"']?)"
            r"(?!\[REDACTED)(?![$<{%/~]|\.{1,2}/)(?![^\s\"'`(]{0,256}(?:\(|://))"
            rf"(?:(?<=[\"'])[^\"'{_LINE_BREAKS}]{{8,}}(?=[\"'])|[^\s\"'`]{{8,}})"
        ),
        ("password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "auth_key",
         "credentials"),
        _assignment_start,
    ),
    (
        # scheme://user:password@host: the password part
        "url-password",
        re.compile(
            rf"(?P<pre>://[^/\s:@{_LINE_BREAKS}]{{1,256}}:)"
            rf"(?!\[REDACTED)(?![0-9]+@)[^/\s@{_LINE_BREAKS}]{{3,256}}(?P<post>@)"
        ),
        ("://",),
        _scheme_before,
    ),
]

_PEM_BEGIN = SECRET_PATTERNS[0][1]
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
#: how far after BEGIN an END is looked for (an 8192-bit RSA key in PEM is about 6.5 KB; escaped,
#: numbered or diffed views add a little)
_MAX_KEY_CHARS = 16_384
# a base64 run of a key body: 16 or more characters, or a short one ending in padding
# (it may follow a JSON string's \n escape directly: the n is not part of it)
_KEY_RUN = re.compile(
    r"(?:(?<=\\[nr])|(?<![A-Za-z0-9+/=\\]))(?:(?:[A-Za-z0-9+/]|\\/){16,}={0,2}|(?:[A-Za-z0-9+/]|\\/){2,}={1,2})"
    r"(?![A-Za-z0-9+/=])"
)
# what may come at the start of a line of a shown key: a file view's line number (`cat -n`,
# Claude Code's Read `  2→`), a diff marker, a `grep -n` location, a quote
_LINE_PREFIX = r"(?:[ \t]*\d+(?:\t|→|:|[ \t]+)|[-+ ]|[^\s:]{1,256}[:-]\d+[:-]|[\"'])?"
# between body pieces of a key without END: line breaks (each maybe followed by such a prefix),
# spaces, the escapes of a JSON string, or the quotes, commas and pluses of a string in code
_PEM_SEP = re.compile(rf"(?:{_LINE_BREAK}{_LINE_PREFIX}|[ \t\"'+,]|\\r\\n|\\n|\\r)+")
_PEM_HEADER = re.compile(rf"(?:Proc-Type|DEK-Info|Comment):{_NOT_BREAK}*")
_PEM_PIECE = re.compile(r"(?:[A-Za-z0-9+/]|\\/){4,}={0,2}(?![A-Za-z0-9+/=])")
_KEY_MARK = "[REDACTED:private-key]"


class _EndWindow:
    """The stretch between a ``BEGIN`` line and the next ``END`` line (at most _MAX_KEY_CHARS),
    measured once for every ``BEGIN`` that shares that ``END``: its base64 runs and, for any
    start, the share of non-blank characters they cover (so a file that names the header many
    times stays linear)."""

    def __init__(self, text: str, start: int, end: re.Match[str]) -> None:
        self.end = end
        self.start = max(start, end.start() - _MAX_KEY_CHARS)
        self.runs = [m.span() for m in _KEY_RUN.finditer(text, self.start, end.start())]
        self._run_starts = [a for a, _ in self.runs]
        # only lines of key length count as evidence (64 base64 characters in PEM, 70 in
        # OpenSSH's): long identifiers and paths in code that names both markers are shorter
        self._run_chars = _suffix_sums([b - a if b - a >= _KEY_LINE_CHARS else 0 for a, b in self.runs])
        blanks = [m.span() for m in _BLANKS.finditer(text, self.start, end.start())]
        self._blank_starts = [a for a, _ in blanks]
        self._blank_chars = _suffix_sums([b - a for a, b in blanks])

    def runs_after(self, at: int) -> list[tuple[int, int]]:
        return self.runs[bisect.bisect_left(self._run_starts, at) :]

    def base64_share(self, at: int) -> float:
        """Share of the non-blank characters from ``at`` to END that are in key-length base64 runs (``at``
        is the end of a BEGIN line, so no run or blank stretch straddles it)."""
        solid = (self.end.start() - at) - self._blank_chars[bisect.bisect_left(self._blank_starts, at)]
        return self._run_chars[bisect.bisect_left(self._run_starts, at)] / solid if solid > 0 else 0.0


_BLANKS = re.compile(r"\s+")
_KEY_LINE_CHARS = 40
#: a stretch this much made of key-length base64 runs is a key body (a numbered or grep -n view
#: of a key is about 78-98 %)
_KEY_SHARE = 0.5


def _suffix_sums(values: list[int]) -> list[int]:
    out = [0] * (len(values) + 1)
    for k in range(len(values) - 1, -1, -1):
        out[k] = out[k + 1] + values[k]
    return out


def _key_body(text: str, begin: re.Match[str], window: _EndWindow | None) -> list[tuple[int, int]]:
    """The spans to redact of the key whose ``BEGIN`` line is ``begin``; ``window`` is the
    stretch before the next ``END`` line, if any.

    With an ``END`` close after it and a stretch that is mostly base64 (a key, not code that
    names both markers): every base64 run between the two, whatever the lines around it look
    like (a numbered view, a diff, ``grep -n`` output, a string in code). Otherwise (a cut-off
    output, or code that only names the header): the pieces that follow BEGIN while they look
    like key lines (40 or more base64 characters, or a padded last line after one), so code or docs that
    merely name the header lose nothing (a line cut short by ``head -c`` is left too)."""
    if window is not None and begin.end() >= window.start and window.base64_share(begin.end()) >= _KEY_SHARE:
        return window.runs_after(begin.end())
    pieces: list[tuple[int, int]] = []
    j = begin.end()
    while True:
        sep = _PEM_SEP.match(text, j)
        k = sep.end() if sep else j
        header = _PEM_HEADER.match(text, k)
        if header is not None:  # kept as it is: it says how the key is encrypted, not the key
            j = header.end()
            continue
        piece = _PEM_PIECE.match(text, k)
        # a key line is long (64 characters in PEM) or the padded last one; a short word is
        # code or prose after a header that was only named, and ends the walk
        short = piece is not None and piece.end() - piece.start() < _KEY_LINE_CHARS
        if piece is None or (short and (text[piece.end() - 1] != "=" or not pieces)):
            break
        pieces.append(piece.span())
        j = piece.end()
    return pieces


def _redact_private_keys(text: str) -> str:
    """Replace the body of every ``-----BEGIN ... PRIVATE KEY-----`` block piece by piece
    (line breaks, line prefixes, escapes and ``Proc-Type:``-style headers stay). Linear: the
    next ``END`` is searched for once, and measured once, for all the BEGINs before it."""
    out: list[str] = []
    pos = 0
    window: _EndWindow | None = None
    searched = False
    for begin in _PEM_BEGIN.finditer(text):
        if begin.start() < pos:
            continue
        if not searched or (window is not None and window.end.start() < begin.end()):
            end = _PEM_END.search(text, begin.end())
            window, searched = (_EndWindow(text, begin.end(), end) if end is not None else None), True
        spans = _key_body(text, begin, window)
        for a, b in spans:
            out.append(text[pos:a])
            out.append(_KEY_MARK)
            pos = b
        if spans and window is not None and spans[-1][1] <= window.end.start():
            out.append(text[pos : window.end.start()])  # BEGINs inside a handled block are part of it
            pos = window.end.start()
    out.append(text[pos:])
    return "".join(out)


def _replacer(kind: str, check):
    mark = f"[REDACTED:{kind}]"

    def sub(m: re.Match[str]) -> str:
        if not check(m):
            return m.group(0)
        d = m.groupdict()
        return (d.get("pre") or "") + mark + (d.get("post") or "")

    return sub


_COMPILED = [
    (kind, pattern, trigger, _replacer(kind, check)) for kind, pattern, trigger, check in SECRET_PATTERNS[1:]
]


def redact_secrets(text: str) -> str:
    """Return ``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``.

    Lines (and their endings) are preserved one for one; applying it twice changes nothing more.
    """
    if not text or not isinstance(text, str):
        return text
    lower = text.lower()
    for _ in range(3):  # a secret glued to another is found once its neighbour is a marker
        before = text
        if "private key" in lower:
            text = _redact_private_keys(text)
        for _kind, pattern, trigger, sub in _COMPILED:
            if any(t in lower for t in trigger):
                text = pattern.sub(sub, text)
        if text == before:
            break
    return text
