"""Per-turn latency of a long-lived sac agent versus one `claude -p` process per turn, plus RSS.

    python bench/turn_latency.py [--turns 30] [--cli-turns 10] [--naive-turns 10] [--runtime bwrap|none] [--json]

Everything runs against the built-in provider (instant, deterministic replies) on
loopback, so the numbers measure orchestration and process cost, not a model.
Measured in the same run, interleaved round by round:

  sac API     `Fleet.send` to one long-lived agent (daemon -> shim -> sandboxed claude stream-json),
              with isolation.network: provider (the default: every request through the provider relay)
  no relay    the same with a second agent on isolation.network: host; the difference is the relay's cost
  sac CLI     `python -m sac_fleet agents send` per turn (includes Python start-up)
  naive       `claude -p PROMPT --output-format json`, a fresh process per turn
  floor       the same stream-json claude fed directly (no sac, no sandbox), for context
  RSS         VmRSS of the node daemon, the agent's shim and the engine (from /proc)

State lives in a temporary SAC_HOME; every process started here is stopped at the end.
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sac_fleet.api import Fleet  # noqa: E402
from sac_fleet.provider.server import ProviderServer  # noqa: E402
from tests.fixtures import procs  # noqa: E402
from tests.fixtures.agents import processes_mentioning  # noqa: E402

AGENT = "bench"
HOST_AGENT = "bench-host"  # the same agent on the host's network: no relay
REPLY_PREFIX = "echo: "
SPEED_UP_GOAL = 5.0
RSS_GOAL_MB = 30.0
API_ROW = "sac API (Fleet.send)"
HOST_ROW = "sac API, network: host (no relay)"
RELAY_GOAL_MS = 1.0
NAIVE_ROW = "naive (claude -p per turn)"


# -- numbers --------------------------------------------------------------------------


def percentile(values, q):
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarise(samples):
    """median, p95, mean, min, max (seconds) and n of latency samples."""
    return {"n": len(samples), "median_s": percentile(samples, 50), "p95_s": percentile(samples, 95),
            "mean_s": sum(samples) / len(samples), "min_s": min(samples), "max_s": max(samples)}


def read_status_kb(pid, field):
    """A `kB` field (VmRSS, VmHWM) of /proc/<pid>/status, or None when the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def rss_entry(pid, tree=False):
    """{pid, rss_mb, hwm_mb}; with tree, RSS is summed over the process and its descendants."""
    pids = [pid] + (procs.descendants(pid) if tree else [])
    rss = [read_status_kb(p, "VmRSS") for p in pids]
    hwm = read_status_kb(pid, "VmHWM")
    return {"pid": pid, "processes": len(pids), "rss_mb": sum(r for r in rss if r) / 1024.0,
            "hwm_mb": (hwm or 0) / 1024.0}


def bare_python_rss():
    """RSS of an idle `python -c` with nothing imported: the floor any Python process pays."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        return rss_entry(proc.pid)["rss_mb"]
    finally:
        proc.kill()
        proc.wait()


# -- the ways to run a turn ----------------------------------------------------------
#
# Each function runs one turn and returns its latency in seconds; the run interleaves
# them round by round, so load from elsewhere on the machine hits every path alike.


def check_reply(reply, prompt, how):
    if reply != REPLY_PREFIX + prompt:
        raise SystemExit("%s: unexpected reply %r to %r; the measurement would be meaningless" % (how, reply, prompt))


async def api_turn(fleet, prompt, timeout, overhead, agent=AGENT):
    """One turn through Fleet.send, timed from submit to the finished turn.

    Appends sac's own share to `overhead`: the total minus the shim's `run_s`
    (engine line written -> `result` read), i.e. RPC hops, journal fsyncs, transcript.
    """
    began = time.perf_counter()
    turn = await fleet.send(agent, prompt, timeout=timeout)
    took = time.perf_counter() - began
    check_reply(turn.get("reply"), prompt, "Fleet.send")
    overhead.append(took - ((turn.get("timings") or {}).get("run_s") or 0.0))
    return took


def cli_turn(env, prompt, timeout):
    """One turn through `python -m sac_fleet agents send`, a fresh Python process."""
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sac_fleet", "agents", "send", AGENT, prompt, "--json"],
                          env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    took = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit("sac agents send exited %d: %s" % (proc.returncode, proc.stderr.strip()))
    check_reply(json.loads(proc.stdout).get("reply"), prompt, "sac agents send")
    return took


def claude_env(provider, root, label):
    """The naive wrapper's environment: the provider, a temp HOME, no telemetry; plus its cwd."""
    home, work = root / (label + "-home"), root / (label + "-work")
    home.mkdir()
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home)}
    env.update(provider.client_env(api_key="sac-bench-key"))
    return env, work


