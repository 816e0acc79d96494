"""Hosts from an Ansible inventory (INI or YAML), for ``hosts_from:`` in inventory.yaml.

Research groups that already run Ansible keep one host list. ``read_ansible(path)``
returns the hosts as sac inventory entries, the groups with their members (children
included), and one warning per Ansible variable that sac has no field for: nothing
is dropped in silence. A host's variables are merged as Ansible does: ``all``, then
groups from parent to child (by name at the same depth), then the host's own.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from sac_node.protocol.errors import InventoryError

from .documents import load_document
from .inventory_document import HOST_NAME_RE

# Ansible variable -> sac host field.
FIELDS = {
    "ansible_host": "address", "ansible_ssh_host": "address",
    "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "identity_file", "ansible_private_key_file": "identity_file",
    "ansible_python_interpreter": "python",
}
SSH_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
BUILT_IN_GROUPS = ("all", "ungrouped")
_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\]")


@dataclass(frozen=True)
class AnsibleHosts:
    """What an Ansible inventory gives sac: ``hosts`` {name: fields}, ``groups`` {name: [hosts]}."""

    hosts: dict
    groups: dict
    warnings: tuple


class _Tree:
    """Groups as Ansible has them: vars, direct hosts (with their vars), children, where each was written."""

    def __init__(self, path):
        self.path = path
        self.vars = {}       # group -> {var: (value, line)}
        self.members = {}    # group -> [host]
        self.children = {}   # group -> [group]
        self.host_vars = {}  # host -> {var: (value, line)}
        self.host_line = {}

    def group(self, name):
        for table in (self.vars, self.members, self.children):
            table.setdefault(name, {} if table is self.vars else [])
        return name

    def add_host(self, group, host, variables, line):
        self.group(group)
        if host not in self.members[group]:
            self.members[group].append(host)
        self.host_vars.setdefault(host, {}).update(variables)
        self.host_line.setdefault(host, line)

    def error(self, line, message):
        return InventoryError("%s:%d %s" % (self.path, line, message))


def read_ansible(path) -> AnsibleHosts:
    """Read an Ansible inventory; InventoryError naming file:line for what cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError("%s: cannot read this Ansible inventory: %s" % (path, exc.strerror or exc)) from exc
    tree = _Tree(path)
    if path.suffix in (".yaml", ".yml") or text.lstrip().startswith(("all:", "---")):
        _parse_yaml(tree)
    else:
        _parse_ini(tree, text)
    return _resolve(tree)


# -- INI ----------------------------------------------------------------------------------------


def _parse_ini(tree, text):
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise tree.error(number, "%r: a section is written [group], [group:vars] or [group:children]" % line)
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise tree.error(number, "[%s:%s]: unknown section kind (vars or children)" % (section, kind))
            tree.group(section)
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise tree.error(number, "%s (check the quotes)" % exc) from exc
        if kind == "children":
            tree.group(words[0])
            tree.children[section].append(words[0])
        elif kind == "vars":
            name, value = _assignment(tree, number, line)
            tree.vars[section][name] = (_scalar(value), number)
        else:
            variables = dict(_host_var(tree, number, word) for word in words[1:])
            for host, port in _expand(tree, number, words[0]):
                if port is not None:
                    variables.setdefault("ansible_port", (port, number))
                tree.add_host(section, host, dict(variables), number)


def _assignment(tree, number, line):
    name, sep, value = line.partition("=")
    if not sep or not name.strip():
        raise tree.error(number, "%r: a variable is written name=value" % line)
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return name.strip(), value


def _host_var(tree, number, word):
    name, sep, value = word.partition("=")
    if not sep:
        raise tree.error(number, "%r: host variables are written name=value" % word)
    return name, (_scalar(value), number)


def _scalar(value):
    return int(value) if re.fullmatch(r"[0-9]+", value) else value


def _expand(tree, number, pattern):
    """``web[01:03].lab:2222`` -> [(web01.lab, 2222), ...]."""
    port = None
    head, colon, tail = pattern.rpartition(":")
    if colon and tail.isdigit() and "]" not in tail:
        pattern, port = head, int(tail)
    match = _RANGE.search(pattern)
    if not match:
        return [(pattern, port)]
    start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        items = ["%0*d" % (width, n) for n in range(int(start), int(end) + 1, step)]
    elif len(start) == len(end) == 1 and start.isalpha() and end.isalpha():
        items = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise tree.error(number, "%r: a host range is [1:9], [01:10] or [a:f]" % pattern)
    expanded = []
    for item in items:
        expanded += _expand(tree, number, pattern[:match.start()] + item + pattern[match.end():])
    return [(host, port) for host, _ in expanded]


# -- YAML ---------------------------------------------------------------------------------------


def _parse_yaml(tree):
    """An Ansible YAML inventory, read as sac reads its own files (duplicate keys, lines for messages)."""
    doc = load_document(tree.path, InventoryError, example="docs/inventory.md (hosts_from)")
    for group, body in doc.data.items():
        _yaml_group(tree, doc, (group,), str(group), body)


