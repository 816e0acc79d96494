"""Placement: example decisions with their reasons, and hypothesis properties of its invariants."""

import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from sac_fleet.core.placement import DesiredAgent, HostSlot, HostState, Rule, place, replica_names
from sac_fleet.core.plan import ActionKind
from sac_node.protocol.errors import PlacementError

HOST_NAMES = ["h0", "h1", "h2", "h3"]
AGENT_NAMES = ["a", "b", "c", "d"]
ALL_COPIES = sorted({n for a in AGENT_NAMES for r in (1, 2, 3) for n in replica_names(a, r)} | {"zz"})


def login_fleet():
    return [
        HostSlot("login1", labels={"site": "hpc"}, capacity=8, groups={"hpc"}),
        HostSlot("login2", labels={"site": "hpc"}, capacity=2, groups={"hpc"}),
        HostSlot("laptop"),
        HostSlot("bastion", jump_only=True),
    ]


def everyone_up(**agents):
    states = {name: HostState(name, True, ()) for name in ("login1", "login2", "laptop", "bastion")}
    for host, names in agents.items():
        states[host] = HostState(host, True, tuple(names))
    return list(states.values())


# -- examples: the decisions a user reads in `sac fleet plan` -----------------------------


def test_pinned_agent_starts_on_its_host_and_says_why():
    plan = place([DesiredAgent("reviewer", Rule(hosts=("login1",)))],
                 everyone_up(login1=["x1", "x2"]), login_fleet())
    assert plan.starts[0].describe() == "reviewer -> login1: pinned (hosts: [login1]), 3/8 slots used"


def test_unplaced_agent_names_the_unreachable_host():
    observed = [HostState("login1", False, None, "timed out"), HostState("login2", False, None),
                HostState("laptop", True, ())]
    plan = place([DesiredAgent("lead", Rule(labels={"site": "hpc"}))], observed, login_fleet())
    assert [a.describe() for a in plan.unplaced] == [
        "lead: not placed: no reachable host matches labels {site: hpc} (login1, login2 unreachable)"]


def test_unplaced_agent_when_every_matching_host_is_full():
    plan = place([DesiredAgent("lead", Rule(group="hpc"))],
                 everyone_up(login1=["x%d" % i for i in range(8)], login2=["y1", "y2"]), login_fleet())
    assert plan.unplaced[0].reason == "every reachable host matching group hpc is full (login1 8/8, login2 2/2)"


def test_unknown_label_is_reported_as_no_match_in_inventory():
    plan = place([DesiredAgent("x", Rule(labels={"gpu": "a100"}))], everyone_up(), login_fleet())
    assert plan.unplaced[0].reason == "no host in the inventory matches labels {gpu: a100}"


def test_jump_only_host_matching_by_pin_gets_nothing():
    plan = place([DesiredAgent("x", Rule(hosts=("bastion",)))], everyone_up(), login_fleet())
    assert not plan.starts
    assert "only jump_only hosts match" in plan.unplaced[0].reason


def test_least_loaded_host_wins_then_name():
    plan = place([DesiredAgent("w", Rule(group="hpc"))], everyone_up(login1=["x"]), login_fleet())
    assert [(a.agent, a.host) for a in plan.starts] == [("w", "login2")]
    plan = place([DesiredAgent("w", Rule(group="hpc"))], everyone_up(), login_fleet())
    assert [(a.agent, a.host) for a in plan.starts] == [("w", "login1")]


def test_replicas_are_numbered_and_spread():
    plan = place([DesiredAgent("w", Rule(group="hpc", replicas=3))], everyone_up(), login_fleet())
    assert sorted((a.agent, a.host) for a in plan.starts) == [
        ("w-0", "login1"), ("w-1", "login2"), ("w-2", "login1")]


def test_per_host_runs_one_copy_on_each_matching_host():
    plan = place([DesiredAgent("mon", Rule(per_host=True))], everyone_up(laptop=["mon"]), login_fleet())
    assert sorted(a.host for a in plan.starts) == ["login1", "login2"]
    assert [a.host for a in plan.keeps] == ["laptop"]


def test_running_agent_is_kept_and_second_run_is_a_noop():
    desired = [DesiredAgent("reviewer", Rule(group="hpc"))]
    plan = place(desired, everyone_up(login2=["reviewer"]), login_fleet())
    assert plan.is_noop
    assert plan.keeps[0].describe() == "reviewer on login2: keep: already runs here and group hpc still matches"
    assert plan.summary() == "nothing to change, 1 kept"


