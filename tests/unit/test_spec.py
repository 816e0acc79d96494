"""The agent spec: parsing, defaults, the node-facing dict, and the exact error lines."""

from __future__ import annotations

import copy
import os
import re
import sys
import tempfile
from pathlib import Path

import msgpack
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sac_fleet.core.spec import Spec, parse_spec, read_to_home
from sac_fleet.frontends.cli import app as cli_app
from sac_node.protocol.errors import SpecError

FULL = """\
apiVersion: sac/v1
kind: Agent
metadata: {name: reviewer, labels: {role: reviewer}}
spec:
  workdir: ./work
  engine: claude
  claude:
    model: sonnet
    provider: {base_url: http://127.0.0.1:8787, api_key_env: SAC_PROVIDER_KEY}
    allowed_tools: [Bash, Read, Edit]
    flags: []
    session: fresh
  env: {PROJECT: demo}
  startup_prompts: ["Read README.md and wait for instructions."]
  restart: {policy: on-failure, max_retries: 5, backoff: {initial: 1, max: 60, multiplier: 2}}
  health: {turn_timeout_s: 600, stall_timeout_s: 300}
  isolation: {runtime: auto, image: ~/.sac/images/sac-base.sif, binds: ["/data/shared:/data:ro"], network: host, gpus: false}
  placement: {}
"""

MINIMAL = "apiVersion: sac/v1\nkind: Agent\n"

DEFAULTS = {
    "labels": {},
    "workdir": "work",
    "engine": {"kind": "claude"},
    "claude": {"model": None, "provider": {"base_url": None, "api_key_env": None},
               "allowed_tools": [], "flags": [], "session": "fresh", "accounts": [],
               "quota": {"rotate_at": 0.9, "cooldown_s": 60.0, "max_cooldown_s": 900.0, "overload_backoff_s": 5.0}},
    "env": {},
    "startup_prompts": [],
    "restart": {"policy": "on-failure", "max_retries": 5, "backoff": {"initial": 1.0, "max": 60.0, "multiplier": 2.0}},
    "health": {"turn_timeout_s": 600.0, "stall_timeout_s": 300.0},
    "isolation": {"runtime": "auto", "image": None, "binds": [], "network": "provider", "gpus": False},
    "placement": {"hosts": [], "group": None, "labels": {}, "replicas": 1, "per_host": False,
                  "singleton": False, "sticky": True},
    "to_home": {},
}


def write_spec(root: Path, text: str, name: str = "reviewer") -> Path:
    agent = root / name
    agent.mkdir(parents=True, exist_ok=True)
    (agent / "spec.yaml").write_text(text)
    return agent / "spec.yaml"


def spec_error(tmp_path, text) -> str:
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        parse_spec(path)
    prefix = "%s:" % path
    assert info.value.message.startswith(prefix)
    return "spec.yaml:" + info.value.message[len(prefix):]


# --- valid specs ----------------------------------------------------------------


def test_full_example_resolves_to_the_node_contract(tmp_path):
    path = write_spec(tmp_path, FULL)
    node = parse_spec(path.parent).to_node()
    assert node == {
        "name": "reviewer",
        "labels": {"role": "reviewer"},
        "workdir": "work",
        "engine": {"kind": "claude"},
        "claude": {"model": "sonnet",
                   "provider": {"base_url": "http://127.0.0.1:8787", "api_key_env": "SAC_PROVIDER_KEY"},
                   "allowed_tools": ["Bash", "Read", "Edit"], "disallowed_tools": [], "permission_mode": None,
                   "flags": [], "session": "fresh", "accounts": [],
                   "quota": {"rotate_at": 0.9, "cooldown_s": 60.0, "max_cooldown_s": 900.0, "overload_backoff_s": 5.0}},
        "env": {"PROJECT": "demo"},
        "startup_prompts": ["Read README.md and wait for instructions."],
        "restart": {"policy": "on-failure", "max_retries": 5,
                    "backoff": {"initial": 1.0, "max": 60.0, "multiplier": 2.0}},
        "health": {"turn_timeout_s": 600.0, "stall_timeout_s": 300.0},
        "isolation": {"runtime": "auto", "image": "~/.sac/images/sac-base.sif", "binds": ["/data/shared:/data:ro"],
                      "network": "host", "gpus": False},
        "placement": DEFAULTS["placement"],
        "to_home": {},
        "source": str(path.resolve()),
    }


