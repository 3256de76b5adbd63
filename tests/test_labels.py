"""The labeller (training/labels.py) on real agent logs (tests/fixtures/labels/SOURCE.md)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from training import labels as L

FIX = Path(__file__).resolve().parent / "fixtures" / "labels"
SK_FILE = "sklearn/ensemble/_hist_gradient_boosting/gradient_boosting.py"


@pytest.fixture(scope="module")
def sk() -> L.Trajectory:
    """mini-swe-agent + Gemini 3 Pro on scikit-learn__scikit-learn-14710 (real, MIT)."""
    return next(L.read_mini_swe(FIX / "mini-swe-agent-scikit-learn-14710.traj.jsonl.gz"))


@pytest.fixture(scope="module")
def aider() -> L.Trajectory:
    md = (FIX / "aider-astropy__astropy-14182.excerpt.md").read_text(encoding="utf-8")
    return L.aider_trajectory("astropy__astropy-14182", md, {"model_patch": ""})


@pytest.fixture(scope="module")
def df() -> L.DocFreq:
    """Real document frequencies (over all 19k tool outputs of ../shared/data) of the
    words in these fixtures, so that rarity is what the dataset builder sees."""
    data = json.loads(gzip.decompress((FIX / "docfreq.json.gz").read_bytes()))
    out = L.DocFreq()
    out.n = data["n"]
    out.df.update(data["df"])
    return out


def _call(traj: L.Trajectory, needle: str) -> tuple[int, L.ToolCall]:
    for k, (_, call) in enumerate(L.tool_calls(traj)):
        if needle in call.command:
            return k + 1, call
    raise AssertionError(f"no tool call with {needle!r}")


def _example(traj: L.Trajectory, df: L.DocFreq, needle: str) -> L.Example:
    step, _ = _call(traj, needle)
    return next(e for e in L.label_trajectory(traj, df, with_evidence=True) if e.step == step)


def _labels_with(call: L.ToolCall, later: list[str], df: L.DocFreq, patch: str = "", task: str = "") -> list[int]:
    traj = L.Trajectory("mini-swe-agent", "t", "scikit-learn/scikit-learn", task)
    traj.events = [("tool", call)] + [("agent", text) for text in later]
    traj.patch = patch
    (ex,) = list(L.label_trajectory(traj, df))
    return ex.labels


# ----------------------------------------------------------------------------- readers
def test_mini_swe_reader_strips_the_wrapper_and_keeps_real_lines(sk):
    calls = [c for _, c in L.tool_calls(sk)]
    assert len(calls) > 20
    for c in calls:
        assert "<returncode>" not in c.output and "<output>" not in c.output and "</output>" not in c.output
        assert c.command and "```" not in c.command
    _, grep = _call(sk, 'grep -n "def _encode_y"')
    assert grep.output.splitlines() == [
        "629:    def _encode_y(self, y=None):",
        "804:    def _encode_y(self, y):",
        "1022:    def _encode_y(self, y):",
    ]
    assert grep.thought.startswith("I need to find `_encode_y` implementation.")


def test_mini_swe_reader_elided_output_format_errors_and_multiple_blocks(tmp_path):
    head = "line a\nline b\n"
    tail = "line y\nline z\n"
    traj = {
        "instance_id": "sympy__sympy-1",
        "info": {"submission": ""},
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "<pr_description>\nConsider the following PR description:\nFix it\n</pr_description>"},
            {"role": "assistant", "content": "THOUGHT: list\n\n```bash\nls -R\n```"},
            {
                "role": "user",
                "content": "<returncode>0</returncode>\n<warning>\nThe output of your last command was too long.\n</warning>"
                f"<output_head>\n{head}</output_head>\n<elided_chars>\n123 characters elided\n</elided_chars>\n"
                f"<output_tail>\n{tail}</output_tail>",
            },
            {"role": "assistant", "content": "THOUGHT: two\n\n```bash\nls\n```\n\n```bash\npwd\n```"},
            {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks, found 2 actions."},
            {"role": "assistant", "content": "THOUGHT: one\n\n```bash\ncat a.py\n```"},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\nx = 1\n</output>"},
        ],
    }
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(traj) + "\n").encode()))
    (t,) = list(L.read_mini_swe(path))
    assert t.repo == "sympy/sympy" and L.split_of(t.repo) == "val"
    assert t.task == "Fix it"
    calls = [c for _, c in L.tool_calls(t)]
    assert [c.command for c in calls] == ["ls -R", "cat a.py"]
    assert calls[0].output.splitlines() == ["line a", "line b", "line y", "line z"]
    assert calls[0].view_range is None
    assert calls[1].output.splitlines() == ["x = 1"] and calls[1].thought == "one"


def test_aider_reader_strips_prefix_and_trailing_spaces(aider, df):
    calls = [c for _, c in L.tool_calls(aider)]
    for c in calls:
        for line in c.output.splitlines():
            assert not line.startswith("> ") and line == line.rstrip(" ")
        assert "Aider v0.35" not in c.output and "prompt tokens" not in c.output
    step, lint = _call(aider, "flake8")
    assert lint.command.startswith("flake8 --select=E9")
    assert "astropy/io/ascii/core.py:1815:33: F821 undefined name 'header_rows'" in lint.output.splitlines()
    ex = next(e for e in L.label_trajectory(aider, df) if e.step == step)
    assert ex.lines == lint.output.splitlines() and len(ex.labels) == len(ex.lines)
    used = {line for line, lab in zip(ex.lines, ex.labels) if lab}
    # the agent's next SEARCH block quotes the flagged line
    assert "writer = Writer(header_rows=header_rows, **writer_kwargs)" in used
    # Aider's own chrome is not evidence of anything
    assert "## See relevant line below marked with █." not in used


# ----------------------------------------------------------------------------- traps
def test_grep_pattern_alone_does_not_make_a_hit_used(sk, df):
    ex = _example(sk, df, 'grep -n "def _encode_y"')
    labels = dict(zip(ex.lines, ex.labels))
    # the agent later opened 804 (sed -n '804,810p') and 1022 (named, then viewed)
    assert labels["804:    def _encode_y(self, y):"] == 1
    assert labels["1022:    def _encode_y(self, y):"] == 1
    # 629 holds the same pattern but was never opened
    assert labels["629:    def _encode_y(self, y=None):"] == 0
    for why in ex.why:  # type: ignore[attr-defined]
        assert "_encode_y" not in dict(why["words"])  # the command's own words prove nothing


def test_file_line_later_opened_is_used_the_pattern_alone_is_not(df):
    out = "629:    def _encode_y(self, y=None):\n804:    def _encode_y(self, y):\n1022:    def _encode_y(self, y):\n"
    call = L.ToolCall("I need to find `_encode_y`.", f'grep -n "def _encode_y" {SK_FILE}', out, (SK_FILE,), None)
    mention = "THOUGHT: `_encode_y` is defined three times; let me think about `_encode_y`.\n\n```bash\necho ok\n```"
    assert _labels_with(call, [mention], df) == [0, 0, 0]
    opened = f"THOUGHT: Let me look.\n\n```bash\nnl -ba {SK_FILE} | sed -n '804,810p'\n```"
    assert _labels_with(call, [mention, opened], df) == [0, 1, 0]
    # a file:line reference works the same way
    assert _labels_with(call, [f"The bug is at gradient_boosting.py:1022 I think."], df) == [0, 0, 1]


def test_line_number_prefix_matches_only_a_reference_to_that_line(sk, df):
    step, view = _call(sk, "sed -n '804,810p'")
    lines = view.output.splitlines()
    assert lines[3].lstrip().startswith("807\t")
    assert _labels_with(view, ["THOUGHT: I ran 807 tests and 3 failed.\n\n```bash\necho\n```"], df)[3] == 0
    assert _labels_with(view, [f"THOUGHT: check.\n\n```bash\nsed -n '807,807p' {SK_FILE}\n```"], df)[3] == 1


def test_verbatim_quote_counts_boilerplate_and_prose_do_not(sk, df):
    _, view = _call(sk, "sed -n '804,810p'")
    lines = view.output.splitlines()
    i_astype = next(i for i, l in enumerate(lines) if "y.astype(Y_DTYPE" in l)
    i_comment = next(i for i, l in enumerate(lines) if "# Just convert y to the expected dtype" in l)
    quoted = "THOUGHT: The regressor does:\n```python\n        y = y.astype(Y_DTYPE, copy=False)\n```\nso it is float."
    labels = _labels_with(view, [quoted], df)
    assert labels[i_astype] == 1
    assert sum(labels) <= 2
    # plain English words of a comment found in the agent's prose are weak evidence
    prose = "THOUGHT: I just want to convert it to the expected type, nothing else.\n\n```bash\necho\n```"
    assert _labels_with(view, [prose], df)[i_comment] == 0
    # the same comment quoted as code is a quote
    code = "THOUGHT: see\n```python\n        # Just convert y to the expected dtype\n```"
    assert _labels_with(view, [code], df)[i_comment] == 1


def test_whole_file_rewrite_is_not_use_of_every_line(sk, df):
    _, view = _call(sk, "sed -n '968,983p'")
    body = [re.sub(r"^\s*\d+\t", "", l) for l in view.output.splitlines()]
    rewrite = "THOUGHT: rewrite it\n\n```bash\ncat <<'EOF' > /tmp/copy.py\n" + "\n".join(body) + "\nEOF\n```"
    labels = _labels_with(view, [rewrite], df)
    assert sum(labels) == 0
    # an edit that touches one line of it still counts that line
    one = "THOUGHT: fix\n\n```bash\npython - <<'EOF'\ns = s.replace('encoded_classes = np.argmax(self.predict_proba(X), axis=1)', 'x')\nEOF\n```"
    labels = _labels_with(view, [rewrite, one], df)
    used = [body[i] for i, lab in enumerate(labels) if lab]
    assert used == ["        encoded_classes = np.argmax(self.predict_proba(X), axis=1)"]


def test_final_patch_lines_count_context_lines_do_not(sk, df):
    out = (
        "        Scores are computed on validation data or on training data.\n"
        '        """\n'
        "        self.train_score_.append(\n"
        "            self.scorer_(self, X_binned_small_train, y_small_train)\n"
        "        )\n"
    )
    call = L.ToolCall("look", f"sed -n '427,431p' {SK_FILE}", out, (SK_FILE,), (427, 431))
    assert "\n         Scores are computed on validation data or on training data.\n" in sk.patch  # a context line
    labels = _labels_with(call, [], df, patch=sk.patch)
    # the patch's added lines use y_small_train; the docstring line is only diff context
    assert labels == [0, 0, 0, 1, 0]
    assert _labels_with(call, [], df, patch="") == [0, 0, 0, 0, 0]


