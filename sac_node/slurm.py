"""The login node's side of Slurm (docs/slurm.md): which job runs each agent, sbatch, squeue, scancel.

An agent whose spec carries `slurm` gets no shim here: its job runs `node.pyz job` (slurm_job.py) on a
compute node. Files: <state>/slurm/<key>/ per job (job.sh, agents.json, link.json, job.json,
slurm-<id>.out, successor.json), <agent>/slurm.json {job_id, key, submitted_at, resubmits}.
"""

import asyncio
import json
import logging
import os
import shlex
import subprocess
import time
import uuid

from .node_spec import NodeSpec
from .protocol.errors import AgentError, AgentNotRunning
from .slurm_link import JobLinks, write_token
from .state_dir import ensure_private_dir, write_atomic
from .supervision import states

log = logging.getLogger("sac_node.slurm")

QUEUE_TTL_S = 2.0  # the oldest squeue answer used (etiquette: the controller is shared)
BATCH_S = 0.3  # starts this close together share a job
LIVE = ("PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING")
START_WAIT_S = 20.0  # agents.start waits this long for the job and its shim
# Slurm's error words -> the inventory field to change.
FIELD_HINTS = (("account", "account"), ("partition", "partition"), ("time limit", "time"),
               ("memory", "mem_per_agent"), ("gres", "gres"), ("qos", "extra"),
               ("cpu", "cpus_per_agent"), ("node configuration", "cpus_per_agent"))


class AgentPending(AgentNotRunning):
    """The agent's job waits in the queue."""


def settings_of(agent):
    """The `slurm` section of the agent's spec.json, or None for an agent that runs here."""
    try:
        with open(agent.spec) as fh:
            return json.load(fh).get("slurm")
    except (OSError, ValueError):
        return None


