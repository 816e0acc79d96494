"""`node.pyz job <job dir>`: a Slurm job's side on its compute node (docs/slurm.md).

Starts, respawns and waits for the shims of the agents it holds; stops them on SIGTERM; SIGUSR1 (the
walltime's end near) writes ending.json. A successor job takes the agents over when it runs, and the
old one lets each finish its running turn first.
"""

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time

from .daemon import node_command
from .slurm import read_record
from .slurm_link import LinkClient
from .state_dir import StateDir, write_atomic

log = logging.getLogger("sac_node.slurm_job")

TICK_S = 0.5
STOP_GRACE_S = 4.0  # under the cluster's KillWait, so shims end their engines before SIGKILL


class Job:
    def __init__(self, job_dir):
        self.job_dir = job_dir
        with open(os.path.join(job_dir, "agents.json")) as fh:
            spec = json.load(fh)
        self.state = StateDir(spec["state_dir"])
        self.names = spec["agents"]
        self.after = spec.get("after")  # the job this one takes over from at its walltime's end
        self.job_id = os.environ.get("SLURM_JOB_ID", "?")
        self.shims = {}
        self.stopping = False
        self.link = LinkClient(self.state.root, job_dir, lambda name: self.state.agent(name).socket)

    def _mine(self, name):
        """True while the agent should run in this job (not stopped, not taken over)."""
        agent = self.state.agent(name)
        return (read_record(agent) or {}).get("job_id") == self.job_id and agent.read_desired() == "running"

    def _spawn(self, name):
        agent = self.state.agent(name)
        logf = open(agent.shim_log, "ab")
        self.shims[name] = subprocess.Popen(node_command() + ["shim", agent.path], stdin=subprocess.DEVNULL,
                                            stdout=logf, stderr=subprocess.STDOUT, close_fds=True)
        logf.close()
        log.info("[agent=%s job=%s] shim %d started on %s", name, self.job_id, self.shims[name].pid,
                 os.environ.get("SLURMD_NODENAME"))

    def tick(self):
        """Reap, respawn and retire shims; False once nothing is left to run in this job."""
        for name in self.names:
            proc = self.shims.get(name)
            if proc is not None and proc.poll() is not None:
                del self.shims[name]
                proc = None
            mine = self._mine(name)
            if mine and proc is None and not self.stopping and self._lock_free(name):
                self._spawn(name)
            elif not mine and proc is not None and not self._working(name):
                proc.terminate()  # stopped, or moved to the next job once its turn in flight ended
        self.link.report(self._serving())
        return bool(self.shims) or (not self.stopping and any(self._mine(n) for n in self.names))

    def _serving(self):
        """{agent: pid} of the shims that serve their socket (they write shim.json once they do)."""
        serving = {}
        for name, proc in self.shims.items():
            try:
                with open(self.state.agent(name).shim_info) as fh:
                    pid = json.load(fh).get("pid")
            except (OSError, ValueError):
                continue
            if pid == proc.pid and proc.poll() is None:
                serving[name] = pid
        return serving

    def _lock_free(self, name):
        """False while another shim (the previous job's) holds the agent's lock."""
        try:
            with open(os.path.join(self.state.agent(name).path, "shim.lock"), "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
                return True
        except OSError:
            return False

    def _working(self, name):
        """True while the agent's engine runs a turn (says its heartbeat)."""
        try:
            with open(self.state.agent(name).heartbeat) as fh:
                return json.load(fh).get("state") == "working"
        except (OSError, ValueError):
            return False

    def take_over(self):
        """A successor job: point the agents still held by the job it follows at this one."""
        key = os.path.basename(self.job_dir)
        for name in self.names:
            record = read_record(self.state.agent(name)) or {}
            if record.get("job_id") == self.after:
                path = os.path.join(self.state.agent(name).path, "slurm.json")
                write_atomic(path, json.dumps(dict(record, job_id=self.job_id, key=key)))
                log.info("[agent=%s] taken over from job %s", name, self.after)

    def stop(self, *_):
        self.stopping = True
        for proc in self.shims.values():
            if proc.poll() is None:
                proc.terminate()

    def ending(self, *_):
        write_atomic(os.path.join(self.job_dir, "ending.json"), json.dumps({"job_id": self.job_id,
                                                                            "at": time.time()}))

    def run(self):
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGUSR1, self.ending)
        if self.after:
            self.take_over()
        stop_at = None
        while self.tick():
            if self.stopping and stop_at is None:
                stop_at = time.time() + STOP_GRACE_S
            if stop_at is not None and time.time() > stop_at:
                for proc in self.shims.values():
                    proc.kill()
            time.sleep(TICK_S)
        self.link.close()
        return 0


def main(job_dir):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Job(os.path.abspath(job_dir)).run()
