"""Several accounts for one agent: which one the engine uses, and when to move on.

Pure: the shim passes the clock reading; this module never sleeps. An account
that hit a rate limit or its quota rests for `cooldown_s` (doubling on each
repeat, with jitter, capped at `max_cooldown_s`); the agent rotates to the next
account that is not resting, resuming the same session. With `limit_tokens`,
it rotates before the limit, once `rotate_at` of the budget is used (sac counts
the usage each turn's result reports).
"""

import random

from .node_spec import Quota

# Engine results that mean "this account cannot be used now".
LIMITED_STATUSES = (401, 403, 429)
LIMIT_WORDS = ("rate limit", "rate_limit", "quota", "usage limit", "credit balance", "invalid api key")
OVERLOADED_STATUSES = (529,)


def classify(status, error_text):
    """'limited', 'overloaded' or None for a failed turn's HTTP status and message."""
    text = (error_text or "").lower()
    if status in OVERLOADED_STATUSES or "overloaded" in text:
        return "overloaded"
    if status in LIMITED_STATUSES or any(word in text for word in LIMIT_WORDS):
        return "limited"
    return None


class AccountPool:
    """The accounts of one agent and their health."""

    def __init__(self, accounts, quota=Quota(), rng=random.random):
        """accounts: the spec's `claude.accounts` (dicts); quota: its `claude.quota` (node_spec.Quota)."""
        self.rotate_at = quota.rotate_at
        self.cooldown = quota.cooldown_s
        self.max_cooldown = quota.max_cooldown_s
        self.overload_backoff = quota.overload_backoff_s
        self._rng = rng
        self.accounts = [dict(a, resting_until=0.0, used_tokens=0, limited=0, reason=None) for a in accounts]
        self.index = 0
        self.rotations = 0
        self.overloads = 0

    @property
    def enabled(self):
        return bool(self.accounts)

    @property
    def current(self):
        return self.accounts[self.index] if self.accounts else None

    def _jitter(self, seconds):
        return seconds * (0.8 + 0.4 * self._rng())

    def record_usage(self, tokens, now):
        """Count a completed turn's tokens; returns a reason to rotate before the limit, or None."""
        account = self.current
        if account is None:
            return None
        account["used_tokens"] += int(tokens or 0)
        limit = account.get("limit_tokens")
        if limit and account["used_tokens"] >= self.rotate_at * limit and len(self.accounts) > 1:
            reason = "used %d of %d tokens (rotate_at %.2f)" % (account["used_tokens"], limit, self.rotate_at)
            self._rest(account, now, self.cooldown, reason)
            return reason
        return None

    def limited(self, now, reason, retry_after=None):
        """The current account hit a limit: rest it. Returns the rest in seconds."""
        account = self.current
        account["limited"] += 1
        rest = min(self.max_cooldown, self.cooldown * 2 ** (account["limited"] - 1))
        rest = max(self._jitter(rest), float(retry_after or 0))
        self._rest(account, now, rest, reason)
        return rest

    def _rest(self, account, now, seconds, reason):
        account["resting_until"] = now + seconds
        account["reason"] = reason

    def rotate(self, now):
        """Move to the next account that is not resting; returns it, or None when all rest."""
        n = len(self.accounts)
        for step in range(1, n + 1):
            candidate = (self.index + step) % n
            account = self.accounts[candidate]
            if account["resting_until"] <= now:
                if candidate != self.index:
                    self.rotations += 1
                self.index = candidate
                account["used_tokens"] = 0 if account["reason"] else account["used_tokens"]
                account["reason"] = None
                return account
        return None

    def usable(self, now):
        """The account to use now: the current one unless it rests, else the next rested one (or None)."""
        if self.current["resting_until"] <= now:
            return self.current
        return self.rotate(now)

    def wait_s(self, now):
        """Seconds until some account may be used again (0 when the current one may)."""
        if not self.accounts or self.current["resting_until"] <= now:
            return 0.0
        return max(0.0, min(a["resting_until"] for a in self.accounts) - now)

    def overloaded(self):
        """The provider is overloaded: how long to back off (no rotation)."""
        self.overloads += 1
        return self._jitter(min(self.max_cooldown, self.overload_backoff * 2 ** min(self.overloads - 1, 6)))

    def healthy(self):
        """A turn completed: overload backoff starts again from its initial value."""
        self.overloads = 0

    def snapshot(self, now):
        """For status: one row per account, secrets never included."""
        rows = []
        for i, a in enumerate(self.accounts):
            state = "active" if i == self.index and a["resting_until"] <= now else (
                "resting" if a["resting_until"] > now else "ready")
            rows.append({"name": a["name"], "state": state, "kind": "api_key" if a.get("api_key_env") else "config_dir",
                         "used_tokens": a["used_tokens"], "limit_tokens": a.get("limit_tokens"),
                         "resting_s": round(max(0.0, a["resting_until"] - now), 1), "limited": a["limited"],
                         "reason": a["reason"]})
        return rows
