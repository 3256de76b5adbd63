"""The one tokenizer behind every budget: o200k_base, loaded offline from the package.

The BPE ranks ship gzipped in ``compaction/assets``. They are decompressed, checked
against the sha256 that tiktoken itself pins for o200k_base, and turned into a
``tiktoken.Encoding`` without touching tiktoken's cache or the network. Loaded once.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import threading
from importlib import resources
from pathlib import Path

import tiktoken

from ._exceptions import AssetCorruptError, AssetMissingError

__all__ = ["Tokenizer", "get_tokenizer", "count_tokens", "TOKENIZER_NAME", "TOKENIZER_SHA256"]

TOKENIZER_NAME = "o200k_base"
#: sha256 of the decompressed rank file (the value tiktoken pins for o200k_base)
TOKENIZER_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_ASSET = "o200k_base.tiktoken.gz"

# From tiktoken_ext.openai_public.o200k_base (tiktoken 0.14); stated here so that no
# code path can reach tiktoken's downloader.
_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}


class Tokenizer:
    """o200k_base with the few operations the engine needs. Special tokens are plain text."""

    name = TOKENIZER_NAME
    sha256 = TOKENIZER_SHA256

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self._enc = encoding

    @classmethod
    def from_file(cls, path: Path | None = None) -> "Tokenizer":
        if path is None:
            ref = resources.files("compaction.assets").joinpath(_ASSET)
            try:
                packed = ref.read_bytes()
            except (FileNotFoundError, OSError) as exc:
                raise AssetMissingError(
                    f"tokenizer file {_ASSET} is missing from the installed package ({exc}); reinstall context-distill"
                ) from None
        else:
            try:
                packed = Path(path).read_bytes()
            except OSError as exc:
                raise AssetMissingError(f"cannot read tokenizer file {path}: {exc.strerror or exc}") from None
        try:
            raw = gzip.decompress(packed)
        except (OSError, EOFError, ValueError) as exc:
            raise AssetCorruptError(f"tokenizer file {_ASSET} is corrupt ({exc}); reinstall context-distill") from None
        digest = hashlib.sha256(raw).hexdigest()
        if digest != TOKENIZER_SHA256:
            raise AssetCorruptError(
                f"tokenizer file {_ASSET} has sha256 {digest[:12]}..., expected {TOKENIZER_SHA256[:12]}...; "
                "reinstall context-distill"
            )
        ranks = {}
        for line in raw.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        enc = tiktoken.Encoding(
            name=TOKENIZER_NAME, pat_str=_PAT_STR, mergeable_ranks=ranks, special_tokens=_SPECIAL_TOKENS
        )
        return cls(enc)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token strings are encoded as ordinary text."""
        # tiktoken's pre-tokenizer gives up on a whitespace run of about a million characters
        # (a stack-overflow panic, which also prints a Rust backtrace): such runs are encoded in
        # pieces. Only this path differs from one pass, by a token or so at each cut; encode and
        # count stay the same function. Runs of one character are spotted before the panic.
        if len(text) <= _MAX_RUN or not any(c * _MAX_RUN in text for c in _RUN_CHARS):
            try:
                return self._enc.encode_ordinary(text)
            except BaseException as exc:  # pyo3's PanicException derives from BaseException
                if type(exc).__name__ != "PanicException":
                    raise
        ids: list[int] = []
        for piece in _pieces(text):
            ids.extend(self._enc.encode_ordinary(piece))
        return ids

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(ids)

    @property
    def n_vocab(self) -> int:
        return self._enc.n_vocab


_WHITESPACE_RUN = re.compile(r"\s+")
_MAX_RUN = 65_536
_RUN_CHARS = (" ", "\t", "\u3000", "\xa0")


def _pieces(text: str) -> list[str]:
    """``text`` cut so that no piece holds a whitespace run longer than ``_MAX_RUN``."""
    cuts = [0]
    for m in _WHITESPACE_RUN.finditer(text):
        if m.end() - m.start() > _MAX_RUN:
            cuts.extend(range(m.start() + _MAX_RUN, m.end(), _MAX_RUN))
    cuts.append(len(text))
    return [text[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


_lock = threading.Lock()
_instance: Tokenizer | None = None


def get_tokenizer() -> Tokenizer:
    """The process-wide tokenizer, loaded and verified on first use."""
    global _instance
    if _instance is None:
        with _lock:
            if _instance is None:
                _instance = Tokenizer.from_file()
    return _instance


def count_tokens(text: str) -> int:
    return get_tokenizer().count(text)
