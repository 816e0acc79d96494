"""``spec.hooks`` and ``spec.startup_commands``: shell commands run in the agent's sandbox.

``hooks`` runs commands at five moments of an agent's life (``HOOK_EVENTS``); a bare string
is ``{run: ..., timeout_s: 60}``. ``startup_commands`` are shell lines whose environment the
engine inherits. The node runs both (sac_node/lifecycle.py); its defaults are the same as
these, in sac_node/node_spec.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints

from .spec_fields import Seconds, _not_secret
from .validation import ConfigModel, invalid
from .wording import describe

HOOK_EVENTS = ("pre_start", "post_start", "pre_stop", "post_stop", "on_failure")
HOOK_TIMEOUT_S = 60.0

# A shell line: non-empty, and never a credential (the spec travels and is printed).
Command = Annotated[str, StringConstraints(min_length=1), AfterValidator(_not_secret)]


class HookCommand(ConfigModel):
    """One hook command: ``run`` (a shell line, ``sh -c``) and how long it may take."""

    run: Command
    timeout_s: Seconds = HOOK_TIMEOUT_S


def _command_entry(value: Any) -> Any:
    if isinstance(value, str):
        return {"run": value}
    if not isinstance(value, dict):
        raise invalid("%s is not a hook command (write a shell line, or {run: \"...\", timeout_s: 60})"
                      % describe(value))
    return value


HookEntry = Annotated[HookCommand, BeforeValidator(_command_entry)]


class Hooks(ConfigModel):
    """``hooks``: commands run at each moment of the agent's life, in order."""

    pre_start: list[HookEntry] = []
    post_start: list[HookEntry] = []
    pre_stop: list[HookEntry] = []
    post_stop: list[HookEntry] = []
    on_failure: list[HookEntry] = []
