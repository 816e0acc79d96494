"""Keys travel from the head: `fleet up` writes each host's secrets.env (real sshd, real Claude Code)."""

import json
import os
import secrets as random_secrets
import stat

import pytest
import yaml

from sac_node.protocol.messages import secret_hash
from tests.integration.test_agent_isolation import cmdlines_and_environs

pytestmark = pytest.mark.integration


def _everything_under(root):
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path) and os.path.isfile(path) and not path.endswith(".pyz"):
                with open(path, "rb") as fh:
                    yield path, fh.read()


def test_up_writes_the_keys_a_host_needs_once_and_running_agents_say_they_are_behind(fleet_env):
    (h1,) = fleet_env.sshd.start(1)
    key = "sk-lab-" + random_secrets.token_hex(16)
    fleet_env.env["LAB_KEY_ON_HEAD"] = key
    fleet_env.add_host(h1)
    fleet_env.add_agent("keyed", {"hosts": [h1.name]},
                        extra={"claude": {"provider": {"base_url": fleet_env.provider.url, "api_key_env": "LAB_KEY"},
                                          "allowed_tools": ["Bash"]}})
    fleet_env.doc["secrets"] = {"LAB_KEY": {"env": "LAB_KEY_ON_HEAD"}, "UNUSED_KEY": {"env": "NOT_SET_ANYWHERE"}}
    inventory = fleet_env.write()
    secrets_env = h1.state_dir / "secrets.env"
    assert not secrets_env.exists()

    report = fleet_env.sac_json("fleet", "up", inventory)
    assert report["ok"], report
    assert [a["line"] for a in report["plan"] if a["kind"] == "secrets"] == \
        ["secrets.env on %s: write LAB_KEY (new)" % h1.name]
    assert stat.S_IMODE(os.stat(secrets_env).st_mode) == 0o600
    assert secrets_env.read_text() == "LAB_KEY=%s\n" % key  # only the name its agents use
    assert fleet_env.sac("fleet", "send", "keyed", "with the key", "-i", inventory).stdout.strip() == \
        "echo: with the key"

    # It reached the engine's environment, and nothing else: no argv, no file of the node but secrets.env.
    seen = list(cmdlines_and_environs())
    assert not [pid for pid, cmdline, _ in seen if key.encode() in cmdline]
    assert [pid for pid, _, environ in seen if b"ANTHROPIC_API_KEY=" + key.encode() in environ]
    assert [path for path, data in _everything_under(h1.state_dir) if key.encode() in data] == [str(secrets_env)]

    # Unchanged: the next `up` writes nothing.
    again = fleet_env.sac_json("fleet", "up", inventory)
    assert not [a for a in again["plan"] if a["kind"] == "secrets"] and not again["changed"]
    mtime = secrets_env.stat().st_mtime_ns

    # A new value on the head: written on the next `up`; the running agent keeps its own and says so.
    new_key = "sk-lab-" + random_secrets.token_hex(16)
    fleet_env.env["LAB_KEY_ON_HEAD"] = new_key
    changed = fleet_env.sac_json("fleet", "up", inventory)
    assert [a["line"] for a in changed["plan"] if a["kind"] == "secrets"] == \
        ["secrets.env on %s: write LAB_KEY (changed)" % h1.name]
    assert secrets_env.read_text() == "LAB_KEY=%s\n" % new_key and secrets_env.stat().st_mtime_ns != mtime
    status = fleet_env.sac_json("fleet", "status", inventory)
    assert [a["secrets_behind"] for a in status["agents"]] == [["LAB_KEY"]]

    listing = fleet_env.sac("fleet", "secrets", "-i", inventory, "--json", check=False)
    rows = json.loads(listing.stdout)["secrets"]
    assert {(r["name"], r["state"], r["host_hash"]) for r in rows} == {
        ("LAB_KEY", "ok", secret_hash(new_key)),
        ("UNUSED_KEY", "unreadable on the head: %s: secrets.UNUSED_KEY ($NOT_SET_ANYWHERE): $NOT_SET_ANYWHERE is "
                       "not set on this machine (export it, or give another source)" % inventory, None)}
    assert listing.returncode == 1  # one name is not ok
    for output in (listing.stdout, listing.stderr, json.dumps(status), json.dumps(changed)):
        assert key not in output and new_key not in output
