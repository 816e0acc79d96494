"""Secrets in the inventory: where the head reads each one, and which a host gets.

A secret is named in ``secrets:`` at the top of the inventory, in a group or in a
host, by its variable NAME and a source (``env``, ``file`` or ``command``, read on
the head); the value is never in the file. ``host_secrets`` merges them for one host.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, StringConstraints, model_validator

from sac_node.protocol.errors import InventoryError

from .spec_fields import ENV_NAME_RE, NonEmpty
from .validation import ConfigModel, invalid, null_as_empty

SecretName = Annotated[str, StringConstraints(pattern=ENV_NAME_RE.pattern)]


class SecretSource(ConfigModel):
    """Where the head reads one secret: exactly one of ``env``, ``file`` or ``command`` (run on the head)."""

    env: NonEmpty | None = None
    file: NonEmpty | None = None
    command: NonEmpty | None = None

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("env", "file", "command") if getattr(self, k) is not None]
        if len(given) != 1:
            raise invalid("give exactly one of env (a variable on the head), file (a path on the head) or command "
                          "(run on the head)")
        return self

    def describe(self) -> str:
        """Where the value comes from, in words (never the value)."""
        if self.env is not None:
            return "$%s" % self.env
        return "file %s" % self.file if self.file is not None else "command `%s`" % self.command


Secrets = Annotated[dict[SecretName, SecretSource], BeforeValidator(null_as_empty)]


def host_secrets(doc, model, name) -> dict:
    """The inventory's secrets, then its groups' (a name two groups give differently is an error), then the host's."""
    found = dict(model.secrets)
    from_group = {}
    for group, entry in model.groups.items():
        if name not in entry.hosts:
            continue
        for secret, source in entry.secrets.items():
            if secret in from_group and from_group[secret][1] != source:
                raise doc.error(("groups", group, "secrets", secret), "%s is also given by group %s, which host %s "
                                "is in too (give it once, or in hosts.%s.secrets)" % (secret, from_group[secret][0],
                                                                                     name, name), InventoryError)
            from_group[secret] = (group, source)
    found.update({secret: source for secret, (_, source) in from_group.items()})
    found.update(model.hosts[name].secrets)
    return found

