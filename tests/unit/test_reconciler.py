"""The reconciler (control/reconciler.py): fencing and host states are pure; observe and apply_plan talk to
scripted node clients."""

import asyncio
import textwrap

from sac_fleet.control import reconciler
from sac_fleet.control.routing import AgentIndex
from sac_fleet.core.inventory import load_inventory
from sac_fleet.core.plan import ActionKind, Plan
from sac_node.protocol.errors import HostUnreachable

INVENTORY = """
    name: lab
    hosts:
      h1: {}
      h2: {}
    agents:
      - spec: agents/solo
        placement: {singleton: true}
      - spec: agents/many
        placement: {replicas: 2}
"""


def inventory(tmp_path):
    for name in ("solo", "many"):
        folder = tmp_path / "agents" / name
        folder.mkdir(parents=True)
        (folder / "spec.yaml").write_text("apiVersion: sac/v1\nkind: Agent\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(INVENTORY).lstrip("\n"))
    return load_inventory(path)


def ours(name, generation=None, state="idle"):
    return {"name": name, "state": state, "generation": generation, "fleet": "lab"}


def test_a_singleton_running_twice_is_fenced_where_it_is_older(tmp_path):
    inv = inventory(tmp_path)
    observed = {"h1": [ours("solo", 1)], "h2": [ours("solo", 2), ours("many-0")]}
    actions, survivors = reconciler.fences(inv, observed)
    assert [(a.kind, a.agent, a.host, a.by_host, a.by_generation) for a in actions] == [
        (ActionKind.FENCE, "solo", "h1", "h2", 2)]
    assert survivors == {"h1": [], "h2": observed["h2"]} and observed["h1"] == [ours("solo", 1)]  # not mutated


def test_host_states_count_only_this_fleets_live_copies(tmp_path):
    inv = inventory(tmp_path)
    links = {"h1": object(), "h2": type("Down", (), {"reason": "refused"})()}
    observed = {"h1": [ours("many-0"), ours("many-1", state="stopped"), dict(ours("by-hand"), fleet=None)]}
    states = reconciler.host_states(inv, links, observed)
    assert [(s.name, s.reachable, s.agents) for s in states] == [("h1", True, ("many-0",)), ("h2", False, None)]
    assert states[1].reason == "refused"


def test_the_plan_starts_what_is_missing_and_fences_before_placing(tmp_path):
    inv = inventory(tmp_path)
    links = {"h1": object(), "h2": object()}
    observed = {"h1": [ours("solo", 1)], "h2": [ours("solo", 2)]}
    plan = reconciler.make_plan(inv, links, observed)
    kinds = {(a.kind, a.agent, a.host) for a in plan.actions}
    assert (ActionKind.FENCE, "solo", "h1") in kinds and (ActionKind.KEEP, "solo", "h2") in kinds
    assert sorted(a.agent for a in plan.actions if a.kind is ActionKind.START) == ["many-0", "many-1"]


class Client:
    def __init__(self, agents=(), fail=None, hang=False):
        self.agents, self.fail, self.hang, self.calls = list(agents), fail, hang, []

    async def list_agents(self):
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise self.fail
        return self.agents

    async def stop_agent(self, name):
        self.calls.append(("stop", name))

    async def fence_agent(self, name, generation, by=None):
        self.calls.append(("fence", name, generation, by))


class Link:
    def __init__(self, name, client=None, running=True):
        self.name, self.client, self.node_running, self.ok, self.state = name, client, running, True, "ok"

    def mark(self, state, reason):
        self.ok, self.state, self.reason = False, state, reason

    def down(self, exc):
        self.mark("unreachable", exc.message)


def test_observe_lists_each_host_and_marks_the_ones_that_fail(tmp_path):
    links = {"h1": Link("h1", Client([ours("many-0")])), "h2": Link("h2", Client(fail=HostUnreachable("gone"))),
             "h3": Link("h3", Client(hang=True)), "h4": Link("h4", running=False)}
    links["h4"].ok = False  # answered, runs no node daemon
    index = AgentIndex()
    observed = asyncio.run(reconciler.observe(links, 0.2, index))
    assert observed == {"h1": [ours("many-0")], "h4": []}
    assert (links["h2"].state, links["h3"].state) == ("unreachable", "timed_out")
    assert index.host_of("many-0") == "h1"


def test_apply_plan_fences_the_stale_copy_with_the_winners_token(tmp_path):
    inv = inventory(tmp_path)
    links = {"h1": Link("h1", Client()), "h2": Link("h2", Client())}
    observed = {"h1": [ours("solo", 1)], "h2": [ours("solo", 2)]}
    plan = reconciler.make_plan(inv, links, observed)
    fences = Plan.of(a for a in plan.actions if a.kind in (ActionKind.FENCE, ActionKind.STOP))
    results = asyncio.run(reconciler.apply_plan(fences, inv, links, observed))
    assert [r["ok"] for r in results] == [True] and links["h1"].client.calls == [("fence", "solo", 2, "h2")]
    assert links["h2"].client.calls == []
