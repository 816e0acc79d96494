"""What a host's node daemon is started with, so that a change is seen: {field: hash}.

The probe starts a daemon with SAC_NODE_SETTINGS (this record); the daemon reports it in
host.facts `settings`. A field whose hash differs from `record(settings)` is a reason to restart
that node (control/node_restarts.py): `env_preamble`, `python`, `engine` (the inventory's engine
fields and the head's copy it would send). Secrets are not here: secrets.env is read at every
agent start, so a changed one needs no daemon restart.
"""

import hashlib
import json

from .engine_ship import wish

FIELDS = ("env_preamble", "python", "engine")


def _hash(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def probe_wish(settings):
    """The probe's ENGINE argument for a host: the engine it wants and the settings record to start with."""
    engine = wish(dict(settings.engine), settings.needs_engine)
    return dict(engine, settings=record(settings, engine))


def record(settings, engine=None):
    """{field: hash} of what a daemon of `settings` is started with."""
    engine = wish(dict(settings.engine), settings.needs_engine) if engine is None else engine
    return {"env_preamble": _hash(settings.env_preamble.strip()), "python": _hash(settings.python),
            "engine": _hash({k: v for k, v in engine.items() if k != "size"})}


def changed(settings, facts):
    """The fields whose hash differs from what the daemon of `facts` was started with (all when unknown)."""
    have = (facts or {}).get("settings") or {}
    want = record(settings)
    return [field for field in FIELDS if have.get(field) != want[field]]
