"""The words head and node share: method names, the protocol version, turn states, event names.

Every method is `noun.verb`; its params and result are documented in the
docstring of its handler (sac_node/handlers/). This module is the one home of
the terminal turn states, the agent-name pattern, the turn-id format and the
names of the events the node writes to an agent's transcript: everything else
imports them from here.
"""

import re

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
# comms: messages between agents (handlers/comms.py); the shim asks, the head drains outboxes
COMMS_AGENTS = "comms.agents"
COMMS_SEND = "comms.send"
COMMS_TURN = "comms.turn"
COMMS_DRAIN = "comms.drain"
COMMS_DELIVER = "comms.deliver"
COMMS_DONE = "comms.done"


# -- agents and turns -------------------------------------------------------------

# An agent's name: lowercase letters, digits and '-', at most 63 characters (safe as a path component).
AGENT_NAME = r"[a-z0-9][a-z0-9-]{0,62}"
NAME_RE = re.compile("^%s$" % AGENT_NAME)
# A turn id is '<agent>.<16 hex digits>' (new_turn_id): the agent it belongs to can be read from it.
TURN_ID_RE = re.compile(r"^%s\.[0-9a-f]{16}$" % AGENT_NAME)

# A turn is pending, then running, and ends in exactly one terminal state.
PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"
CANCELLED = "cancelled"
TERMINAL = (COMPLETED, FAILED, INTERRUPTED, CANCELLED)
TURN_STATES = (PENDING, RUNNING) + TERMINAL


def new_turn_id(agent, token):
    """The id of a new turn of `agent`; `token` is 8 random bytes."""
    return "%s.%s" % (agent, token.hex())


def agent_of_turn(turn_id):
    """The agent a turn id names ('<agent>.<hex>', made by new_turn_id); None when it names none."""
    return turn_id.split(".", 1)[0] if isinstance(turn_id, str) and "." in turn_id else None


# -- transcript events --------------------------------------------------------------
# A transcript record's `event` is the engine's own stream-json event, or one of the
# node's: {"type": "sac", "subtype": <one of these>, ...}.

SAC = "sac"
TURN_ACCEPTED = "turn_accepted"  # {source}
TURN_STARTED = "turn_started"  # {text}
TURN_RETRY = "turn_retry"  # {attempt, reason}: it failed before acting and runs again on a fresh engine
TURN_ENDED = "turn_ended"  # {status, error, notice?}
TOOL_REFUSED = "tool_refused"  # {tool, reason, tool_use_id, input}
ENGINE_STARTED = "engine_started"  # {pid, runtime, resume, account}
ENGINE_EXITED = "engine_exited"  # {code, decision, reason}
ENGINE_RESTART = "engine_restart"  # {reason}: the shim ended it on purpose (a timeout, a cancel, a retry)
ENGINE_FAILED = "engine_failed"  # {error}: it could not be started
ENGINE_NOISE = "engine_noise"  # {text}: an output line that is not JSON
SESSION_LOST = "session_lost"  # {session_id, reason}
ACCOUNT_ROTATED = "account_rotated"  # {from_account, to_account}
ACCOUNT_ROTATING = "account_rotating"  # {account, reason}
ACCOUNT_LIMITED = "account_limited"  # {account, rest_s, error}
ACCOUNTS_EXHAUSTED = "accounts_exhausted"  # {wait_s}
OVERLOADED_BACKOFF = "overloaded_backoff"  # {account, delay_s, error}
COMMS_REFUSED = "comms_refused"  # {tool, to, reason}: a message this agent tried to send was refused
HOOK = "hook"  # {hook, index, run, code, duration_s, stdout, stderr, error?}: one command of spec.hooks ran


def sac_event(subtype, **fields):
    """One of the node's own transcript events."""
    event = {"type": SAC, "subtype": subtype}
    event.update(fields)
    return event


def is_sac_event(event, subtype):
    """Whether a transcript record's event is the node's event `subtype`."""
    return event.get("type") == SAC and event.get("subtype") == subtype


# -- secrets -------------------------------------------------------------------------


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


def safe_to_repeat(method, params):
    """Whether a turn call may be asked again of a shim that replaced one that died under it: all but a
    submit without an idempotency key (the dead shim may have journalled it, and it would run twice)."""
    return not (method == TURNS_SUBMIT and not params.get("key"))