def test_agent_on_a_host_that_no_longer_matches_moves():
    plan = place([DesiredAgent("reviewer", Rule(hosts=("login1",)))],
                 everyone_up(laptop=["reviewer"]), login_fleet())
    assert [a.describe() for a in plan.changes] == [
        "reviewer on laptop: stop: host no longer matches pinned (hosts: [login1])",
        "reviewer -> login1: pinned (hosts: [login1]), 1/8 slots used, moved from laptop",
    ]


def test_singleton_on_unreachable_host_is_reported_not_restarted():
    observed = [HostState("login1", False, ("lead",), "timed out"), HostState("login2", True, ()),
                HostState("laptop", True, ())]
    desired = [DesiredAgent("lead", Rule(group="hpc", singleton=True))]
    plan = place(desired, observed, login_fleet())
    assert plan.is_noop
    assert plan.unreachable[0].describe() == (
        "lead on login1: unreachable: singleton last seen here; host unreachable (timed out); "
        "not started elsewhere (pass --reschedule to move it)")
    moved = place(desired, observed, login_fleet(), reschedule=True)
    assert [(a.agent, a.host) for a in moved.starts] == [("lead", "login2")]
    assert "moved from unreachable login1 (--reschedule)" in moved.starts[0].reason


def test_singleton_waits_while_a_matching_host_is_unknown():
    observed = [HostState("login1", False, None, "auth failed"), HostState("login2", True, ())]
    plan = place([DesiredAgent("lead", Rule(group="hpc", singleton=True))], observed, login_fleet())
    assert not plan.starts
    assert "may still run here" in plan.unreachable[0].reason


def test_non_singleton_on_unreachable_host_is_started_elsewhere():
    observed = [HostState("login1", False, ("lead",)), HostState("login2", True, ())]
    plan = place([DesiredAgent("lead", Rule(group="hpc"))], observed, login_fleet())
    assert [(a.agent, a.host) for a in plan.starts] == [("lead", "login2")]


def test_extra_copies_are_stopped_and_one_stays():
    plan = place([DesiredAgent("lead", Rule(singleton=True))],
                 everyone_up(login1=["lead"], login2=["lead"]), login_fleet())
    assert [(a.kind, a.host) for a in plan.actions] == [(ActionKind.STOP, "login2"), (ActionKind.KEEP, "login1")]


def test_prune_candidates_are_stopped_only_on_request():
    observed = everyone_up(login1=["old"])
    plan = place([], observed, login_fleet())
    assert plan.is_noop
    assert plan.prunes[0].describe() == "old on login1: prune: no longer in the inventory; stopped only with --prune"
    pruned = place([], observed, login_fleet(), prune=True)
    assert [(a.kind, a.agent, a.host) for a in pruned.actions] == [(ActionKind.STOP, "old", "login1")]


def test_non_sticky_agent_follows_the_least_loaded_host():
    desired = [DesiredAgent("w", Rule(group="hpc", sticky=False))]
    plan = place(desired, everyone_up(login1=["w", "x"]), login_fleet())
    assert [(a.kind, a.host) for a in plan.changes] == [(ActionKind.STOP, "login1"), (ActionKind.START, "login2")]
    sticky = place([DesiredAgent("w", Rule(group="hpc"))], everyone_up(login1=["w", "x"]), login_fleet())
    assert sticky.is_noop


def test_copy_name_collision_is_refused():
    with pytest.raises(PlacementError, match="copy name a-0"):
        place([DesiredAgent("a", Rule(replicas=2)), DesiredAgent("a-0")], [], [HostSlot("h")])


def test_per_host_with_replicas_is_refused():
    with pytest.raises(PlacementError, match="per_host"):
        Rule(per_host=True, replicas=2)


def test_plan_to_dict_is_json_ready():
    plan = place([DesiredAgent("reviewer", Rule(hosts=("login1",)))], everyone_up(), login_fleet())
    data = plan.to_dict()
    assert data["actions"][0]["line"] == "reviewer -> login1: pinned (hosts: [login1]), 1/8 slots used"
    assert data["noop"] is False


# -- properties ------------------------------------------------------------------------------


@st.composite
def rules(draw):
    per_host = draw(st.booleans()) and draw(st.booleans())
    return Rule(
        hosts=tuple(draw(st.lists(st.sampled_from(HOST_NAMES + ["nowhere"]), max_size=3))) if draw(st.booleans()) else (),
        group=draw(st.none() | st.sampled_from(["g1", "g2"])),
        labels=draw(st.dictionaries(st.sampled_from(["site", "gpu"]), st.sampled_from(["x", "y"]), max_size=1)),
        replicas=1 if per_host else draw(st.integers(1, 3)),
        per_host=per_host,
        singleton=False if per_host else draw(st.booleans()),
        sticky=draw(st.booleans()) or draw(st.booleans()),
    )


