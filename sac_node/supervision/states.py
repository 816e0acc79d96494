"""Agent states as the user sees them (a leaf module: imports nothing of sac)."""

STARTING = "starting"
IDLE = "idle"
WORKING = "working"
RESTARTING = "restarting"
STOPPED = "stopped"
FAILED = "failed"

ALL = (STARTING, IDLE, WORKING, RESTARTING, STOPPED, FAILED)
