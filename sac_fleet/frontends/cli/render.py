"""Turning statuses, turns and transcript records into text a person reads."""

import time

from ..records import record_text  # noqa: F401  (the CLI renders records through here)


PIPED_WIDTH = 4096


class LazyConsole:
    """A rich Console made on its first use: a command whose output is JSON never imports rich (~40 ms),
    and `agents send` submits its turn before rich loads.

    It never reads markup: agent names, errors and replies are user text, and `[h3]` must print as
    `[h3]`. Colour comes from `styled(...)` (a rich Text), never from markup in a string.
    """

    def __init__(self, **options):
        self._options, self._console = dict({"markup": False, "highlight": False, "soft_wrap": True}, **options), None

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
            if not self._console.is_terminal and "width" not in self._options:
                # Piped or redirected: one line per row, as wide as it needs (a pager or grep wraps,
                # not rich, mid-word); `--json` is the form for programs.
                self._console.width = PIPED_WIDTH
        return self._console

    def __getattr__(self, name):
        return getattr(self.console, name)


def styled(*parts):
    """A line of text from plain strings and (text, style) pairs; no part is read as markup."""
    from rich.text import Text

    return Text.assemble(*parts)


def print_error(exc, console):
    """A SacError as red `error:` lines: each of its problems (`.data["errors"]`) on its own line."""
    data = exc.data if isinstance(exc.data, dict) else {}
    for message in data.get("errors") or [exc.message]:
        console.print(styled(("error:", "red"), " " + message))


STATE_STYLE = {"idle": "green", "working": "cyan", "starting": "yellow", "restarting": "yellow",
               "stopped": "dim", "failed": "red", "pending": "yellow"}


def age(seconds):
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    return "%.1fh" % (seconds / 3600)


def isolation_label(iso):
    runtime = (iso or {}).get("runtime") or "-"
    return "none (UNSANDBOXED)" if runtime == "none" else runtime


def state_cell(s):
    """An agent's state, with `degraded` when its provider cannot be reached."""
    from rich.text import Text

    cell = Text(s["state"], style=STATE_STYLE.get(s["state"], ""))
    if s.get("degraded"):
        cell.append(" (degraded)", style="yellow")
    job = s.get("slurm") or {}
    if s["state"] == "pending" and job.get("reason") not in (None, "", "None"):
        cell.append(" (%s)" % job["reason"])  # Slurm's reason: Resources, Priority, ...
    return cell


def slurm_cell(s):
    """The agent's Slurm job: `job 12 RUNNING on n1, 1:58:00 left`, `job 13 PENDING`; "" off Slurm."""
    job = s.get("slurm")
    if not job:
        return ""
    text = "job %s %s" % (job["job_id"], job["state"])
    if job.get("node") and job["state"] != "PENDING":
        text += " on %s" % job["node"]
    if job.get("time_left") and job["state"] == "RUNNING":
        text += ", %s left" % job["time_left"]
    return text


def network_label(iso):
    """isolation.network as the agent has it: provider (relay only), none, or host (not confined)."""
    return (iso or {}).get("network") or "-"


def doing(s):
    """What the agent does now, from Claude Code's hooks: `Bash 12s`, `idle 3m`, or `-`."""
    act = s.get("activity") or {}
    if act.get("tool"):
        return "%s %s" % (act["tool"]["name"], age(act["tool"].get("running_s")))
    if act.get("last_activity_at"):
        return "idle " + age(time.time() - act["last_activity_at"])
    return "-"


def activity_rows(act):
    """`sac agents status` lines of the agent's activity (docs/http-api.md, `activity`)."""
    if not act:
        return []
    tool, ctx = act.get("tool"), act.get("context") or {}
    rows = [("now", "%s: %s (for %s)" % (tool["name"], tool["summary"] or "-", age(tool["running_s"]))
             if tool else "no tool running")]
    recent = ["%s %s (%s)" % (t["name"], t["summary"][:40], age(t["duration_s"])) for t in act.get("recent_tools") or []]
    rows.append(("tools", "; ".join(recent) or "-"))
    if ctx.get("tokens") is not None:
        window = " of %d (%.2f%%)" % (ctx["window"], ctx["percent"]) if ctx.get("window") else ""
        rows.append(("context", "%d tokens%s, %d compaction%s" % (
            ctx["tokens"], window, act.get("compactions", 0), "" if act.get("compactions") == 1 else "s")))
    for note in act.get("waiting") or []:
        rows.append(("waiting", "%s (%s ago)" % (note["message"], age(time.time() - note["at"]))))
    if act.get("last_activity_at"):
        rows.append(("active", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(act["last_activity_at"]))))
    return rows


def agents_table(statuses):
    from rich.table import Table  # only the tables need it, not a turn's progress lines

    table = Table(box=None, header_style="bold")
    for col in ("AGENT", "STATE", "PID", "UPTIME", "RESTARTS", "TURNS ok/pend/fail", "LAST TURN", "DOING",
                "SANDBOX", "NETWORK", "LAST ERROR"):
        table.add_column(col, overflow="fold")
    now = time.time()
    for s in statuses:
        turns = s.get("turns") or {}
        last = s.get("last_turn_at")
        table.add_row(
            s["name"], state_cell(s), str(s.get("pid") or "-"),
            age(s.get("uptime_s")), str(s.get("restarts", 0)),
            "%d/%d/%d" % (turns.get("completed", 0), turns.get("pending", 0), turns.get("failed", 0)),
            age(now - last) + " ago" if last else "-", doing(s), isolation_label(s.get("isolation")),
            network_label(s.get("isolation")), (s.get("last_error") or "")[:120])
    return table


def status_lines(s):
    """A one-agent status as `key: value` lines."""
    turns = s.get("turns") or {}
    usage = s.get("usage") or {}
    iso = s.get("isolation") or {}
    props = ", ".join("%s=%s" % (k, v) for k, v in sorted(iso.items()) if k != "runtime")
    rows = [
        ("agent", s["name"]), ("state", s["state"]), ("pid", s.get("pid") or "-"),
        ("uptime", age(s.get("uptime_s"))), ("restarts", s.get("restarts", 0)),
        ("session", s.get("session_id") or "-"),
        ("turns", "%d completed, %d pending, %d failed, %d cancelled" % (
            turns.get("completed", 0), turns.get("pending", 0), turns.get("failed", 0), turns.get("cancelled", 0))),
        ("last turn", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["last_turn_at"]))
         if s.get("last_turn_at") else "-"),
        ("tokens", "%d in, %d out" % (usage.get("input_tokens", 0), usage.get("output_tokens", 0))),
        ("refused", "%d tool call%s" % (s.get("tools_refused") or 0, "" if s.get("tools_refused") == 1 else "s")),
        ("sandbox", isolation_label(iso) + (" (%s)" % props if props else "")),
        ("network", network_label(iso)),
        ("workdir", s.get("workdir") or "-"),
        ("heartbeat", age(s.get("heartbeat_age_s")) + " ago" if s.get("heartbeat_age_s") is not None else "-"),
        ("last error", s.get("last_error") or "-"),
    ] + activity_rows(s.get("activity"))
    if s.get("secrets_behind"):
        rows.append(("secrets", "behind on %s: restart the agent to use the host's new value"
                     % ", ".join(s["secrets_behind"])))
    if s.get("turns_by_caller"):
        rows.insert(7, ("asked by", ", ".join("%s %d" % (name, count)
                                             for name, count in sorted(s["turns_by_caller"].items()))))
    if s.get("degraded"):
        rows.insert(2, ("degraded", s["degraded"]))
    return "\n".join("%-11s %s" % (k + ":", v) for k, v in rows)
