"""A host's ``slurm:`` section: its agents run in Slurm allocations submitted from that (login) host.

Checked here, in the inventory's words, so a walltime or memory Slurm would refuse is a one-line
error naming the field before anything is submitted. ``to_node()`` is what the login node's daemon
receives with each agent's spec (sac_node/slurm.py reads it).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from .spec import NonEmpty
from .validation import ConfigModel, invalid

# Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
TIME_RE = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
MEM_RE = re.compile(r"\d+[KMGT]?")
# sbatch options sac writes itself: an `extra` that sets one would break how the job finds its agents.
OWN_OPTIONS = ("--output", "--error", "--job-name", "--parsable", "--signal", "--wrap", "--chdir", "--array")


def walltime_s(text: str) -> int:
    """Seconds in a Slurm time limit (``8:00:00``, ``2-00``, ``90``); ValueError when it is not one."""
    found = TIME_RE.fullmatch(text)
    if not found:
        raise ValueError(text)
    days, first, second, third = found.groups()
    parts = [int(p) for p in (first, second, third) if p is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        parts += [0] * (3 - len(parts))
        return int(days) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    if len(parts) == 1:
        return parts[0] * 60  # minutes
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]  # M:S
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def _time(value: str) -> str:
    try:
        seconds = walltime_s(value)
    except ValueError:
        raise invalid("%r is not a Slurm time limit (write e.g. \"8:00:00\", \"90\" minutes or \"2-00:00:00\")"
                      % value[:40]) from None
    if seconds <= 0:
        raise invalid("the walltime must be longer than 0 (write e.g. \"8:00:00\")")
    return value


def _mem(value: str) -> str:
    if not MEM_RE.fullmatch(value):
        raise invalid("%r is not a Slurm memory size (write e.g. 8G or 500M)" % value[:40])
    return value


def _extra(value: list) -> list:
    for item in value:
        if not item.startswith("-"):
            raise invalid("%r is not an sbatch option (write e.g. --qos=normal)" % item[:40])
        if item.split("=", 1)[0] in OWN_OPTIONS:
            raise invalid("%s is set by sac itself (remove it from extra)" % item.split("=", 1)[0])
    return value


class SlurmSettings(ConfigModel):
    """``hosts.<name>.slurm``: the allocation each group of the host's agents runs in."""

    partition: NonEmpty | None = Field(None, json_schema_extra={"example": "batch"})
    account: NonEmpty | None = None
    time: Annotated[NonEmpty, AfterValidator(_time)] = "8:00:00"
    cpus_per_agent: Annotated[int, Field(strict=True, ge=1)] = 1
    mem_per_agent: Annotated[NonEmpty, AfterValidator(_mem)] | None = None
    gres: NonEmpty | None = None
    agents_per_job: Annotated[int, Field(strict=True, ge=1)] = 1
    resubmit_before_s: Annotated[int, Field(strict=True, ge=0)] = 600
    extra: Annotated[list[NonEmpty], AfterValidator(_extra)] = []
    # The login node's address as compute nodes reach it (jobs connect back to its daemon there).
    login_address: NonEmpty | None = Field(None, json_schema_extra={"example": "10.1.0.5"})

    @model_validator(mode="after")
    def _handover_fits(self):
        if self.resubmit_before_s >= walltime_s(self.time):
            raise invalid("resubmit_before_s (%d) must be shorter than the walltime (time: %s is %d s): lower it "
                          "or lengthen time" % (self.resubmit_before_s, self.time, walltime_s(self.time)))
        return self

    def to_node(self) -> dict:
        """The settings as the login node's daemon receives them (with each agent's spec)."""
        return dict(self.model_dump(), time_s=walltime_s(self.time))