def test_minimal_spec_fills_every_default_and_takes_the_directory_name(tmp_path):
    path = write_spec(tmp_path, MINIMAL, name="my-agent-2")
    spec = parse_spec(path)
    assert spec.name == "my-agent-2"
    assert spec.source == str(path.resolve())
    assert spec.to_node() == dict(DEFAULTS, name="my-agent-2", source=str(path.resolve()))


def test_journal_retention_reaches_the_node_only_when_the_spec_sets_it(tmp_path):
    text = MINIMAL + "spec: {journal: {keep_turns: 50, keep_keys_s: 3600}}\n"
    assert parse_spec(write_spec(tmp_path, text)).to_node()["journal"] == {"keep_turns": 50, "keep_keys_s": 3600.0}
    text = MINIMAL + "spec: {journal: {keep_turns: 50}}\n"
    assert parse_spec(write_spec(tmp_path, text)).to_node()["journal"] == {"keep_turns": 50, "keep_keys_s": 604800.0}
    # Without it the node dict (and so the spec hash) is what it was before `journal` existed:
    # upgrading sac restarts no running agent.
    assert "journal" not in parse_spec(write_spec(tmp_path, MINIMAL)).to_node()


def test_tool_rules_are_taken_as_written_and_permission_keys_reach_the_node_only_when_set(tmp_path):
    text = MINIMAL + ("spec:\n  claude:\n    allowed_tools: [Read, 'Bash(git:*)', 'Bash(echo a,b)', mcp__sac__agent_send,"
                      " mcp__files]\n    disallowed_tools: ['Bash(git push:*)']\n    permission_mode: acceptEdits\n")
    claude = parse_spec(write_spec(tmp_path, text)).to_node()["claude"]
    assert claude["allowed_tools"] == ["Read", "Bash(git:*)", "Bash(echo a,b)", "mcp__sac__agent_send", "mcp__files"]
    assert (claude["disallowed_tools"], claude["permission_mode"]) == (["Bash(git push:*)"], "acceptEdits")
    # bypassPermissions is refused only beside an allow list: deny rules hold in that mode too.
    text = MINIMAL + "spec: {claude: {disallowed_tools: [WebFetch], permission_mode: bypassPermissions}}\n"
    assert parse_spec(write_spec(tmp_path, text)).to_node()["claude"]["permission_mode"] == "bypassPermissions"
    # Without any of them the node dict (and so the spec hash) is what it was before they existed.
    assert "permission_mode" not in parse_spec(write_spec(tmp_path, MINIMAL)).to_node()["claude"]


def test_node_dict_is_msgpack_round_trippable(tmp_path):
    path = write_spec(tmp_path, FULL)
    (path.parent / "to_home").mkdir()
    (path.parent / "to_home" / "CLAUDE.md").write_bytes(b"\x00\xffbinary ok")
    node = parse_spec(path).to_node()
    assert msgpack.unpackb(msgpack.packb(node, use_bin_type=True), raw=False) == node


def test_command_engine_and_env_numbers(tmp_path):
    text = MINIMAL + "spec:\n  engine: {command: [python3, fake.py, --fast]}\n  env: {PORT: 8080, NAME: x}\n"
    node = parse_spec(write_spec(tmp_path, text)).to_node()
    assert node["engine"] == {"kind": "command", "command": ["python3", "fake.py", "--fast"]}
    assert node["env"] == {"PORT": "8080", "NAME": "x"}


@pytest.mark.parametrize("workdir, resolved", [
    ("./work", "work"), ("work/", "work"), ("a//b/./c", "a/b/c"), (".", "."), ("./", "."),
    ("../shared", "../shared"), ("/abs/dir/", "/abs/dir"), ("/", "/"), ("~/w", "~/w"), ("~", "~"),
])
def test_workdir_is_normalised_but_kept_relative_or_absolute(tmp_path, workdir, resolved):
    node = parse_spec(write_spec(tmp_path, MINIMAL + "spec: {workdir: '%s'}\n" % workdir)).to_node()
    assert node["workdir"] == resolved


