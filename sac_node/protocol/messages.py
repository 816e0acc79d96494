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


def agent_of_turn(turn_id):
    """The agent a turn id names ('<agent>.<hex>', made by journal.new_turn_id); None when it names none."""
    return turn_id.split(".", 1)[0] if isinstance(turn_id, str) and "." in turn_id else None


def safe_to_repeat(method, params):
    """Whether a turn call may be asked again of a shim that replaced one that died under it: all but a
    submit without an idempotency key (the dead shim may have journalled it, and it would run twice)."""
    return not (method == TURNS_SUBMIT and not params.get("key"))
