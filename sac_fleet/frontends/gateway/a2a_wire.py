"""A2A wire shapes, pure: agent cards, a turn as an A2A task, incoming messages, both dialects.

A2A 0.3 (`message/send`, ...) and A2A 1.0 (`SendMessage`, ...) carry the same
objects in two spellings. Everything is built in the 0.3 spelling
(`kind: "task"`, `role: "agent"`, `state: "completed"`, parts
`{kind: "text", text}`) and `render` turns it into 1.0's ProtoJSON
(`role: "ROLE_AGENT"`, `state: "TASK_STATE_COMPLETED"`, parts `{text}`, no
`kind`; results of SendMessage and stream events wrapped as `{task: ...}`,
`{statusUpdate: ...}`, `{artifactUpdate: ...}`).

A turn is a task: its id is the turn id, its state maps from the turn's status.
The message id and context id a client sent travel in the turn's idempotency
key, so a retried message (same messageId) never runs twice.
"""

import datetime
import json

import sac_node

from .schema import BadRequest, ContentTypeNotSupported, PushNotSupported, TERMINAL, UnsupportedOperation

V03, V10 = "0.3", "1.0"
STATES = {"pending": "submitted", "running": "working", "completed": "completed", "failed": "failed",
          "interrupted": "failed", "cancelled": "canceled"}
V1_ROLES = {"user": "ROLE_USER", "agent": "ROLE_AGENT"}
V1_WRAP = {"task": "task", "message": "message", "status-update": "statusUpdate",
           "artifact-update": "artifactUpdate"}
KEY_PREFIX = "a2a "


