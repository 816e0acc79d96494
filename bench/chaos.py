"""Chaos run: kill -9 everything sac is made of, under load, and prove no turn was lost or run twice.

    python bench/chaos.py [--duration 180] [--hosts 4] [--agents-per-host 4] [--claude-agents 1] [--seed N] [--json]

On N real loopback sshd hosts (tests/fixtures/sshd.py) it brings up a fleet of
fast stream-json agents (plus optionally Claude Code agents on the built-in
provider), serves it with `sac fleet serve`, and sends a steady stream of turns
through the gateway, each with an idempotency key (retried with the same key
until the client hears an answer). Meanwhile a chaos loop, one event at a time,
`kill -9`s an engine, a shim, a node daemon or the gateway (restarted at once,
on the same port), stops an sshd for a few seconds, or scripts provider faults
(429, 529, hang) for the Claude agents. After the run it waits for quiescence
and audits every journal, read from disk and through the gateway:

  lost        a turn id the client saw accepted that no journal holds
  unfinished  a journalled turn with no terminal record
  unretrievable  a turn that GET /v1/turns/{id} (through the last, restarted
              gateway) does not show in its journalled terminal state
  duplicated  two `started` without a `requeued` between, a record after the
              terminal one, two `accepted` for one id, one idempotency key
              naming two turns, a completed reply that is not this turn's
  live copies two shims or two engines of one agent alive at once (sampled)

It prints turns accepted / completed / failed by cause / interrupted, kills by
kind and recovery times (from the fault to the agent's next completed turn
through the gateway), and exits 1 when anything was lost or duplicated.
Loopback only; bounded in time; every process it started is stopped.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from sac_fleet.provider.server import ProviderServer  # noqa: E402
from tests.fixtures import procs  # noqa: E402
from tests.fixtures.sshd import SshdFleet, sshd_available  # noqa: E402
from tests.fixtures.tools import find_claude  # noqa: E402

KINDS = ("engine", "shim", "daemon", "gateway", "sshd", "provider")
TERMINAL = ("completed", "failed", "interrupted", "cancelled")
# Gateway answers that may come and go while a host, a daemon or a shim recovers: retry, same key.
TRANSIENT = {"agent_not_found", "agent_not_running", "host_error", "host_unreachable", "rpc_error",
             "protocol_error", "internal_error", "turn_timeout", "bootstrap_failed"}
PROVIDER_FAULTS = ({"fault": {"status": 429, "retry_after": 1}, "times": 2}, {"fault": {"status": 529}, "times": 2},
                   {"fault": {"hang": True}, "times": 1})

# A stream-json engine that answers after `sleep=S` seconds when the prompt says so, so that kills
# land on running turns too (examples/engines/fast_engine.py answers at once).
SLEEPY_ENGINE = r'''
import json, sys, time, uuid
args = sys.argv[1:]
session = args[args.index("--resume") + 1] if "--resume" in args else str(uuid.uuid4())
def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("type") != "user":
        continue
    text = (msg.get("message") or {}).get("content") or ""
    text = text if isinstance(text, str) else json.dumps(text)
    emit({"type": "system", "subtype": "init", "session_id": session})
    for word in text.split():
        if word.startswith("sleep="):
            time.sleep(float(word[6:]))
    reply = "echo: " + text
    emit({"type": "assistant", "session_id": session,
          "message": {"role": "assistant", "content": [{"type": "text", "text": reply}]}})
    emit({"type": "result", "subtype": "success", "is_error": False, "result": reply, "session_id": session,
          "duration_ms": 0, "usage": {"input_tokens": len(text.split()), "output_tokens": len(reply.split())}})
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_table():
    """pid -> (ppid, cmdline, cwd) of every live, non-zombie process."""
    table = {}
    for pid, process in procs.processes().items():
        cwd = procs.cwd(pid) if process.state != "Z" else None
        if cwd is not None:
            table[pid] = (process.ppid, process.command, cwd)
    return table


def kill9(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


class Cluster:
    """Hosts, provider, specs, inventory, fleet up and the gateway process (restartable)."""

    def __init__(self, root, args):
        self.root, self.args = Path(root), args
        self.sshd = SshdFleet(self.root / "sshd")
        self.hosts = []
        self.agents = {}          # name -> host
        self.kinds = {}           # name -> "fast" | "claude"
        self.singletons = set()
        self.provider = None
        self.gateway = None
        self.gateway_gen = 0
        self.port = free_port()
        self.env = dict(os.environ, SAC_HOME=str(self.root / "head-home"), NO_COLOR="1", COLUMNS="200")
        self.engine_note = ""

    def engine_argvs(self):
        """(fast, sleepy): examples/engines/fast_engine.py, and this script's engine that sleeps on `sleep=S`."""
        sleepy = self.root / "sleepy_engine.py"
        sleepy.write_text(SLEEPY_ENGINE)
        sleepy = [self.args.host_python, str(sleepy)]
        example = REPO / "examples" / "engines" / "fast_engine.py"
        if example.exists():
            self.engine_note = "examples/engines/fast_engine.py (even agents), bench's sleepy engine (odd agents)"
            return [self.args.host_python, str(example)], sleepy
        self.engine_note = "bench's sleepy engine for all (examples/engines/fast_engine.py is missing)"
        return sleepy, sleepy

    def setup(self):
        self.hosts = self.sshd.start(self.args.hosts, log_level="ERROR")
        fast, sleepy = self.engine_argvs()
        claude = find_claude() if self.args.claude_agents else None
        if self.args.claude_agents and not claude:
            raise SystemExit("--claude-agents needs the Claude Code CLI (make tools, or SAC_CLAUDE_BIN); "
                             "or pass --claude-agents 0")
        if claude:
            self.provider = ProviderServer().start()
        doc = {"defaults": {"connect_timeout": 5, "keepalive_s": 2, "python": self.args.host_python}, "hosts": {}, "agents": []}
        for host in self.hosts:
            doc["hosts"][host.name] = dict(host.inventory_fields(), env_preamble="export SAC_CLAUDE_BIN=%s"
                                           % (claude or "/nonexistent"))
            for i in range(self.args.agents_per_host):
                kind = "sleepy" if i % 2 else "fast"
                self._add_agent(doc, "%s-%s-%d" % (kind[0], host.name, i), host,
                                {"command": sleepy if i % 2 else fast}, kind, singleton=(i == 0))
        for i in range(self.args.claude_agents):
            host = self.hosts[i % len(self.hosts)]
            self._add_agent(doc, "c-%s-%d" % (host.name, i), host, "claude", "claude", singleton=True)
        self.inventory = self.root / "inventory.yaml"
        self.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
        up = subprocess.run([sys.executable, "-m", "sac_fleet", "fleet", "up", "-i", str(self.inventory), "--json"],
                            env=self.env, capture_output=True, text=True, timeout=300)
        if up.returncode != 0:
            try:
                failed = [r for r in json.loads(up.stdout)["results"] if not r["ok"]]
            except (ValueError, KeyError):
                failed = up.stdout[-2000:]
            raise SystemExit("sac fleet up failed (%d): %s %s" % (up.returncode, failed, up.stderr[-2000:]))

    def _add_agent(self, doc, name, host, engine, kind, singleton):
        spec = {"workdir": "work", "engine": engine, "isolation": {"runtime": "none"},
                "restart": {"policy": "on-failure", "max_retries": 1000,
                            "backoff": {"initial": 0.1, "max": 1, "multiplier": 2}},
                "health": {"stall_timeout_s": 20, "turn_timeout_s": 60}}
        if engine == "claude":
            spec["claude"] = {"provider": {"base_url": self.provider.url}}
            spec["env"] = {"CLAUDE_CODE_MAX_RETRIES": "0"}  # a 429 surfaces as a failed turn, not a retry
            spec["health"] = {"stall_timeout_s": self.args.stall_timeout, "turn_timeout_s": 60}
        path = self.root / "agents" / name / "spec.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": name},
                                        "spec": spec}, sort_keys=False))
        doc["agents"].append({"spec": "agents/%s" % name,
                              "placement": {"hosts": [host.name], "singleton": singleton}})
        self.agents[name] = host
        self.kinds[name] = kind
        if singleton:
            self.singletons.add(name)

    # -- the gateway ------------------------------------------------------------------

    def start_gateway(self):
        self.gateway_gen += 1
        log = open(self.root / ("gateway-%d.log" % self.gateway_gen), "wb")
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "sac_fleet", "fleet", "serve", "-i", str(self.inventory), "--port", str(self.port),
             "--no-access-log"], env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()

    async def wait_gateway(self, timeout=60.0):
        url = "http://127.0.0.1:%d/v1/health" % self.port
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.gateway.poll() is not None:
                    raise RuntimeError("gateway exited with %s; see %s" % (self.gateway.returncode, self.root))
                try:
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("gateway did not answer /v1/health within %ss" % timeout)

    def kill_gateway(self):
        kill9(self.gateway.pid)
        self.gateway.wait()

    @property
    def token(self):
        return (self.root / "head-home" / "gateway.token").read_text().strip()

    # -- what runs where --------------------------------------------------------------

    def agent_dir(self, name):
        return self.agents[name].state_dir / "agents" / name

    def shim_pid(self, name):
        try:
            pid = json.loads((self.agent_dir(name) / "shim.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None
        return pid if os.path.exists("/proc/%d" % pid) else None

    def daemon_pid(self, host):
        try:
            pid = json.loads((host.state_dir / "daemon.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None
        return pid if os.path.exists("/proc/%d" % pid) else None

    def live_copies(self, table):
        """agent -> (shims alive, engines alive), from one /proc snapshot."""
        out = {}
        for name in self.agents:
            path = str(self.agent_dir(name))
            work = os.path.join(path, "work")
            shims = [p for p, (_, cmd, _) in table.items() if cmd.rstrip().endswith(" shim " + path)]
            engines = [p for p, (pp, cmd, cwd) in table.items()
                       if cwd == work and (pp not in table or table[pp][2] != work)]
            out[name] = (len(set(shims)), len(engines))
        return out

    def close(self):
        if self.gateway is not None and self.gateway.poll() is None:
            kill9(self.gateway.pid)
            self.gateway.wait()
        self.sshd.close()
        table = proc_table()
        for pid, (_, cmd, cwd) in table.items():
            if str(self.root) in cmd or cwd.startswith(str(self.root)):
                kill9(pid)
        if self.provider is not None:
            self.provider.stop()


class Client:
    """Turns through the gateway. Every turn has an idempotency key and is retried with it until answered."""

    def __init__(self, cluster, rng, retry_window_s):
        self.cluster, self.rng, self.retry_window_s = cluster, rng, retry_window_s
        self.turns = {}            # key -> record
        self.http = None
        self.counter = 0
        self.errors = {}           # "status code" -> count of transient answers seen

    async def open(self):
        self.http = aiohttp.ClientSession(headers={"Authorization": "Bearer " + self.cluster.token})

    async def close(self):
        await self.http.close()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.cluster.port, path)

    async def request(self, method, path, body=None, timeout=30.0):
        """(status, JSON body) or raises aiohttp.ClientError / asyncio.TimeoutError."""
        async with self.http.request(method, self.url(path), json=body,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, await resp.json(content_type=None)

    def new_text(self, agent, probe=False):
        self.counter += 1
        sleep = " sleep=%.2f" % (self.rng.random() * 0.5) if self.cluster.kinds[agent] == "sleepy" else ""
        return "%s %d for %s%s" % ("probe" if probe else "turn", self.counter, agent, sleep)

    async def send(self, agent, probe=False):
        """One turn, retried with its key until the gateway answers with a finished turn (or the window ends)."""
        key = uuid.uuid4().hex
        rec = {"key": key, "agent": agent, "text": self.new_text(agent, probe), "probe": probe,
               "sent_at": time.time(), "turn_id": None, "status": None, "reply": None, "error": None,
               "gateway_gen": None, "attempts": 0, "answered_at": None}
        self.turns[key] = rec
        deadline = time.monotonic() + self.retry_window_s
        body = {"agent": agent, "text": rec["text"], "wait": True, "timeout_s": 10, "idempotency_key": key}
        while time.monotonic() < deadline:
            rec["attempts"] += 1
            gen = self.cluster.gateway_gen
            try:
                status, answer = await self.request("POST", "/v1/turn", body, timeout=20)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                self._count("connection: %s" % type(exc).__name__)
                await asyncio.sleep(0.3)
                continue
            if isinstance(answer, dict) and answer.get("turn_id"):
                if rec["turn_id"] not in (None, answer["turn_id"]):
                    rec["key_conflict"] = [rec["turn_id"], answer["turn_id"]]
                rec["turn_id"] = answer["turn_id"]
                rec["gateway_gen"] = rec["gateway_gen"] or gen
            if status == 200:
                rec.update(status=answer["status"], reply=answer.get("text"), error=answer.get("error"),
                           answered_at=time.time())
                return rec
            code = ((answer or {}).get("error") or {}).get("code") if isinstance(answer, dict) else None
            if status == 504 or code in TRANSIENT:
                self._count("%s %s" % (status, code or answer.get("status")))
                await asyncio.sleep(0.3)
                continue
            rec.update(status="client_error", error="%s %s" % (status, answer))
            return rec
        return rec

    def _count(self, what):
        self.errors[what] = self.errors.get(what, 0) + 1

    async def get_turn(self, turn_id):
        for _ in range(20):
            try:
                return await self.request("GET", "/v1/turns/" + turn_id, timeout=15)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.5)
        return None, None


class Chaos:
    """One fault at a time: the first len(KINDS) events cover every kind, then kinds are drawn at random."""

    def __init__(self, cluster, client, rng, args):
        self.cluster, self.client, self.rng, self.args = cluster, client, rng, args
        self.events = []
        self.probes = []
        self.copies = {}           # agent -> (max shims, max engines) seen at once
        self.copy_samples = 0
        self.kinds = [k for k in KINDS if k != "provider" or any(
            v == "claude" for v in cluster.kinds.values())]

    async def run(self, until):
        order = list(self.kinds)
        self.rng.shuffle(order)
        while time.monotonic() < until or order:   # every kind at least once, however short the run
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.args.interval)
            if time.monotonic() >= until and not order:
                break
            kind = order.pop(0) if order else self.rng.choice(self.kinds)
            event = await getattr(self, "do_" + kind)()
            event.update(kind=kind, at=time.time())
            self.events.append(event)
            if event.get("done") and event.get("probe"):
                self.probes.append(asyncio.ensure_future(self.recover(event)))

    async def recover(self, event):
        """Time from the fault to a completed turn of the agent that was hit (through the gateway)."""
        start = event["t0"]
        while time.monotonic() - start < self.args.retry_window:
            rec = await self.client.send(event["probe"], probe=True)
            if rec["status"] == "completed":
                event["recovery_s"] = round(time.monotonic() - start, 2)
                return
            await asyncio.sleep(0.2)

    def _agent(self, kind=None):
        names = sorted(n for n in self.cluster.agents if kind is None or self.cluster.kinds[n] == kind)
        return self.rng.choice(names)

    async def do_engine(self):
        name = self._agent()
        shim = self.cluster.shim_pid(name)
        table = proc_table()
        engines = [p for p, (pp, _, _) in table.items() if pp == shim] if shim else []
        done = bool(engines) and kill9(engines[0])
        return {"target": name, "pid": engines[0] if engines else None, "done": done, "probe": name,
                "t0": time.monotonic()}

    async def do_shim(self):
        name = self._agent()
        pid = self.cluster.shim_pid(name)
        done = bool(pid) and kill9(pid)
        return {"target": name, "pid": pid, "done": done, "probe": name, "t0": time.monotonic()}

    async def do_daemon(self):
        host = self.rng.choice(self.cluster.hosts)
        pid = self.cluster.daemon_pid(host)
        done = bool(pid) and kill9(pid)
        probe = self.rng.choice([n for n, h in self.cluster.agents.items() if h is host])
        return {"target": host.name, "pid": pid, "done": done, "probe": probe, "t0": time.monotonic()}

    async def do_gateway(self):
        t0 = time.monotonic()
        self.cluster.kill_gateway()
        down = self.rng.uniform(0.5, 2.0)
        await asyncio.sleep(down)
        self.cluster.start_gateway()
        await self.cluster.wait_gateway()
        return {"target": "gateway", "pid": None, "done": True, "probe": self._agent(), "t0": t0,
                "down_s": round(down, 2), "back_in_s": round(time.monotonic() - t0, 2)}

    async def do_sshd(self):
        host = self.rng.choice(self.cluster.hosts)
        host.stop()
        down = self.rng.uniform(1.0, self.args.sshd_down)
        await asyncio.sleep(down)
        host.start().wait_ready()
        probe = self.rng.choice([n for n, h in self.cluster.agents.items() if h is host])
        # Recovery counts from the moment the host is reachable again.
        return {"target": host.name, "pid": None, "done": True, "probe": probe, "t0": time.monotonic(),
                "down_s": round(down, 2)}

    async def do_provider(self):
        rule = self.rng.choice(PROVIDER_FAULTS)
        self.cluster.provider.load_script({"rules": [rule]})
        fault = rule["fault"]
        return {"target": "hang" if fault.get("hang") else str(fault["status"]), "pid": None, "done": True,
                "probe": self._agent("claude"), "t0": time.monotonic()}

    async def watch_copies(self, until):
        """Sample /proc: no agent may ever have two shims or two engines alive."""
        while time.monotonic() < until:
            table = await asyncio.get_event_loop().run_in_executor(None, proc_table)
            for name, (shims, engines) in self.cluster.live_copies(table).items():
                was = self.copies.get(name, (0, 0))
                self.copies[name] = (max(was[0], shims), max(was[1], engines))
            self.copy_samples += 1
            await asyncio.sleep(0.5)


def read_journal(path):
    """(records, torn lines) of one journal file."""
    records, torn = [], 0
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return records, torn
    with fh:
        for raw in fh:
            try:
                records.append(json.loads(raw))
            except ValueError:
                torn += 1
    return records, torn


def check_turn(ops):
    """Problems in one turn's sequence of journal ops (empty when it ran at most once and ended once)."""
    problems, state = [], None
    for op in ops:
        if op == "accepted":
            if state is not None:
                problems.append("accepted twice")
            state = "pending"
        elif state in TERMINAL:
            problems.append("%s after %s" % (op, state))
        elif op == "started":
            if state == "running":
                problems.append("started twice without a requeue")
            state = "running"
        elif op == "requeued":
            state = "pending"
        elif op in TERMINAL:
            state = op
    if state not in TERMINAL:
        problems.append("no terminal record (still %s)" % state)
    return problems, state


def cause_of(error):
    """A short cause for a failed or interrupted turn, from its journalled error."""
    error = error or ""
    for needle, cause in (("stalled", "stalled"), ("timeout", "turn timeout"), ("HTTP 429", "provider 429"),
                          ("HTTP 529", "provider 529"), ("shim restarted", "shim killed"),
                          ("engine exited", "engine exited"), ("timed out", "provider timeout")):
        if needle in error:
            return cause
    return error[:60] or "unknown"


def as_records(rec):
    """The records one journal line stands for: itself; for a compacted journal's `turn` or `key` line,
    the records of that turn so far; none for its `snapshot` (sac_node/journal.py)."""
    if rec.get("op") not in ("turn", "key", "snapshot"):
        return [rec]
    if rec["op"] == "snapshot":
        return []
    turn = rec["turn"]
    records = [{"op": "accepted", "id": turn["id"], "key": turn.get("key"), "text": turn.get("text")}]
    if turn.get("attempts") and turn["status"] != "pending":
        records.append({"op": "started", "id": turn["id"]})
    if turn["status"] in TERMINAL:
        records.append({"op": turn["status"], "id": turn["id"], "error": turn.get("error"),
                        "reply": turn.get("reply")})
    return records


def scan_journals(cluster):
    """Every turn in every journal on disk: id -> {agent, key, ops, final, error, text, reply}."""
    turns, torn = {}, 0
    for name in cluster.agents:
        records, bad = read_journal(cluster.agent_dir(name) / "journal.jsonl")
        torn += bad
        for rec in (one for line in records for one in as_records(line)):
            turn = turns.setdefault(rec.get("id"), {"agent": name, "ops": [], "key": None, "error": None,
                                                    "text": None, "reply": None})
            turn["ops"].append(rec.get("op"))
            if rec.get("op") == "accepted":
                turn["key"], turn["text"] = rec.get("key"), rec.get("text")
            elif rec.get("op") in TERMINAL and turn.get("final") is None:
                turn["final"], turn["error"], turn["reply"] = rec["op"], rec.get("error"), rec.get("reply")
    return turns, torn


async def wait_quiet(cluster, timeout):
    """Until no journal has a pending or running turn (or `timeout`); returns seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        turns, _ = scan_journals(cluster)
        if all(check_turn(t["ops"])[1] in TERMINAL for t in turns.values()):
            return round(time.monotonic() - start, 1)
        await asyncio.sleep(1.0)
    return None


async def audit(cluster, client, chaos):
    """Compare what the client saw with the journals on disk and with the gateway's answers."""
    turns, torn = scan_journals(cluster)
    report = {"torn_lines": torn, "journal_turns": len(turns), "violations": []}
    bad = report["violations"]
    for tid, turn in turns.items():
        for problem in check_turn(turn["ops"])[0]:
            bad.append({"kind": "unfinished" if problem.startswith("no terminal") else "duplicated",
                        "turn": tid, "problem": problem})
        if turn.get("final") == "completed" and turn["text"] and turn["text"] not in (turn["reply"] or ""):
            bad.append({"kind": "wrong reply", "turn": tid, "problem": "reply is not this turn's: %r"
                        % (turn["reply"] or "")[:120]})
    by_key = {}
    for tid, turn in turns.items():
        if turn["key"]:
            by_key.setdefault(turn["key"], []).append(tid)
    for key, ids in by_key.items():
        if len(ids) > 1:
            bad.append({"kind": "duplicated", "turn": ids, "problem": "idempotency key %s made %d turns"
                        % (key, len(ids))})
    seen = [r for r in client.turns.values() if r["turn_id"]]
    for rec in client.turns.values():
        if rec.get("key_conflict"):
            bad.append({"kind": "duplicated", "turn": rec["key_conflict"], "problem": "one key, two turn ids"})
        if rec["turn_id"] and rec["turn_id"] not in turns:
            bad.append({"kind": "lost", "turn": rec["turn_id"], "problem": "accepted, but in no journal"})
        if not rec["turn_id"] and rec["key"] in by_key:
            rec["turn_id"] = by_key[rec["key"]][0]
            rec["unseen"] = True   # accepted, but the client never heard it before its window ended
    for name, (shims, engines) in chaos.copies.items():
        if shims > 1 or engines > 1:
            bad.append({"kind": "live copies", "turn": name, "problem": "%d shims and %d engines alive at once%s"
                        % (shims, engines, " (singleton)" if name in cluster.singletons else "")})
    report["gateway_mismatch"] = await check_gateway(client, turns, bad)
    report["seen"] = seen
    report["turns"] = turns
    return report


async def check_gateway(client, turns, bad):
    """Every journalled turn, looked up by id through the (restarted) gateway, must match its journal."""
    sem = asyncio.Semaphore(16)
    mismatches = []

    async def one(tid, turn):
        async with sem:
            status, body = await client.get_turn(tid)
        got = body.get("status") if status == 200 and isinstance(body, dict) else "HTTP %s" % status
        if got != turn.get("final"):
            mismatches.append(tid)
            bad.append({"kind": "unretrievable", "turn": tid, "problem": "gateway says %s, journal says %s"
                        % (got, turn.get("final"))})

    await asyncio.gather(*(one(tid, t) for tid, t in turns.items()))
    return len(mismatches)


async def drive(cluster, args):
    """Load + chaos for `duration`, then quiescence and the audit; returns the report."""
    rng = random.Random(args.seed)
    cluster.start_gateway()
    await cluster.wait_gateway()
    client = Client(cluster, rng, args.retry_window)
    await client.open()
    chaos = Chaos(cluster, client, rng, args)
    started = time.monotonic()
    until = started + args.duration
    tasks = []
    watcher = asyncio.ensure_future(chaos.watch_copies(float("inf")))
    chaos_task = asyncio.ensure_future(chaos.run(until))
    names = sorted(cluster.agents)
    throttled = 0
    try:
        while time.monotonic() < until or not chaos_task.done():
            tasks = [t for t in tasks if not t.done()] if len(tasks) > 500 else tasks
            if sum(1 for t in tasks if not t.done()) < args.max_in_flight:
                tasks.append(asyncio.ensure_future(client.send(rng.choice(names))))
            else:
                throttled += 1
            await asyncio.sleep(rng.expovariate(args.rate))
        await chaos_task
        for host in cluster.hosts:          # a host stopped by the last event is back already; be sure
            host.start().wait_ready()
        await asyncio.gather(*tasks, *chaos.probes)
        settle = await wait_quiet(cluster, args.settle)
        await asyncio.sleep(1.0)             # one more /proc sample after the last respawn
        watcher.cancel()
        report = await audit(cluster, client, chaos)
    finally:
        watcher.cancel()
        await client.close()
    report.update(settle_s=settle, load_s=round(time.monotonic() - started, 1), throttled=throttled,
                  client_errors=client.errors, events=chaos.events, copy_samples=chaos.copy_samples,
                  gateway_generations=cluster.gateway_gen)
    return summarise(report, cluster, client)


def summarise(report, cluster, client):
    turns, seen = report.pop("turns"), report.pop("seen")
    finals = {}
    causes = {}
    for turn in turns.values():
        final = turn.get("final") or "unfinished"
        finals[final] = finals.get(final, 0) + 1
        if final in ("failed", "interrupted"):
            key = "%s: %s" % (final, cause_of(turn["error"]))
            causes[key] = causes.get(key, 0) + 1
    kills, recovery = {}, {}
    for event in report["events"]:
        if event["done"]:
            kills[event["kind"]] = kills.get(event["kind"], 0) + 1
            if "recovery_s" in event:
                recovery.setdefault(event["kind"], []).append(event["recovery_s"])
        event.pop("t0", None)
    count = {}
    for v in report["violations"]:
        count[v["kind"]] = count.get(v["kind"], 0) + 1
    gens = {}
    for rec in seen:
        gens[rec["gateway_gen"]] = gens.get(rec["gateway_gen"], 0) + 1
    before_crash = sum(n for gen, n in gens.items() if gen and gen < cluster.gateway_gen)
    report.update(
        sent=len(client.turns), accepted=len(seen), accepted_unseen=sum(1 for r in client.turns.values()
                                                                         if r.get("unseen")),
        never_accepted=sum(1 for r in client.turns.values() if not r["turn_id"]),
        answered=sum(1 for r in client.turns.values() if r["status"] in TERMINAL),
        accepted_before_a_gateway_crash=before_crash, finals=finals, causes=causes, kills=kills,
        recovery={k: {"n": len(v), "median_s": statistics.median(v), "max_s": max(v)} for k, v in recovery.items()},
        unrecovered=sum(1 for e in report["events"] if e["done"] and e.get("probe") and "recovery_s" not in e),
        lost=count.get("lost", 0), unretrievable=count.get("unretrievable", 0), duplicated=count.get("duplicated", 0), unfinished=count.get("unfinished", 0),
        wrong_replies=count.get("wrong reply", 0), live_copies=count.get("live copies", 0),
        engine=cluster.engine_note)
    return report


def failed_checks(report):
    return {k: report[k] for k in ("lost", "duplicated", "unfinished", "unretrievable", "wrong_replies",
                                   "live_copies") if report[k]}


def render(report):
    out = []
    add = out.append
    add("sac chaos run  %s  %s  seed=%s  %ss of load, %s hosts x %s agents (+%s claude)"
        % (report["date"], report["machine"], report["seed"], report["duration"], report["hosts"],
           report["agents_per_host"], report["claude_agents"]))
    rows = [("turns sent", report["sent"]), ("turns accepted (client saw the id)", report["accepted"]),
            ("  accepted before a gateway crash", report["accepted_before_a_gateway_crash"]),
            ("  accepted, client gave up before hearing", report["accepted_unseen"]),
            ("never accepted (client gave up)", report["never_accepted"]),
            ("turns in journals", report["journal_turns"])]
    rows += [("  %s" % k, v) for k, v in sorted(report["finals"].items())]
    rows += [("    %s" % k, v) for k, v in sorted(report["causes"].items())]
    rows += [("lost", report["lost"]), ("duplicated", report["duplicated"]),
             ("unfinished (no terminal state)", report["unfinished"]), ("wrong replies", report["wrong_replies"]),
             ("agents with two live copies", report["live_copies"]),
             ("turns the gateway answers differently from the journal", report["unretrievable"]),
             ("torn journal lines", report["torn_lines"])]
    add("")
    for label, value in rows:
        add("%-48s %8s" % (label, value))
    add("")
    add("%-10s %6s %12s %10s" % ("fault", "count", "recovery p50", "max"))
    for kind in KINDS:
        rec = report["recovery"].get(kind)
        add("%-10s %6d %12s %10s" % (kind, report["kills"].get(kind, 0),
                                     "%.2fs" % rec["median_s"] if rec else "-", "%.2fs" % rec["max_s"] if rec else "-"))
    add("faults whose agent never answered again: %d; quiescent %ss after the load; %d /proc samples"
        % (report["unrecovered"], report["settle_s"], report["copy_samples"]))
    if report["client_errors"]:
        add("transient answers retried with the same key: " + ", ".join(
            "%s x%d" % (k, v) for k, v in sorted(report["client_errors"].items(), key=lambda kv: -kv[1])))
    add("engine: %s" % report["engine"])
    for v in report["violations"][:20]:
        add("VIOLATION %s %s: %s" % (v["kind"], v["turn"], v["problem"]))
    add("RESULT: %s" % ("ok (lost = 0, duplicated = 0)" if not failed_checks(report)
                        else "FAILED %s" % failed_checks(report)))
    return "\n".join(out)


def run(args):
    """Set up, drive, audit, tear down; the report (a dict)."""
    reason = sshd_available()
    if reason:
        raise SystemExit("cannot start sshd hosts: %s" % reason)
    root = Path(tempfile.mkdtemp(prefix="sac-chaos-"))
    cluster = Cluster(root, args)
    try:
        cluster.setup()
        report = asyncio.run(drive(cluster, args))
    finally:
        cluster.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report.update(date=time.strftime("%Y-%m-%d %H:%M"), machine="%s, %d cores, Python %s" % (
        platform.machine(), os.cpu_count(), platform.python_version()), seed=args.seed, duration=args.duration,
        hosts=args.hosts, agents_per_host=args.agents_per_host, claude_agents=args.claude_agents,
        root=str(root) if args.keep else None)
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=180, help="seconds of load and chaos (default 180)")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--agents-per-host", type=int, default=4)
    parser.add_argument("--claude-agents", type=int, default=1, help="Claude Code agents on the built-in "
                        "provider, for provider faults (default 1; 0 for none)")
    parser.add_argument("--rate", type=float, default=10, help="turns per second, on average (default 10)")
    parser.add_argument("--interval", type=float, default=4, help="mean seconds between faults (default 4)")
    parser.add_argument("--sshd-down", type=float, default=6, help="longest sshd outage, seconds (default 6)")
    parser.add_argument("--stall-timeout", type=float, default=8, help="claude agents' stall_timeout_s (default 8)")
    parser.add_argument("--retry-window", type=float, default=60, help="how long the client retries one turn")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--settle", type=float, default=120, help="longest wait for quiescence after the load")
    parser.add_argument("--host-python", default="/usr/bin/python3", help="Python of the node (and of the "
                        "fast engine) on the hosts (default /usr/bin/python3)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (journals, logs)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 30)
    return args


def main(argv=None):
    args = parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=1, default=str) if args.json else render(report))
    return 1 if failed_checks(report) else 0


if __name__ == "__main__":
    sys.exit(main())