def _yaml_group(tree, doc, loc, group, body):
    tree.group(group)
    body = body or {}
    if not isinstance(body, dict):
        raise tree.error(doc.line_of(loc), "group %s: expected hosts, children and vars" % group)
    for name, value in (body.get("vars") or {}).items():
        tree.vars[group][name] = (value, doc.line_of(loc + ("vars", name)))
    for host, variables in (body.get("hosts") or {}).items():
        line = doc.line_of(loc + ("hosts", host))
        pairs = {name: (value, doc.line_of(loc + ("hosts", host, name))) for name, value in (variables or {}).items()}
        for name, port in _expand(tree, line, str(host)):
            if port is not None:
                pairs.setdefault("ansible_port", (port, line))
            tree.add_host(group, name, dict(pairs), line)
    for child, child_body in (body.get("children") or {}).items():
        tree.children[group].append(str(child))
        _yaml_group(tree, doc, loc + ("children", child), str(child), child_body)


# -- from Ansible's groups and variables to sac's hosts -----------------------------------------


def _resolve(tree):
    parents = {}
    for group, children in tree.children.items():
        for child in children:
            parents.setdefault(child, set()).add(group)
    depth = {group: _depth(group, parents, ()) for group in tree.members}
    members = {group: _all_members(group, tree, ()) for group in tree.members}
    hosts, warnings, seen = {}, [], set()
    for host in tree.host_vars:
        if not HOST_NAME_RE.fullmatch(host):
            raise tree.error(tree.host_line.get(host) or 1, "host %r: sac host names are letters, digits, '.', '_' "
                             "and '-' (rename it, and keep its address in ansible_host)" % host)
        groups = sorted((g for g in tree.members if host in members[g] and g != "all"), key=lambda g: (depth[g], g))
        merged = {}
        for group in ["all"] + groups:
            merged.update(tree.vars.get(group, {}))
        merged.update(tree.host_vars[host])
        hosts[host] = _fields(tree, host, merged, warnings, seen)
    groups = {g: list(m) for g, m in members.items() if g not in BUILT_IN_GROUPS and m and HOST_NAME_RE.fullmatch(g)}
    for group in sorted(g for g in members if g not in BUILT_IN_GROUPS and members[g] and not HOST_NAME_RE.fullmatch(g)):
        warnings.append("%s group %s: not a valid sac group name; its hosts are imported without it" % (tree.path, group))
    return AnsibleHosts(hosts, groups, tuple(warnings))


def _depth(group, parents, seen):
    if group in seen:
        return 0
    return 1 + max((_depth(p, parents, seen + (group,)) for p in parents.get(group, ())), default=0)


def _all_members(group, tree, seen):
    if group == "all":
        return list(tree.host_vars)
    out = list(tree.members.get(group, []))
    for child in tree.children.get(group, []):
        if child not in seen:
            out += [h for h in _all_members(child, tree, seen + (group,)) if h not in out]
    return out


def _fields(tree, host, merged, warnings, seen):
    fields = {}
    where = lambda line: "%s:%d" % (tree.path, line or tree.host_line.get(host) or 1)  # noqa: E731
    for name, (value, line) in merged.items():
        if name in FIELDS:
            fields[FIELDS[name]] = _checked(tree, host, name, FIELDS[name], value, line)
        elif name == "ansible_connection":
            if value == "local":
                fields["transport"] = "local"
            elif value not in ("ssh", "smart", "paramiko"):
                _warn(warnings, seen, where(line), name, "ansible_connection=%s is not an SSH connection; sac "
                      "reaches %s over SSH" % (value, host))
        elif name in SSH_ARGS:
            jump, rest = _ssh_args(str(value))
            if jump:
                fields["jump"] = jump
            if rest:
                _warn(warnings, seen, where(line), name, "%s %s: not used by sac (put it in ~/.ssh/config, which sac "
                      "reads)" % (name, " ".join(rest)))
        else:
            _warn(warnings, seen, where(line), name, "%s: not used by sac (it has no such host field)" % name)
    if fields.get("transport") == "local":
        fields = {k: v for k, v in fields.items() if k in ("transport", "python")}
    return fields


def _checked(tree, host, var, field, value, line):
    if field == "port":
        if not (isinstance(value, int) and 1 <= value <= 65535):
            raise tree.error(line or tree.host_line.get(host) or 1, "host %s: %s=%r must be a port number from 1 "
                             "to 65535" % (host, var, value))
        return value
    return str(value)


def _warn(warnings, seen, where, name, message):
    if name + message not in seen:
        seen.add(name + message)
        warnings.append("%s %s" % (where, message))


def _ssh_args(text):
    """(jump hops, the rest) of ansible_ssh_common_args: ProxyJump (-J or -o) becomes sac's ``jump``."""
    words, jump, rest, i = shlex.split(text), [], [], 0
    while i < len(words):
        word = words[i]
        option = None
        if word == "-J" and i + 1 < len(words):
            option, i = "ProxyJump=" + words[i + 1], i + 1
        elif word == "-o" and i + 1 < len(words):
            option, i = words[i + 1], i + 1
        elif word.startswith("-o") and len(word) > 2:
            option = word[2:]
        key, _, value = (option or "").partition("=")
        if key.strip().lower() == "proxyjump" and value.strip().lower() != "none":
            jump += [hop.strip() for hop in value.split(",") if hop.strip()]
        elif option is not None:
            rest.append("-o " + option)
        else:
            rest.append(word)
        i += 1
    return jump, rest