@st.composite
def scenarios(draw):
    names = draw(st.lists(st.sampled_from(HOST_NAMES), min_size=1, max_size=4, unique=True))
    hosts = [HostSlot(name,
                      labels=draw(st.dictionaries(st.sampled_from(["site", "gpu"]), st.sampled_from(["x", "y"]), max_size=2)),
                      capacity=draw(st.none() | st.integers(0, 4)),
                      groups=draw(st.frozensets(st.sampled_from(["g1", "g2"]))),
                      jump_only=draw(st.integers(0, 4)) == 0)
             for name in names]
    agent_names = draw(st.lists(st.sampled_from(AGENT_NAMES), max_size=4, unique=True))
    desired = [DesiredAgent(name, draw(rules())) for name in agent_names]
    observed = []
    for name in names:
        state = draw(st.sampled_from(["up", "up", "up", "down-unknown", "down-seen", "absent"]))
        if state == "absent":
            continue
        agents = tuple(draw(st.lists(st.sampled_from(ALL_COPIES), max_size=5, unique=True)))
        if state == "up":
            observed.append(HostState(name, True, agents))
        else:
            observed.append(HostState(name, False, agents if state == "down-seen" else None, "timed out"))
    flags = {"reschedule": draw(st.booleans()), "prune": draw(st.booleans())}
    return desired, observed, hosts, flags


def apply_plan(plan, observed):
    """What the reconciler does with a plan: stops, then starts, on hosts that answered."""
    out = []
    for state in observed:
        if not state.reachable:
            out.append(state)
            continue
        agents = set(state.agents)
        agents -= {a.agent for a in plan.stops if a.host == state.name}
        agents |= {a.agent for a in plan.starts if a.host == state.name}
        out.append(HostState(state.name, True, tuple(agents)))
    return out


def live(observed):
    return {s.name: set(s.agents) for s in observed if s.reachable}


def singleton_copies(desired):
    return {name for agent in desired if agent.rule.singleton
            for name in replica_names(agent.name, agent.rule.replicas)}


PROPERTY = settings(max_examples=75, deadline=None)


@PROPERTY
@given(scenarios())
def test_capacity_is_never_exceeded_by_a_start(scenario):
    desired, observed, hosts, flags = scenario
    plan = place(desired, observed, hosts, **flags)
    after = live(apply_plan(plan, observed))
    for host in hosts:
        started = [a for a in plan.starts if a.host == host.name]
        if started and host.capacity is not None:
            assert len(after[host.name]) <= host.capacity


@PROPERTY
@given(scenarios())
def test_starts_go_only_to_reachable_non_jump_hosts(scenario):
    desired, observed, hosts, flags = scenario
    plan = place(desired, observed, hosts, **flags)
    reachable = {s.name for s in observed if s.reachable}
    jump_only = {h.name for h in hosts if h.jump_only}
    for action in plan.starts:
        assert action.host in reachable
        assert action.host not in jump_only


@PROPERTY
@given(scenarios())
def test_singleton_never_runs_twice_nor_leaves_an_unreachable_host_without_reschedule(scenario):
    desired, observed, hosts, flags = scenario
    plan = place(desired, observed, hosts, **flags)
    after = live(apply_plan(plan, observed))
    before = live(observed)
    by_name = {h.name: h for h in hosts}
    rules = {n: a.rule for a in desired for n in replica_names(a.name, a.rule.replicas)}
    for name in singleton_copies(desired):
        assert sum(name in agents for agents in after.values()) <= 1
        if flags["reschedule"] or any(name in agents for agents in before.values()):
            continue
        held = [s for s in observed if not s.reachable and (
            (s.agents is not None and name in s.agents)
            or (s.agents is None and not by_name[s.name].jump_only and rules[name].matches(by_name[s.name])))]
        held += [HostState(h.name, False, None) for h in hosts if h.name not in {s.name for s in observed}
                 and not h.jump_only and rules[name].matches(h)]
        if held:
            assert name not in {a.agent for a in plan.starts}


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_same_input_in_any_order_gives_the_same_plan(scenario, rnd):
    desired, observed, hosts, flags = scenario
    plan = place(desired, observed, hosts, **flags)

    def shuffled(items):
        items = list(items)
        rnd.shuffle(items)
        return items

    observed2 = [HostState(s.name, s.reachable, None if s.agents is None else tuple(shuffled(s.agents)), s.reason)
                 for s in shuffled(observed)]
    hosts2 = [HostSlot(h.name, dict(reversed(h.labels)), h.capacity, h.groups, h.jump_only) for h in shuffled(hosts)]
    assert place(shuffled(desired), observed2, hosts2, **flags) == plan


