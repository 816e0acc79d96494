"""Several accounts per agent against the built-in provider's per-key budgets: rotate, resume, never lose a turn."""

import json

import pytest

pytestmark = pytest.mark.integration

QUICK = {"cooldown_s": 3, "max_cooldown_s": 10, "overload_backoff_s": 1}


def journal(sac_env, name):
    return [json.loads(l) for l in (sac_env.agent_dir(name) / "journal.jsonl").read_text().splitlines()]


def start_with_accounts(sac_env, accounts, quota=None):
    sac_env.env.update({"SAC_KEY_A": "key-a", "SAC_KEY_B": "key-b"})
    sac_env.write_spec("a1", claude={"accounts": accounts, "quota": dict(QUICK, **(quota or {}))})
    sac_env.sac("agents", "start", sac_env.specs / "a1")


def test_rate_limited_account_rotates_and_the_turn_is_answered(sac_env):
    sac_env.provider.load_script({"keys": {"key-a": {"limit_tokens": 3000, "retry_after": 0}}})
    start_with_accounts(sac_env, [{"name": "first", "api_key_env": "SAC_KEY_A"},
                                  {"name": "second", "api_key_env": "SAC_KEY_B"}])
    replies = [sac_env.sac_json("agents", "send", "a1", "turn %d" % i, timeout=120) for i in range(4)]
    assert [r["status"] for r in replies] == ["completed"] * 4
    assert [r["reply"] for r in replies] == ["echo: turn %d" % i for i in range(4)]
    assert len({r["session_id"] for r in replies}) == 1  # the new account resumed the same session
    status = sac_env.sac_json("agents", "status", "a1")
    rows = {a["name"]: a for a in status["accounts"]}
    assert status["account"] == "second" and rows["first"]["limited"] == 1
    records = journal(sac_env, "a1")
    assert any(r["op"] == "requeued" and "429" in r["reason"] for r in records)
    assert not [r for r in records if r["op"] == "failed"]
    tail = sac_env.sac("agents", "tail", "a1", "-n", "200").stdout
    assert "account_limited" in tail and "account_rotated" in tail
    listing = sac_env.sac("accounts", "list").stdout
    lines = {l.split()[1]: l.split() for l in listing.splitlines()[1:] if l.strip()}
    assert lines["second"][3] == "active" and lines["first"][3] in ("resting", "ready")
    assert lines["first"][6] == "1"  # limited once
    assert "key-a" not in tail and "key-b" not in json.dumps(status)
    assert [r.status for r in sac_env.provider.records if r.rule.startswith("key limit")] == [429]


def test_rotation_happens_before_the_limit_when_usage_nears_it(sac_env):
    start_with_accounts(sac_env, [{"name": "first", "api_key_env": "SAC_KEY_A", "limit_tokens": 4000},
                                  {"name": "second", "api_key_env": "SAC_KEY_B"}], {"rotate_at": 0.5})
    for i in range(2):
        assert sac_env.sac_json("agents", "send", "a1", "p%d" % i)["status"] == "completed"
    status = sac_env.sac_json("agents", "status", "a1")
    assert status["account"] == "second"
    assert not [r for r in sac_env.provider.records if r.status and r.status >= 400]
    assert "account_rotating" in sac_env.sac("agents", "tail", "a1", "-n", "100").stdout


def test_no_healthy_account_left_backs_off_and_says_so(sac_env):
    sac_env.provider.load_script({"keys": {"key-a": {"limit_tokens": 1, "retry_after": 0},
                                           "key-b": {"fault": {"status": 429, "should_retry": False}}}})
    start_with_accounts(sac_env, [{"name": "first", "api_key_env": "SAC_KEY_A"},
                                  {"name": "second", "api_key_env": "SAC_KEY_B"}])
    sac_env.sac_json("agents", "send", "a1", "spend a", timeout=60)   # charges key-a
    turn = sac_env.sac("agents", "send", "a1", "blocked", "--no-wait").stdout.split()[-1]
    status = sac_env.wait_for(lambda: (lambda s: s if "accounts are rate-limited" in (s["last_error"] or "")
                                       else None)(sac_env.sac_json("agents", "status", "a1")), timeout=60,
                              what="the agent to say all accounts rest")
    assert status["state"] == "restarting"
    requests_before = len(sac_env.provider.records)
    sac_env.provider.load_script({})  # the quota window ends
    done = sac_env.wait_for(lambda: (lambda t: t if t["status"] == "completed" else None)(
        json.loads(sac_env.sac("agents", "status", "a1", "--json").stdout) and
        _turn(sac_env, turn)), timeout=90, what="the blocked turn to complete")
    assert done["reply"] == "echo: blocked"
    assert len(sac_env.provider.records) - requests_before < 10  # it waited instead of spinning


def _turn(sac_env, turn_id):
    turns = {}
    for r in journal(sac_env, "a1"):
        turns.setdefault(r["id"], {}).update(r)
        turns[r["id"]]["status"] = r["op"] if r["op"] not in ("accepted", "started", "requeued") else "pending"
    return turns[turn_id]