def test_examples_are_exact_splitlines_with_one_label_per_line(sk, df):
    exs = list(L.label_trajectory(sk, df))
    calls = [c for _, c in L.tool_calls(sk) if c.output.splitlines()]
    assert len(exs) == len(calls)
    for ex, call in zip(exs, calls):
        assert ex.lines == call.output.splitlines()
        assert len(ex.labels) == len(ex.weights) == len(ex.soft) == len(ex.lines)
        assert all(lab in (0, 1) for lab in ex.labels)
        assert all((s >= 1.0) == bool(lab) for s, lab in zip(ex.soft, ex.labels))
        assert all(0.5 <= w <= 1.0 for w in ex.weights)
        assert all(lab == 0 for line, lab in zip(ex.lines, ex.labels) if not line.strip())
    assert 0 < sum(sum(e.labels) for e in exs) < sum(len(e.lines) for e in exs) / 2


def test_query_is_thought_command_then_short_task(sk, df):
    ex = _example(sk, df, 'grep -n "def _encode_y"')
    assert ex.query.startswith("I need to find `_encode_y` implementation.\n$ grep -n \"def _encode_y\"")
    assert "\n\nTask: " in ex.query
    from compaction import get_tokenizer

    task = ex.query.split("\n\nTask: ", 1)[1]
    assert get_tokenizer().count(task) <= 205
    assert len(sk.task) > len(task)


