"""The restart policy as a value: given an engine exit, decide what to do.

Pure: the caller passes the clock reading; the supervisor only sleeps and spawns.
"""

from collections import namedtuple

from . import states

Decision = namedtuple("Decision", "state delay reason")


class RestartTracker:
    """Counts consecutive failed engine runs and turns them into decisions.

    policy: never | on-failure | always. A run that lasted longer than the
    backoff ceiling, or that completed a turn, resets the count (the engine
    was healthy, so the next failure starts again from the initial delay).
    """

    def __init__(self, policy="on-failure", max_retries=5, initial=1.0, maximum=60.0, multiplier=2.0):
        self.policy = policy
        self.max_retries = max_retries
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.multiplier = float(multiplier)
        self.failures = 0
        self.restarts = 0

    @classmethod
    def from_spec(cls, restart):
        """The tracker of a spec's `restart` (node_spec.Restart)."""
        return cls(restart.policy, restart.max_retries, restart.initial, restart.maximum, restart.multiplier)

    def record_success(self):
        """A turn completed: the engine is healthy."""
        self.failures = 0

    def record_exit(self, exit_code, ran_for, requested=False):
        """Decide after the engine exited with `exit_code` (negative: signal) after `ran_for` seconds."""
        if requested:
            return Decision(states.STOPPED, 0.0, "stopped on request")
        failed = exit_code != 0
        how = "exited with code %d" % exit_code if exit_code >= 0 else "killed by signal %d" % -exit_code
        if self.policy == "never" or (self.policy == "on-failure" and not failed):
            final = states.FAILED if failed else states.STOPPED
            return Decision(final, 0.0, "engine %s; restart policy %s" % (how, self.policy))
        if ran_for >= self.maximum:
            self.failures = 0
        self.failures += 1
        if self.failures > self.max_retries:
            return Decision(states.FAILED, 0.0, "engine %s; gave up after %d restarts (max_retries %d)"
                            % (how, self.max_retries, self.max_retries))
        delay = min(self.maximum, self.initial * self.multiplier ** (self.failures - 1))
        self.restarts += 1
        return Decision(states.RESTARTING, delay, "engine %s; restart %d/%d in %.1fs"
                        % (how, self.failures, self.max_retries, delay))