def test_explicit_name_wins_over_the_directory(tmp_path):
    path = write_spec(tmp_path, MINIMAL + "metadata: {name: other}\n", name="Not_Valid")
    assert parse_spec(path).name == "other"


def test_spec_is_immutable(tmp_path):
    spec = parse_spec(write_spec(tmp_path, FULL))
    assert isinstance(spec, Spec)
    with pytest.raises(Exception):
        spec.spec.workdir = "elsewhere"


# --- errors: exact lines ------------------------------------------------------------


def mutate(old, new):
    assert old in FULL, old
    return FULL.replace(old, new)


CASES = [
    (mutate("policy: on-failure", "policy: sometimes"),
     "spec.yaml:15 spec.restart.policy: 'sometimes' is not one of never, on-failure, always"),
    (mutate("  claude:", "  claud:"), "spec.yaml:7 spec.claud: unknown field (did you mean 'claude'?)"),
    (mutate("placement: {}", "placement: {hots: [a]}"),
     "spec.yaml:18 spec.placement.hots: unknown field (did you mean 'hosts'?)"),
    (mutate("apiVersion: sac/v1", "apiVersion: sac/v2"),
     "spec.yaml:1 apiVersion: 'sac/v2' is not supported (write apiVersion: sac/v1)"),
    (mutate("apiVersion: sac/v1", "apiversion: sac/v1"),
     "spec.yaml:1 apiversion: unknown field (did you mean 'apiVersion'?) [+1 more]"),
    (mutate("apiVersion: sac/v1\n", ""), "spec.yaml:1 apiVersion: required field is missing (add `apiVersion: sac/v1`)"),
    (mutate("kind: Agent", "kind: Inventory"),
     "spec.yaml:2 kind: 'Inventory' is not a spec kind (a spec.yaml has kind: Agent)"),
    (mutate("name: reviewer", "name: Reviewer.v2"),
     "spec.yaml:3 metadata.name: 'Reviewer.v2' is not a valid agent name (lowercase letters, digits and '-', "
     "starting with a letter or digit, at most 63 characters, no dots)"),
    (mutate("name: reviewer", "name: " + "a" * 64), None),
    (mutate("{role: reviewer}", "{'bad key': x}"),
     "spec.yaml:3 metadata.labels.'bad key': invalid key: not a valid label key (letters, digits, '.', '_', '/', '-', "
     "at most 63 characters)"),
    (mutate("{PROJECT: demo}", "{PROJECT: 1.5}"),
     "spec.yaml:13 spec.env.PROJECT: expected a string, got 1.5 (quote it, e.g. \"...\")"),
    (mutate("{PROJECT: demo}", "{DEBUG: yes}"),
     "spec.yaml:13 spec.env.DEBUG: expected a string, got true (quote it, e.g. \"...\")"),
    (mutate("{PROJECT: demo}", "{MY-VAR: x}"),
     "spec.yaml:13 spec.env.MY-VAR: invalid key: not a valid environment variable name (letters, digits and '_', "
     "not starting with a digit)"),
    (mutate("{PROJECT: demo}", "[PROJECT]"), "spec.yaml:13 spec.env: expected a mapping of keys, got a list"),
    (mutate("max_retries: 5", "max_retries: -1"), "spec.yaml:15 spec.restart.max_retries: must be at least 0, got -1"),
    (mutate("initial: 1", "initial: 0"), "spec.yaml:15 spec.restart.backoff.initial: must be greater than 0, got 0"),
    (mutate("initial: 1", "initial: 100"),
     "spec.yaml:15 spec.restart.backoff: max (60) is smaller than initial (100) (raise max or lower initial)"),
    (mutate("multiplier: 2", "multiplier: 0.5"), "spec.yaml:15 spec.restart.backoff.multiplier: must be at least 1, got 0.5"),
    (mutate("turn_timeout_s: 600", "turn_timeout_s: '600'"),
     "spec.yaml:16 spec.health.turn_timeout_s: expected a number, got '600' (write 600, without quotes)"),
    (mutate("stall_timeout_s: 300", "stall_timeout_s: .inf"),
     "spec.yaml:16 spec.health.stall_timeout_s: expected a finite number, got inf"),
    (MINIMAL + "spec: {journal: {keep_turns: 5}}\n", "spec.yaml:3 spec.journal.keep_turns: must be at least 10, got 5"),
    (MINIMAL + "spec: {journal: {keep_turns: 100.0}}\n",
     "spec.yaml:3 spec.journal.keep_turns: expected a whole number, got 100.0"),
    (MINIMAL + "spec: {journal: {keep_keys_s: 0}}\n", "spec.yaml:3 spec.journal.keep_keys_s: must be greater than 0, got 0"),
    (MINIMAL + "spec: {journal: {keep: 5}}\n", "spec.yaml:3 spec.journal.keep: unknown field (allowed: keep_keys_s, keep_turns)"),
    (mutate("engine: claude", "engine: codex"),
     "spec.yaml:6 spec.engine: 'codex' is not an engine (write engine: claude, or engine: {command: [prog, args...]})"),
    (mutate("engine: claude", "engine: {command: python3 x.py}"),
     "spec.yaml:6 spec.engine.command: expected a list, got 'python3 x.py' (write [a, b] or one '- item' per line)"),
    (mutate("engine: claude", "engine: {comand: [python3]}"),
     "spec.yaml:6 spec.engine.comand: unknown field (did you mean 'command'?)"),
    (mutate("engine: claude", "engine: {command: []}"), "spec.yaml:6 spec.engine.command: needs at least 1 item(s)"),
    (mutate("engine: claude", "engine: {}"), "spec.yaml:6 spec.engine: needs command: [prog, args...]"),
    (mutate('["/data/shared:/data:ro"]', '["data:/data"]'),
     "spec.yaml:17 spec.isolation.binds[0]: source 'data' must be an absolute path or start with ~/ "
     "(write SRC:DST or SRC:DST:ro, e.g. /data/shared:/data:ro)"),
    (mutate('["/data/shared:/data:ro"]', '["/a:/b:rx"]'),
     "spec.yaml:17 spec.isolation.binds[0]: mode 'rx' is not one of ro, rw (write SRC:DST or SRC:DST:ro, "
     "e.g. /data/shared:/data:ro)"),
    (mutate("runtime: auto", "runtime: docker"),
     "spec.yaml:17 spec.isolation.runtime: 'docker' is not one of auto, apptainer, bwrap, none"),
    (mutate("network: host", "network: open"),
     "spec.yaml:17 spec.isolation.network: 'open' is not one of provider, none, host"),
    (mutate("runtime: auto", "runtime: none").replace("network: host", "network: none"),
     "spec.yaml:17 spec.isolation: network: none needs a sandbox, but runtime is none (the host's network); "
     "choose a runtime (auto, bwrap, apptainer) or network: host"),
    (mutate("gpus: false", "gpus: 'no'"), "spec.yaml:17 spec.isolation.gpus: expected true or false, got 'no' (write false, without quotes)"),
    (mutate("placement: {}", "placement: {replicas: 0}"),
     "spec.yaml:18 spec.placement.replicas: must be at least 1, got 0"),
    (mutate("placement: {}", "placement: {replicas: 2, singleton: true}"),
     "spec.yaml:18 spec.placement: singleton means one copy; it cannot be combined with replicas > 1 (remove one)"),
    (mutate("placement: {}", "placement: {per_host: true, replicas: 3}"),
     "spec.yaml:18 spec.placement: per_host runs one copy on each matching host; it cannot be combined with "
     "replicas or singleton (remove one)"),
    (mutate('["Read README.md and wait for instructions."]', '["ok", ""]'),
     "spec.yaml:14 spec.startup_prompts[1]: must not be empty"),
    (mutate("flags: []", "flags: [--verbose, --resume]"),
     "spec.yaml:11 spec.claude.flags[1]: '--resume' is set by sac itself (remove it)"),
    (mutate("flags: []", "flags: [--dangerously-skip-permissions]"),
     "spec.yaml:11 spec.claude.flags[0]: '--dangerously-skip-permissions' is set by sac from claude.permission_mode "
     "(write it there and remove the flag)"),
    (mutate("flags: []", "flags: ['--allowedTools=Bash']"),
     "spec.yaml:11 spec.claude.flags[0]: '--allowedTools=Bash' is set by sac from claude.allowed_tools "
     "(write it there and remove the flag)"),
    (mutate("flags: []", "flags: []\n    permission_mode: bypassPermissions"),
     "spec.yaml:12 spec.claude.permission_mode: bypassPermissions allows every tool, so allowed_tools would restrict "
     "nothing (remove permission_mode to let sac choose a mode that enforces the list, or remove allowed_tools)"),
    (mutate("flags: []", "flags: []\n    permission_mode: auto"),
     "spec.yaml:12 spec.claude.permission_mode: 'auto' is not one of default, acceptEdits, dontAsk, plan, "
     "bypassPermissions"),
    (mutate("[Bash, Read, Edit]", "[Bash, 'Bash git status']"),
     "spec.yaml:10 spec.claude.allowed_tools[1]: 'Bash git status' is not a tool rule (write a tool name like Bash, "
     "a pattern like \"Bash(git:*)\", or an MCP tool like mcp__server__tool; one per list item)"),
    (mutate("flags: []", "flags: []\n    disallowed_tools: ['Bash,Edit']"),
     "spec.yaml:12 spec.claude.disallowed_tools[0]: 'Bash,Edit' is not a tool rule (write a tool name like Bash, "
     "a pattern like \"Bash(git:*)\", or an MCP tool like mcp__server__tool; one per list item)"),
    (mutate("session: fresh", "session: resume"),
     "spec.yaml:12 spec.claude.session: 'resume' is not one of fresh, continue"),
    (mutate("base_url: http://127.0.0.1:8787", "base_url: 127.0.0.1:8787"),
     "spec.yaml:9 spec.claude.provider.base_url: '127.0.0.1:8787' is not an http(s) URL (e.g. http://127.0.0.1:8787)"),
    (mutate("  workdir: ./work\n", "  workdir: ./work\n  workdir: other\n"),
     "spec.yaml:6 spec.workdir: duplicate key (first at line 5; keep one)"),
    (mutate("{PROJECT: demo}", "{PROJECT: demo"),
     "spec.yaml:14 syntax: expected ',' or '}', but got ':' at column 18 (check indentation, colons and quotes)"),
    (mutate("  env:", "\tenv:"),
     "spec.yaml:13 syntax: found character '\\t' that cannot start any token at column 1 "
     "(check indentation, colons and quotes)"),
    ("", "spec.yaml:1 document: the file is empty (see docs/spec-reference.md for an example)"),
    ("# nothing yet\n", "spec.yaml:1 document: the file is empty (see docs/spec-reference.md for an example)"),
    ("- a\n- b\n", "spec.yaml:1 document: expected a mapping of keys at the top level, got a list"),
    (MINIMAL + "spec: 5\n", "spec.yaml:3 spec: expected a mapping of keys, got 5"),
    (MINIMAL + "metadata: [x]\n", "spec.yaml:3 metadata: expected a mapping of keys, got a list"),
]