def test_query_holds_the_earlier_messages_but_not_the_current_one_twice(df):
    traj = L.Trajectory("mini-swe-agent", "t", "a/b", "Fix the bug.")
    traj.events = [
        ("agent", "THOUGHT: first look\n```bash\nls\n```"),
        ("tool", L.ToolCall("first look", "ls", "a.py\nb.py")),
        ("agent", "THOUGHT: open a.py\n```bash\ncat a.py\n```"),
        ("tool", L.ToolCall("open a.py", "cat a.py", "x = 1\ny = 2")),
    ]
    first, second = L.label_trajectory(traj, df)
    assert first.query == "first look\n$ ls\n\nTask: Fix the bug."
    assert second.query == "open a.py\n$ cat a.py\n\nEarlier: THOUGHT: first look\n```bash\nls\n```\n\nTask: Fix the bug."


# ----------------------------------------------------------------------------- split
def test_split_by_repository():
    assert L.repo_of_instance("sphinx-doc__sphinx-8595") == "sphinx-doc/sphinx"
    assert L.repo_of_instance("scikit-learn__scikit-learn-14710") == "scikit-learn/scikit-learn"
    assert L.split_of("sympy/sympy") == "val" and L.split_of("sphinx-doc/sphinx") == "val"
    assert L.split_of("django/django") == "train"


