"""The README's before/after example is what the shipped model really produces.

The README quotes the output of its first command and of an `expand` of one omitted range;
both are re-run here (default deletion model, a fresh originals store) and compared byte for
byte, so the README cannot drift from the engine or the model file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "sphinx-pytest-failure.txt"
QUERY = "why does test_pyproperty fail?"


def _block_after(heading: str, fence: str) -> str:
    """The first ```fence block after ``heading`` in the README."""
    start = README.index(heading)
    m = re.compile(r"^```" + fence + r"\n(.*?)^```$", re.DOTALL | re.MULTILINE).search(README, start)
    assert m, f"no ```{fence} block after {heading!r} in README.md"
    return m.group(1)


def _cli(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "compaction", *args], capture_output=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_readme_before_and_after_is_the_real_output():
    command = f'context-distill compact examples/sphinx-pytest-failure.txt --ratio 0.3 --query "{QUERY}"'
    assert f"`{command}`" in README
    shown = _block_after("## Before and after", "text")
    out = _cli("compact", str(EXAMPLE), "--ratio", "0.3", "--query", QUERY)
    assert out == shown


def test_readme_expand_example_is_the_real_output():
    _cli("compact", str(EXAMPLE), "--ratio", "0.3", "--query", QUERY)  # stores the original
    console = _block_after("## Before and after", "console")
    first, _, rest = console.partition("\n")
    m = re.fullmatch(r"\$ context-distill expand ([0-9a-f]{16}) --lines (\S+)", first)
    assert m, first
    assert _cli("expand", m.group(1), "--lines", m.group(2)) == rest
