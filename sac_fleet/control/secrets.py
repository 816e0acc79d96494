"""Secrets from the head to its hosts: each host gets the names its agents use, and only when they changed.

The inventory says where the head reads each secret (``secrets:`` at the top, per group, per host:
``{env: VAR}``, ``{file: PATH}``, ``{command: CMD}``). ``up`` resolves the names that agents
placed on a host name (``claude.provider.api_key_env``, each account's ``api_key_env``), compares
their hashes with what the host reported (``host.facts`` ``secrets``), and writes the changed ones
with a ``secrets`` plan action. Nothing here puts a value in a log, an error or an Action.
"""

import os
import subprocess

from sac_node.protocol.errors import InventoryError
from sac_node.protocol.messages import secret_hash, secret_names

from ..core.plan import Action, ActionKind

COMMAND_TIMEOUT_S = 30.0


class SecretReader:
    """Reads each source once per run (a `pass show` is not asked twice), on the head."""

    def __init__(self, inventory, environ=None, run=subprocess.run):
        self.inventory, self.environ, self.run = inventory, os.environ if environ is None else environ, run
        self._values = {}

    def value(self, name, source):
        key = (source.env, source.file, source.command)
        if key not in self._values:
            self._values[key] = self._read(name, source)
        return self._values[key]

    def _read(self, name, source):
        where = "%s: secrets.%s (%s)" % (self.inventory.path, name, source.describe())
        if source.env is not None:
            value = self.environ.get(source.env)
            if not value:
                raise InventoryError("%s: $%s is not set on this machine (export it, or give another source)"
                                     % (where, source.env))
        elif source.file is not None:
            try:
                with open(os.path.expanduser(source.file), encoding="utf-8") as fh:
                    value = fh.read().strip()
            except OSError as exc:
                raise InventoryError("%s: cannot read it: %s" % (where, exc.strerror or exc)) from None
        else:
            value = self._command(where, source.command)
        if not value or "\n" in value or "\r" in value:
            raise InventoryError("%s: a secret is one non-empty line" % where)
        return value

    def _command(self, where, command):
        try:
            done = self.run(command, shell=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise InventoryError("%s: the command took more than %gs" % (where, COMMAND_TIMEOUT_S)) from None
        if done.returncode != 0:
            # Its stderr is the command's own words (never its stdout, which could hold the secret).
            err = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
            raise InventoryError("%s: the command exited %d: %s" % (where, done.returncode, err))
        return done.stdout.strip()


def wanted(inventory, plan, reader=None):
    """{host: {NAME: value}}: for the agents each host is to run, the names the inventory gives a source."""
    reader = reader or SecretReader(inventory)
    out = {}
    for action in plan.actions:
        if action.kind not in (ActionKind.START, ActionKind.KEEP):
            continue
        host = inventory.hosts[action.host]
        spec = inventory.agent(action.agent).spec
        if not host.secrets or spec is None:
            continue  # nothing the inventory could send there: no need to resolve the spec
        used = set(secret_names(spec.to_node()))
        for name in sorted(used & set(host.secrets or {})):
            out.setdefault(action.host, {})[name] = reader.value(name, host.secrets[name])
    return out


def actions(wanted_values, links):
    """A `secrets` action for each host whose secrets.env lacks or differs in a wanted name."""
    out = []
    for host, values in sorted(wanted_values.items()):
        link = links.get(host)
        if link is None or not link.ok:
            continue
        have = (link.facts or {}).get("secrets") or {}
        new = [n for n in sorted(values) if n not in have]
        changed = [n for n in sorted(values) if n in have and have[n] != secret_hash(values[n])]
        if not new and not changed:
            continue
        parts = (["%s (new)" % ", ".join(new)] if new else []) + (["%s (changed)" % ", ".join(changed)]
                                                                 if changed else [])
        out.append(Action(ActionKind.SECRETS, "", host, "write " + "; ".join(parts)))
    return out


async def apply(action, wanted_values, link):
    """Write one host's changed secrets; its link's facts then show the new hashes."""
    reply = await link.client.put_secrets(wanted_values[action.host])
    link.facts = dict(link.facts or {}, secrets=reply["secrets"])
    return reply["changed"]


def report(inventory, links, reader=None):
    """`sac fleet secrets`: per host, each name its inventory gives, its hash there and on the head; no value."""
    reader = reader or SecretReader(inventory)
    users = {}
    for agent in inventory.agents:
        for name in secret_names(agent.spec.to_node()) if agent.spec is not None else ():
            users.setdefault(name, []).append(agent.name)
    rows = []
    for host in inventory.node_hosts():
        link = links.get(host.name)
        have = ((link.facts or {}).get("secrets") or {}) if link is not None and link.ok else None
        for name, source in sorted((host.secrets or {}).items()):
            try:
                head = secret_hash(reader.value(name, source))
            except InventoryError as exc:
                head, state = None, "unreadable on the head: " + exc.message
            there = None if have is None else have.get(name)
            if head is not None:
                state = _unseen(link) if have is None else "missing" if there is None else \
                    "ok" if there == head else "differs"
            rows.append({"host": host.name, "name": name, "source": source.describe(), "head_hash": head,
                         "host_hash": there, "state": state, "used_by": sorted(users.get(name, []))})
    return rows


def _unseen(link):
    """Why a host's secrets are not known: no node daemon runs there (before the first `up`), or no answer."""
    if link is not None and not link.node_running:
        return "node not running (sac fleet up writes it)"
    return "unreachable"
