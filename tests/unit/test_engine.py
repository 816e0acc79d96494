"""Engine argv, environment and secrets: what Claude Code is started with."""

import pytest

from sac_node import engine
from sac_node.node_spec import NodeSpec
from sac_node.protocol.errors import AgentError

read = NodeSpec.from_wire  # a spec dict as the node reads it

SPEC = {"name": "rev", "engine": {"kind": "claude"}, "env": {"PROJECT": "demo"},
        "claude": {"model": "sonnet", "provider": {"base_url": "http://127.0.0.1:9", "api_key_env": "MY_KEY"},
                   "allowed_tools": ["Bash", "Read"], "flags": ["--add-dir", "/data"], "session": "fresh"}}


def test_argv_for_a_sandboxed_resumed_claude():
    argv = engine.build_argv(read(SPEC), "/opt/claude", session_id="abc", sandboxed=True)
    assert argv[:7] == ["/opt/claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json",
                        "--verbose"]
    assert argv[7:] == ["--model", "sonnet", "--allowedTools", "Bash,Read", "--permission-mode", "dontAsk",
                        "--resume", "abc", "--add-dir", "/data"]


@pytest.mark.parametrize("claude, sandboxed, flags", [
    # No list: every tool, as before (bypassPermissions needs the sandbox's non-root uid).
    ({}, True, ["--permission-mode", "bypassPermissions"]),
    ({}, False, []),
    # An allow list: dontAsk refuses what it does not pre-approve, in or out of a sandbox.
    ({"allowed_tools": ["Read"]}, True, ["--allowedTools", "Read", "--permission-mode", "dontAsk"]),
    ({"allowed_tools": ["Bash(git:*)", "mcp__sac__agent_send"]}, False,
     ["--allowedTools", "Bash(git:*),mcp__sac__agent_send", "--permission-mode", "dontAsk"]),
    # Only a deny list: every other tool; deny rules hold even under bypassPermissions.
    ({"disallowed_tools": ["Bash", "WebFetch"]}, True,
     ["--disallowedTools", "Bash,WebFetch", "--permission-mode", "bypassPermissions"]),
    ({"disallowed_tools": ["Bash"]}, False, ["--disallowedTools", "Bash"]),
    ({"allowed_tools": ["Read"], "disallowed_tools": ["Bash(rm:*)"]}, True,
     ["--allowedTools", "Read", "--disallowedTools", "Bash(rm:*)", "--permission-mode", "dontAsk"]),
    # An explicit mode is passed as it is.
    ({"allowed_tools": ["Edit"], "permission_mode": "acceptEdits"}, True,
     ["--allowedTools", "Edit", "--permission-mode", "acceptEdits"]),
    ({"permission_mode": "plan"}, False, ["--permission-mode", "plan"]),
    ({"permission_mode": "default"}, True, ["--permission-mode", "default"]),
])
def test_permission_flags(claude, sandboxed, flags):
    argv = engine.build_argv(read({"name": "a", "claude": claude}), "/opt/claude", sandboxed=sandboxed)
    assert argv == ["/opt/claude"] + engine.STREAM_FLAGS + flags


def test_unsandboxed_claude_never_bypasses_permissions_unless_told():
    assert "bypassPermissions" not in engine.build_argv(read(SPEC), "/opt/claude", sandboxed=False)
    assert "bypassPermissions" not in engine.build_argv(read({"name": "a"}), "/opt/claude", sandboxed=False)


def test_command_engine_is_used_verbatim():
    spec = dict(SPEC, engine={"kind": "command", "command": ["python3", "fake.py", "-x"]})
    assert engine.build_argv(read(spec), None) == ["python3", "fake.py", "-x"]


def test_env_is_quiet_and_has_no_secret():
    env = engine.build_env(read(SPEC), "/h", base_env={"PATH": "/bin", "MY_KEY": "sk-secret", "HOME": "/root"})
    assert env["HOME"] == "/h" and env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1" and env["DISABLE_TELEMETRY"] == "1"
    assert env["PROJECT"] == "demo" and "sk-secret" not in env.values()


def test_secret_comes_from_the_named_variable_or_secrets_file():
    assert engine.resolve_secrets(read(SPEC), {}, {"MY_KEY": "k1"}) == {"ANTHROPIC_API_KEY": "k1"}
    assert engine.resolve_secrets(read(SPEC), {"MY_KEY": "k2"}, {"MY_KEY": "k1"}) == {"ANTHROPIC_API_KEY": "k2"}