@pytest.mark.parametrize("text, message", CASES, ids=range(len(CASES)))
def test_each_mistake_gives_one_exact_line(tmp_path, text, message):
    got = spec_error(tmp_path, text)
    if message is None:
        assert re.match(r"spec\.yaml:\d+ \S+: ", got)
    else:
        assert got == message
    assert "\n" not in got


def test_directory_name_that_is_not_a_valid_name_asks_for_metadata_name(tmp_path):
    path = write_spec(tmp_path, MINIMAL, name="My_Agent")
    with pytest.raises(SpecError) as info:
        parse_spec(path)
    assert info.value.message == ("%s:1 metadata: no name, and the directory name 'My_Agent' is not a valid agent name "
                                  "(set metadata.name: lowercase letters, digits and '-')" % path)


def test_missing_file_directory_without_spec_and_empty_file(tmp_path):
    with pytest.raises(SpecError) as info:
        parse_spec(tmp_path / "nowhere")
    assert info.value.message == "%s: no such file or directory (pass a spec.yaml or a directory containing one)" % (
        tmp_path / "nowhere")
    with pytest.raises(SpecError) as info:
        parse_spec(tmp_path)
    assert info.value.message == "%s: no spec.yaml in this directory (create %s or pass the spec file itself)" % (
        tmp_path, tmp_path / "spec.yaml")


