"""Gateway throughput and latency: `sac fleet serve` over SSH hosts versus the same engines fed directly.

    python bench/gateway.py [--hosts 4] [--agents-per-host 8] [--concurrency 64] [--turns 5000]
                            [--duration 20] [--serial-turns 300] [--repeat 3] [--profile-s 8]
                            [--via-jump-host] [--json]

Sets up 4 real OpenSSH sshd hosts on loopback (tests/fixtures/sshd.py) with 8
agents each whose engine is examples/engines/fast_engine.py (an instant
stream-json engine, so the figures are orchestration, not a model), starts them
with `sac fleet up`, and one `sac fleet serve` gateway process. Measured in the
same run, against 32 fast_engine processes this script spawns and feeds
stream-json lines itself (the same interpreter, one turn at a time per engine):

  loaded   `--concurrency` turns in flight (keep-alive HTTP/1.1 connections, `POST /v1/turn`
           wait=true, agents round robin) until `--turns` or `--duration`, whichever first
  serial   one turn in flight: the latency of a turn on an otherwise idle fleet

each `--repeat` times (3), the two paths interleaved; the median run is reported,
and every run's figure is listed (this VM's speed drifts by up to 2x),

plus the CPU each process group spent per turn (from /proc), per-stage times of the
serial turns (from the journal's timestamps) and, when py-spy is installed, a
sampled profile of the gateway, one node daemon and one shim under load.
Loopback only; every process started here is stopped at the end.
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from sac_node import __version__ as SAC_VERSION  # noqa: E402
from tests.fixtures import procs  # noqa: E402
from tests.fixtures.sshd import SshdFleet, sshd_available  # noqa: E402

FAST_ENGINE = REPO / "examples" / "engines" / "fast_engine.py"
THROUGHPUT_GOAL = 1000.0  # turns/s through one gateway
ADDED_P50_GOAL_MS = 3.0  # over direct, serial
TURN_TIMEOUT_S = 60


def percentile(values, q):
    """The q-th percentile (0..100) of `values`, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))]


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- the fleet and its gateway ---------------------------------------------------------------------


class Rig:
    """N sshd hosts, M fast-engine agents on each (pinned), and a `sac fleet serve` process."""

    def __init__(self, root, args):
        self.root, self.args = Path(root), args
        self.env = dict(os.environ, SAC_HOME=str(self.root / "head-home"), NO_COLOR="1", COLUMNS="200")
        self.sshd = SshdFleet(self.root / "sshd")
        self.hosts = self.sshd.start(args.hosts, log_level="ERROR")
        self.agents = []  # names, host by host
        self.gateway = self.url = self.token = None
        self.inventory = self._write_inventory()

    def _write_inventory(self):
        runtime = self.args.runtime
        hosts, entries = {}, []
        for host in self.hosts:
            hosts[host.name] = dict(host.inventory_fields(), python=self.args.host_python)
            for i in range(self.args.agents_per_host):
                name = "%s-a%d" % (host.name, i + 1)
                spec = {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": name},
                        "spec": {"engine": {"command": [self.args.engine_python, str(FAST_ENGINE)]},
                                 "isolation": {"runtime": runtime}}}
                path = self.root / "agents" / name / "spec.yaml"
                path.parent.mkdir(parents=True)
                path.write_text(yaml.safe_dump(spec, sort_keys=False))
                entries.append({"spec": "agents/%s" % name, "placement": {"hosts": [host.name]}})
                self.agents.append(name)
        if self.args.jump:
            bastion = self.sshd.start(1, log_level="ERROR")[0]
            for entry in hosts.values():
                entry["jump"] = [bastion.name]
            hosts[bastion.name] = dict(bastion.inventory_fields(), jump_only=True)
        inventory = self.root / "inventory.yaml"
        inventory.write_text(yaml.safe_dump({"defaults": {"connect_timeout": 30}, "hosts": hosts,
                                             "agents": entries}, sort_keys=False))
        return inventory

    def sac(self, *args, timeout=300):
        argv = [sys.executable, "-m", "sac_fleet"] + [str(a) for a in args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def up(self, tries=3):
        """`sac fleet up` (idempotent: tried again when a start failed on a busy machine); its time."""
        start = time.monotonic()
        for _ in range(tries):
            proc = self.sac("fleet", "up", "-i", self.inventory, "--json")
            try:
                report = json.loads(proc.stdout)
            except ValueError:
                raise RuntimeError("sac fleet up exited %d: %s" % (proc.returncode, proc.stderr[-2000:])) from None
            if report["ok"]:
                return time.monotonic() - start
            problems = [r.get("error") for r in report["results"] if not r["ok"]] or [
                h for h in report["hosts"] if h["state"] != "ok"]
            print("sac fleet up: not ok yet: %s" % str(problems)[:500], file=sys.stderr)
        raise RuntimeError("sac fleet up failed %d times: %s" % (tries, str(problems)[:2000]))

    def serve(self):
        """Start `sac fleet serve INVENTORY --port 0` and read its URL and token."""
        argv = [sys.executable, "-m", "sac_fleet", "fleet", "serve", "-i", str(self.inventory), "--port", "0",
                "--print-token"] + ([] if self.args.access_log else ["--no-access-log"])
        self.gateway_log = self.root / "gateway.log"
        with open(str(self.gateway_log), "w") as log:
            self.gateway = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=log, text=True)
        lines = []
        while not any(l.startswith("token:") for l in lines):
            line = self.gateway.stdout.readline()
            if not line:
                raise RuntimeError("the gateway exited: %s\n%s" % (lines, self.gateway_log.read_text()[-3000:]))
            lines.append(line.strip())
        self.url = next(l for l in lines if l.startswith("sac gateway on")).split()[3]
        self.token = next(l for l in lines if l.startswith("token:")).split()[1]

    def stop_gateway(self):
        if self.gateway is None or self.gateway.poll() is not None:
            return None
        self.gateway.send_signal(signal.SIGTERM)
        try:
            return self.gateway.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.gateway.kill()
            return self.gateway.wait()

    def node_pids(self, host, role, agent=None):
        """Daemon or shim pids of `host` (their command lines name its state dir), or the shim of `agent`."""
        marker = str(host.state_dir)
        return sorted(pid for pid, argv in ((p.pid, p.argv) for p in procs.processes().values())
                      if any(marker in a for a in argv) and role in argv[1:4] and "bwrap" not in argv[0]
                      and (agent is None or argv[-1].endswith("/agents/" + agent)))

    def close(self):
        self.stop_gateway()
        for host in self.hosts:
            kill_all(self.node_pids(host, "daemon") + self.node_pids(host, "shim"))
        self.sshd.close()


