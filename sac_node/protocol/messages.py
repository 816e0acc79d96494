"""Method names and the protocol version spoken between head and node.

Every method is `noun.verb`; its params and result are documented in the
docstring of its handler (sac_node/handlers/).
"""

PROTOCOL_VERSION = 1

# The line a node prints before it switches a stream to framed msgpack
# (the head scans past login-banner noise for it).
READY_MARKER = "SAC-NODE READY"


def ready_line(version, sha):
    return "%s proto=%d version=%s sha=%s\n" % (READY_MARKER, PROTOCOL_VERSION, version, sha)


# host
HOST_FACTS = "host.facts"
HOST_SHUTDOWN = "host.shutdown"
HOST_SECRETS = "host.secrets"
# agents
AGENTS_START = "agents.start"
AGENTS_STOP = "agents.stop"
AGENTS_RESTART = "agents.restart"
AGENTS_DELETE = "agents.delete"
AGENTS_FENCE = "agents.fence"
AGENTS_LIST = "agents.list"
AGENTS_STATUS = "agents.status"
# turns
TURNS_SUBMIT = "turns.submit"
TURNS_GET = "turns.get"
TURNS_WAIT = "turns.wait"
TURNS_CANCEL = "turns.cancel"
TURNS_LIST = "turns.list"
# events (notifications flow back as EVENT)
EVENTS_SUBSCRIBE = "events.subscribe"
EVENTS_UNSUBSCRIBE = "events.unsubscribe"
EVENTS_TAIL = "events.tail"
EVENT = "event"


def secret_hash(value):
    """All that head and node ever show of a secret's value: 12 hex digits of its sha256."""
    import hashlib

    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def secret_names(node_spec):
    """The secret names a resolved spec reads from its host: its provider's and its accounts' api_key_env."""
    claude = node_spec.get("claude") or {}
    names = [(claude.get("provider") or {}).get("api_key_env")]
    names += [account.get("api_key_env") for account in claude.get("accounts") or []]
    return sorted({name for name in names if name})


def agent_of_turn(turn_id):
    """The agent a turn id names ('<agent>.<hex>', made by journal.new_turn_id); None when it names none."""
    return turn_id.split(".", 1)[0] if isinstance(turn_id, str) and "." in turn_id else None


def safe_to_repeat(method, params):
    """Whether a turn call may be asked again of a shim that replaced one that died under it: all but a
    submit without an idempotency key (the dead shim may have journalled it, and it would run twice)."""
    return not (method == TURNS_SUBMIT and not params.get("key"))
