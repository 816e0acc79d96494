"""`spec.hooks`: shell commands run in the agent's sandbox at moments of its life.

A hook command runs with the shell on this host (bash, else sh), inside the same sandbox
as the engine's tools (launch.prepare_command: same runtime, binds and home; with
`isolation.network: provider` a hook has no network at all, since the provider relay
serves only the engine), in the workdir, with SAC_AGENT, SAC_EVENT and SAC_WORKDIR set.
Each command's outcome is one `hook` event in the transcript. `Lifecycle.run(event)`
answers the first failure's reason (its stderr's last line) or None.

startup_commands are in startup.py.
"""

import asyncio
import os
import signal
import time

from . import launch
from .startup import one_line, shell
from .protocol import messages as m
from .protocol.errors import SacError
from .supervision import states
from .state_dir import write_atomic

OUTPUT_TAIL = 2000  # characters of a command's stdout and stderr kept in its `hook` event
PRE_START, POST_START, PRE_STOP, POST_STOP, ON_FAILURE = "pre_start", "post_start", "pre_stop", "post_stop", \
    "on_failure"


def last_line(text):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


class Lifecycle:
    """Runs one agent's hooks. `record(subtype, **fields)` writes a transcript event."""

    def __init__(self, spec, agent_dir, state_dir, record, clock=time.time):
        self.spec, self.dir, self.state_dir = spec, agent_dir, state_dir
        self.record, self.clock = record, clock

    def timeout_of(self, *events):
        """The most the commands of these events may take, together."""
        return sum(cmd.timeout_s for event in events for cmd in getattr(self.spec.hooks, event))

    async def around(self, supervisor, engine_run):
        """Run the agent: pre_start, then `engine_run` (the supervisor's loop) with post_start once its engine
        is up and on_failure if it fails for good, then post_stop. A failing pre_start fails the agent."""
        reason = await self.run(PRE_START)
        if reason:
            supervisor.state, supervisor.last_error = states.FAILED, reason  # its `hook` event says the rest
            await self.run(ON_FAILURE)
            await supervisor.wait_stop()
            engine_run.close()
            return
        watchers = [asyncio.ensure_future(self._after(supervisor.first_start, POST_START)),
                    asyncio.ensure_future(self._after(supervisor.gave_up, ON_FAILURE))]
        try:
            await engine_run
        finally:
            watchers[0].cancel()
            if supervisor.gave_up.done():  # let on_failure finish
                await asyncio.wait(watchers[1:], timeout=self.timeout_of(ON_FAILURE) + 1)
            watchers[1].cancel()
        await self.run(POST_STOP)

    async def _after(self, signal_future, event):
        await signal_future
        await self.run(event)

    async def before_stop(self, supervisor):
        """hooks.pre_stop while the engine still runs, then the supervisor's stop."""
        if supervisor.running_pid() is not None:
            await self.run(PRE_STOP)
        supervisor.stop()

    async def run(self, event):
        """Run the event's commands in order; stop at the first that fails and return its reason (else None)."""
        for index, command in enumerate(getattr(self.spec.hooks, event)):
            reason = await self._run_one(event, index, command)
            if reason:
                return reason
        return None

    async def _run_one(self, event, index, command):
        where = "hooks.%s[%d]" % (event, index)
        started = self.clock()
        try:
            plan = launch.prepare_command(self.spec, self.dir, self.state_dir, [shell(), "-c", command.run],
                                          {"SAC_EVENT": event})
        except SacError as exc:
            reason = "%s cannot run: %s" % (where, exc.message)
            self.record(m.HOOK, hook=event, index=index, run=command.run, code=None, error=reason)
            return reason
        code, out, err = await _execute(plan, command.timeout_s)
        fields = dict(hook=event, index=index, run=command.run, code=code, duration_s=round(self.clock() - started, 3),
                      stdout=out[-OUTPUT_TAIL:], stderr=err[-OUTPUT_TAIL:])
        reason = None
        if code is None:
            reason = "%s timed out after %gs: %s" % (where, command.timeout_s, one_line(command.run))
        elif code != 0:
            reason = "%s failed (exit %d): %s" % (where, code, last_line(err) or last_line(out) or one_line(command.run))
        if reason:
            fields["error"] = reason
        self.record(m.HOOK, **fields)
        return reason


def stop_problem(records):
    """The error of a pre_stop or post_stop command that failed since the last engine start, from the
    transcript's last records (what status shows of a stopped agent), or None."""
    for record in reversed(records):
        event = record.get("event") or {}
        if m.is_sac_event(event, m.ENGINE_STARTED):
            return None
        if m.is_sac_event(event, m.HOOK) and event.get("hook") in (PRE_STOP, POST_STOP) and event.get("error"):
            return event["error"]
    return None


async def _execute(plan, timeout):
    """(exit code or None on timeout, stdout, stderr) of a prepared command."""
    for path, content in plan.secret_files.items():
        write_atomic(path, content, 0o600)
    proc = await asyncio.create_subprocess_exec(
        *plan.argv, env=plan.env, cwd=plan.cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=launch.die_with_parent)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        code = proc.returncode
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        code = None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 5)
        except asyncio.TimeoutError:  # something it left behind holds the pipes
            out, err = b"", b""
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
