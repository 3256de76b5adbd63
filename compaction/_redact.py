"""Redaction of secrets (API keys, tokens, private keys, auth headers, credentials assigned
to environment variables or stored under a credential's name in JSON, YAML, code and config)
from text we store.

Used on everything written to disk or handed to another agent: the originals cache,
stored handoffs and summaries. Each secret is replaced by ``[REDACTED:<kind>]``; the
text around it (a header's name, ``Bearer``, a ``KEY=`` prefix) stays.

Redaction never changes the line structure: the result has exactly the lines of the
input (``str.splitlines()``), with the same line endings, so that line numbers given
out by ``compact`` stay valid for the stored, redacted original. A private key block
keeps its ``BEGIN``/``END`` lines and each of its body lines becomes one marker.

Patterns are chosen to leave ordinary tool output alone: git SHAs, UUIDs, hashes,
base64 blobs and code that merely *names* an ``authorization`` variable are not
touched; only values that have the shape of a credential are. Under a credential's name
(``"password": ...``, ``db_password=...``) only a literal is redacted: code that reads a
password (``password = request.form["password"]``), references, placeholders and dummies stay.
"""

from __future__ import annotations

import bisect
import itertools
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


def _before_on_line(m: re.Match[str], limit: int, at: int | None = None) -> str | None:
    """What comes before the match (or position ``at``) on its line, or None when that is more
    than ``limit`` + 1 characters."""
    s = m.string
    i = m.start() if at is None else at
    lo = max(0, i - limit - 2)
    brk = max(s.rfind(c, lo, i) for c in _LINE_BREAKS)
    if brk >= 0:
        return s[brk + 1 : i]
    return s[:i] if i <= limit + 1 else None


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


def _after_curl(m: re.Match[str]) -> bool:
    """The flag is an argument of ``curl`` on the same line (``git push -u origin main``,
    ``sort -u`` and ``ssh -u`` are other commands' flags), and the password is no reference."""
    before = _before_on_line(m, 1_024)
    value = m.group(0)[len(m.group("pre")) :]
    return (
        before is not None
        and (before == "" or before[-1] in " \t\"'=")
        and re.search(r"(?<![\w-])curl(?:\.exe)?[ \t]", before) is not None
        and not value.startswith(("$", "%", "<", "{", "["))
    )