# -- the two ways to hand a turn to an engine ------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request at a time, the reply's status and body."""

    def __init__(self):
        self.transport, self.buffer, self.reply, self.lost = None, b"", None, None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.reply is None or self.reply.done():
            return
        head = self.buffer[:end].lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
        self.reply.set_result((int(head[9:12]), body, b"\r\nconnection: close" in head))

    def connection_lost(self, exc):
        self.lost = exc or ConnectionResetError("the gateway closed the connection")
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(self.lost)

    async def request(self, data):
        self.reply = asyncio.get_event_loop().create_future()
        self.transport.write(data)
        return await self.reply


class GatewayClient:
    """`POST /v1/turn {agent, text, wait: true}` over keep-alive HTTP/1.1 connections.

    A small client on an asyncio protocol, one connection per turn in flight: it writes the
    request and reads the status line, the headers and the Content-Length bytes of the
    body. The load generator shares the two cores with what it measures, so it should
    cost little; aiohttp's client took about four times its CPU per turn.
    """

    def __init__(self, rig, concurrency):
        self.rig, self.concurrency = rig, concurrency
        url = urllib.parse.urlsplit(rig.url)
        self.address = (url.hostname, url.port)
        self.headers = ("Host: %s:%d\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
                        % (url.hostname, url.port, rig.token))
        self.idle = []  # open connections, not in use

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        for conn in self.idle:
            conn.transport.close()

    async def request(self, method, route, body=None):
        """(status, body bytes) of one request on a kept-alive connection."""
        conn = self.idle.pop() if self.idle else (
            await asyncio.get_event_loop().create_connection(HttpConnection, *self.address))[1]
        data = json.dumps(body).encode() if body is not None else b""
        status, payload, closing = await conn.request(
            ("%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (method, route, self.headers, len(data))).encode()
            + data)
        if closing or conn.lost:
            conn.transport.close()
        else:
            self.idle.append(conn)
        return status, payload

    async def turn(self, index, text):
        body = {"agent": self.rig.agents[index % len(self.rig.agents)], "text": text, "wait": True,
                "timeout_s": TURN_TIMEOUT_S}
        status, payload = await self.request("POST", "/v1/turn", body)
        answer = json.loads(payload) if payload else {}
        if status != 200 or answer.get("status") != "completed" or answer.get("text") != "echo: " + text:
            raise RuntimeError("turn %d: HTTP %d %s" % (index, status, str(answer)[:300]))
        return answer

    async def get(self, route):
        status, _ = await self.request("GET", route)
        if status != 200:
            raise RuntimeError("GET %s: HTTP %d" % (route, status))


class DirectEngines:
    """N fast_engine processes on this machine, fed stream-json lines; one turn at a time per engine."""

    def __init__(self, count, python):
        self.count, self.python, self.engines = count, python, []

    async def __aenter__(self):
        for _ in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                self.python, str(FAST_ENGINE), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, limit=1 << 20)
            self.engines.append((proc, asyncio.Lock()))
        return self

    async def __aexit__(self, *exc):
        for proc, _ in self.engines:
            proc.stdin.close()
        for proc, _ in self.engines:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()

    @property
    def pids(self):
        return [proc.pid for proc, _ in self.engines]

    async def turn(self, index, text):
        proc, lock = self.engines[index % self.count]
        line = json.dumps({"type": "user", "message": {"role": "user", "content": text}}) + "\n"
        async with lock:
            proc.stdin.write(line.encode("utf-8"))
            await proc.stdin.drain()
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    raise RuntimeError("direct engine %d exited" % (index % self.count))
                event = json.loads(raw)
                if event.get("type") == "result":
                    break
        if event.get("result") != "echo: " + text:
            raise RuntimeError("direct turn %d: unexpected result %r" % (index, event.get("result")))
        return event