def test_no_repository_on_both_sides_in_the_real_data(shared_data):
    import tarfile

    repos: dict[str, set[str]] = {}
    pat = re.compile(r"\"instance_id\":\s*\"([^\"]+)\"")
    with gzip.open(shared_data / "trajectories" / "mini-swe-agent-gemini3pro.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            iid = pat.findall(line)[-1]
            repos.setdefault(L.repo_of_instance(iid), set()).add(L.split_of(L.repo_of_instance(iid)))
    with tarfile.open(shared_data / "trajectories" / "aider-swebench-lite.tar.gz") as tf:
        for name in tf.getnames():
            base = name.rsplit("/", 1)[-1]
            if "__" in base and base.endswith(".md"):
                repo = L.repo_of_instance(base[:-3])
                repos.setdefault(repo, set()).add(L.split_of(repo))
    assert all(len(s) == 1 for s in repos.values())
    val = {r for r, s in repos.items() if s == {"val"}}
    assert val == {"sympy/sympy", "sphinx-doc/sphinx"}
    assert len(repos) == 12


def test_without_earlier_leaves_out_only_the_earlier_messages():
    q = "open a.py\n$ cat a.py\n\nEarlier: first look\n\nTask: Fix the bug."
    assert L.without_earlier(q) == "open a.py\n$ cat a.py\n\nTask: Fix the bug."
    assert L.without_earlier("Earlier: x\n\nTask: t") == "Task: t"
    assert L.without_earlier("a\n\nEarlier: x") == "a"
    assert L.without_earlier("why does it fail?") == "why does it fail?"


def test_short_query_picks_a_fixed_share_of_examples():
    ids = [f"mini-swe-agent:django__django-{i}:{j}" for i in range(200) for j in range(10)]
    picked = [i for i in ids if L.short_query(i, 0.35)]
    assert 0.32 < len(picked) / len(ids) < 0.38
    assert picked == [i for i in ids if L.short_query(i, 0.35)]  # the same every time
    assert not any(L.short_query(i, 0.0) for i in ids) and all(L.short_query(i, 1.0) for i in ids)


def test_without_thought_leaves_out_only_the_latest_thought():
    q = "open a.py\nto see the bug\n$ cat a.py\n\nEarlier: x\n\nTask: Fix the bug."
    assert L.without_thought(q) == "$ cat a.py\n\nEarlier: x\n\nTask: Fix the bug."
    assert L.without_thought("$ ls\n\nTask: t") == "$ ls\n\nTask: t"
    assert L.without_thought("just a thought\n\nTask: t") == "Task: t"
    assert L.without_thought("Earlier: x\n\nTask: t") == "Earlier: x\n\nTask: t"
    assert L.without_thought("why does it fail?") == ""
    many = "first paragraph\n\nsecond paragraph\n\n$ sed -n 1,5p a.py\n\nEarlier: x\n\nTask: t"
    assert L.without_thought(many) == "$ sed -n 1,5p a.py\n\nEarlier: x\n\nTask: t"
    assert L.without_thought("thought\n\nmore thought\n\nTask: t") == "Task: t"