def naive_turn(claude, env, work, prompt, timeout):
    """One `claude -p PROMPT --output-format json` process (what a naive wrapper does per turn)."""
    began = time.perf_counter()
    proc = subprocess.run([claude, "-p", prompt, "--output-format", "json"], env=env, cwd=str(work),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit("claude -p exited %d: %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()))
    check_reply(json.loads(proc.stdout).get("result"), prompt, "claude -p")
    return took


class BareEngine:
    """One `claude -p` stream-json process fed directly: the floor under sac's path.

    No sandbox, daemon, shim or journal. A watchdog kills it after `deadline_s`, which
    ends a read that would otherwise hang.
    """

    def __init__(self, claude, env, work, deadline_s):
        argv = [claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
        self.proc = subprocess.Popen(argv, env=env, cwd=str(work), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.watchdog = threading.Timer(deadline_s, self.proc.kill)
        self.watchdog.start()

    def turn(self, prompt):
        began = time.perf_counter()
        line = {"type": "user", "message": {"role": "user", "content": prompt}}
        self.proc.stdin.write((json.dumps(line) + "\n").encode())
        self.proc.stdin.flush()
        for raw in iter(self.proc.stdout.readline, b""):
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("type") == "result":
                check_reply(event.get("result"), prompt, "claude stream-json")
                return time.perf_counter() - began
        raise SystemExit("claude stream-json exited (%s) before its result, or its watchdog killed it"
                         % self.proc.poll())

    def close(self):
        self.watchdog.cancel()
        self.proc.kill()
        self.proc.wait()


# -- setup and teardown ---------------------------------------------------------------


def write_spec(root, provider_url, runtime, name=AGENT, network=None):
    agent_dir = root / "specs" / name
    agent_dir.mkdir(parents=True)
    isolation = dict({"runtime": runtime}, **({"network": network} if network else {}))
    spec = {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": name},
            "spec": {"workdir": "./work", "claude": {"provider": {"base_url": provider_url}},
                     "restart": {"policy": "never"}, "isolation": isolation}}
    # JSON is YAML: no yaml import needed here.
    (agent_dir / "spec.yaml").write_text(json.dumps(spec, indent=2))
    return agent_dir


async def stop_everything(fleet, state_dir):
    """Stop the agent and the daemon politely, then kill anything still mentioning the state dir."""
    try:
        node = await fleet.node(AGENT)  # this machine's daemon, which runs both agents
        for name in (AGENT, HOST_AGENT):
            await asyncio.wait_for(fleet.stop(name), 20)
        await asyncio.wait_for(node.shutdown(), 10)
    except Exception as exc:  # cleanup goes on regardless
        sys.stderr.write("bench: polite stop failed (%s); killing\n" % exc)
    await fleet.close()
    deadline = time.time() + 5
    while processes_mentioning(state_dir) and time.time() < deadline:
        await asyncio.sleep(0.1)
    for pid in processes_mentioning(state_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def choose_runtime(asked):
    if asked:
        return asked
    return "bwrap" if shutil.which("bwrap") else "none"


def find_claude():
    for candidate in (os.environ.get("SAC_CLAUDE_BIN"), str(REPO / ".tools" / "node_modules" / ".bin" / "claude"),
                      shutil.which("claude")):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("bench: the Claude Code CLI was not found; set SAC_CLAUDE_BIN or run `make tools`")


# -- the run --------------------------------------------------------------------------


async def measure(args, root, provider, env, claude):
    """Start the agent, then interleave rounds of every path; read RSS while the agent idles."""
    state_dir = env["SAC_HOME"]
    fleet = Fleet(state_dir=state_dir)
    naive_env, naive_work = claude_env(provider, root, "naive")
    bare_env, bare_work = claude_env(provider, root, "bare")
    bare = BareEngine(claude, bare_env, bare_work, args.timeout * (args.turns + 1))
    loop = asyncio.get_event_loop()
    samples = {"api": [], "api_host": [], "cli": [], "naive": [], "bare": [], "sac_overhead": []}
    try:
        for name, network, key in ((AGENT, None, "start_and_first_turn_s"),
                                   (HOST_AGENT, "host", "host_start_and_first_turn_s")):
            began = time.perf_counter()
            await fleet.start(str(write_spec(root, provider.url, args.runtime, name, network)))
            check_reply((await fleet.send(name, "first", timeout=args.timeout)).get("reply"), "first", "Fleet.send")
            samples[key] = time.perf_counter() - began
        await loop.run_in_executor(None, bare.turn, "first")  # its start-up, not counted
        for i in range(max(args.turns, args.cli_turns, args.naive_turns)):
            if i < args.turns:
                await api_pair(fleet, i, args.timeout, samples)
                samples["bare"].append(await loop.run_in_executor(None, bare.turn, "bare %d" % i))
            if i < args.cli_turns:
                samples["cli"].append(await loop.run_in_executor(None, cli_turn, env, "cli %d" % i, args.timeout))
            if i < args.naive_turns:
                samples["naive"].append(await loop.run_in_executor(
                    None, naive_turn, claude, naive_env, naive_work, "naive %d" % i, args.timeout))
        samples["rss"], samples["restarts"] = await read_rss(fleet, state_dir)
        await restarts(fleet, args.timeout, samples)
        return samples
    finally:
        bare.close()
        await stop_everything(fleet, state_dir)


async def api_pair(fleet, i, timeout, samples):
    """One turn to each agent, relay and no relay, in alternating order round by round."""
    pair = [(AGENT, "api", samples["sac_overhead"]), (HOST_AGENT, "api_host", [])]
    for agent, key, overhead in pair if i % 2 == 0 else reversed(pair):
        samples[key].append(await api_turn(fleet, "%s %d" % (key, i), timeout, overhead, agent))


async def restarts(fleet, timeout, samples, rounds=3):
    """Restart + first turn of each agent, alternating: the relay's start-up (python3 inside) on the first turn."""
    samples["restart_first_turn"], samples["host_restart_first_turn"] = [], []
    pair = [(AGENT, "restart_first_turn"), (HOST_AGENT, "host_restart_first_turn")]
    for i in range(rounds):
        for agent, key in pair if i % 2 == 0 else reversed(pair):
            began = time.perf_counter()
            await fleet.restart(agent)
            turn = await fleet.send(agent, "again %d" % i, timeout=timeout)
            check_reply(turn.get("reply"), "again %d" % i, "Fleet.send after a restart")
            samples[key].append(time.perf_counter() - began)


async def read_rss(fleet, state_dir):
    """RSS of the daemon, the shim and the engine's process tree; and the engine's restart count."""
    status = await fleet.status(AGENT)
    daemon_pid = json.loads((Path(state_dir) / "daemon.json").read_text())["pid"]
    rss = {"daemon": rss_entry(daemon_pid), "shim": rss_entry(status["shim_pid"]),
           "engine": rss_entry(status["pid"], tree=True)}
    return rss, status.get("restarts")


def run(args):
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="sac-bench-"))
    claude = find_claude()
    env = dict(os.environ, SAC_HOME=str(root / "sac-home"), SAC_CLAUDE_BIN=claude, NO_COLOR="1")
    os.environ.update(SAC_HOME=env["SAC_HOME"], SAC_CLAUDE_BIN=claude)
    provider = ProviderServer().start()
    try:
        samples = asyncio.run(measure(args, root, provider, env, claude))
    finally:
        provider.stop()
        for pid in processes_mentioning(str(root)):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(str(root), ignore_errors=True)
    report = build_report(args, claude, samples)
    report["machine"]["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return report


def build_report(args, claude, samples):
    version = subprocess.run([claude, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    rows = {API_ROW: summarise(samples["api"]), HOST_ROW: summarise(samples["api_host"]),
            "sac CLI (agents send)": summarise(samples["cli"]),
            NAIVE_ROW: summarise(samples["naive"]), "claude stream-json alone (floor, no sac)": summarise(samples["bare"])}
    for row in rows.values():
        row["speed_up"] = rows[NAIVE_ROW]["median_s"] / row["median_s"]
    rss = samples["rss"]
    paired = [a - b for a, b in zip(samples["api"], samples["api_host"])]
    relay = {"median_diff_ms": (rows[API_ROW]["median_s"] - rows[HOST_ROW]["median_s"]) * 1e3,
             "median_paired_diff_ms": percentile(paired, 50) * 1e3,
             "first_turn_diff_s": percentile(samples["restart_first_turn"], 50)
             - percentile(samples["host_restart_first_turn"], 50)}
    goals = {"speed_up_ge_5x": rows[API_ROW]["speed_up"] >= SPEED_UP_GOAL,
             "relay_le_1ms": relay["median_diff_ms"] <= RELAY_GOAL_MS,
             "daemon_rss_le_30mb": rss["daemon"]["rss_mb"] <= RSS_GOAL_MB,
             "shim_rss_le_30mb": rss["shim"]["rss_mb"] <= RSS_GOAL_MB}
    return {"date": time.strftime("%Y-%m-%d"),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
            "claude_version": version, "runtime": args.runtime, "rows": rows,
            "sac_overhead": summarise(samples["sac_overhead"]), "relay": relay,
            "start_and_first_turn_s": samples["start_and_first_turn_s"], "rss": rss,
            "bare_python_rss_mb": bare_python_rss(), "engine_restarts": samples["restarts"], "goals": goals}


def render(report):
    """The report as a plain-text table (pasteable into Markdown)."""
    met = lambda ok: "met" if ok else "NOT MET"  # noqa: E731
    lines = ["sac turn latency  %s  %d cores (load %s before/after)  claude %s  runtime %s" % (
        report["date"], report["machine"]["cores"], "/".join(map(str, report["machine"]["load_avg_1m"])),
        report["claude_version"], report["runtime"]), "",
        "| path | median ms | p95 ms | mean ms | n | speed-up vs naive (median) |",
        "|---|---:|---:|---:|---:|---:|"]
    for name, row in report["rows"].items():
        lines.append("| %s | %.1f | %.1f | %.1f | %d | %.1fx |" % (
            name, row["median_s"] * 1e3, row["p95_s"] * 1e3, row["mean_s"] * 1e3, row["n"], row["speed_up"]))
    overhead = report["sac_overhead"]
    lines += ["", "sac's own share of an API turn (total - shim run_s): median %.1f ms, p95 %.1f ms" % (
        overhead["median_s"] * 1e3, overhead["p95_s"] * 1e3),
        "agent start + first turn: %.2f s (not in the rows above)" % report["start_and_first_turn_s"],
        "provider relay (network: provider vs host): median %+.2f ms per turn (paired per round: %+.2f ms), "
        "restart + first turn %+.3f s (median of 3 each)" % (report["relay"]["median_diff_ms"], report["relay"]["median_paired_diff_ms"],
                                          report["relay"]["first_turn_diff_s"]), "",
              "| process | RSS MB | peak (VmHWM) MB |", "|---|---:|---:|"]
    for name in ("daemon", "shim"):
        lines.append("| %s | %.1f | %.1f |" % (name, report["rss"][name]["rss_mb"], report["rss"][name]["hwm_mb"]))
    engine = report["rss"]["engine"]
    lines.append("| engine (%d processes, for context) | %.1f | |" % (engine["processes"], engine["rss_mb"]))
    lines.append("| bare `python -c` (floor, for context) | %.1f | |" % report["bare_python_rss_mb"])
    goals = report["goals"]
    speed_up = report["rows"][API_ROW]["speed_up"]
    lines += ["", "goal: long-lived >= %.0fx faster per turn: %.1fx  %s" % (SPEED_UP_GOAL, speed_up,
                                                                             met(goals["speed_up_ge_5x"])),
              "goal: relay <= %.0f ms per turn at the median: %+.2f ms  %s" % (
                  RELAY_GOAL_MS, report["relay"]["median_diff_ms"], met(goals["relay_le_1ms"])),
              "goal: daemon <= %.0f MB RSS: %.1f MB  %s" % (RSS_GOAL_MB, report["rss"]["daemon"]["rss_mb"],
                                                           met(goals["daemon_rss_le_30mb"])),
              "goal: shim <= %.0f MB RSS: %.1f MB  %s" % (RSS_GOAL_MB, report["rss"]["shim"]["rss_mb"],
                                                         met(goals["shim_rss_le_30mb"]))]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=30, help="turns through Fleet.send (default 30)")
    parser.add_argument("--cli-turns", type=int, default=10, help="turns through `sac agents send` (default 10)")
    parser.add_argument("--naive-turns", type=int, default=10, help="`claude -p` processes (default 10)")
    parser.add_argument("--runtime", choices=("bwrap", "none"), default=None,
                        help="the agent's isolation runtime (default: bwrap when installed, else none)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per turn (default 60)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if min(args.turns, args.cli_turns, args.naive_turns) < 1:
        parser.error("turn counts must be at least 1")
    args.runtime = choose_runtime(args.runtime)
    return args


def main(argv=None):
    args = parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
