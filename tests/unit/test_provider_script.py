"""The provider's script: validation errors, prompt extraction, rule matching, `times`."""

import json

import pytest

from sac_fleet.provider.conversation import Conversation
from sac_fleet.provider.responder import Responder
from sac_fleet.provider.script import load_script, parse_script
from sac_node.protocol.errors import ConfigError

REMINDER = {"type": "text", "text": "<system-reminder>\nToday's date is 2026-11-26.\n</system-reminder>\n\n"}
TOOLS = [{"name": "Bash", "input_schema": {}}, {"name": "Read", "input_schema": {}}]


def body(*messages, tools=TOOLS, model="claude-sonnet-4-5"):
    return {"model": model, "messages": list(messages), "tools": tools, "stream": True}


def user(*blocks):
    return {"role": "user", "content": [b if isinstance(b, dict) else {"type": "text", "text": b} for b in blocks]}


def reply_text(reply):
    return "".join(b["text"] for b in reply.blocks if b["type"] == "text")


# --- the prompt -----------------------------------------------------------------------------


def test_prompt_ignores_system_reminders_and_mid_conversation_system_messages():
    convo = Conversation.from_body(body(user(REMINDER, "hi one"), {"role": "system", "content": "Available agent types"}))
    assert convo.prompt == "hi one"


def test_prompt_is_the_newest_text_when_a_failed_turn_left_two_prompts_in_one_message():
    assert Conversation.from_body(body(user(REMINDER, "hello", "again"))).prompt == "again"


def test_prompt_survives_a_tool_round_and_the_tool_output_is_read():
    tool_use = {"type": "tool_use", "id": "toolu_sac0s0n000001", "name": "Bash", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "toolu_sac0s0n000001", "content": [{"type": "text", "text": "made-it"}]}
    convo = Conversation.from_body(body(user("make a file"), {"role": "assistant", "content": [tool_use]}, user(result)))
    assert (convo.prompt, convo.rule_in_progress, convo.calls_done, convo.tool_result) == ("make a file", 0, 1, "made-it")


def test_string_content_and_garbage_shapes_do_not_raise():
    assert Conversation.from_body({"messages": [{"role": "user", "content": "plain"}]}).prompt == "plain"
    assert Conversation.from_body({"messages": "nope"}).prompt == ""
    assert Conversation.from_body({}).prompt == ""


# --- replies --------------------------------------------------------------------------------


def test_default_reply_echoes_the_prompt_with_the_prefix():
    responder = Responder()
    reply = responder.respond(body(user(REMINDER, "hi there")))
    assert (reply_text(reply), reply.label, reply.stop_reason) == ("echo: hi there", "echo", "end_turn")
    assert reply.output_tokens == 3


def test_prefix_is_configurable():
    assert reply_text(Responder({"prefix": "> "}).respond(body(user("x")))) == "> x"


def test_substring_and_regex_rules_match_in_order_with_placeholders():
    responder = Responder(
        {
            "rules": [
                {"name": "greet", "match": "hello", "reply": "hi, you said {prompt}"},
                {"regex": r"^add (\d+) and (\d+)$", "reply": "{1} plus {2}, on {model}; {braces} stay"},
            ]
        }
    )
    first = responder.respond(body(user("oh hello")))
    assert (first.label, reply_text(first)) == ("greet", "hi, you said oh hello")
    second = responder.respond(body(user("add 2 and 3")))
    assert (second.label, reply_text(second)) == ("rules[1]", "2 plus 3, on claude-sonnet-4-5; {braces} stay")
    assert responder.respond(body(user("add 2 and x"))).label == "echo"


def test_model_filter_keeps_side_calls_on_small_models_apart():
    responder = Responder({"rules": [{"match": "x", "model": "haiku", "reply": "small"}]})
    assert reply_text(responder.respond(body(user("x"), model="claude-haiku-4-5"))) == "small"
    assert responder.respond(body(user("x"), model="claude-opus-4-5")).label == "echo"


def test_times_lets_a_rule_fire_n_times_then_fall_through_and_load_resets_it():
    script = {"rules": [{"match": "flaky", "fault": {"status": 529}, "times": 2}, {"match": "flaky", "reply": "ok now"}]}
    responder = Responder(script)
    statuses = [responder.respond(body(user("flaky"))).fault for _ in range(3)]
    assert [f.status if f else None for f in statuses] == [529, 529, None]
    assert reply_text(responder.respond(body(user("flaky")))) == "ok now"
    responder.load(script)
    assert responder.respond(body(user("flaky"))).fault.status == 529


