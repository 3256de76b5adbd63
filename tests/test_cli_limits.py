"""CLI edges found in review: unbounded reads, a taken port, tiny inputs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "compaction"]


def run(args, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_without_reading_it():
    p = run(["compact", "/dev/zero"])
    assert p.returncode == 2
    assert p.stderr.strip().endswith("not a regular file; give a file, or - for standard input")


def test_stdin_is_read_only_up_to_the_limit():
    env = dict(os.environ, CONTEXT_DISTILL_MAX_INPUT_BYTES="1000", CONTEXT_DISTILL_SCORER="bm25")
    p = subprocess.run(CLI + ["compact", "-"], input="x" * 50_000, capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2
    assert "over the limit of 1,000" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_a_taken_port_is_one_clear_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = dict(os.environ, CONTEXT_DISTILL_SCORER="bm25")
        p = subprocess.run(
            CLI + ["serve", "--http", "--port", str(port)], capture_output=True, text=True, env=env, timeout=60
        )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].endswith("pick another --port")
    assert "Traceback" not in p.stderr


def test_an_input_too_small_to_compact_comes_back_unchanged():
    env = dict(os.environ, CONTEXT_DISTILL_SCORER="bm25")
    text = "FAILED test_x - AssertionError: expected 3 got 4\n"
    p = subprocess.run(CLI + ["compact", "-", "--ratio", "0.5"], input=text, capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0
    assert p.stdout == text
    assert "too small to compact" in p.stderr