# -- driving turns ---------------------------------------------------------------------------------


async def drive(turn, concurrency, total, duration, keep=False):
    """`concurrency` workers send turns (round robin over agents) until `total` or `duration` s.

    Returns {turns, elapsed_s, latencies_s, stamps}; stamps (send, receive, answer) when `keep`.
    """
    state = {"next": 0}
    latencies, stamps = [], []
    start = time.perf_counter()
    deadline = start + duration

    async def worker():
        while state["next"] < total and time.perf_counter() < deadline:
            index = state["next"]
            state["next"] += 1
            sent_wall, sent = time.time(), time.perf_counter()
            answer = await turn(index, "turn %d" % index)
            latencies.append(time.perf_counter() - sent)
            if keep:
                stamps.append((sent_wall, time.time(), answer))

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return {"turns": len(latencies), "elapsed_s": time.perf_counter() - start, "latencies_s": latencies,
            "stamps": stamps}


async def pairs(gateway, count):
    """Two turns at once to two agents of one host, `count` times, 5 ms apart; latency of each pair.

    What a server's Nagle algorithm costs: the second reply waits for the first one's ACK, which
    the head delays (~40 ms) when it has nothing to send back (docs/benchmarks.md)."""
    latencies, start = [], time.perf_counter()
    for i in range(count):
        sent = time.perf_counter()
        await asyncio.gather(gateway.turn(0, "pair %d a" % i), gateway.turn(1, "pair %d b" % i))
        latencies.append(time.perf_counter() - sent)
        await asyncio.sleep(0.005)
    return {"turns": 2 * count, "elapsed_s": time.perf_counter() - start, "latencies_s": latencies}


def summary(run):
    lat = run["latencies_s"]
    return {"turns": run["turns"], "elapsed_s": round(run["elapsed_s"], 3),
            "turns_per_s": run["turns"] / run["elapsed_s"] if run["elapsed_s"] else None,
            "p50_ms": percentile(lat, 50) * 1e3, "p90_ms": percentile(lat, 90) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3, "mean_ms": statistics.mean(lat) * 1e3}


def stages(stamps):
    """Medians of where a gateway turn's time went, from the node's journal timestamps (one clock)."""
    parts = {"client -> accepted (HTTP, gateway, SSH, daemon, shim)": [],
             "accepted -> started (journal fsync, queue)": [],
             "started -> ended (fsync, engine turn, transcript)": [],
             "ended -> client (fsync, wait reply, SSH, gateway, HTTP)": []}
    names = list(parts)
    for sent, received, answer in stamps:
        marks = [sent, answer["accepted_at"], answer["started_at"], answer["ended_at"], received]
        for name, a, b in zip(names, marks, marks[1:]):
            parts[name].append(b - a)
    return {name: statistics.median(v) * 1e3 for name, v in parts.items() if v}


# -- where the time goes: CPU per process group (/proc), py-spy samples -------------------------------


def machine_busy_s():
    """(user, system) CPU seconds all cores spent busy since boot (/proc/stat; iowait counts as idle)."""
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = [int(x) for x in fh.readline().split()[1:9]]
    return ((user + nice) / procs.CLOCK_TICKS, (system + irq + softirq + steal) / procs.CLOCK_TICKS)