def _basic_credentials(m: re.Match[str]) -> bool:
    """The value is base64 of ``user:password`` (a docker ``config.json`` ``"auth"``)."""
    import base64
    import binascii

    if not _word_start(m):
        return False
    try:
        decoded = base64.b64decode(m.group("value"), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    user, colon, password = decoded.partition(":")
    return bool(colon and user and password) and decoded.isprintable()


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


# -- credentials under a telltale key ---------------------------------------------------------------
# JSON objects and dict reprs ("password": "...", 'token': '...', also with escaped quotes),
# assignments in config and code (db_password=..., password: ..., SECRET_KEY = '...'), .netrc,
# command-line flags (--password=...) and Kubernetes-style name/value pairs. The value must be a
# literal of 6 or more characters; a code expression (a name, a call, attribute access, a
# subscript, None), a reference ($VAR, ${VAR}, {{ var }}, <password>), a stand-in (***, xxxx,
# "password", YOUR_API_KEY) or a label ("Password") is left alone.

# the last word of a name that holds a credential: db_password, clientSecret, api-key, AUTH_TOKEN
_CRED_WORD = "(?:" + "|".join(
    [
        _ci("passw") + f"(?:{_ci('ord')}|{_ci('d')})",
        _ci("passphrase"),
        _ci("pass"),
        _ci("pwd"),
        _ci("secret") + rf"(?:[_\-]?{_ci('key')})?",
        _ci("token"),
        f"(?:{_ci('api')}|{_ci('access')}|{_ci('private')}|{_ci('auth')})" + rf"[_\-]?{_ci('key')}",
    ]
) + ")"
_CRED_WORD_AT_END = re.compile(rf"{_CRED_WORD}\Z")
#: short words that must start a part of the name (db_pass, dbPwd; not bypass, compass, OLDPWD)
_SHORT_WORDS = ("pass", "pwd")
#: a tokenizer's special tokens (eos_token: "</s>") are not credentials
_SPECIAL_TOKEN = re.compile(r"(?:eos|bos|pad|unk|sep|cls|mask)[_\-]?token\Z", re.IGNORECASE)
_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
_MIN_SECRET = 6


def _credential_name(name: str) -> bool:
    """``name`` ends with a credential word that starts a part of it (``db_password``,
    ``clientSecret``, ``--api-key``, ``MYSQL_PWD``), and is no tokenizer's special token."""
    word = _CRED_WORD_AT_END.search(name)
    if word is None or _SPECIAL_TOKEN.search(name):
        return False
    i = word.start()
    if word.group(0).lower() not in _SHORT_WORDS or i == 0:
        return True
    before, first = name[i - 1], name[i]
    return before in "_.-" or (before.islower() and first.isupper())


def _letters(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalpha())


# words that are names for a kind of value, not one (password: str, token: string, secret: null)
_NOT_VALUES = frozenset(
    {
        "none", "null", "nil", "true", "false", "yes", "no", "on", "off", "undefined", "required", "optional",
        "enabled", "disabled", "auto", "default", "empty", "hidden", "unset",
        "str", "string", "bytes", "int", "number", "bool", "boolean", "any", "object", "unknown", "never", "list", "dict",
    }
)  # fmt: skip
#: a value holding one of these (or just a credential word: "secret", "mypassword", "testpass")
#: is a stand-in from docs, tests or an example file
_STAND_IN_PARTS = (
    "password", "passwd", "changeme", "example", "dummy", "placeholder", "redacted", "your", "fake", "test"
)  # fmt: skip
# the long ones anywhere, in any case (ChangeMe123); the short ones only as words of their own
# (test123, my_test_pw, TestPass; not Contest2024, Yourself99, random keys' TEStc or Fak2e)
_LONG_STAND_IN = tuple(p for p in _STAND_IN_PARTS if len(p) >= 6)
_SHORT_STAND_IN = re.compile(
    "|".join(rf"(?<![a-z]){w}[sS]?(?![a-z])" for p in _STAND_IN_PARTS if len(p) < 6 for w in (p, p.capitalize(), p.upper()))
)


def _placeholder_word(value: str) -> bool:
    return any(p in value.lower() for p in _LONG_STAND_IN) or _SHORT_STAND_IN.search(value) is not None
_STAND_IN_WHOLE = re.compile(
    r"(?:my|some|test|new|old|default|super|the|a)?(?:pass|pwd|secret|secretkey|key|token|apikey|accesskey|value)"
)
# what a reference, a template or a path starts with: $VAR, <password>, {{ x }}, %(x)s, [MASK], /run/..., ~/...
_REFERENCE_START = tuple("$<{%[/~") + ("./", "../")
# a bare (unquoted) value starting with one of these is code or YAML syntax: (x), *args, !vault, &ref,
# #comment, @decorator, :symbol, -flag, |, >-, ==
_BARE_SYNTAX_START = tuple("(*!&#@:;,=|>-?.\\")
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _stand_in(value: str, name: str) -> bool:
    """A reference, template, placeholder, masked value, label or dummy, not a credential."""
    core = value.rstrip("])},;>")
    letters = _letters(value)
    return (
        len(value) < _MIN_SECRET
        or value.startswith(_REFERENCE_START)
        or any(t in value for t in ("${", "{{", "}}", "://", "...", "\u2026"))
        or len(set(value)) == 1  # ******, xxxxxxxx
        or len(set(letters)) == 1 and len(letters) * 2 >= len(value)  # xxxx-xxxx
        or core.lower() in _NOT_VALUES
        or (core.isupper() and core.replace("_", "").replace("-", "").isalpha())  # CHANGEME, YOUR_API_KEY, a metavar
        or (value.isalpha() and value[0].isupper() and value[1:].islower())  # a label: "Password", "Passwort"
        or letters == _letters(name)
        or _STAND_IN_WHOLE.fullmatch(letters) is not None
        or (len(value) <= 40 and _placeholder_word(value))
        or _type_name(core)
        or _HEX_COLOUR.fullmatch(value) is not None  # pygments styles: Token: '#000080'
    )


_HEX_COLOUR = re.compile(r"#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})")
# a CamelCase name's words: Capitalised words and acronyms with the digits of their name
# (OAuth2, S3, X509, K8s), and a lower-case run after a digit (V1beta1)
_CAMEL_WORD = re.compile(r"[A-Z]+[a-z]*\d*|(?<=\d)[a-z]+\d*")
_VERSION_SUFFIX = re.compile(r"V\d+\Z")
_CREDENTIAL_WORDS = frozenset({"Token", "Tokens", "Secret", "Secrets", "Key", "Keys", "Password", "Passwords"})


def _type_name(value: str) -> bool:
    """A CamelCase name that says what it holds (``NextToken``, ``V1SecretVolumeSource``,
    ``AWSSecretKey``, ``OAuth2Token``, ``ApiKeyV2``): API schemas and SDK code, not a secret. The
    whole value must be such words, one of them a credential's word, and it must not end in a
    digit but for a version (``ProdKeyAlpha77`` and ``AcmeSecretKey9`` are passwords)."""
    words = _CAMEL_WORD.findall(value)
    return (
        len(words) >= 2
        and "".join(words) == value
        and any(w in _CREDENTIAL_WORDS for w in words)
        and (not value[-1].isdigit() or _VERSION_SUFFIX.search(value) is not None)
    )


def _code_expression(value: str, name: str, *, spaced: bool) -> bool:
    """A bare value that reads as code: a call, subscript or literal ([{), attribute access, or a
    variable (snake_case, camelCase, a name holding the credential word). After a spaced ``=``
    (Python, TOML, ini) any name without a digit counts as a variable."""
    # a trailing comma, semicolon, TypeScript's non-null !, or what closes a call or a def: None):
    core = value.rstrip(",;!):]}")
    if value.startswith(_BARE_SYNTAX_START) or any(c in value for c in "([{"):
        return True
    if _DOTTED_NAME.fullmatch(core):
        return True
    if not core.isidentifier():
        return False
    if any(c.isdigit() for c in core):
        return False
    word = _CRED_WORD_AT_END.search(name)
    if word is not None and _letters(word.group(0)) in core.lower():  # hashed_password, userToken
        return True
    camel = any(a.islower() and b.isupper() for a, b in itertools.pairwise(core))
    wordy_camel = camel and sum(c.isupper() for c in core) * 4 <= len(core)  # not random mixed case
    return spaced or "_" in core or wordy_camel or core[0].isupper()


def _rest_of_line_blank(s: str, end: int) -> bool:
    """Only spaces, then a line break, the end, or a ``#`` comment follow ``end``."""
    return _REST_BLANK.match(s, end) is not None


_REST_BLANK = re.compile(rf"{_SP}*+(?:#|{_LINE_BREAK}|\Z)")

# a declaration before an assigned name in code: const apiKey = "...", private String password = "..."
_DECLARATION = (
    r"(?:(?:const|let|var|val|my|our|final|static|private|public|protected|internal|readonly|String|string)\s+){0,4}"
    r"\$?"
)
_KEY_ASSIGNMENT_LEAD = re.compile(_ASSIGNMENT_LEAD.pattern + _DECLARATION)
# .netrc: machine <host> login <user> password <secret>
_NETRC_LEAD = re.compile(
    r"[ \t]*(?:(?:machine[ \t]+\S+|default)[ \t]+)?(?:login[ \t]+\S+[ \t]+)?(?:account[ \t]+\S+[ \t]+)?"
)

_KEYED_SECRET = re.compile(
    rf"(?P<pre>(?P<word>{_CRED_WORD})(?P<kq>\\?[\"']?)"
    rf"(?P<sep>{_SP}*+(?:=>|:=|=(?!=)|:(?![:=]))|{_SP})(?P<pad>{_SP}*+)"
    r"(?P<open>(?:[bBrRuU]?\\?[\"'])?))"
    r"(?P<value>[^\s\"'`\\]++)(?P<post>\\?[\"']?)"
)


def _key_quote(s: str, name_start: int) -> str:
    """The quote that opens the key (``"``, ``'``, or an escaped one in a JSON string), or ''."""
    if name_start == 0 or s[name_start - 1] not in "\"'":
        return ""
    return s[name_start - 2 : name_start] if name_start >= 2 and s[name_start - 2] == "\\" else s[name_start - 1]


def _quoted_value(m: re.Match[str]) -> bool | None:
    """True: the value is a whole quoted string; False: it is bare; None: neither (an open quote
    with no close, "two words", or a bare name followed by a quote, os.environ["X"])."""
    quote = m.group("open").lstrip("bBrRuU")
    if quote:
        return True if m.group("post") == quote else None
    return False if not m.group("post") else None


def _quoted_key_secret(m: re.Match[str], name: str, key_quote: str) -> bool:
    """"password": "...", 'token': '...', \\"api_key\\": \\"...\\", 'password' => '...'."""
    quote = m.group("open").lstrip("bBrRuU")
    return (
        m.group("kq") == key_quote
        and m.group("sep").strip() in (":", "=>", "=")
        and _quoted_value(m) is True
        and quote.startswith("\\") == key_quote.startswith("\\")
        and not _stand_in(m.group("value"), name)
    )


def _flag_secret(m: re.Match[str], name: str, name_start: int) -> bool:
    """--password=..., --token ..., --api-key '...' on a command line."""
    s, value = m.string, m.group("value")
    quoted = _quoted_value(m)
    return (
        not m.group("kq")
        and (name_start == 0 or s[name_start - 1] in " \t\"'")
        and m.group("sep").strip() in ("", "=")
        and quoted is not None
        and not _stand_in(value, name)
        # bare: no syntax (a '#' glued to '=' is part of the value), and after a space not a plain
        # word ("--password suffers from ...")
        and (
            quoted
            or (m.group("sep") == "=" and value.startswith("#"))
            or not (value.startswith(_BARE_SYNTAX_START) or (m.group("sep") == " " and value.isalpha()))
        )
    )


def _netrc_secret(m: re.Match[str], name: str, name_start: int) -> bool:
    """.netrc: ``password <secret>`` alone on its line (not only letters), or after machine/login."""
    if name != "password" or m.group("sep") != " " or m.group("kq") or _quoted_value(m) is not False:
        return False
    before = _before_on_line(m, 320, name_start)
    value = m.group("value")
    if before is None or _NETRC_LEAD.fullmatch(before) is None or not _rest_of_line_blank(m.string, m.end()):
        return False
    alone = not before.strip()
    return not _stand_in(value, name) and not (alone and value.isalpha())


def _assignment_secret(m: re.Match[str], name: str, name_start: int) -> bool:
    """At the start of a line: db_password=..., password: ..., SECRET_KEY = '...', const apiKey = "..."."""
    s, value = m.string, m.group("value")
    sep = m.group("sep").strip()
    spaced = m.group("sep")[:1] in (" ", "\t") or bool(m.group("pad"))
    quoted = _quoted_value(m)
    if m.group("kq") or name.startswith("-") or sep not in ("=", ":", ":=") or quoted is None:
        return False
    before = _before_on_line(m, 320, name_start)
    if before is None or _KEY_ASSIGNMENT_LEAD.fullmatch(before.lstrip(" \t")) is None:
        return False
    if _stand_in(value, name):
        return False
    if sep == "=" and not spaced and (value.rstrip(":")[-1:] in tuple(",)]};") or s[m.end() : m.end() + 1] in tuple(",)]}")):
        return False  # a keyword argument in code: connect(\n    password='...', or the last one of a def: token=None):
    if quoted:
        return True
    if sep == ":" and not m.group("pad"):
        return False  # YAML needs a space after the colon
    if (sep != "=" or spaced) and not _rest_of_line_blank(s, m.end()):
        return False  # YAML, ini, TOML: one word, then the end of the line
    if sep == "=" and not spaced and value.startswith("#"):
        return True  # db_password=#Sup3r...: glued to '=', a '#' starts the value, not a comment
    return not _code_expression(value, name, spaced=spaced and sep != ":")


_HEADER_NAME = re.compile(r"(?:[A-Z][A-Za-z0-9]*-)+[A-Z][A-Za-z0-9]*")


def _header_secret(m: re.Match[str], name: str) -> bool:
    """An HTTP header anywhere on a line: X-Api-Key: ..., Private-Token: ..., X-Auth-Token: ..."""
    value = m.group("value")
    return (
        _HEADER_NAME.fullmatch(name) is not None
        and m.group("sep") == ":"
        and m.group("pad") == " "
        and not m.group("open")  # a quote after it closes the shell argument: -H 'X-Api-Key: ...'
        and not value.isalpha()
        and not value.startswith(_BARE_SYNTAX_START)
        and not _stand_in(value, name)
    )


def _keyed_secret(m: re.Match[str]) -> bool:
    """The value after a credential's name is a secret: the name (walked back from the matched
    word) decides which form applies, the form decides which values count."""
    s = m.string
    i = m.start()
    head = s[max(0, i - 64) : i]
    name_start = i - (len(head) - len(head.rstrip(_NAME_CHARS)))
    name = s[name_start : m.end("word")]
    if not _credential_name(name) or m.group("value").startswith("[REDACTED"):
        return False
    if _header_secret(m, name):
        return True
    key_quote = _key_quote(s, name_start)
    if key_quote:
        return _quoted_key_secret(m, name, key_quote)
    if name.startswith("--"):
        return _flag_secret(m, name, name_start)
    if m.group("sep") == " ":
        return _netrc_secret(m, name, name_start)
    return _assignment_secret(m, name, name_start)


# Kubernetes, docker inspect, ECS, CloudFormation: the variable's name and its value in a pair,
# the value on the same line (JSON, a YAML flow map, a hook log line) or the next one (YAML)
_NAME_VALUE_PAIR = re.compile(
    rf"(?P<pre>{_ci('name')}\\?[\"']?{_SP}*+[:=]{_SP}*+(?P<q>\\?[\"']?)(?P<env>[A-Za-z0-9_.\-]{{1,128}}+)(?P=q)"
    rf"{_SP}*+(?:,{_SP}*+)?(?:(?:\r\n|{_LINE_BREAK})[-+]?{_SP}*+)?"
    rf"\\?[\"']?{_ci('value')}\\?[\"']?{_SP}*+[:=]{_SP}*+(?P<open>\\?[\"']?))"
    r"(?P<value>[^\s\"'`\\,\]}]++)(?P<post>\\?[\"']?)"
)


def _name_value_secret(m: re.Match[str]) -> bool:
    """``name`` is a whole key (not ``username``), it names a credential, and the value is a literal."""
    env, value = m.group("env"), m.group("value")
    return (
        _word_start(m)
        and _credential_name(env)
        and m.group("open") == m.group("post")
        and not value.startswith(("[REDACTED", "(")) and not _stand_in(value, env)
    )


def _env_assignment(m: re.Match[str]) -> bool:
    """An environment variable's assignment (see _assignment_start) whose value is no stand-in
    (PGPASSWORD: mypassword, SECRET_KEY=secret)."""
    pre = m.group("pre")
    name = pre.rstrip(" \t\"'=:")
    return _assignment_start(m) and not _stand_in(m.group(0)[len(pre) :], name)


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
        # output, a shell line, docker-compose. The value has at least 6 characters (a quoted
        # one may hold spaces) and is not a reference ($VAR, ${VAR}, <placeholder>, %s), a
        # path, a call or a URL.
        "env-secret",
        re.compile(
            rf"(?<![A-Za-z0-9_])(?P<pre>{_SECRET_NAME}(?:=|:{_SP}+)[\"']?)"
            r"(?!\[REDACTED)(?![$<{%/~]|\.{1,2}/)(?![^\s\"'`(]{0,256}(?:\(|://))"
            rf"(?:(?<=[\"'])[^\"'{_LINE_BREAKS}]{{6,}}(?=[\"'])|[^\s\"'`]{{6,}})"
        ),
        ("password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "auth_key",
         "credentials"),
        _env_assignment,
    ),
    (
        # - name: DB_PASSWORD / value: s3cr3t (next line), {"name": "API_TOKEN", "value": "..."}
        "env-secret",
        _NAME_VALUE_PAIR,
        ("name",),
        _name_value_secret,
    ),
    (
        # "password": "...", 'token': '...', db_password=..., password: ..., SECRET_KEY = '...',
        # .netrc, --password=...: see _keyed_secret
        "config-secret",
        _KEYED_SECRET,
        ("pass", "pwd", "secret", "token", "key"),
        _keyed_secret,
    ),
    (
        # curl -u user:password, --user "user:password", --proxy-user user:password: the password
        "basic-auth",
        re.compile(
            rf"(?P<pre>-(?:u|-user|U|-proxy-user)(?:[ \t]+|=)?[\"']?[^\s:\"'{_LINE_BREAKS}]{{1,256}}:)"
            rf"(?!\[REDACTED)[^\s\"'{_LINE_BREAKS}]{{3,256}}"
        ),
        ("curl",),
        _after_curl,
    ),
    (
        # docker config.json: "auth": "<base64 of user:password>"
        "basic-auth",
        re.compile(
            r"(?P<pre>[Aa]uth\\?[\"']{_SP}*:{_SP}*\\?[\"'])"
            r"(?P<value>[A-Za-z0-9+/]{8,4096}={0,2})(?P<post>\\?[\"'])".replace("{_SP}", _SP)
        ),
        ("auth",),
        _basic_credentials,
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


#: patterns whose every match starts at most this many characters before one of its trigger
#: words (``private_key``: 8 before ``key``) are tried only there: a full scan of config-secret's
#: case-blind alternation took 27 ms on 400 KB of real tool output, the anchored one about 2 ms
_ANCHOR_BACK = {"config-secret": 8}

_COMPILED = [
    (kind, pattern, trigger, _replacer(kind, check), _ANCHOR_BACK.get(kind))
    for kind, pattern, trigger, check in SECRET_PATTERNS[1:]
]


def _sub_near_words(pattern: re.Pattern[str], sub, text: str, words: tuple[str, ...], back: int) -> str:
    """``pattern.sub(sub, text)`` for a pattern whose matches all start at most ``back``
    characters before one of ``words`` (lower case): the same matches, tried only there."""
    lower = text.lower()
    if len(lower) != len(text):  # a character whose lower case is longer: positions would not line up
        return pattern.sub(sub, text)
    starts: set[int] = set()
    for w in words:
        i = lower.find(w)
        while i >= 0:
            starts.update(range(max(0, i - back), i + 1))
            i = lower.find(w, i + 1)
    out: list[str] = []
    last = 0
    for p in sorted(starts):
        if p < last:
            continue
        m = pattern.match(text, p)  # lookbehinds still see the text before p, as in sub
        if m is None or m.end() == m.start():
            continue
        out.append(text[last : m.start()])
        out.append(sub(m))
        last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


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
        for _kind, pattern, trigger, sub, back in _COMPILED:
            if any(t in lower for t in trigger):
                text = pattern.sub(sub, text) if back is None else _sub_near_words(pattern, sub, text, trigger, back)
        if text == before:
            break
    return text
