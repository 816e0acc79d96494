"""What a shim does when the provider limits an account: rest it, rotate, back off.

The decisions are AccountPool's (pure); this class applies them to one shim:
journal (requeue or fail the turn), transcript events, status, and restarting
the engine on the next account with the session resumed.
"""

from .accounts import classify
from .protocol import messages as m
from .supervision import states


class QuotaGuard:
    """The quota side of one Shim."""

    def __init__(self, shim):
        self.shim = shim

    @property
    def pool(self):
        return self.shim.accounts

    async def account_ready(self):
        """With several accounts: wait (saying so) while all of them rest; False when stopped meanwhile."""
        while self.pool.enabled and not self.shim.stopping:
            now = self.shim.clock()
            before = self.pool.current["name"]
            account = self.pool.usable(now)
            if account is not None:
                if account["name"] != before:
                    self.shim.supervisor_event(m.ACCOUNT_ROTATED, from_account=before, to_account=account["name"])
                return True
            wait = self.pool.wait_s(now)
            self.shim.state = states.RESTARTING
            self.shim.last_error = "all %d accounts are rate-limited or out of quota; next try in %.0fs" % (
                len(self.pool.accounts), wait)
            self.shim.supervisor_event(m.ACCOUNTS_EXHAUSTED, wait_s=round(wait, 1))
            await self.shim.sleep_unless_stopped(wait)
        return not self.shim.stopping

    async def failure(self, tid, event, error):
        """Rate limit, quota or overload with several accounts: rest, rotate or back off; True if handled."""
        kind = classify(event.get("api_error_status"), error)
        if kind is None:
            return False
        if self.shim.turn_used_tools:
            self.shim.finish_turn(tid, "failed", error=error + " (not retried: the turn had already used tools)")
        else:
            self.shim.journal.requeue(tid, error)
            self.shim.current, self.shim.state = None, states.IDLE
        account = self.pool.current["name"]
        if kind == "overloaded":
            delay = self.pool.overloaded()
            self.shim.last_error = "provider overloaded; backing off %.1fs on account %s" % (delay, account)
            self.shim.supervisor_event(m.OVERLOADED_BACKOFF, account=account, delay_s=round(delay, 1), error=error)
            await self.shim.sleep_unless_stopped(delay)
            return True
        rest = self.pool.limited(self.shim.clock(), error)
        self.shim.last_error = "account %s: %s; resting %.0fs" % (account, error, rest)
        self.shim.supervisor_event(m.ACCOUNT_LIMITED, account=account, rest_s=round(rest, 1), error=error)
        await self.switch("account %s limited" % account)
        return True

    async def count_usage(self, event):
        usage = event.get("usage") or {}
        tokens = sum(v for k, v in usage.items() if k.endswith("_tokens") and isinstance(v, int))
        reason = self.pool.record_usage(tokens, self.shim.clock())
        if reason:
            self.shim.supervisor_event(m.ACCOUNT_ROTATING, account=self.pool.current["name"], reason=reason)
            await self.switch("account %s: %s" % (self.pool.current["name"], reason))

    async def switch(self, why):
        """Restart the engine; before it starts again the next usable account is chosen (session resumed)."""
        self.shim.kill_reason = why
        await self.shim.terminate()
