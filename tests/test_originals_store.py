"""The originals cache behind ``expand``: bounded across processes, least recently *used*
first, never evicting a handle just handed out, never serving a damaged file."""

from __future__ import annotations

import os
import time

import pytest

import compaction
from compaction._store import OriginalStore, handle_for


def _age(store: OriginalStore, seconds: float) -> None:
    old = time.time() - seconds
    for p in store.root.glob("*/*.txt"):
        os.utime(p, (old, old))


def _text(i: int) -> str:
    return "".join(f"line {j} of original {i}\n" for j in range(25))  # about 500 bytes


def test_the_bound_holds_when_every_process_writes_once(tmp_path):
    """Each CLI or hook run is a new process with one write: the bound must still hold."""
    for i in range(12):
        OriginalStore(tmp_path, max_bytes=2_000).put(_text(i))
        _age(OriginalStore(tmp_path), 3600)  # earlier runs, long ago
    files = list((tmp_path / "originals").glob("*/*.txt"))
    assert sum(p.stat().st_size for p in files) <= 2_000
    assert len(files) >= 3  # the newest ones are there


def test_a_handle_just_handed_out_is_never_evicted(tmp_path):
    store = OriginalStore(tmp_path, max_bytes=10)  # smaller than any one original
    handles = [store.put(_text(i)) for i in range(40)]
    for h in handles:
        assert store.get(h).startswith("line 0 of original")


def test_least_recently_used_goes_first(tmp_path):
    store = OriginalStore(tmp_path, max_bytes=1_200)
    a, b = store.put(_text(1)), store.put(_text(2))
    _age(store, 3600)
    store.get(a)  # a is read again: b is now the least recently used
    store.put(_text(3))
    store.prune()
    assert store.get(a)
    with pytest.raises(compaction.HandleNotFoundError):
        store.get(b)


def test_a_damaged_original_is_never_served_and_is_rewritten_by_the_next_put(tmp_path):
    store = OriginalStore(tmp_path)
    text = _text(7)
    h = store.put(text)
    path = tmp_path / "originals" / h[:2] / f"{h}.txt"
    path.write_bytes(path.read_bytes()[:100])  # truncated on disk
    with pytest.raises(compaction.HandleNotFoundError, match="damaged"):
        store.get(h)
    assert not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xfe not utf-8")
    assert store.put(text) == h == handle_for(text)
    assert store.get(h) == text


def test_storing_an_original_again_when_it_cannot_be_touched(tmp_path, monkeypatch):
    """An original already stored is only marked as used again: a file another user owns (utime
    refused) still gives its handle, and one pruned by another process meanwhile is written again."""
    store = OriginalStore(tmp_path)
    text = _text(3)
    h = store.put(text)
    path = tmp_path / "originals" / h[:2] / f"{h}.txt"
    real_utime = os.utime

    def refused(p, *a, **k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "utime", refused)
    assert store.put(text) == h

    def pruned_meanwhile(p, *a, **k):
        os.unlink(p)
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(os, "utime", pruned_meanwhile)
    assert store.put(text) == h
    monkeypatch.setattr(os, "utime", real_utime)
    assert path.is_file() and store.get(h) == text
