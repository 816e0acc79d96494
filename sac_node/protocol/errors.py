"""The one error hierarchy of sac, shared by node and head.

    SacError
     ├── ConfigError
     │    ├── SpecError
     │    └── InventoryError
     ├── HostError
     │    ├── HostUnreachable
     │    ├── HostKeyUnknown
     │    ├── HostKeyChanged
     │    ├── AuthFailed
     │    ├── PythonMissing
     │    └── BootstrapFailed
     ├── RpcError
     │    └── ProtocolError
     ├── AgentError
     │    ├── AgentNotFound
     │    ├── AgentExists
     │    ├── AgentNotRunning
     │    ├── TurnNotFound
     │    ├── TurnTimeout
     │    ├── SandboxUnavailable
     │    └── CommsRefused
     └── PlacementError

On the wire an error is {code, message, data}; the receiver rebuilds the class
from `code` (never from the message text) with `from_wire`.
"""


class SacError(Exception):
    """Root of every error sac raises on purpose; its message is for the user."""

    code = "sac_error"

    def __init__(self, message, data=None):
        super().__init__(message)
        self.message = message
        self.data = data or {}

    def to_wire(self):
        return {"code": self.code, "message": self.message, "data": self.data}


class ConfigError(SacError):
    code = "config_error"


class SpecError(ConfigError):
    code = "spec_error"


class InventoryError(ConfigError):
    code = "inventory_error"


class HostError(SacError):
    code = "host_error"


class HostUnreachable(HostError):
    code = "host_unreachable"


class HostKeyUnknown(HostError):
    code = "host_key_unknown"


class HostKeyChanged(HostError):
    code = "host_key_changed"


class AuthFailed(HostError):
    code = "auth_failed"


class PythonMissing(HostError):
    code = "python_missing"


class BootstrapFailed(HostError):
    code = "bootstrap_failed"


class RpcError(SacError):
    code = "rpc_error"


class ProtocolError(RpcError):
    code = "protocol_error"


class AgentError(SacError):
    code = "agent_error"


class AgentNotFound(AgentError):
    code = "agent_not_found"


class AgentExists(AgentError):
    code = "agent_exists"


class AgentNotRunning(AgentError):
    code = "agent_not_running"


class TurnNotFound(AgentError):
    code = "turn_not_found"


class TurnTimeout(AgentError):
    code = "turn_timeout"


class SandboxUnavailable(AgentError):
    code = "sandbox_unavailable"


class CommsRefused(AgentError):
    """A message between agents that `comms` (or a limit) does not allow; nothing reached the callee."""

    code = "comms_refused"


class PlacementError(SacError):
    code = "placement_error"


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        for deeper in _all_subclasses(sub):
            yield deeper


ERRORS_BY_CODE = {cls.code: cls for cls in _all_subclasses(SacError)}
ERRORS_BY_CODE[SacError.code] = SacError


def from_wire(error):
    """Rebuild an exception from its wire form {code, message, data}."""
    if not isinstance(error, dict):
        return RpcError("malformed error from peer: %r" % (error,))
    cls = ERRORS_BY_CODE.get(error.get("code"), RpcError)
    return cls(str(error.get("message", "")), error.get("data") or {})
