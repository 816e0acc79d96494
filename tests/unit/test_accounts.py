"""Account rotation as a pure value: rest, rotate, wait, proactive limits."""

from sac_node.accounts import AccountPool, classify
from sac_node.node_spec import Quota

ACCOUNTS = [{"name": "a", "api_key_env": "KA", "limit_tokens": 1000}, {"name": "b", "api_key_env": "KB"}]
QUOTA = Quota.from_wire({"cooldown_s": 60, "max_cooldown_s": 300, "rotate_at": 0.5, "overload_backoff_s": 2})


def pool():
    return AccountPool(ACCOUNTS, QUOTA, rng=lambda: 0.5)  # jitter factor exactly 1.0


def test_limited_account_rests_and_the_next_takes_over():
    p = pool()
    assert p.usable(0)["name"] == "a"
    assert p.limited(0, "HTTP 429") == 60
    assert p.usable(1)["name"] == "b" and p.rotations == 1
    assert p.usable(2)["name"] == "b"  # a healthy current account is kept
    rows = {r["name"]: r for r in p.snapshot(2)}
    assert rows["a"]["state"] == "resting" and rows["b"]["state"] == "active" and "KA" not in str(rows)


def test_all_resting_means_wait_for_the_earliest():
    p = pool()
    p.limited(0, "429")
    p.usable(0)
    p.limited(10, "429")
    assert p.usable(11) is None
    assert p.wait_s(11) == 49  # a rests until 60
    assert p.usable(60)["name"] == "a"


def test_repeated_limits_back_off_exponentially_up_to_the_cap():
    p = AccountPool([{"name": "only", "api_key_env": "K"}], QUOTA, rng=lambda: 0.5)
    rests = [p.limited(t, "429") for t in (0, 100, 300, 700, 2000)]
    assert rests == [60, 120, 240, 300, 300]
    assert p.limited(3000, "429", retry_after=900) == 900  # the provider's retry-after wins when longer


def test_proactive_rotation_before_the_limit():
    p = pool()
    assert p.record_usage(400, now=0) is None
    reason = p.record_usage(200, now=1)
    assert "used 600 of 1000" in reason
    assert p.usable(1)["name"] == "b"


def test_overload_backs_off_without_rotating():
    p = pool()
    assert [p.overloaded() for _ in range(3)] == [2, 4, 8]
    assert p.current["name"] == "a" and p.rotations == 0
    p.healthy()
    assert p.overloaded() == 2


def test_classify():
    assert classify(429, "") == "limited"
    assert classify(401, "") == "limited"
    assert classify(None, "You have reached your usage limit") == "limited"
    assert classify(529, "") == "overloaded"
    assert classify(500, "boom") is None
