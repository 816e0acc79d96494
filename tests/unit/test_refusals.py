"""Refused tool calls, read from stream-json events shaped as Claude Code 2.1.197 writes them."""

from sac_node.refusals import RefusalWatch

INIT = {"type": "system", "subtype": "init", "session_id": "s", "tools": ["Bash", "Edit", "Read", "Write"],
        "permissionMode": "dontAsk"}


def call(tool_id, name, tool_input):
    return {"type": "assistant", "message": {"content": [{"type": "tool_use", "id": tool_id, "name": name,
                                                          "input": tool_input}]}}


def tool_result(tool_id, text, is_error):
    return {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_id, "content": text, "is_error": is_error}]}}


def result(*denials):
    return {"type": "result", "subtype": "success", "is_error": False, "result": "done",
            "permission_denials": [{"tool_name": n, "tool_use_id": i, "tool_input": inp} for i, n, inp in denials]}


def feed_all(watch, events):
    return [refusal for event in events for refusal in watch.feed(event)]


def test_a_permission_denial_is_one_refusal_named_by_its_tool():
    watch = RefusalWatch()
    bash = {"command": "touch made.txt", "description": "probe"}
    found = feed_all(watch, [INIT, call("t1", "Bash", bash), tool_result("t1", "Permission to use Bash has been "
                     "denied because Claude Code is running in don't ask mode.", True),
                     call("t2", "Read", {"file_path": "x"}), tool_result("t2", "File does not exist.", True),
                     result(("t1", "Bash", bash))])
    assert found == [{"type": "sac", "subtype": "tool_refused", "tool": "Bash", "reason": "permission",
                      "tool_use_id": "t1", "input": '{"command": "touch made.txt", "description": "probe"}'}]
    assert watch.turn_count == 1  # the Read that failed on its own is no refusal


def test_a_call_to_a_tool_that_is_not_there_is_refused_when_its_error_comes_back():
    watch = RefusalWatch()
    found = feed_all(watch, [dict(INIT, tools=["Read"]), call("t1", "Bash", {"command": "touch x"}),
                             tool_result("t1", "<tool_use_error>Error: No such tool available: Bash</tool_use_error>",
                                         True)])
    assert [(r["tool"], r["reason"]) for r in found] == [("Bash", "not_available")]
    assert feed_all(watch, [result()]) == [] and watch.turn_count == 1


def test_counts_are_per_turn_and_a_call_is_reported_once():
    watch = RefusalWatch()
    feed_all(watch, [INIT, call("t1", "Write", {"file_path": "w", "content": "x" * 500}),
                     result(("t1", "Write", {"file_path": "w", "content": "x" * 500}))])
    assert watch.turn_count == 1
    assert feed_all(watch, [result(("t1", "Write", {}))]) == []  # the same call again
    watch.new_turn()
    found = feed_all(watch, [INIT, result(("t9", "mcp__sac__agent_send", {"agent": "a2"}))])
    assert [r["tool"] for r in found] == ["mcp__sac__agent_send"] and watch.turn_count == 1


def test_a_long_input_is_cut_and_an_engine_without_init_gets_no_guess():
    watch = RefusalWatch()
    long_input = {"file_path": "w", "content": "x" * 500}
    found = feed_all(watch, [call("t1", "Write", long_input), result(("t1", "Write", long_input))])
    assert len(found[0]["input"]) == 200 and found[0]["input"].endswith("…")
    # no init event: which tools exist is unknown, so a failed call is only a failed call
    assert feed_all(watch, [call("t2", "Nope", {}), tool_result("t2", "error", True)]) == []
