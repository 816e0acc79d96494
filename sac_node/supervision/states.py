"""Agent states as the user sees them (a leaf module: imports nothing of sac)."""

STARTING = "starting"
IDLE = "idle"
WORKING = "working"
RESTARTING = "restarting"
STOPPED = "stopped"
FAILED = "failed"
PENDING = "pending"  # waits in a scheduler's queue (Slurm): placed, not failed

ALL = (STARTING, IDLE, WORKING, RESTARTING, STOPPED, FAILED, PENDING)
