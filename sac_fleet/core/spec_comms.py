"""``spec.comms``: whom an agent may ask or tell, and whom it accepts messages from (docs/agents-talk.md).

The node applies it (sac_node/comms.py); this model checks it where the spec is read, so a
wrong selector is one line naming the field, not a refusal at the first message.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from sac_node.comms import MAX_DEPTH, RATE_PER_MIN, SELECTOR_RE

from .validation import ConfigModel, invalid
from .wording import describe


def _selector(value: str) -> str:
    if not isinstance(value, str) or not SELECTOR_RE.fullmatch(value):
        raise invalid("%s is not an agent selector: write an agent's name (reviewer), * (every agent) or a "
                      "label key=value (role=worker)" % describe(value))
    return value


Selector = Annotated[str, AfterValidator(_selector)]


class Comms(ConfigModel):
    """``comms``: default nobody; an agent with an ``ask`` or ``tell`` gets the ``sac`` MCP server."""

    ask: list[Selector] = []
    tell: list[Selector] = []
    accept_from: list[Selector] = []
    max_depth: Annotated[int, Field(strict=True, ge=1)] = MAX_DEPTH
    rate_per_min: Annotated[int, Field(strict=True, ge=1)] = RATE_PER_MIN
    description: str = ""