def test_key_fault_applies_to_that_key_only_and_clears_after_times():
    responder = Responder({"keys": {"key-a": {"fault": {"status": 429, "retry_after": 1}, "times": 2}}})
    assert responder.respond(body(user("x")), api_key="key-b").fault is None
    assert [responder.respond(body(user("x")), api_key="key-a").label for _ in range(3)] == ["key fault #1", "key fault #1", "echo"]


def test_tool_rule_then_final_text_with_the_tool_output():
    responder = Responder(
        {"rules": [{"match": "make", "tool": "Bash", "input": {"command": "touch {prompt}.txt"}, "then": "Done: {tool_result}"}]}
    )
    first = responder.respond(body(user("make")))
    call = first.blocks[-1]
    assert (first.stop_reason, call["name"], call["input"]) == ("tool_use", "Bash", {"command": "touch make.txt"})
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": "made-it"}
    final = responder.respond(body(user("make"), {"role": "assistant", "content": [call]}, user(REMINDER, result)))
    assert (final.stop_reason, reply_text(final)) == ("end_turn", "Done: made-it")


def test_tools_list_runs_calls_one_after_another_even_past_times():
    responder = Responder({"rules": [{"match": "two", "times": 1, "tools": [{"tool": "Bash"}, {"tool": "Read", "input": {"file_path": "/x"}}]}]})
    messages = [user("two")]
    names = []
    for _ in range(3):
        reply = responder.respond(body(*messages))
        names.append(reply.blocks[-1].get("name") or reply_text(reply))
        messages += [{"role": "assistant", "content": reply.blocks}, user({"type": "tool_result", "tool_use_id": reply.blocks[-1].get("id"), "content": "r"})]
    assert names == ["Bash", "Read", "r"]


def test_tool_rule_is_skipped_where_the_request_offers_no_such_tool():
    responder = Responder({"rules": [{"match": "make", "tool": "Bash"}]})
    assert responder.respond(body(user("make"), tools=None)).label == "echo"


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, where, words",
    [
        ({"rulez": []}, "rulez", "unknown field (did you mean 'rules'?)"),
        ({"rules": [{"match": "x"}]}, "rules[0]", "needs one of reply, tool"),
        ({"rules": [{"match": "x", "regex": "y", "reply": "r"}]}, "rules[0]", "not both"),
        ({"rules": [{"regex": "(", "reply": "r"}]}, "rules[0].regex", "regular expression"),
        ({"rules": [{"reply": "r", "then": "t"}]}, "rules[0]", "then is the text after a tool call"),
        ({"rules": [{"reply": "r", "fault": {"status": 200}}]}, "rules[0].fault.status", "at least 400"),
        ({"rules": [{"reply": "r", "fault": {"stauts": 429}}]}, "rules[0].fault.stauts", "did you mean 'status'?"),
        ({"rules": [{"fault": {"status": 429, "hang": True}}]}, "rules[0].fault", "choose one of status, hang, stall"),
        ({"rules": [{"reply": "r", "times": 0}]}, "rules[0].times", "at least 1"),
        ({"keys": {"secret-key": {"fault": {"retry_after": 1}}}}, "keys.key-1.fault", "retry_after needs a status"),
    ],
)
def test_bad_scripts_name_the_file_and_the_field_in_one_line(data, where, words):
    with pytest.raises(ConfigError) as caught:
        parse_script(data, "play.yaml")
    message = caught.value.message
    assert message.startswith("play.yaml:1 %s: " % where) and words in message and "\n" not in message
    assert "secret-key" not in message


def test_load_script_reads_yaml_and_json(tmp_path):
    (tmp_path / "s.yaml").write_text("rules:\n  - match: hi\n    reply: yo\n")
    (tmp_path / "s.json").write_text(json.dumps({"prefix": "J "}))
    assert load_script(tmp_path / "s.yaml").rules[0].reply == "yo"
    assert load_script(tmp_path / "s.json").prefix == "J "


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("p.yaml", "rules:\n  - match: x\n    reply: y\nkeys:\n  sk-live-123:\n    fault: {status: 4291}\n",
         "p.yaml:6 keys.key-1.fault.status: must be at most 599, got 4291"),
        ("p.yaml", "rules: [\n", "p.yaml:2 syntax:"),
        ("p.json", '{"rules": [\n{"reply": }]}', "p.json:2 syntax: Expecting value"),
        ("p.json", "[1, 2]", "p.json:1 document: expected a mapping with prefix, rules, keys, got a list"),
    ],
)
def test_bad_script_files_name_file_line_and_field_but_never_the_key(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_script(tmp_path / name)
    assert caught.value.message.startswith("%s/%s" % (tmp_path, message))
    assert "\n" not in caught.value.message and "sk-live" not in caught.value.message


def test_missing_script_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: no such file"):
        load_script(tmp_path / "missing.yaml")
