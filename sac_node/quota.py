"""What a shim does when the provider limits an account: rest it, rotate, back off.

The decisions are AccountPool's (pure); QuotaGuard applies them to one agent's
engine through a narrow interface, the supervisor's: `stopping`,
`sleep_unless_stopped(delay)`, `restart(reason)`, and the `state` and `last_error`
status shows. What becomes of the turn that met a limit (requeued, or failed when it
had already used tools) is the turn runner's to decide (`failure_kind` tells it).
"""

from .accounts import classify
from .protocol import messages as m
from .supervision import states


class QuotaGuard:
    """The accounts of one agent, applied to its engine; `record(subtype, **fields)` writes an event."""

    def __init__(self, pool, clock, record, supervisor):
        self.pool = pool
        self.clock = clock
        self.record = record
        self.supervisor = supervisor

    async def account_ready(self):
        """With several accounts: wait (saying so) while all of them rest; False when stopped meanwhile."""
        sup = self.supervisor
        while self.pool.enabled and not sup.stopping:
            now = self.clock()
            before = self.pool.current["name"]
            account = self.pool.usable(now)
            if account is not None:
                if account["name"] != before:
                    self.record(m.ACCOUNT_ROTATED, from_account=before, to_account=account["name"])
                return True
            wait = self.pool.wait_s(now)
            sup.state = states.RESTARTING
            sup.last_error = "all %d accounts are rate-limited or out of quota; next try in %.0fs" % (
                len(self.pool.accounts), wait)
            self.record(m.ACCOUNTS_EXHAUSTED, wait_s=round(wait, 1))
            await sup.sleep_unless_stopped(wait)
        return not sup.stopping

    def failure_kind(self, event, error):
        """'limited' or 'overloaded' for a failed turn's result that the accounts handle, else None."""
        if not self.pool.enabled:
            return None
        return classify(event.get("api_error_status"), error)

    async def limit_met(self, kind, error):
        """After a turn failed with `kind` (failure_kind): back off, or rest this account and move on."""
        account = self.pool.current["name"]
        if kind == "overloaded":
            delay = self.pool.overloaded()
            self.supervisor.last_error = "provider overloaded; backing off %.1fs on account %s" % (delay, account)
            self.record(m.OVERLOADED_BACKOFF, account=account, delay_s=round(delay, 1), error=error)
            await self.supervisor.sleep_unless_stopped(delay)
            return
        rest = self.pool.limited(self.clock(), error)
        self.supervisor.last_error = "account %s: %s; resting %.0fs" % (account, error, rest)
        self.record(m.ACCOUNT_LIMITED, account=account, rest_s=round(rest, 1), error=error)
        await self.switch("account %s limited" % account)

    async def turn_completed(self, event):
        """A turn completed: overload backoff starts again, its usage counts (and may rotate the account)."""
        self.pool.healthy()
        usage = event.get("usage") or {}
        tokens = sum(v for k, v in usage.items() if k.endswith("_tokens") and isinstance(v, int))
        reason = self.pool.record_usage(tokens, self.clock())
        if reason:
            self.record(m.ACCOUNT_ROTATING, account=self.pool.current["name"], reason=reason)
            await self.switch("account %s: %s" % (self.pool.current["name"], reason))

    async def switch(self, why):
        """Restart the engine; before it starts again the next usable account is chosen (session resumed)."""
        await self.supervisor.restart(why)
