"""Names in text: file paths and file names, code identifiers, task / issue ids.

Used twice: the extractive summarizer weights lines by the session's names it covers,
and scripts/measure_sessions.py counts which of Claude Code's summary's names a summary
carries. A *name* is a whitespace/punctuation-delimited token that is

* a path (has ``/`` and a letter) or a file name with a short extension (``mix.exs``);
* a code identifier: has ``_`` between letters (``get_current_trace_id``,
  ``SPOTTER_OTEL_ENABLED``), an inner capital (``OtelTraceHelpers``, ``getTraceId``), or
  is dotted with an identifier part (``Tracer.current_span_ctx``); ``()``, ``/2`` (arity),
  leading ``:`` / ``@`` / ``./`` and trailing punctuation are stripped (a leading ``../``,
  a dot-folder's and a dotfile's dot are kept; a method's ``.map_err`` dot is not);
* a dotfile: ``.env``, ``.gitignore``, ``.credo.exs``, ``.env.local``;
* a task id: letters, ``-``, then letters and digits with at least one digit, optionally
  ``.N`` sub-ids (``spotter-4te.3``, ``PROJ-123``), or ``#123``.

Plain words (``Dialyzer``, ``the``), numbers and version strings are not names.
"""

from __future__ import annotations

import re

__all__ = ["extract_names", "looks_like_file", "is_task_id", "NAME_SPLIT"]

NAME_SPLIT = re.compile(r"[\s`'\"()\[\]{}<>,;|=!?*^$&+]+")
_STRIP = ".:,;!?-"
#: stripped from a token's start (a leading dot belongs to ``../`` and to dotfiles)
_LEAD_STRIP = ":,;!?-"
_ARITY = re.compile(r"/\d+$")
_STEM = re.compile(r"^[\w.-]*\w$")
_TASK = re.compile(r"^(?:[A-Za-z][A-Za-z0-9]*-(?=[A-Za-z0-9]*\d)[A-Za-z0-9]+(?:\.\d+)*|#\d+)$")
_SNAKE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+[?!]?$|^_[a-z][A-Za-z0-9_]+$")
_CAMEL = re.compile(r"^[A-Za-z]*[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*$|^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+$")
_DOTTED = re.compile(r"^[A-Za-z_][\w?!]*(?:\.[A-Za-z_][\w?!]*)+$")
_VERSIONISH = re.compile(r"^v?\d+(?:\.\d+)*[a-z0-9.-]*$")
_COMMON_EXT_WORDS = frozenset({"e.g", "i.e", "etc", "vs", "a.m", "p.m"})
_FILE_EXTS = frozenset(
    "ex exs py js ts tsx jsx mjs cjs json jsonl md txt toml yaml yml cfg ini sh bash zsh fish rb go rs java kt "
    "c h cc cpp hpp cs swift php sql html heex eex leex css scss sass lock xml csv lua vue svelte erl hrl nix "
    "dockerfile mk gradle proto graphql ipynb r jl scala clj ml hs pl tf env".split()
)


#: dotfiles and dot-folders known by name (``.env``, ``.gitignore``, ``.github``)
_DOTFILE_NAMES = frozenset(
    "env envrc gitignore gitattributes gitmodules gitkeep dockerignore editorconfig bashrc zshrc bash_profile profile "
    "npmrc nvmrc yarnrc prettierrc eslintrc babelrc stylelintrc tool-versions python-version ruby-version node-version "
    "pre-commit-config flake8 pylintrc coveragerc pypirc netrc ssh aws kube github gitlab vscode idea circleci devcontainer "
    "husky venv cargo config local cache formatter credo iex dialyzer ds_store".split()
)
#: what a dotfile's name may end in besides a source/config extension (``.env.local``)
_DOTFILE_EXTS = frozenset("local example sample template dist dev development prod production test staging bak orig".split())


def _is_dotfile(tok: str) -> bool:
    """``.env``, ``.gitignore``, ``.credo.exs``, ``.env.local``: a dot, then a known dotfile
    name or a name with an extension (not a method call's ``.map_err``)."""
    if not tok.startswith(".") or tok.startswith("..") or len(tok) < 3:
        return False
    parts = tok[1:].split(".")
    if not all(re.match(r"^[A-Za-z0-9][\w-]*$", p) for p in parts):
        return False
    if parts[0].lower() in _DOTFILE_NAMES:
        return True
    return len(parts) >= 2 and (parts[-1].lower() in _FILE_EXTS or parts[-1].lower() in _DOTFILE_EXTS)


