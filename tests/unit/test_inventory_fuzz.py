"""Every invalid inventory gives the documented one-line error naming file and line, never a traceback."""

import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings, strategies as st

from sac_fleet.core.inventory import load_inventory
from sac_node.protocol.errors import ConfigError

VALID = {
    "defaults": {"user": "alice", "connect_timeout": 5, "keepalive_s": 2},
    "hosts": {
        "local": {"transport": "local", "capacity": 2},
        "login1": {"address": "127.0.0.9", "port": 2222, "jump": ["bastion"], "labels": {"site": "hpc"},
                   "env_preamble": "module load python", "python": "/usr/bin/python3"},
        "bastion": {"address": "127.0.0.8", "jump_only": True},
    },
    "groups": {"hpc": ["login1"]},
    "agents": [],
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
                    st.text(max_size=12), st.lists(st.text(max_size=4), max_size=2))
keys = st.sampled_from(["defaults", "hosts", "groups", "agents", "address", "port", "jump", "labels", "capacity",
                        "transport", "user", "jump_only", "python", "state_dir", "connect_timeout", "bogus",
                        "local", "login1", "bastion", "hpc", "placement", "spec"])


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, prefix + (i,))


@st.composite
def mutated(draw):
    doc = yaml.safe_load(yaml.safe_dump(VALID))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(doc))))
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not where:
            continue
        if action == "replace":
            parent[where[-1]] = draw(scalars)
        elif action == "delete" and isinstance(parent, dict):
            parent.pop(where[-1], None)
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(scalars)
    return doc


DIR = Path(tempfile.mkdtemp(prefix="sac-inv-fuzz-"))


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_mutated_inventories_load_or_give_a_located_error(doc):
    path = DIR / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_inventory(path, load_specs=False)
    except ConfigError as exc:
        assert re.match(re.escape(str(path)) + r"(:\d+)? \S", exc.message), exc.message
        assert "\n" not in exc.message and "Traceback" not in exc.message


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_arbitrary_bytes_give_a_located_error(raw):
    path = DIR / "inventory.yaml"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    try:
        load_inventory(path, load_specs=False)
    except ConfigError as exc:
        assert exc.message.startswith(str(path)), exc.message
