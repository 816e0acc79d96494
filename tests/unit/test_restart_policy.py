"""The restart policy decides; nothing sleeps here."""

from sac_node.node_spec import NodeSpec
from sac_node.supervision import states
from sac_node.supervision.restart_policy import RestartTracker


def test_backoff_grows_and_gives_up():
    t = RestartTracker("on-failure", max_retries=3, initial=1, maximum=5, multiplier=2)
    decisions = [t.record_exit(-9, ran_for=0.5) for _ in range(4)]
    assert [d.state for d in decisions] == [states.RESTARTING] * 3 + [states.FAILED]
    assert [d.delay for d in decisions[:3]] == [1, 2, 4]
    assert "signal 9" in decisions[0].reason and "gave up after 3" in decisions[3].reason
    assert t.restarts == 3


def test_delay_is_capped():
    t = RestartTracker("always", max_retries=10, initial=1, maximum=5, multiplier=10)
    assert [t.record_exit(1, 0.1).delay for _ in range(3)] == [1, 5, 5]


def test_a_healthy_run_resets_the_count():
    t = RestartTracker("on-failure", max_retries=2, initial=1, maximum=5, multiplier=2)
    t.record_exit(1, 0.1)
    t.record_exit(1, 0.1)
    t.record_success()
    assert t.record_exit(1, 0.1).state == states.RESTARTING
    t2 = RestartTracker("on-failure", max_retries=1, initial=1, maximum=5, multiplier=2)
    t2.record_exit(1, 0.1)
    assert t2.record_exit(1, ran_for=60).delay == 1  # ran longer than the ceiling: healthy


def test_policies():
    assert RestartTracker("never").record_exit(1, 1).state == states.FAILED
    assert RestartTracker("never").record_exit(0, 1).state == states.STOPPED
    assert RestartTracker("on-failure").record_exit(0, 1).state == states.STOPPED
    assert RestartTracker("always").record_exit(0, 1).state == states.RESTARTING
    assert RestartTracker("always").record_exit(-15, 1, requested=True).state == states.STOPPED


def test_from_spec_reads_backoff():
    restart = {"policy": "always", "max_retries": 7, "backoff": {"initial": 3, "max": 9, "multiplier": 3}}
    t = RestartTracker.from_spec(NodeSpec.from_wire({"name": "a", "restart": restart}).restart)
    assert (t.policy, t.max_retries, t.initial, t.maximum, t.multiplier) == ("always", 7, 3.0, 9.0, 3.0)
