"""The one tokenizer: o200k_base from the package, verified by sha256, never the network."""

from __future__ import annotations

import gzip
import subprocess
import sys
from importlib import resources

import pytest

import compaction
from compaction._tokenizer import TOKENIZER_SHA256, Tokenizer, get_tokenizer


def test_known_ids_and_counts():
    tok = compaction.get_tokenizer()
    assert tok.encode("hello world") == [24912, 2375]
    assert tok.n_vocab == 200019
    assert compaction.count_tokens("hello world") == 2


def test_special_token_strings_are_plain_text():
    tok = compaction.get_tokenizer()
    ids = tok.encode("<|endoftext|>")
    assert 199999 not in ids and tok.decode(ids) == "<|endoftext|>"


def test_loaded_once():
    assert compaction.get_tokenizer() is compaction.get_tokenizer()


def test_shipped_file_hash():
    import hashlib

    raw = gzip.decompress(resources.files("compaction.assets").joinpath("o200k_base.tiktoken.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == TOKENIZER_SHA256


def test_corrupt_file_is_detected(tmp_path):
    raw = gzip.decompress(resources.files("compaction.assets").joinpath("o200k_base.tiktoken.gz").read_bytes())
    bad = tmp_path / "o200k.gz"
    bad.write_bytes(gzip.compress(raw.replace(b" 1000\n", b" 1001\n", 1)))
    with pytest.raises(compaction.AssetCorruptError, match="sha256"):
        Tokenizer.from_file(bad)
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(compaction.AssetCorruptError, match="corrupt"):
        Tokenizer.from_file(junk)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(compaction.AssetMissingError, match="cannot read"):
        Tokenizer.from_file(tmp_path / "nope.gz")


def test_works_with_no_network_and_no_tiktoken_cache(tmp_path):
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import compaction\n"
        "assert compaction.get_tokenizer().encode('hello world') == [24912, 2375]\n"
    )
    env = {"PATH": "/usr/bin:/bin", "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("text", [" " * 1_000_000 + "x", "a\u3000" + "\u3000" * 1_200_000, "ok " + " \t" * 600_000 + "end"])
def test_whitespace_runs_tiktoken_cannot_take_are_encoded_in_pieces(text):
    """tiktoken 0.14 panics (PanicException, a BaseException) on a whitespace run of about a
    million characters; the tokenizer encodes such runs in pieces instead."""
    tok = get_tokenizer()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.count(text) == len(ids)
    assert 0 < len(ids) < len(text)