def classify(rig, direct_pids, table):
    """{pid: group} of the processes this benchmark runs."""
    children = {}
    for pid, process in table.items():
        children.setdefault(process.ppid, []).append(pid)
    groups = {os.getpid(): "load client (this script)", rig.gateway.pid: "gateway (sac fleet serve)"}
    groups.update((pid, "direct engines") for pid in direct_pids)
    markers = [str(h.state_dir) for h in rig.hosts]
    for pid, process in table.items():
        argv = process.argv
        if pid in groups or not any(m in a for a in argv for m in markers):
            continue
        role = "node daemons" if "daemon" in argv[1:4] else "shims" if "shim" in argv[1:4] else None
        groups[pid] = role or "bwrap + engines (sac)"
    sandboxed = [pid for pid, g in groups.items() if g == "bwrap + engines (sac)"]
    while sandboxed:  # the engine under bwrap does not name the state dir
        pid = sandboxed.pop()
        for child in children.get(pid, []):
            groups.setdefault(child, "bwrap + engines (sac)")
            sandboxed.append(child)
    for pid, process in table.items():
        if pid not in groups and (pid == 2 or process.ppid == 2):
            groups[pid] = "kernel threads (fsync, loopback)"
    stack = [h.process.pid for h in rig.hosts if h.process is not None]
    while stack:
        pid = stack.pop()
        if pid not in groups:
            groups[pid] = "sshd (per connection)"
        stack.extend(children.get(pid, []))
    return groups


def cpu_by_group(rig, direct_pids):
    """[user, system] CPU seconds so far per group, plus the whole machine's busy time."""
    table = procs.processes()
    totals = {MACHINE: list(machine_busy_s())}
    for pid, group in classify(rig, direct_pids, table).items():
        if pid in table:
            total = totals.setdefault(group, [0.0, 0.0])
            total[0] += table[pid].cpu_s[0]
            total[1] += table[pid].cpu_s[1]
    return totals


def cpu_delta(before, after):
    return {g: [a - b for a, b in zip(v, before.get(g, (0.0, 0.0)))] for g, v in after.items()}


def render_cpu(report):
    runs = [report["direct_loaded"], report["gateway_loaded"]]
    lines = ["CPU per turn in the loaded runs, ms (from /proc; user + system, and the system part; "
             "'other' is the rest of the machine):", "",
             "| process group | direct | gateway | gateway: system part |", "|---|---:|---:|---:|"]
    for r in runs:
        r["cpu_s"][OTHER] = [m - sum(v[i] for k, v in r["cpu_s"].items() if k not in (MACHINE, OTHER))
                             for i, m in enumerate(r["cpu_s"][MACHINE])]
    for group in [g for g in CPU_ORDER if any(g in r["cpu_s"] for r in runs)] + [OTHER, MACHINE]:
        cells = ["%.3f" % (sum(r["cpu_s"].get(group, (0.0, 0.0))) * 1e3 / r["turns"]) for r in runs]
        cells.append("%.3f" % (runs[1]["cpu_s"].get(group, (0.0, 0.0))[1] * 1e3 / runs[1]["turns"]))
        lines.append("| %s | %s |" % (group, " | ".join(cells)))
    lines.append("| (cores busy, of %d) | %s | |" % (report["machine"]["cores"], " | ".join(
        "%.2f" % (sum(r["cpu_s"][MACHINE]) / r["wall_s"]) for r in runs)))
    return lines


MACHINE, OTHER = "(whole machine, busy)", "other (not this benchmark)"
CPU_ORDER = ("load client (this script)", "direct engines", "gateway (sac fleet serve)", "sshd (per connection)",
             "node daemons", "shims", "bwrap + engines (sac)", "kernel threads (fsync, loopback)")
PY_SPY_RATE = 200


