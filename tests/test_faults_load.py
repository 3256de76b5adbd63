"""The load script itself stays working: a small run (8 clients, 24 calls) must answer every
call correctly. The full run (64 clients, 2,000 calls) is in docs/load.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from server_support import MODEL_PRESENT, ROOT


@pytest.mark.slow
def test_small_load_run_answers_every_call_correctly(shared_data, tmp_path):
    env = dict(os.environ)
    env["CONTEXT_DISTILL_SHARED_DATA"] = str(shared_data)
    env["CONTEXT_DISTILL_THREADS"] = "1"
    if not MODEL_PRESENT:
        env["CONTEXT_DISTILL_SCORER"] = "bm25"
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "load_test.py"), "--clients", "8", "--calls", "24",
         "--max-tokens", "12000", "--trajectories", "5", "--max-seconds", "240", "--json", str(out)],
        env=env, cwd=str(ROOT), capture_output=True, timeout=420,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    report = json.loads(out.read_text())
    assert report["answered"] == report["correct"] == 24
    assert report["wrong"] == report["errors"] == 0 and report["server_alive_after"]
    assert report["server_peak_rss_mb"] and report["latency_p99_s"] >= report["latency_p50_s"] > 0