@PROPERTY
@given(scenarios())
def test_planning_again_after_applying_changes_nothing(scenario):
    desired, observed, hosts, flags = scenario
    plan = place(desired, observed, hosts, **flags)
    again = place(desired, apply_plan(plan, observed), hosts, **flags)
    assert again.is_noop, again.lines()


@PROPERTY
@given(scenarios())
def test_sticky_agent_never_moves_while_its_host_is_reachable_and_matching(scenario):
    desired, observed, hosts, flags = scenario
    plan = place(desired, observed, hosts, **flags)
    by_name = {h.name: h for h in hosts}
    before = live(observed)
    started = {a.agent for a in plan.starts}
    for agent in desired:
        if agent.rule.per_host or not agent.rule.sticky:
            continue
        for name in replica_names(agent.name, agent.rule.replicas):
            homes = [h for h, names in before.items() if name in names
                     and not by_name[h].jump_only and agent.rule.matches(by_name[h])]
            if homes:
                assert name not in started
                assert [(a.agent, a.host) for a in plan.keeps if a.agent == name] == [(name, min(homes))]


@PROPERTY
@given(scenarios())
def test_every_desired_copy_gets_exactly_one_decision_in_one_line(scenario):
    desired, observed, hosts, flags = scenario
    plan = place(desired, observed, hosts, **flags)
    for action in plan.actions:
        assert action.reason and "\n" not in action.reason
    placed = [a.agent for a in plan.actions if a.kind in (ActionKind.START, ActionKind.KEEP, ActionKind.UNPLACED,
                                                          ActionKind.UNREACHABLE)]
    for agent in desired:
        if agent.rule.per_host:
            continue
        for name in replica_names(agent.name, agent.rule.replicas):
            assert placed.count(name) == 1


def test_shuffled_example_is_stable_across_many_orders():
    hosts = login_fleet()
    desired = [DesiredAgent(n, Rule(replicas=2)) for n in ("a", "b", "c")]
    observed = everyone_up(login1=["a-0"])
    expected = place(desired, observed, hosts)
    rnd = random.Random(4)
    for _ in range(20):
        rnd.shuffle(hosts)
        rnd.shuffle(desired)
        rnd.shuffle(observed)
        assert place(desired, observed, hosts) == expected


def doc_blocks():
    text = (Path(__file__).resolve().parents[2] / "docs" / "inventory.md").read_text()
    section = text.split("### Reading a plan", 1)[1]
    return [block.strip().splitlines() for block in section.split("```")[1::2]][:2]


def test_plan_lines_in_the_docs_are_what_placement_prints():
    hosts = [HostSlot("login1", {"site": "hpc"}, 8, {"hpc"}), HostSlot("login2", {"site": "hpc"}, 4, {"hpc"}),
             HostSlot("bastion", jump_only=True), HostSlot("laptop")]
    desired = [DesiredAgent("reviewer", Rule(hosts=("login1",))),
               DesiredAgent("lead", Rule(labels={"site": "hpc"}, singleton=True)),
               DesiredAgent("worker", Rule(group="hpc", replicas=3)), DesiredAgent("monitor", Rule(per_host=True)),
               DesiredAgent("trainer", Rule(labels={"gpu": "a100"}))]
    up, down = doc_blocks()
    observed = [HostState("login1", True, ("lead", "reviewer", "x")), HostState("login2", True, ("worker-0", "old")),
                HostState("laptop", True, ())]
    assert set(up) <= set(place(desired, observed, hosts).lines())
    observed[0] = HostState("login1", False, None, "timed out")
    assert set(down) <= set(place(desired, observed, hosts).lines())


def test_singleton_moving_off_a_host_that_no_longer_matches_is_not_held_by_a_down_host():
    observed = [HostState("login1", False, None, "timed out"), HostState("login2", True, ()),
                HostState("laptop", True, ("lead",))]
    plan = place([DesiredAgent("lead", Rule(group="hpc", singleton=True))], observed, login_fleet())
    assert [(a.kind, a.host) for a in plan.changes] == [(ActionKind.STOP, "laptop"), (ActionKind.START, "login2")]
