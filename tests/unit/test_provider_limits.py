"""Per-key token budgets in the built-in provider: requests succeed until the budget is spent, then 429."""

from sac_fleet.provider.responder import Responder

BODY = {"model": "m", "messages": [{"role": "user", "content": "one two three"}], "stream": True}


def test_key_budget_is_spent_then_429():
    r = Responder({"keys": {"key-a": {"limit_tokens": 10, "retry_after": 2}}})
    first = r.respond(BODY, api_key="key-a")
    assert first.fault is None and r.key_usage["key-a"] == first.input_tokens + first.output_tokens
    while r.key_usage["key-a"] < 10:
        assert r.respond(BODY, api_key="key-a").fault is None
    limited = r.respond(BODY, api_key="key-a")
    assert limited.fault.status == 429 and limited.fault.retry_after == 2 and limited.label == "key limit #1"
    # other keys are unaffected, and the spent key stays limited
    assert r.respond(BODY, api_key="key-b").fault is None
    assert r.respond(BODY, api_key="key-a").fault.status == 429


def test_reloading_the_script_resets_usage():
    r = Responder({"keys": {"key-a": {"limit_tokens": 1}}})
    r.respond(BODY, api_key="key-a")
    assert r.respond(BODY, api_key="key-a").fault is not None
    r.load({"keys": {"key-a": {"limit_tokens": 1}}})
    assert r.respond(BODY, api_key="key-a").fault is None
