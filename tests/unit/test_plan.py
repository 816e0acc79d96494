"""core.plan: a fence is a plan action like the others, carried out before any stop or start."""

from sac_fleet.core.plan import Action, ActionKind, Plan


def test_a_fence_comes_first_changes_a_host_and_says_whom_it_yields_to():
    fence = Action(ActionKind.FENCE, "solo", "h1", "singleton running twice", "solo", by_host="h2",
                   by_generation=7)
    plan = Plan.of([Action(ActionKind.START, "a", "h2", "pinned"), Action(ActionKind.KEEP, "solo", "h2", "sticky"),
                    fence, Action(ActionKind.STOP, "b", "h1", "moved")])
    assert [a.kind for a in plan.actions] == [ActionKind.FENCE, ActionKind.STOP, ActionKind.START, ActionKind.KEEP]
    assert plan.changes[0] is fence and not plan.is_noop and plan.fences == (fence,)
    assert plan.summary() == "1 to start, 1 to stop, 1 to fence, 1 kept"
    data = fence.to_dict()
    assert (data["kind"], data["by_host"], data["by_generation"]) == ("fence", "h2", 7)
    assert data["line"] == "solo on h1: fence: singleton running twice"
    assert "by_host" not in plan.actions[1].to_dict()