def _strip_lead(tok: str) -> str:
    """``tok`` without leading punctuation and a leading ``./`` (so ``./django/x.py`` is the
    relative path ``django/x.py``). A leading dot stays only where it is part of the name: a
    path's ``../`` or dot-folder (``.github/``) and a dotfile (``.credo.exs``, ``.env.local``);
    elsewhere it is a method or attribute access (``.map_err``, ``cls().is_authenticated``)."""
    tok = tok.lstrip(_LEAD_STRIP)
    while tok.startswith("./"):
        tok = tok[2:].lstrip("/")
    if tok.startswith(".") and "/" not in tok and not _is_dotfile(tok):
        tok = tok.lstrip(".")  # an ellipsis or an attribute access, not a path
    return tok


def _clean(tok: str) -> str:
    tok = _strip_lead(tok.rstrip(_STRIP))
    if tok.endswith("()"):
        tok = tok[:-2]
    if "/" in tok and tok[-1:].isdigit():
        tok = _ARITY.sub("", tok)  # arity: set_error/2
    tok = tok.lstrip(":@%")
    return _strip_lead(tok.rstrip(_STRIP))


def _is_name(tok: str) -> bool:
    n = len(tok)
    if n < 3 or n > 200:
        return False
    if "/" in tok:
        if not re.search(r"[A-Za-z]{2}", tok) or tok.startswith("//") or tok.count("/") >= 30:
            return False
        segs = [s for s in tok.split("/") if s]
        if not segs or all(s[:1].isupper() and s[1:].isalpha() for s in segs):
            return False  # prose like "Elixir/Phoenix/Ash"
        return tok[0] in "/~." or "." in segs[-1] or "_" in tok or "-" in tok or len(segs) >= 3 or tok.endswith("/")
    if n > 100:
        return False
    # cheap test first: a name needs one of . _ - # or an inner capital
    if not ("." in tok or "_" in tok or "-" in tok or tok[0] == "#" or any(c.isupper() for c in tok[1:])):
        return False
    if not any(c.isalpha() for c in tok) or _VERSIONISH.match(tok):
        return False
    if _TASK.match(tok) or _is_dotfile(tok):
        return True
    if "." in tok:
        stem, ext = tok.rsplit(".", 1)
        if ext.lower() in _FILE_EXTS and stem and tok.lower() not in _COMMON_EXT_WORDS and _STEM.match(stem):
            return True
    if _SNAKE.match(tok) or _CAMEL.match(tok):
        return True
    if _DOTTED.match(tok):
        parts = tok.split(".")
        return any(_SNAKE.match(p) or _CAMEL.match(p) or p[:1].isupper() for p in parts) and not all(
            p.islower() and len(p) <= 3 for p in parts
        )
    return False


def is_task_id(name: str) -> bool:
    """A task / issue id: ``spotter-4te.3``, ``PROJ-123``, ``#123``."""
    return bool(_TASK.match(name))


def looks_like_file(name: str) -> bool:
    """A name that is a path or a file name with a known extension."""
    last = name.rstrip("/").rsplit("/", 1)[-1]
    return "." in last and (last.rsplit(".", 1)[1].lower() in _FILE_EXTS or _is_dotfile(last))


_CACHE: dict[str, str | None] = {}
#: tokens remembered (repeated tokens are classified once); 0 turns the cache off
CACHE_MAX = 500_000


def _name_of(raw: str) -> str | None:
    hit = _CACHE.get(raw, _CACHE)
    if hit is not _CACHE:
        return hit  # type: ignore[return-value]
    tok = _clean(raw)
    out = tok if _is_name(tok) else None
    if len(_CACHE) >= CACHE_MAX:
        _CACHE.clear()
        if not CACHE_MAX:
            return out
    _CACHE[raw] = out
    return out


def extract_names(text: str) -> set[str]:
    """The set of names in ``text`` (see the module docstring for what counts)."""
    out: set[str] = set()
    for raw in set(NAME_SPLIT.split(text)):
        if raw:
            name = _name_of(raw)
            if name is not None:
                out.add(name)
    return out
