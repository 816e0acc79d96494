"""``engine:`` of a host, a group or ``defaults``: which Claude Code a host's agents run.

    engine: {bin: /opt/claude/claude}   # use this one there; nothing is uploaded
    engine: {version: 2.1.197}          # a `claude` on the host's PATH of this version will do
    engine: {upload: false}             # never send the head's copy: a missing engine is an error

Unset, a host uses the `claude` on its login PATH when its version is the head's, else the
head's own copy, which `sac fleet up` uploads (sac_fleet/remote/engine_ship.py). Fields merge
per field: defaults, then the host's groups (two groups giving one field differently is an
error), then the host.
"""

from __future__ import annotations

from pydantic import StrictBool, model_validator

from sac_node.protocol.errors import InventoryError

from .spec_fields import NonEmpty
from .validation import ConfigModel, invalid

FIELDS = ("bin", "version", "upload")


class EngineSetting(ConfigModel):
    """Which Claude Code a host runs: `bin` (a path there), `version` (of its `claude`), `upload` (default true)."""

    bin: NonEmpty | None = None
    version: NonEmpty | None = None
    upload: StrictBool | None = None

    @model_validator(mode="after")
    def _bin_or_version(self):
        if self.bin is not None and self.version is not None:
            raise invalid("give bin (a path on the host) or version (of the `claude` on its PATH), not both")
        return self

    def wish(self) -> dict:
        """The fields set, as the probe takes them (upload defaults to true)."""
        found = {field: getattr(self, field) for field in FIELDS if getattr(self, field) is not None}
        found.setdefault("upload", True)
        return found


def host_engine(doc, model, name) -> EngineSetting:
    """The engine setting of host `name`: defaults, then its groups', then its own, field by field
    (a level that gives `bin` or `version` replaces both of the levels before it)."""
    from_group = {}
    for group, entry in model.groups.items():
        if name not in entry.hosts:
            continue
        for field, value in _fields(entry.engine).items():
            if field in from_group and from_group[field][1] != value:
                raise doc.error(("groups", group, "engine", field), "also given by group %s, which host %s is in "
                                "too (give it once, or in hosts.%s.engine)" % (from_group[field][0], name, name),
                                InventoryError)
            from_group[field] = (group, value)
    merged = {}
    for level in (_fields(model.defaults.engine), {f: v for f, (_, v) in from_group.items()},
                  _fields(model.hosts[name].engine)):
        if "bin" in level or "version" in level:
            merged.pop("bin", None)
            merged.pop("version", None)
        merged.update(level)
    if "bin" in merged and "version" in merged:
        raise doc.error(("hosts", name), "its groups give engine.bin and engine.version: give one (in hosts.%s.engine)"
                        % name, InventoryError)
    return EngineSetting(**merged)


def _fields(setting) -> dict:
    return {f: getattr(setting, f) for f in FIELDS if setting is not None and getattr(setting, f) is not None}