def find_py_spy():
    for candidate in (shutil.which("py-spy"), str(Path(sys.executable).parent / "py-spy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


async def profile_under_load(rig, gateway, args):
    """py-spy (wall clock, idle included): the gateway under fleet-wide load, then h1's daemon and the
    shim of h1-a1 with all turns sent to that one agent (else each shim idles most of the time)."""
    spy = find_py_spy()
    if spy is None:
        return {"skipped": "py-spy not found (pip install py-spy)"}
    first = rig.agents[0]
    fleet = await spy_while(spy, rig, {"gateway": rig.gateway.pid}, gateway.turn, args.concurrency, args)
    one = await spy_while(spy, rig, {"node daemon (h1)": rig.node_pids(rig.hosts[0], "daemon")[0],
                                     "shim (%s)" % first: rig.node_pids(rig.hosts[0], "shim", first)[0]},
                          lambda index, text: gateway.turn(0, text), ONE_AGENT_FLIGHT, args)
    profile = {"rate_hz": PY_SPY_RATE, "fleet-wide load, %d in flight" % args.concurrency: fleet,
               "all turns to %s, %d in flight" % (first, ONE_AGENT_FLIGHT): one}
    if shutil.which("strace"):
        profile["syscalls"] = await strace_while(rig, {"gateway": rig.gateway.pid}, gateway.turn, args.concurrency)
        profile["syscalls"].update(await strace_while(
            rig, {"node daemon (h1)": rig.node_pids(rig.hosts[0], "daemon")[0],
                  "shim (%s)" % first: rig.node_pids(rig.hosts[0], "shim", first)[0]},
            lambda index, text: gateway.turn(0, text), ONE_AGENT_FLIGHT))
    return profile


async def strace_while(rig, targets, turn, concurrency, seconds=4.0):
    """System calls per turn of each target (`strace -c -f`; slows them while attached, counts stay right)."""
    traces = {name: subprocess.Popen(["strace", "-c", "-f", "-p", str(pid)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True) for name, pid in targets.items()}
    await asyncio.sleep(0.5)  # attached
    run = await drive(turn, concurrency, 10 ** 9, seconds)
    result = {}
    for name, proc in traces.items():
        proc.send_signal(signal.SIGINT)
        calls = {}
        for line in proc.communicate(timeout=30)[1].splitlines():
            cols = line.split()
            if len(cols) >= 5 and cols[-1] != "total" and cols[3].isdigit() and cols[0][0].isdigit():
                calls[cols[-1]] = int(cols[3])
        per_turn = sorted(((k, v / max(run["turns"], 1)) for k, v in calls.items() if k not in IGNORED_CALLS),
                          key=lambda kv: -kv[1])
        result[name] = {"turns": run["turns"], "per_turn": sum(v for _, v in per_turn), "top": per_turn[:8]}
    return result


IGNORED_CALLS = ("restart_syscall",)  # the interrupted wait of the moment strace attached


ONE_AGENT_FLIGHT = 8


async def spy_while(spy, rig, targets, turn, concurrency, args):
    """Sample `targets` ({name: pid}) with py-spy while `concurrency` turns are in flight."""
    spies = {}
    for name, pid in targets.items():
        out = rig.root / ("spy-%d.txt" % pid)
        spies[name] = (out, subprocess.Popen(
            [spy, "record", "-p", str(pid), "-d", str(int(args.profile_s)), "-r", str(PY_SPY_RATE), "--idle",
             "--nonblocking", "--nolineno", "-f", "raw", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    run = await drive(turn, concurrency, 10 ** 9, args.profile_s + 1.0)
    result = {"turns_per_s": run["turns"] / run["elapsed_s"]}
    for name, (out, proc) in spies.items():
        errors = proc.communicate(timeout=60)[1]
        result[name] = digest_stacks(out.read_text() if out.exists() else "")
        if not result[name]["samples"]:
            result[name]["error"] = errors.strip()[-500:]
    return result


def digest_stacks(raw):
    """Collapsed stacks of the main thread -> shares of its samples: idle vs busy, by package, top functions.

    Other threads (the executor's idle workers, asyncio's child watcher blocked in waitpid) are left out.
    """
    buckets, self_time, inclusive, total = {}, {}, {}, 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or "Thread._bootstrap (threading.py)" in frames:
            continue
        count, leaf = int(count), frames[-1]
        total += count
        bucket = leaf_bucket(leaf)
        buckets[bucket] = buckets.get(bucket, 0) + count
        if bucket != IDLE:
            self_time[leaf] = self_time.get(leaf, 0) + count
            for frame in set(frames):
                if not frame.endswith(INFRA):
                    inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return {"samples": 0}

    def share(counts, n):
        return [(k, round(100.0 * v / total, 1)) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]
    return {"samples": total, "busy_pct": round(100.0 * (total - buckets.get(IDLE, 0)) / total, 1),
            "buckets_pct": share(buckets, 12), "top_self_pct": share(self_time, 12),
            "top_inclusive_pct": share(inclusive, 14)}


IDLE = "idle (waiting in epoll)"
# Frames every busy sample passes through (event loop, entry points): not worth listing as "inclusive".
INFRA = ("(asyncio/base_events.py)", "(asyncio/events.py)", "(asyncio/runners.py)", "(<frozen runpy>)",
         "(__main__.py)", "(typer/core.py)", "(typer/_click/core.py)", "(typer/main.py)", "(sac_fleet/__main__.py)",
         "(sac_fleet/frontends/cli/serve_cmd.py)", "(sac_fleet/frontends/gateway/http.py)", "(shim.py)",
         "(daemon.py)", "(rpc.py)", "(aiohttp/web_protocol.py)", "(asyncio/selector_events.py)")
SAC_NODE_FILES = frozenset(p.name for p in (REPO / "sac_node").rglob("*.py"))


def leaf_bucket(frame):
    """What the sampled thread was doing, from its innermost Python frame `func (file)`."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    if where == "selectors.py" and "select" in func:
        return IDLE
    if where.endswith("journal.py") and func.endswith("_append"):
        return "journal append (write + fsync)"
    if where in ("fallback.py", "msgpack/fallback.py"):
        return "msgpack (pure-Python fallback)"
    top = where.split("/")[0]
    if top in ("aiohttp", "asyncssh", "multidict", "yarl", "msgpack", "json", "logging", "asyncio",
               "sac_fleet", "sac_node", "pydantic", "pydantic_core", "cryptography", "nacl"):
        return top
    if where in SAC_NODE_FILES:  # node.pyz's modules appear by base name
        return "sac_node"
    return "other (%s)" % where[:40]


def render_profile(profile):
    if "skipped" in profile:
        return ["profile: %s" % profile["skipped"]]
    lines = ["py-spy at %d Hz, wall clock (idle included), main thread only:" % profile["rate_hz"]]
    for phase, result in profile.items():
        if not isinstance(result, dict) or phase == "syscalls":
            continue
        lines += ["", "%s (%.0f turns/s while sampling):" % (phase, result["turns_per_s"])]
        for name, p in result.items():
            if not isinstance(p, dict):
                continue
            if not p.get("samples"):
                lines += ["- %s: no samples: %s" % (name, p.get("error"))]
                continue
            lines += ["- %s: %d samples, busy %.0f%%" % (name, p["samples"], p["busy_pct"]),
                      "  - by innermost frame: " + ", ".join("%s %.1f%%" % tuple(kv) for kv in p["buckets_pct"]),
                      "  - top self: " + "; ".join("%s %.1f%%" % tuple(kv) for kv in p["top_self_pct"][:8]),
                      "  - top inclusive: " + "; ".join("%s %.1f%%" % tuple(kv) for kv in p["top_inclusive_pct"][:10])]
    if profile.get("syscalls"):
        lines += ["", "system calls per turn (strace -c -f; the gateway under fleet-wide load, the daemon and "
                  "shim with all turns to one agent):", ""]
        lines += ["- %s: %.1f per turn (%d turns): %s" % (name, r["per_turn"], r["turns"], ", ".join(
            "%s %.1f" % tuple(kv) for kv in r["top"])) for name, r in profile["syscalls"].items()]
    return lines


# -- the run ---------------------------------------------------------------------------------------


async def measure(rig, args):
    """Warm up both paths, then loaded and serial runs of each, direct first."""
    report = {}
    async with DirectEngines(len(rig.agents), args.engine_python) as direct, \
            GatewayClient(rig, args.concurrency) as gateway:
        for path in (direct, gateway):
            await drive(path.turn, len(rig.agents), 4 * len(rig.agents), 60)  # every engine answered
        groups = lambda: cpu_by_group(rig, direct.pids)  # noqa: E731
        runs = {}
        for _ in range(args.repeat):  # the two paths interleaved, so a noisy moment hits both
            for name, path in (("direct", direct), ("gateway", gateway)):
                before, wall = groups(), time.monotonic()
                run = await drive(path.turn, args.concurrency, args.turns, args.duration)
                cpu = cpu_delta(before, groups())
                runs.setdefault("%s_loaded" % name, []).append(
                    dict(summary(run), cpu_s=cpu, wall_s=time.monotonic() - wall))
            for name, path in (("direct", direct), ("gateway", gateway)):
                run = await drive(path.turn, 1, args.serial_turns, args.duration, keep=(path is gateway))
                runs.setdefault("%s_serial" % name, []).append(summary(run))
                if path is gateway:
                    runs["gateway_serial"][-1]["stages_ms"] = stages(run["stamps"])
                    turn_id = run["stamps"][-1][2]["turn_id"]
        for key, results in runs.items():  # the median run of each, and every run's figure
            figure = "turns_per_s" if key.endswith("_loaded") else "p50_ms"
            report[key] = sorted(results, key=lambda r: r[figure])[len(results) // 2]
            report.setdefault("repeats", {})[key] = [r[figure] for r in results]
        for name, route in (("GET /v1/health (HTTP only)", "/v1/health"),
                            ("GET /v1/turns/{id} (one RPC to the shim)", "/v1/turns/" + turn_id)):
            run = await drive(lambda index, text: gateway.get(route), 1, args.serial_turns, args.duration)
            report.setdefault("probes_serial", {})[name] = summary(run)
        report["pairs"] = summary(await pairs(gateway, args.serial_turns // 2))
        report["rss_mb"] = rss_of(rig)
        if args.profile_s > 0:
            report["profile"] = await profile_under_load(rig, gateway, args)
    return report


def rss_of(rig):
    """VmRSS (MB) of the gateway, and the median node daemon and shim, after the measured runs."""
    def rss(pid):
        try:
            with open("/proc/%d/status" % pid) as fh:
                return next(int(l.split()[1]) / 1024.0 for l in fh if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return None
    daemons = [rss(pid) for h in rig.hosts for pid in rig.node_pids(h, "daemon")]
    shims = [rss(pid) for h in rig.hosts for pid in rig.node_pids(h, "shim")]
    return {"gateway": rss(rig.gateway.pid), "node daemon (median)": statistics.median(daemons),
            "shim (median)": statistics.median(shims)}


def versions(args):
    import asyncssh
    return {"sac": SAC_VERSION, "commit": git_commit(), "python_head": platform.python_version(),
            "python_engine": subprocess.run([args.engine_python, "--version"], capture_output=True,
                                            text=True).stdout.strip(),
            "python_hosts": subprocess.run([args.host_python, "--version"], capture_output=True,
                                           text=True).stdout.strip(),
            "aiohttp": aiohttp.__version__, "asyncssh": asyncssh.__version__,
            "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()}


def git_commit():
    """HEAD's short hash, or $SAC_BENCH_COMMIT when run from an export without .git."""
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else os.environ.get("SAC_BENCH_COMMIT")


def run(args):
    load_before = os.getloadavg()[0]
    root = tempfile.mkdtemp(prefix="sac-bench-gateway-")
    rig = None
    try:
        rig = Rig(root, args)
        up_s = rig.up()
        rig.serve()
        report = asyncio.run(measure(rig, args))
        report["gateway_exit"] = rig.stop_gateway()
    finally:
        if rig is not None:
            rig.close()
        for _ in range(3):
            kill_all(pid for pid, p in procs.processes().items() if any(root in a for a in p.argv))
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
    report.update({
        "date": time.strftime("%Y-%m-%d"), "fleet_up_s": up_s,
        "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                    "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "versions": versions(args),
        "setup": {"hosts": args.hosts, "via_jump_host": args.jump, "agents_per_host": args.agents_per_host, "concurrency": args.concurrency,
                  "turns": args.turns, "duration_s": args.duration, "serial_turns": args.serial_turns,
                  "runtime": args.runtime, "access_log": args.access_log, "repeat": args.repeat}})
    report["goals"] = goals_of(report)
    return report


def own_cpu_ms(run):
    """CPU ms per turn of this benchmark's own processes (client included), whatever else the machine runs."""
    return sum(sum(v) for k, v in run["cpu_s"].items() if k not in (MACHINE, OTHER)) * 1e3 / run["turns"]


def goals_of(report):
    rate = report["gateway_loaded"]["turns_per_s"]
    added = report["gateway_serial"]["p50_ms"] - report["direct_serial"]["p50_ms"]
    own = own_cpu_ms(report["gateway_loaded"])
    return {"throughput": {"turns_per_s": rate, "limit": THROUGHPUT_GOAL, "met": rate >= THROUGHPUT_GOAL,
                           "own_cpu_ms_per_turn": own,
                           "cpu_bound_ceiling": report["machine"]["cores"] * 1e3 / own},
            "added_p50": {"ms": added, "limit": ADDED_P50_GOAL_MS, "met": added <= ADDED_P50_GOAL_MS}}


def render(report):
    """The report as plain text with Markdown tables."""
    met = lambda ok: "met" if ok else "NOT MET"  # noqa: E731
    v, s = report["versions"], report["setup"]
    lines = ["sac gateway  %s  %d cores (load %s before/after)  sac %s (%s)  python %s (head) / %s (engines)  "
             "aiohttp %s  asyncssh %s  %s" % (
                 report["date"], report["machine"]["cores"], "/".join(map(str, report["machine"]["load_avg_1m"])),
                 v["sac"], v["commit"], v["python_head"], v["python_engine"], v["aiohttp"], v["asyncssh"],
                 v["openssh"]),
             "%d hosts%s x %d agents (fast engine, runtime %s), %d in flight, up to %d turns or %gs; serial: %d turns; "
             "access log %s; sac fleet up took %.1f s" % (
                 s["hosts"], " (through a jump host)" if s.get("via_jump_host") else "", s["agents_per_host"], s["runtime"], s["concurrency"], s["turns"], s["duration_s"],
                 s["serial_turns"], "on" if s["access_log"] else "off", report["fleet_up_s"]),
             "", "| path | in flight | turns | turns/s | p50 ms | p90 ms | p99 ms | added p50 vs direct ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, flight in (("loaded", s["concurrency"]), ("serial", 1)):
        base = report["direct_%s" % kind]["p50_ms"]
        for path in ("direct", "gateway"):
            row = report["%s_%s" % (path, kind)]
            label = "direct (stream-json pipes)" if path == "direct" else "gateway -> SSH -> node -> shim"
            lines.append("| %s | %d | %d | %.0f | %.2f | %.2f | %.2f | %s |" % (
                label, flight, row["turns"], row["turns_per_s"], row["p50_ms"], row["p90_ms"], row["p99_ms"],
                "" if path == "direct" else "%+.2f" % (row["p50_ms"] - base)))
    lines += ["| %s | 1 | %d | %.0f | %.2f | %.2f | %.2f | |" % (
        name, r["turns"], r["turns_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"])
        for name, r in report["probes_serial"].items()]
    r = report["pairs"]
    lines.append("| 2 turns at once to one host, 5 ms apart (latency of the pair) | 2 | %d | | %.2f | %.2f | %.2f | |"
                 % (r["turns"], r["p50_ms"], r["p90_ms"], r["p99_ms"]))
    lines += ["", "serial gateway turn, median per stage (node journal timestamps), ms:", ""]
    lines += ["- %s: %.2f" % (name, ms) for name, ms in report["gateway_serial"]["stages_ms"].items()]
    rates = report["repeats"]["gateway_loaded"]
    added = [g - d for g, d in zip(report["repeats"]["gateway_serial"], report["repeats"]["direct_serial"])]
    lines += ["", "%d runs of each, interleaved; the tables show the median run. Every run: gateway loaded %s turns/s; "
              "serial added p50 %s ms" % (len(rates), ", ".join("%.0f" % r for r in rates),
                                         ", ".join("%+.2f" % a for a in added))]
    lines += [""] + render_cpu(report)
    lines += ["", "RSS after the measured runs: " + ", ".join("%s %.1f MB" % kv for kv in report["rss_mb"].items())]
    if report.get("profile"):
        lines += [""] + render_profile(report["profile"])
    g = report["goals"]
    lines += ["", "this benchmark's processes used %.2f ms CPU per gateway turn: with nothing else running, %d cores "
              "would carry at most ~%.0f turns/s (derived, not measured)" % (
                  g["throughput"]["own_cpu_ms_per_turn"], report["machine"]["cores"],
                  g["throughput"]["cpu_bound_ceiling"])]
    lines += ["", "goal: >= %.0f turns/s through one gateway: %.0f  %s" % (
        g["throughput"]["limit"], g["throughput"]["turns_per_s"], met(g["throughput"]["met"])),
        "goal: <= %.1f ms p50 added over direct (serial): %+.2f ms  %s" % (
        g["added_p50"]["limit"], g["added_p50"]["ms"], met(g["added_p50"]["met"]))]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=4, help="sshd hosts (default 4)")
    parser.add_argument("--agents-per-host", type=int, default=8, help="agents per host (default 8)")
    parser.add_argument("--concurrency", type=int, default=64, help="turns in flight, loaded runs (default 64)")
    parser.add_argument("--turns", type=int, default=5000, help="turns per loaded run at most (default 5000)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run at most (default 20)")
    parser.add_argument("--serial-turns", type=int, default=300, help="turns per serial run (default 300)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="loaded and serial runs of each path, interleaved; the median is reported (default 3)")
    parser.add_argument("--profile-s", type=int, default=8.0,
                        help="seconds of py-spy sampling under load, 0 to skip (default 8)")
    parser.add_argument("--runtime", default="bwrap" if shutil.which("bwrap") else "none",
                        choices=("bwrap", "none"), help="the agents' isolation.runtime (default bwrap when installed)")
    parser.add_argument("--via-jump-host", dest="jump", action="store_true",
                        help="reach every host through one more sshd host, a bastion (jump_only)")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false",
                        help="start the gateway with --no-access-log (default: its default, on)")
    parser.add_argument("--host-python", default="/usr/bin/python3", help="the hosts' python (node daemon, shims)")
    parser.add_argument("--engine-python", default="/usr/bin/python3",
                        help="the python that runs fast_engine.py, in the sandbox and directly alike")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not (1 <= args.hosts <= 50 and 1 <= args.agents_per_host <= 64 and 1 <= args.concurrency <= 1024
            and args.turns >= 1 and args.serial_turns >= 1 and args.duration > 0 and args.repeat >= 1):
        parser.error("out of range: --hosts 1..50, --agents-per-host 1..64, --concurrency 1..1024, counts >= 1")
    reason = sshd_available()
    if reason:
        parser.error("cannot start sshd hosts: %s" % reason)
    return args


def main(argv=None):
    args = parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