# --- secrets ----------------------------------------------------------------------

KEY = "sk-ant-api03-Zq8xW2vN5kL0pR7tY4uI1oA6sD3fG9hJ"
HEX_KEY = "a8f3b9c2d4e5f60718293a4b5c6d7e8f"
SECRETS_HINT = ("put the key in <state_dir>/secrets.env on the host as KEY=VALUE and name KEY in "
                "claude.provider.api_key_env")


@pytest.mark.parametrize("text, message", [
    (mutate("api_key_env: SAC_PROVIDER_KEY", "api_key_env: " + KEY),
     "spec.yaml:9 spec.claude.provider.api_key_env: must be the NAME of an environment variable, like SAC_PROVIDER_KEY, "
     "not the key itself (%s)" % SECRETS_HINT),
    (mutate("api_key_env: SAC_PROVIDER_KEY", "api_key_env: " + HEX_KEY),
     "spec.yaml:9 spec.claude.provider.api_key_env: must be the NAME of an environment variable, like SAC_PROVIDER_KEY, "
     "not the key itself (%s)" % SECRETS_HINT),
    (mutate("api_key_env: SAC_PROVIDER_KEY", "api_key: " + KEY),
     "spec.yaml:9 spec.claude.provider: 'api_key' is refused: a credential does not belong in a spec (%s)" % SECRETS_HINT),
    (mutate("api_key_env: SAC_PROVIDER_KEY", "auth_token: " + KEY),
     "spec.yaml:9 spec.claude.provider: 'auth_token' is refused: a credential does not belong in a spec (%s)" % SECRETS_HINT),
    (mutate("base_url: http://127.0.0.1:8787", "base_url: 'http://me:%s@127.0.0.1:8787'" % KEY),
     "spec.yaml:9 spec.claude.provider.base_url: must not contain credentials (%s)" % SECRETS_HINT),
    (mutate("{PROJECT: demo}", "{ANTHROPIC_API_KEY: %s}" % KEY),
     "spec.yaml:13 spec.env.ANTHROPIC_API_KEY: invalid key: a credential does not belong in a spec (%s) [+1 more]"
     % SECRETS_HINT),
    (mutate("{PROJECT: demo}", "{TOKEN: %s}" % KEY),
     "spec.yaml:13 spec.env.TOKEN: looks like an API key; a credential does not belong in a spec (%s)" % SECRETS_HINT),
    (mutate("flags: []", "flags: [--header, 'x-api-key: %s']" % KEY),
     "spec.yaml:11 spec.claude.flags[1]: looks like an API key; a credential does not belong in a spec (%s)"
     % SECRETS_HINT),
])
def test_a_literal_key_is_refused_and_never_echoed(tmp_path, text, message):
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        parse_spec(path)
    assert "spec.yaml:" + info.value.message.split("spec.yaml:", 1)[1] == message
    everything = repr(info.value.message) + repr(info.value.data) + str(info.value.__cause__)
    for secret in (KEY, HEX_KEY, KEY[:16]):
        assert secret not in everything


