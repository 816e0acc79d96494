"""Routing (control/routing.py): the agent index is pure; `locate` asks the hosts only on a miss."""

import asyncio

import pytest

from sac_fleet.control.routing import AgentIndex, locate, not_found
from sac_node.protocol.errors import AgentNotFound, HostUnreachable


def live(name, generation=None, state="idle"):
    return {"name": name, "state": state, "generation": generation}


def test_the_index_learns_a_hosts_whole_list_and_forgets_what_it_no_longer_runs():
    index = AgentIndex()
    index.learn("h1", [live("a"), live("b")])
    assert (index.host_of("a"), index.host_of("b")) == ("h1", "h1")
    index.learn("h1", [live("a")])
    assert (index.host_of("a"), index.host_of("b")) == ("h1", None)


def test_a_live_copy_outranks_a_stopped_one_and_a_newer_generation_an_older_one():
    index = AgentIndex()
    index.learn("h1", [live("solo", state="stopped")])
    index.learn("h2", [live("solo")])
    assert index.host_of("solo") == "h2"
    index.learn("h3", [live("single", generation=5)])
    index.learn("h4", [live("single", generation=4)])
    assert index.host_of("single") == "h3"
    index.note("h4", live("single", generation=6))
    assert index.host_of("single") == "h4"


def test_an_equal_copy_elsewhere_does_not_move_an_agent_but_its_own_host_may_update_it():
    index = AgentIndex()
    index.learn("h1", [live("a")])
    index.learn("h2", [live("a")])
    assert index.host_of("a") == "h1"
    index.note("h1", live("a", state="stopped"))  # the host it runs on says it stopped: still there
    assert index.host_of("a") == "h1"


def test_forgetting_by_agent_by_host_and_a_whole_host():
    index = AgentIndex()
    index.learn("h1", [live("a"), live("b")])
    index.forget("a", host="h2")  # not where it runs: kept
    assert index.host_of("a") == "h1"
    index.forget("a")
    index.drop_host("h1")
    assert (index.host_of("a"), index.host_of("b")) == (None, None)


class Client:
    def __init__(self, agents):
        self.agents, self.lists = agents, 0

    async def list_agents(self):
        self.lists += 1
        return [live(a) for a in self.agents]


class Link:
    """What locate and observe read of a HostLink."""

    def __init__(self, name, agents=(), ok=True, running=True):
        self.name, self.ok, self.node_running = name, ok, running
        self.client = Client(list(agents))
        self.state, self.reason = ("ok", "") if ok else ("unreachable", "refused")

    def mark(self, state, reason):
        self.ok, self.state, self.reason = False, state, reason

    def down(self, exc):
        self.mark("unreachable", str(exc))


def missing(agent, links):
    return not_found(agent, links, "any host of inv.yaml")


def run(coro):
    return asyncio.run(coro)


def test_a_known_agent_is_reached_without_asking_any_host():
    links = {"h1": Link("h1", ["a"]), "h2": Link("h2", ["b"])}
    index = AgentIndex()
    index.learn("h2", [live("b")])
    assert run(locate(links, index, "b", 1.0, missing)) == "h2"
    assert links["h1"].client.lists == links["h2"].client.lists == 0


def test_an_unknown_agent_is_looked_up_once_then_known():
    links = {"h1": Link("h1", ["a"]), "h2": Link("h2", ["b"])}
    index = AgentIndex()
    assert run(locate(links, index, "b", 1.0, missing)) == "h2"
    assert run(locate(links, index, "b", 1.0, missing)) == "h2"
    assert run(locate(links, index, "a", 1.0, missing)) == "h1"
    assert links["h1"].client.lists == links["h2"].client.lists == 1


def test_one_host_answers_for_its_agents_itself():
    links = {"h1": Link("h1", [])}
    assert run(locate(links, AgentIndex(), "whoever", 1.0, missing)) == "h1"
    assert links["h1"].client.lists == 0


def test_an_agent_whose_host_is_down_says_so_and_a_copy_that_answers_wins():
    links = {"h1": Link("h1", ["a"], ok=False), "h2": Link("h2", [])}
    index = AgentIndex()
    index.learn("h1", [live("a")])
    with pytest.raises(HostUnreachable, match="agent a runs on host h1, which does not answer now"):
        run(locate(links, index, "a", 1.0, missing))
    links["h2"].client.agents.append("a")  # rescheduled onto h2
    assert run(locate(links, index, "a", 1.0, missing)) == "h2"


def test_an_agent_no_host_runs_names_the_hosts_that_could_not_be_asked():
    links = {"h1": Link("h1", ok=False), "h2": Link("h2", running=False), "h3": Link("h3")}
    links["h2"].ok = False
    with pytest.raises(AgentNotFound) as caught:
        run(locate(links, AgentIndex(), "ghost", 1.0, missing))
    assert str(caught.value.message) == (
        "no agent named ghost runs on any host of inv.yaml (hosts that did not answer: h1) (no node daemon runs "
        "on h2; `sac fleet up` starts it); see `sac fleet status`")