def test_missing_secret_names_the_variable_not_a_value():
    with pytest.raises(AgentError) as info:
        engine.resolve_secrets(read(SPEC), {}, {})
    assert "MY_KEY" in info.value.message and "secrets.env" in info.value.message


def test_local_provider_gets_a_placeholder_key():
    spec = {"name": "x", "claude": {"provider": {"base_url": "http://127.0.0.1:1"}}}
    assert engine.resolve_secrets(read(spec), {}, {}) == {"ANTHROPIC_API_KEY": "sac-local"}


def test_find_claude_order(tmp_path):
    binary = tmp_path / "claude"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert engine.find_claude({"SAC_CLAUDE_BIN": str(binary)}) == str(binary)
    with pytest.raises(AgentError, match="SAC_CLAUDE_BIN"):
        engine.find_claude({"SAC_CLAUDE_BIN": str(tmp_path / "nope")})
    assert engine.find_claude({"PATH": str(tmp_path)}) == str(binary)


def test_result_outcomes():
    assert engine.result_outcome({"type": "result", "subtype": "success", "result": "hi"}) == ("completed", "hi", None)
    status, _, error = engine.result_outcome({"type": "result", "is_error": True, "api_error_status": 429,
                                              "result": "rate limited"})
    assert status == "failed" and "HTTP 429" in error


def test_user_line_is_one_json_line():
    line = engine.user_line('say "hi"\nplease')
    assert line.endswith(b"\n") and line.count(b"\n") == 1


def test_api_key_account_replaces_the_provider_key_and_stops_cli_retries():
    secrets, env, binds = engine.account_launch(read(SPEC), {"name": "b", "api_key_env": "KEY_B"}, {}, {"KEY_B": "kb"})
    assert secrets == {"ANTHROPIC_API_KEY": "kb"} and env == {"CLAUDE_CODE_MAX_RETRIES": "0"} and binds == []


def test_config_dir_account_is_bound_and_named_in_the_environment(tmp_path):
    login = tmp_path / "claude-alice"
    login.mkdir()
    secrets, env, binds = engine.account_launch(read(SPEC), {"name": "alice", "config_dir": str(login)}, {}, {})
    assert secrets == {} and env["CLAUDE_CONFIG_DIR"] == str(login)
    assert binds == ["%s:%s:rw" % (login, login)]
    with pytest.raises(AgentError, match="account alice: config_dir .* does not exist"):
        engine.account_launch(read(SPEC), {"name": "alice", "config_dir": str(tmp_path / "nope")}, {}, {})


def test_account_without_its_key_names_the_variable():
    with pytest.raises(AgentError, match="account b names KEY_B"):
        engine.account_launch(read(SPEC), {"name": "b", "api_key_env": "KEY_B"}, {}, {})


def test_a_session_is_resumable_only_once_claude_code_saved_it(tmp_path):
    home = tmp_path / "home"
    config = engine.config_dir(str(home))
    assert config == str(home / ".claude")
    assert not engine.session_saved(config, "abc-1")
    project = home / ".claude" / "projects" / "-srv-work"
    project.mkdir(parents=True)
    (project / "abc-2.jsonl").write_text("{}\n")
    assert not engine.session_saved(config, "abc-1") and engine.session_saved(config, "abc-2")
    # An account with its own config dir keeps its sessions there.
    assert engine.config_dir(str(home), {"name": "b", "config_dir": str(tmp_path / "b")}) == str(tmp_path / "b")
    assert engine.config_dir(str(home), {"name": "k", "api_key_env": "K"}) == config


def test_only_a_failure_inside_the_engine_before_any_output_is_worth_a_fresh_engine():
    inside = {"type": "result", "subtype": "error_during_execution", "is_error": True, "num_turns": 0}
    assert engine.failed_before_acting(inside, spoke=False)
    assert not engine.failed_before_acting(inside, spoke=True)  # it had begun: running it again could act twice
    assert not engine.failed_before_acting(dict(inside, api_error_status=500), spoke=False)  # the provider's
    assert not engine.failed_before_acting({"type": "result", "subtype": "success"}, spoke=False)


def test_a_node_a_head_started_never_tells_the_user_to_run_make_tools(tmp_path):
    with pytest.raises(AgentError) as caught:
        engine.find_claude({"SAC_CLAUDE_BIN": str(tmp_path / "nope"), "SAC_NODE_SETTINGS": "{}"})
    assert "make tools" not in caught.value.message and "sac fleet up" in caught.value.message