def timestamp(ts):
    """RFC 3339 UTC with milliseconds, as both dialects expect."""
    moment = datetime.datetime.fromtimestamp(ts or 0, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def message_key(context_id, message_id):
    """The idempotency key of an A2A message: one turn per (context, messageId)."""
    return KEY_PREFIX + json.dumps([context_id, message_id])


def key_origin(turn, agent):
    """(contextId, messageId) of the message that made `turn` (the agent's defaults for non-A2A turns)."""
    key = turn.get("key") or ""
    if key.startswith(KEY_PREFIX):
        try:
            context_id, message_id = json.loads(key[len(KEY_PREFIX):])
            return str(context_id), str(message_id)
        except ValueError:
            pass
    return agent, turn["id"] + ".input"


def text_message(role, text, message_id, context_id, task_id):
    return {"kind": "message", "role": role, "parts": [{"kind": "text", "text": text}], "messageId": message_id,
            "contextId": context_id, "taskId": task_id}


def task_status(turn, context_id):
    """A2A TaskStatus of a turn: a terminal one carries the reply (or the error) as the agent's message."""
    ts = turn.get("ended_at") or turn.get("started_at") or turn.get("accepted_at")
    status = {"state": STATES.get(turn["status"], "unknown"), "timestamp": timestamp(ts)}
    if turn["status"] in TERMINAL:
        text = turn.get("reply") if turn["status"] == "completed" else (turn.get("error") or turn["status"])
        status["message"] = text_message("agent", text or "", turn["id"] + ".reply", context_id, turn["id"])
    return status


def reply_artifact(turn):
    return {"artifactId": turn["id"] + ".reply", "name": "reply",
            "parts": [{"kind": "text", "text": turn.get("reply") or ""}]}


def task_of(turn, agent, history_length=None):
    """A turn as an A2A Task (0.3 spelling); history is the prompt and, once done, the reply."""
    context_id, message_id = key_origin(turn, agent)
    prompt = turn["prompt"] if "prompt" in turn else turn.get("text")  # the API's word, or the node's
    history = [text_message("user", prompt or "", message_id, context_id, turn["id"])]
    artifacts = []
    if turn["status"] == "completed":
        history.append(text_message("agent", turn.get("reply") or "", turn["id"] + ".reply", context_id, turn["id"]))
        artifacts.append(reply_artifact(turn))
    if history_length is not None:
        history = history[-history_length:] if history_length > 0 else []
    return {"kind": "task", "id": turn["id"], "contextId": context_id, "status": task_status(turn, context_id),
            "artifacts": artifacts, "history": history,
            "metadata": {"sac": {"agent": agent, "status": turn["status"], "session_id": turn.get("session_id"),
                                 "usage": turn.get("usage"), "timings": turn.get("timings")}}}


def status_update(turn, context_id, final=False, text=None, seq=0):
    """A status-update event; `text` (assistant text of transcript record `seq`) rides in its message."""
    status = task_status(turn, context_id)
    if text is not None:
        status["message"] = text_message("agent", text, "%s.%d" % (turn["id"], seq), context_id, turn["id"])
    return {"kind": "status-update", "taskId": turn["id"], "contextId": context_id, "status": status,
            "final": final}


def artifact_update(turn, context_id):
    return {"kind": "artifact-update", "taskId": turn["id"], "contextId": context_id,
            "artifact": reply_artifact(turn), "append": False, "lastChunk": True}


def _v1(value, under=None):
    if isinstance(value, list):
        return [_v1(v, under) for v in value]
    if not isinstance(value, dict) or under == "metadata":
        return value
    out = {}
    for k, v in value.items():
        if k == "kind" or (k == "final" and value.get("kind") == "status-update"):
            continue
        if k == "role":
            out[k] = V1_ROLES.get(v, v)
        elif k == "state" and under == "status":
            out[k] = "TASK_STATE_" + v.upper().replace("-", "_")
        else:
            out[k] = _v1(v, k)
    return out


def render(obj, dialect, wrap=False):
    """`obj` (0.3 spelling) in `dialect`; with wrap, 1.0 results are {task|message|statusUpdate|...: obj}."""
    if dialect == V03:
        return obj
    converted = _v1(obj)
    return {V1_WRAP[obj["kind"]]: converted} if wrap else converted


# -- incoming ------------------------------------------------------------------------


class Incoming:
    """A message/send (SendMessage) request, checked: the text to send and how to answer."""

    def __init__(self, text, message_id, context_id, blocking, history_length):
        self.text, self.message_id, self.context_id = text, message_id, context_id
        self.blocking, self.history_length = blocking, history_length


def _part_text(part, index):
    if not isinstance(part, dict):
        raise BadRequest("params.message.parts[%d] must be an object" % index)
    kind = part.get("kind")
    if isinstance(part.get("text"), str) and kind in (None, "text"):
        return part["text"]
    raise ContentTypeNotSupported("params.message.parts[%d] is a %s part; sac agents take text parts only"
                                  % (index, kind or next((k for k in ("raw", "url", "data", "file") if k in part),
                                                         "non-text")))


def parse_send(params, dialect, agent):
    """Check a SendMessage / message/send params object; BadRequest (and kin) name what is wrong."""
    message = params.get("message")
    if not isinstance(message, dict):
        raise BadRequest("params.message is required: {role: user, parts: [{text}], messageId}")
    if message.get("role") not in ("user", "ROLE_USER"):
        raise BadRequest("params.message.role must be the user's (%s), not %r"
                         % ("user" if dialect == V03 else "ROLE_USER", message.get("role")))
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise BadRequest("params.message.messageId is required (a unique string per message)")
    if message.get("taskId"):
        raise UnsupportedOperation("a turn cannot be continued once sent: omit taskId; the agent keeps its "
                                   "conversation across turns")
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise BadRequest("params.message.parts must be a non-empty list of text parts")
    text = "\n".join(_part_text(p, i) for i, p in enumerate(parts))
    if not text.strip():
        raise BadRequest("params.message.parts hold no text")
    config = params.get("configuration") or {}
    if not isinstance(config, dict):
        raise BadRequest("params.configuration must be an object")
    if config.get("pushNotificationConfig") or config.get("taskPushNotificationConfig"):
        raise PushNotSupported("push notifications are not supported: poll tasks/get or use message/stream")
    blocking = config.get("blocking", True) if dialect == V03 else not config.get("returnImmediately", False)
    return Incoming(text, message_id, message.get("contextId") or agent, bool(blocking),
                    history_length(config, dialect))


def history_length(params, dialect):
    """historyLength: 1.0 counts 0 as 'none', 0.3 as 'all'; absent is 'all' in both."""
    value = params.get("historyLength")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest("historyLength must be a non-negative integer, not %r" % (value,))
    if value == 0 and dialect == V03:
        return None
    return value


def task_id_param(params, agent):
    task_id = params.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise BadRequest("params.id is required: the task id (a turn id, %s.<16 hex>)" % agent)
    return task_id


# -- agent card ------------------------------------------------------------------------


def skills_of(status):
    """One skill to send turns, plus one per spec label (labels are how a fleet describes its agents)."""
    labels = status.get("labels") or {}
    tags = ["claude-code", "sac"] + ["%s=%s" % kv for kv in sorted(labels.items())]
    skills = [{"id": "turn", "name": "Claude Code turn", "tags": tags, "examples": [],
               "description": "Send a text prompt; the agent (a long-lived Claude Code session) answers with text."}]
    for key, value in sorted(labels.items()):
        skills.append({"id": "label-%s" % key, "name": "%s: %s" % (key, value), "tags": [key, str(value)],
                       "description": "This agent is labelled %s=%s in its spec." % (key, value)})
    return skills


def card(status, rpc_url, dialect):
    """The agent card: 1.0 (supportedInterfaces for both versions) or the 0.3 card for older clients."""
    name = status["name"]
    common = {
        "name": name,
        "description": "Claude Code agent %s, run by sac on host %s." % (name, status.get("host", "local")),
        "version": sac_node.__version__,
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": skills_of(status),
    }
    if dialect == V03:
        return dict(common, protocolVersion="0.3.0", url=rpc_url, preferredTransport="JSONRPC",
                    securitySchemes={"bearer": {"type": "http", "scheme": "bearer"}}, security=[{"bearer": []}])
    return dict(common, supportedInterfaces=[
        {"url": rpc_url, "protocolBinding": "JSONRPC", "protocolVersion": V10},
        {"url": rpc_url, "protocolBinding": "JSONRPC", "protocolVersion": V03}],
        securitySchemes={"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}},
        securityRequirements=[{"schemes": {"bearer": {"list": []}}}])