# --- to_home/ -----------------------------------------------------------------------


def test_to_home_files_are_read_by_relative_posix_path(tmp_path):
    path = write_spec(tmp_path, MINIMAL)
    home = path.parent / "to_home"
    (home / ".claude").mkdir(parents=True)
    (home / "CLAUDE.md").write_text("be brief\n")
    (home / ".claude" / "settings.json").write_text("{}")
    (home / "link.md").symlink_to(home / "CLAUDE.md")
    assert parse_spec(path).to_node()["to_home"] == {
        "CLAUDE.md": b"be brief\n", ".claude/settings.json": b"{}", "link.md": b"be brief\n"}


def test_to_home_refuses_a_symlink_leading_outside(tmp_path):
    path = write_spec(tmp_path, MINIMAL)
    secret = tmp_path / "id_ed25519"
    secret.write_text("PRIVATE")
    (path.parent / "to_home").mkdir()
    (path.parent / "to_home" / "key").symlink_to(secret)
    with pytest.raises(SpecError) as info:
        parse_spec(path)
    assert info.value.message == "%s/key: symlink leads outside to_home/ (copy the file in instead)" % (
        path.parent / "to_home")


def test_to_home_refuses_symlinked_directories_broken_links_and_size(tmp_path):
    home = tmp_path / "to_home"
    home.mkdir()
    (home / "sub").symlink_to(tmp_path)
    with pytest.raises(SpecError, match="sub: symlinked directories are not copied"):
        read_to_home(home)
    (home / "sub").unlink()
    (home / "gone").symlink_to(home / "missing")
    with pytest.raises(SpecError, match="gone: broken symlink"):
        read_to_home(home)
    (home / "gone").unlink()
    (home / "big").write_bytes(b"x" * 2048)
    with pytest.raises(SpecError) as info:
        read_to_home(home, max_bytes=1024)
    assert info.value.message.startswith("%s: more than" % home)
    assert read_to_home(home)["big"] == b"x" * 2048


