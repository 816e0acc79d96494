"""The head's spec defaults are what docs/spec-reference.md says they are.

The defaults are stated once, in the section models (sac_fleet/core/spec_sections.py);
``Spec.to_node()`` sends them to the node. These tests read the reference's tables
(field | type | default | meaning) and compare every default written there as a value
with what a minimal spec resolves to, so the docs cannot drift from the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from sac_fleet.core.placement import Rule
from sac_fleet.core.spec import Placement, parse_spec

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "spec-reference.md"
MINIMAL = "apiVersion: sac/v1\nkind: Agent\n"

# A heading of the reference -> where its fields sit in the dict the node receives.
SECTIONS = {
    "`metadata`": (), "`spec`": (), "`spec.claude`": ("claude",),
    "`spec.claude.accounts` and `spec.claude.quota`": ("claude",), "`spec.restart`": ("restart",),
    "`spec.health`": ("health",), "`spec.journal`": ("journal",), "`spec.isolation`": ("isolation",),
    "`spec.placement`": ("placement",), "`spec.hooks`": ("hooks",),
}
MUST_CHECK = {
    "isolation.runtime", "isolation.image", "isolation.binds", "isolation.network", "isolation.gpus",
    "restart.policy", "restart.max_retries", "restart.backoff.initial", "restart.backoff.max",
    "restart.backoff.multiplier", "health.turn_timeout_s", "health.stall_timeout_s", "claude.session",
    "journal.keep_turns", "journal.keep_keys_s",
    "hooks.pre_start", "hooks.on_failure", "startup_commands",
}


def documented_defaults(text: str) -> dict:
    """{node path: default} for every table row whose default is a value (`...` or null)."""
    found, prefix, in_table = {}, None, False
    for line in text.splitlines():
        heading = re.match(r"^#{2,4} (.+)$", line)
        if heading:
            prefix, in_table = SECTIONS.get(heading.group(1).strip()), False
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells[:3] == ["field", "type", "default"]:
            in_table = True
            continue
        if not (in_table and prefix is not None and len(cells) == 4 and cells[0].startswith("`")):
            continue
        field, default = cells[0].strip("`"), cells[2]
        if "[]." in field:  # one entry of a list (accounts[].name): no default of the spec's own
            continue
        value = _value(default)
        if value is not _NONE:
            found[".".join(prefix + tuple(field.split(".")))] = value
    return found


_NONE = object()


def _value(cell: str):
    if cell.startswith("null"):
        return None
    quoted = re.match(r"^`([^`]*)`", cell)
    return yaml.safe_load(quoted.group(1)) if quoted else _NONE


def resolved(node: dict, fallback: dict, path: str):
    """The value at ``path`` in the node's dict; keys to_node() leaves out at their default
    (journal, claude.disallowed_tools, claude.permission_mode) come from the spec's own dump."""
    keys = path.split(".")
    if keys == ["engine"]:
        return node["engine"]["kind"]
    for source in (node, fallback):
        value = source
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            return value
    raise AssertionError("docs/spec-reference.md lists %s, which a resolved spec does not have" % path)


def _same(doc, head) -> bool:
    # 600 in the docs is 600.0 on the node; but `false` is not 0.
    return doc == head and isinstance(doc, bool) == isinstance(head, bool)


def test_every_default_in_the_reference_tables_is_what_a_minimal_spec_resolves_to(tmp_path):
    (tmp_path / "spec.yaml").write_text(MINIMAL)
    spec = parse_spec(tmp_path / "spec.yaml", default_name="a1")
    node, fallback = spec.to_node(), spec.spec.model_dump()
    documented = documented_defaults(REFERENCE.read_text())
    assert MUST_CHECK <= set(documented), sorted(MUST_CHECK - set(documented))
    head = {path: resolved(node, fallback, path) for path in documented}
    wrong = {path: (doc, head[path]) for path, doc in documented.items() if not _same(doc, head[path])}
    assert wrong == {}, "docs say (left) but the head resolves (right): %r" % wrong


def test_a_spec_that_writes_journal_sends_its_defaults_to_the_node(tmp_path):
    (tmp_path / "spec.yaml").write_text(MINIMAL + "spec: {journal: {}}\n")
    node = parse_spec(tmp_path / "spec.yaml", default_name="a1").to_node()
    documented = documented_defaults(REFERENCE.read_text())
    assert node["journal"] == {"keep_turns": documented["journal.keep_turns"],
                               "keep_keys_s": documented["journal.keep_keys_s"]}


def test_placement_rule_defaults_are_the_spec_placement_defaults():
    # placement.Rule is the pure value placement reads; its defaults must not drift from the spec's.
    rule, spec = Rule(), Placement()
    assert (rule.hosts, rule.group, rule.labels, rule.replicas, rule.per_host, rule.singleton, rule.sticky) == \
        (tuple(spec.hosts), spec.group, tuple(spec.labels.items()), spec.replicas, spec.per_host, spec.singleton,
         spec.sticky)
