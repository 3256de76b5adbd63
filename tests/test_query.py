"""The query layout shared by training (training/labels.py) and the runtime (hooks, messages)."""

import compaction
from compaction.baselines import BM25Scorer
from compaction import _query


def test_agent_query_layout():
    q = compaction.agent_query(
        thought="Let me look at the parser.", command="sed -n 1,40p src/parser.c", earlier=["first", "second"], task="fix it"
    )
    assert q == "Let me look at the parser.\n$ sed -n 1,40p src/parser.c\n\nEarlier: second\nfirst\n\nTask: fix it"


def test_agent_query_parts_are_optional():
    assert compaction.agent_query() == ""
    assert compaction.agent_query(task="fix it") == "Task: fix it"
    assert compaction.agent_query(command="ls") == "$ ls"
    assert compaction.agent_query(earlier=["", "  "], thought="x") == "x"


def test_agent_query_keeps_the_most_recent_earlier_messages():
    tok = compaction.get_tokenizer()
    old = [f"old message {i} " + "filler " * 200 for i in range(30)]
    q = compaction.agent_query(thought="now", earlier=old + ["the latest_name message"])
    before = q.split("Earlier: ", 1)[1]
    assert before.startswith("the latest_name message")
    assert "old message 0 " not in before  # beyond EARLIER_MESSAGES and the token budget
    assert tok.count(before) <= _query.EARLIER_TOKENS + 5


def test_agent_query_cuts_each_part_to_its_budget():
    tok = compaction.get_tokenizer()
    q = compaction.agent_query(thought="word " * 5000, task="task " * 5000)
    head, task = q.split("\n\nTask: ")
    assert tok.count(head) <= _query.ACTION_TOKENS + 3 and head.endswith(" ...")
    assert tok.count(task) <= _query.TASK_TOKENS + 3


def test_compact_messages_default_query_holds_the_assistants_messages():
    engine = compaction.Engine(scorer=BM25Scorer(), store=False)
    log = "\n".join(f"line {i} nothing here" for i in range(200))
    msgs = [
        {"role": "user", "content": "Why does parse_header crash?"},
        {"role": "assistant", "content": "I will grep for parse_header in src/.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "grep -rn parse_header src"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": log},
        {"role": "assistant", "content": [{"type": "text", "text": "Now the tests."},
                                          {"type": "tool_use", "id": "t2", "name": "bash", "input": {"cmd": "pytest -x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": log}]},
    ]
    r = engine.compact_messages(msgs, ratio=0.3, preserve_recent=1)
    assert r.query.startswith("Now the tests.\n")
    assert "pytest -x" in r.query
    assert "Earlier: I will grep for parse_header in src/." in r.query and "grep -rn parse_header src" in r.query
    assert r.query.endswith("Task: Why does parse_header crash?")
    # a caller's query wins
    assert engine.compact_messages(msgs, ratio=0.3, query="mine").query == "mine"


def test_the_task_is_what_the_user_typed_not_a_tool_result_beside_an_image():
    from compaction._messages import default_query

    big = "\n".join(f"line {i}: the value of item {i}" for i in range(300))
    msgs = [
        {"role": "user", "content": "Fix test_parse in dates.py"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": big}, {"type": "image", "source": {}}]},
    ]
    q = default_query(msgs)
    assert q.endswith("Task: Fix test_parse in dates.py") and "the value of item" not in q