def read_record(agent):
    try:
        with open(os.path.join(agent.path, "slurm.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def seconds_left(text):
    """Seconds in squeue's %L (`59:59`, `1:00:00`, `1-00:00:00`); None for UNLIMITED, NOT_SET, INVALID."""
    days, _, rest = text.rpartition("-")
    parts = rest.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3 or (days and not days.isdigit()):
        return None
    value = 0
    for part in parts:
        value = value * 60 + int(part)
    return value + int(days or 0) * 86400


def keep_startup_prompts(agent, prompts):
    """Kept until the agent's job runs."""
    write_atomic(os.path.join(agent.path, "startup.json"), json.dumps(list(prompts)))


async def submit_startup_prompts(agent, shim, submit_method):
    """Submit the kept prompts, once, through the agent's shim."""
    path = os.path.join(agent.path, "startup.json")
    try:
        with open(path) as fh:
            prompts = json.load(fh)
        os.unlink(path)  # before submitting: a prompt lost to a crash here beats one run twice
    except (OSError, ValueError):
        return
    for prompt in prompts:
        await shim.call(submit_method, {"text": prompt, "source": "startup"})


def _mem_mb(text, count):
    units = {"K": 1.0 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    unit = text[-1] if text[-1] in units else "M"
    number = int(text[:-1] if text[-1] in units else text)
    return max(1, int(number * units[unit] * count))


def job_script(settings, names, job_dir, command):
    """The batch script of a job that runs `names`: Slurm's options as #SBATCH lines, then node.pyz."""
    n = len(names)
    lines = ["#!/bin/sh", "#SBATCH --job-name=sac-%s" % (names[0] if n == 1 else "%s+%d" % (names[0], n - 1)),
             "#SBATCH --output=%s" % os.path.join(job_dir, "slurm-%j.out"),
             "#SBATCH --time=%s" % settings["time"], "#SBATCH --nodes=1 --ntasks=1",
             "#SBATCH --cpus-per-task=%d" % (settings.get("cpus_per_agent", 1) * n)]
    for option, key in (("--partition", "partition"), ("--account", "account"), ("--gres", "gres")):
        if settings.get(key):
            lines.append("#SBATCH %s=%s" % (option, settings[key]))
    if settings.get("mem_per_agent"):
        lines.append("#SBATCH --mem=%dM" % _mem_mb(settings["mem_per_agent"], n))
    if settings.get("resubmit_before_s"):
        lines.append("#SBATCH --signal=B:USR1@%d" % settings["resubmit_before_s"])
    lines.append("exec %s job %s" % (" ".join(shlex.quote(a) for a in command), shlex.quote(job_dir)))
    return "\n".join(lines) + "\n"


def refusal(stderr, rc):
    """sbatch's own error in one line, with the inventory field that most likely needs a change."""
    text = " ".join(line.strip() for line in stderr.splitlines() if line.strip()) or "exit code %s" % rc
    field = next((f for words, f in FIELD_HINTS if words in text.lower()), None)
    fix = "change slurm.%s of this host in the inventory" % field if field else \
        "check the host's slurm: section in the inventory"
    return AgentError("Slurm refused the job: %s (%s)" % (text[:300], fix))


def _queued_for_a_reason(job):
    return job is not None and job["state"] == "PENDING" and job["reason"] not in ("None", "")


def _refusal_to_resubmit(agent, record):
    """Why the agent's restart policy does not resubmit its ended job, or None."""
    with open(agent.spec) as fh:
        restart = NodeSpec.from_wire(json.load(fh)).restart
    if restart.policy == "never" or record.get("resubmits", 0) >= restart.max_retries > 0 \
            and restart.policy != "always":
        return "agent %s: its Slurm job %s ended and its restart policy (%s) does not resubmit it" % (
            agent.name, record["job_id"], restart.policy)
    return None


class SlurmAgents:
    """The daemon's Slurm side. `command` runs node.pyz (daemon.node_command()); `clock` is injected."""

    def __init__(self, state, command, clock=time.time):
        self.state = state
        self.command = command
        self.clock = clock
        self.root = os.path.join(state.root, "slurm")
        self._queue = (0.0, {})
        self._queue_epoch = 0  # moves at each forget_queue: an squeue already running then is not kept
        self._queue_lock = None  # made in the loop (Python 3.8's locks bind to the loop current at creation)
        self._batches = {}
        self.links = JobLinks(self.root, on_change=self.forget_queue)

    def forget_queue(self):
        """The next status reads squeue anew: a job was submitted or cancelled, or dialled in or hung up
        (a job that dials in runs: an answer read before it would still say PENDING)."""
        self._queue = (0.0, {})
        self._queue_epoch += 1

    def shim_pid(self, name):
        """The pid of the agent's shim as its job reports it (the shim runs on another machine)."""
        record = read_record(self.state.agent(name))
        return self.links.shim_pid(record["key"], name) if record else None

    async def open_shim(self, name):
        """(reader, writer): a stream to the agent's shim, bridged by its job over the link it dialled."""
        record = read_record(self.state.agent(name))
        if record is None:
            raise AgentNotRunning("agent %s has no Slurm job" % name)
        return await self.links.open_stream(record["key"], name)

    # -- the queue --------------------------------------------------------------

    async def _run(self, argv):
        try:
            proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                        stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise AgentError("%s is not on this host's PATH (load Slurm in the host's env_preamble, e.g. "
                             "`module load slurm`)" % argv[0]) from None
        out, err = await proc.communicate()
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    async def queue(self):
        """{job id: {state, reason, node, time_left}} of this user's jobs, at most QUEUE_TTL_S old."""
        self._queue_lock = self._queue_lock or asyncio.Lock()
        async with self._queue_lock:  # callers at once share one squeue (and so submit together)
            return await self._read_queue()

    async def _read_queue(self):
        at, jobs = self._queue
        if self.clock() - at > QUEUE_TTL_S:
            epoch = self._queue_epoch
            rc, out, err = await self._run(["squeue", "-h", "--me", "-o", "%i|%T|%r|%N|%L"])
            if rc != 0:
                raise AgentError("squeue failed: %s" % (err.strip() or rc))
            jobs = {}
            for line in out.splitlines():
                parts = line.strip().split("|")
                if len(parts) == 5:
                    jobs[parts[0]] = {"state": parts[1], "reason": parts[2], "node": parts[3] or None,
                                      "time_left": parts[4]}
            if epoch == self._queue_epoch:
                self._queue = (self.clock(), jobs)
        return jobs

    async def job_of(self, agent):
        """(record, queue entry or None) of the job that runs or will run the agent."""
        record = read_record(agent)
        if record is None:
            return None, None
        return record, (await self.queue()).get(record["job_id"])

    # -- submitting -------------------------------------------------------------

    async def submit(self, settings, names, after=None):
        """Write the job's dir and script, `sbatch --parsable` it; the job id. `after` (job id, job dir):
        the job is that one's successor, and takes its agents over once it runs (slurm_job.py)."""
        key = uuid.uuid4().hex[:12]
        job_dir = ensure_private_dir(os.path.join(ensure_private_dir(self.root), key))
        write_atomic(os.path.join(job_dir, "agents.json"), json.dumps({
            "state_dir": self.state.root, "agents": names, "after": after[0] if after else None}))
        await self.links.listen(settings.get("login_address"))
        write_token(job_dir)
        script = os.path.join(job_dir, "job.sh")
        write_atomic(script, job_script(settings, names, job_dir, self.command), 0o700)
        rc, out, err = await self._run(["sbatch", "--parsable"] + list(settings.get("extra") or ()) + [script])
        if rc != 0:
            raise refusal(err, rc)
        job_id = out.strip().split(";")[0]
        write_atomic(os.path.join(job_dir, "job.json"), json.dumps({"job_id": job_id, "at": self.clock()}))
        self.forget_queue()
        if after is not None:
            write_atomic(os.path.join(after[1], "successor.json"), json.dumps({"job_id": job_id, "key": key}))
            log.info("[agents=%s] job %s queued after job %s", ",".join(names), job_id, after[0])
            return job_id
        for name in names:
            agent = self.state.agent(name)
            old = read_record(agent) or {}
            write_atomic(os.path.join(agent.path, "slurm.json"), json.dumps({
                "job_id": job_id, "key": key, "submitted_at": self.clock(),
                "resubmits": old.get("resubmits", -1) + 1}))
        log.info("[agents=%s] submitted Slurm job %s", ",".join(names), job_id)
        return job_id

    async def submit_soon(self, name, settings):
        """Submit the agent with those that arrive within BATCH_S (same settings), agents_per_job a job."""
        key = json.dumps(settings, sort_keys=True)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = ([], asyncio.get_event_loop().create_future())
            asyncio.ensure_future(self._submit_batch(key, settings))
        if name not in batch[0]:
            batch[0].append(name)
        return await asyncio.shield(batch[1])

    async def _submit_batch(self, key, settings):
        await asyncio.sleep(BATCH_S)
        names, done = self._batches.pop(key)
        per_job = settings.get("agents_per_job") or 1
        try:
            for first in range(0, len(names), per_job):
                await self.submit(settings, names[first:first + per_job])
            done.set_result(True)
        except Exception as exc:  # every waiter holds its agent's spawn lock: none may wait forever
            done.set_exception(exc)

    # -- placing, watching, releasing ------------------------------------------

    async def place(self, name, wait_s=0.0, queued=False):
        """Make sure a live job holds the agent (per its restart policy); return once its shim serves
        (waited for up to `wait_s`; with `queued` through the queue too), or raise AgentPending."""
        agent = self.state.agent(name)
        record, job = await self.job_of(agent)
        if job is None or job["state"] not in LIVE:
            record, job = await self._successor(agent, record)
        if job is None or job["state"] not in LIVE:
            self._may_resubmit(agent, record)
            await self.submit_soon(name, settings_of(agent))
            record, job = await self.job_of(agent)
        deadline = self.clock() + wait_s
        while True:
            if job is not None and job["state"] == "RUNNING" and self.shim_pid(name):
                return
            running = job is not None and job["state"] == "RUNNING"
            if self.clock() >= deadline or _queued_for_a_reason(job) or not (queued or running):
                break  # (Resources: maybe for hours) the supervisor attaches it later
            await asyncio.sleep(0.1)
            job = (await self.queue()).get(record["job_id"])
        state = job["state"].lower() if job else "submitted"
        reason = job["reason"] if job and job["reason"] not in ("None", "") else None
        raise AgentPending("agent %s waits in Slurm job %s: %s%s" % (
            name, record["job_id"], state, " (%s)" % reason if reason else ""))

    async def _successor(self, agent, record):
        """The successor of the agent's ended job, adopted; or as it was."""
        try:
            with open(os.path.join(self.root, record["key"], "successor.json")) as fh:
                successor = json.load(fh)
        except (OSError, ValueError, TypeError, KeyError):
            return record, None
        job = (await self.queue()).get(successor["job_id"])
        if job is None or job["state"] not in LIVE:
            return record, None
        record = dict(record, job_id=successor["job_id"], key=successor["key"])
        write_atomic(os.path.join(agent.path, "slurm.json"), json.dumps(record))
        return record, job

    async def hand_over(self):
        """Queue the next job of each running job within resubmit_before_s of its end (or told so by
        --signal); its agents move to it once it runs."""
        jobs = {}
        for name in self.state.agent_names():
            agent = self.state.agent(name)
            settings, record = settings_of(agent), read_record(agent)
            if settings and record and agent.read_desired() == "running":
                jobs.setdefault(record["job_id"], (record["key"], settings, []))[2].append(name)
        if not jobs:
            return
        await self.links.listen(next(iter(jobs.values()))[1].get("login_address"))  # a restarted daemon
        queue = await self.queue()
        for job_id, (key, settings, names) in sorted(jobs.items()):
            job, job_dir = queue.get(job_id), os.path.join(self.root, key)
            if job is None or job["state"] != "RUNNING" or os.path.exists(os.path.join(job_dir, "successor.json")):
                continue
            left = seconds_left(job["time_left"])
            if os.path.exists(os.path.join(job_dir, "ending.json")) or (
                    left is not None and left <= settings.get("resubmit_before_s", 0)):
                await self.submit(settings, names, after=(job_id, job_dir))

    def _may_resubmit(self, agent, record):
        if record is None:
            return
        refused = _refusal_to_resubmit(agent, record)
        if refused:
            raise AgentNotRunning(refused)
        log.warning("[agent=%s] Slurm job %s is gone; resubmitting", agent.name, record["job_id"])

    async def forget_ended(self, name):
        """A deliberate start: an ended job is history, not a failure for the restart policy."""
        agent = self.state.agent(name)
        record, job = await self.job_of(agent)
        if record is not None and (job is None or job["state"] not in LIVE):
            os.unlink(os.path.join(agent.path, "slurm.json"))

    async def release(self, name):
        """After an agent stopped: cancel its job when no agent of that job still wants to run."""
        record = read_record(self.state.agent(name))
        if record is None:
            return
        mates = [n for n in self.state.agent_names() if (read_record(self.state.agent(n)) or {}).get("job_id")
                 == record["job_id"]]
        if all(self.state.agent(n).read_desired() != "running" for n in mates):
            await self._run(["scancel", record["job_id"]])
            self.forget_queue()

    async def annotate(self, name, status):
        """Add the agent's job {job_id, state, reason, node, time_left} to its status; pending, not failed."""
        agent = self.state.agent(name)
        record, job = await self.job_of(agent)
        if record is None:
            return status
        status["slurm"] = dict(job or {"state": "GONE", "reason": None, "node": None, "time_left": None},
                               job_id=record["job_id"], resubmits=record.get("resubmits", 0))
        if status.get("state") != "failed":
            return status
        if job is not None and job["state"] in LIVE:
            status["state"], status["last_error"] = states.PENDING, None
        elif agent.read_desired() == "running" and not _refusal_to_resubmit(agent, record):
            status["state"] = states.RESTARTING
            status["last_error"] = "its Slurm job %s ended; resubmitting" % record["job_id"]
        return status