def test_to_home_that_is_a_file_is_refused(tmp_path):
    path = write_spec(tmp_path, MINIMAL)
    (path.parent / "to_home").write_text("oops")
    with pytest.raises(SpecError, match="to_home: not a directory"):
        parse_spec(path)


# --- sac spec check -------------------------------------------------------------------


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["sac", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        cli_app.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_check_prints_the_resolved_spec(tmp_path, monkeypatch, capsys):
    path = write_spec(tmp_path, MINIMAL)
    code, out, err = run_cli(monkeypatch, capsys, "spec", "check", str(path.parent))
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["name"] == "reviewer"
    assert shown["restart"] == DEFAULTS["restart"]
    assert err == ""


def test_cli_check_gives_one_red_line_per_bad_file_and_exit_2(tmp_path, monkeypatch, capsys):
    good = write_spec(tmp_path, MINIMAL, name="good")
    bad = write_spec(tmp_path, mutate("policy: on-failure", "policy: sometimes"), name="bad")
    code, out, err = run_cli(monkeypatch, capsys, "spec", "check", str(good), str(bad), str(tmp_path / "nope"))
    assert code == 2
    assert err.splitlines() == [
        "error: %s:15 spec.restart.policy: 'sometimes' is not one of never, on-failure, always" % bad,
        "error: %s: no such file or directory (pass a spec.yaml or a directory containing one)" % (tmp_path / "nope"),
    ]
    assert yaml.safe_load(out)["name"] == "good"


# --- property: mutations never escape as anything but a located SpecError -----------

BASE = yaml.safe_load(FULL)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["claude", "sac/v1", "Agent", "never", "/a:/b", "X_Y", "-p"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


@st.composite
def mutated_documents(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["delete", "replace", "add_key", "rename"]))
        last = path[-1]
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(values)
        elif action == "add_key" and isinstance(parent, dict):
            parent[draw(st.one_of(st.text(max_size=10), st.integers()))] = draw(values)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = parent.pop(last)
    return doc


_PROPERTY_DIR = Path(tempfile.mkdtemp(prefix="sac-spec-prop-")) / "agent"
_PROPERTY_DIR.mkdir()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_specs_are_valid_or_give_a_located_spec_error(doc):
    path = _PROPERTY_DIR / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        node = parse_spec(path).to_node()
    except SpecError as exc:
        assert re.match(re.escape(str(path)) + r":\d+ \S", exc.message), exc.message
        assert "\n" not in exc.message
    else:
        assert set(node) == set(DEFAULTS) | {"name", "source"}
        msgpack.packb(node, use_bin_type=True)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_arbitrary_file_contents_give_a_located_spec_error(raw):
    path = _PROPERTY_DIR / "spec.yaml"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    try:
        parse_spec(path)
    except SpecError as exc:
        assert re.match(re.escape(str(path)) + r":\d+ \S", exc.message), exc.message


def teardown_module(module):
    for child in _PROPERTY_DIR.iterdir():
        child.unlink()
    os.rmdir(_PROPERTY_DIR)
    os.rmdir(_PROPERTY_DIR.parent)
