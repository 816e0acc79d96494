"""Gateway token scopes: `read`, `send:<selector>` (a name, `*`, or key=value labels), `admin`."""

import pytest

from sac_fleet.frontends.gateway.scopes import ADMIN, FOLLOW, READ, SEND, Grant, ScopeError, needed

WORKER = {"role": "worker", "site": "hpc"}
LEAD = {"role": "lead", "site": "hpc"}


def test_send_by_label_reaches_the_workers_and_not_the_lead():
    grant = Grant.parse(["send:role=worker"])
    assert grant.allows(SEND, "w1", WORKER) and grant.allows(FOLLOW, "w1", WORKER)
    assert not grant.allows(SEND, "lead", LEAD) and not grant.allows(FOLLOW, "lead", LEAD)
    assert not grant.allows(SEND, "w1")  # labels not known yet: not allowed on a guess
    assert grant.wants_labels(SEND) and grant.wants_labels(FOLLOW) and not grant.wants_labels(READ)
    assert not grant.allows(READ) and not grant.allows(ADMIN)


def test_several_labels_must_all_hold():
    grant = Grant.parse(["send:role=worker,site=cloud"])
    assert not grant.allows(SEND, "w1", WORKER)
    assert grant.allows(SEND, "w2", {"role": "worker", "site": "cloud", "extra": "x"})


def test_send_by_name_and_star():
    by_name = Grant.parse(["send:reviewer"])
    assert by_name.allows(SEND, "reviewer") and not by_name.allows(SEND, "reviewer2")
    assert not by_name.wants_labels(SEND)
    assert Grant.parse(["send:*"]).allows(SEND, "anyone")


def test_read_sees_everything_and_acts_on_nothing():
    grant = Grant.parse(["read"])
    assert grant.allows(READ) and grant.allows(FOLLOW, "lead", LEAD)
    assert not grant.allows(SEND, "lead", LEAD) and not grant.allows(ADMIN)


def test_admin_allows_everything_and_scopes_add_up():
    assert all(Grant.parse(["admin"]).allows(a, "x", {}) for a in (READ, FOLLOW, SEND, ADMIN))
    both = Grant.parse(["read", "send:a1", "send:role=worker"])
    assert both.allows(READ) and both.allows(SEND, "a1") and both.allows(SEND, "w1", WORKER)
    assert not both.allows(SEND, "lead", LEAD)


@pytest.mark.parametrize("scope", ["write", "send", "send:", "send:Bad Name", "send:role=", "send:=x",
                                   "send:a=b=c", "Admin", "read:all"])
def test_a_bad_scope_is_refused_with_the_forms_there_are(scope):
    with pytest.raises(ScopeError) as caught:
        Grant.parse([scope])
    assert repr(scope) in caught.value.message and "send:<agent name" in caught.value.message


def test_the_scope_needed_is_named():
    assert needed(SEND, "lead").startswith("send:lead ")
    assert needed(FOLLOW, "lead").startswith("read ") and needed(READ) == "read"
