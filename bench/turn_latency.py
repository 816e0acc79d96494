"""Per-turn latency of a long-lived sac agent versus one `claude -p` process per turn, plus RSS.

    python bench/turn_latency.py [--turns 30] [--cli-turns 10] [--naive-turns 10] [--runtime bwrap|none] [--json]

Everything runs in one process tree against the built-in provider (instant,
deterministic replies) on loopback, so the numbers measure orchestration and
process cost, not a model. Measured in the same run:

  sac API    `Fleet.send` to one long-lived agent (daemon -> shim -> claude stream-json)
  sac CLI    `python -m sac_fleet agents send` per turn (includes Python start-up)
  naive      `claude -p PROMPT --output-format json`, a fresh process per turn
  RSS        VmRSS of the node daemon, the agent's shim and the engine (from /proc)

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

AGENT = "bench"
REPLY_PREFIX = "echo: "
SPEED_UP_GOAL = 5.0
RSS_GOAL_MB = 30.0


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


def children_of(pid):
    """All descendants of `pid` (from /proc/*/stat parent pids)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def rss_entry(pid, tree=False):
    """{pid, rss_mb, hwm_mb}; with tree, RSS is summed over the process and its descendants."""
    pids = [pid] + (children_of(pid) if tree else [])
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


# -- the three ways to run a turn -----------------------------------------------------


def check_reply(reply, prompt, how):
    if reply != REPLY_PREFIX + prompt:
        raise SystemExit("%s: unexpected reply %r to %r; the measurement would be meaningless" % (how, reply, prompt))


async def measure_api(fleet, n, timeout):
    """n turns through Fleet.send, each timed from submit to the finished turn.

    Also returns sac's own share of each turn: the total minus the shim's `run_s`
    (engine line written -> `result` read), i.e. RPC hops, journal fsyncs, transcript.
    """
    samples, overhead = [], []
    for i in range(n):
        prompt = "api turn %d" % i
        began = time.perf_counter()
        turn = await fleet.send(AGENT, prompt, timeout=timeout)
        samples.append(time.perf_counter() - began)
        check_reply(turn.get("reply"), prompt, "Fleet.send")
        overhead.append(samples[-1] - ((turn.get("timings") or {}).get("run_s") or 0.0))
    return samples, overhead


def measure_cli(env, n, timeout):
    """n turns through `python -m sac_fleet agents send`, each a fresh Python process."""
    samples = []
    for i in range(n):
        prompt = "cli turn %d" % i
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "sac_fleet", "agents", "send", AGENT, prompt, "--json"],
                              env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
        samples.append(time.perf_counter() - began)
        if proc.returncode != 0:
            raise SystemExit("sac agents send exited %d: %s" % (proc.returncode, proc.stderr.strip()))
        check_reply(json.loads(proc.stdout).get("reply"), prompt, "sac agents send")
    return samples


def claude_env(provider, root, label):
    """The naive wrapper's environment: the provider, a temp HOME, no telemetry; plus its cwd."""
    home, work = root / (label + "-home"), root / (label + "-work")
    home.mkdir()
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home)}
    env.update(provider.client_env(api_key="sac-bench-key"))
    return env, work


def measure_engine_alone(claude, provider, root, n, timeout):
    """n turns written straight to one `claude -p` stream-json process: the floor under sac's path.

    One warm-up turn first (start-up), not counted. No sandbox, no daemon, no shim, no journal.
    """
    env, work = claude_env(provider, root, "engine")
    argv = [claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
    proc = subprocess.Popen(argv, env=env, cwd=str(work), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    watchdog = threading.Timer(timeout * (n + 1), proc.kill)  # a hung engine ends the read with EOF
    watchdog.start()
    try:
        samples = []
        for i in range(n + 1):
            prompt = "engine turn %d" % i
            began = time.perf_counter()
            line = {"type": "user", "message": {"role": "user", "content": prompt}}
            proc.stdin.write((json.dumps(line) + "\n").encode())
            proc.stdin.flush()
            result = read_result(proc)
            if i:
                samples.append(time.perf_counter() - began)
            check_reply(result.get("result"), prompt, "claude stream-json")
        return samples
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()


def read_result(proc):
    """Read stream-json events until the `result` one."""
    for raw in iter(proc.stdout.readline, b""):
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if event.get("type") == "result":
            return event
    raise SystemExit("claude stream-json exited (%s) before its result, or the watchdog killed it" % proc.poll())


def measure_naive(claude, provider, root, n, timeout):
    """n turns, each one `claude -p PROMPT --output-format json` process (what a naive wrapper does)."""
    env, work = claude_env(provider, root, "naive")
    samples = []
    for i in range(n):
        prompt = "naive turn %d" % i
        began = time.perf_counter()
        proc = subprocess.run([claude, "-p", prompt, "--output-format", "json"], env=env, cwd=str(work),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        samples.append(time.perf_counter() - began)
        if proc.returncode != 0:
            raise SystemExit("claude -p exited %d: %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()))
        check_reply(json.loads(proc.stdout).get("result"), prompt, "claude -p")
    return samples


# -- setup and teardown ---------------------------------------------------------------


def write_spec(root, provider_url, runtime):
    agent_dir = root / "specs" / AGENT
    agent_dir.mkdir(parents=True)
    spec = {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": AGENT},
            "spec": {"workdir": "./work", "claude": {"provider": {"base_url": provider_url}},
                     "restart": {"policy": "never"}, "isolation": {"runtime": runtime}}}
    # JSON is YAML: no yaml import needed here.
    (agent_dir / "spec.yaml").write_text(json.dumps(spec, indent=2))
    return agent_dir


def processes_mentioning(text):
    """PIDs whose command line mentions `text` (the temp dir): daemon, shim, sandbox, engine."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                if text.encode() in fh.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


async def stop_everything(fleet, state_dir):
    """Stop the agent and the daemon politely, then kill anything still mentioning the state dir."""
    try:
        await asyncio.wait_for(fleet.stop(AGENT), 20)
        node = await fleet.node()
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


async def run_agent_side(args, root, provider, env):
    """Start the agent, time its first turn, the API and CLI turns, and read RSS while it idles."""
    state_dir = env["SAC_HOME"]
    fleet = Fleet(state_dir=state_dir)
    try:
        began = time.perf_counter()
        await fleet.start(str(write_spec(root, provider.url, args.runtime)))
        first = await fleet.send(AGENT, "first turn", timeout=args.timeout)
        first_s = time.perf_counter() - began
        check_reply(first.get("reply"), "first turn", "Fleet.send")
        api, overhead = await measure_api(fleet, args.turns, args.timeout)
        cli = await asyncio.get_event_loop().run_in_executor(None, measure_cli, env, args.cli_turns, args.timeout)
        status = await fleet.status(AGENT)
        daemon_pid = json.loads((Path(state_dir) / "daemon.json").read_text())["pid"]
        rss = {"daemon": rss_entry(daemon_pid), "shim": rss_entry(status["shim_pid"]),
               "engine": rss_entry(status["pid"], tree=True)}
        return {"start_and_first_turn_s": first_s, "api": api, "sac_overhead": overhead, "cli": cli, "rss": rss,
                "restarts": status.get("restarts")}
    finally:
        await stop_everything(fleet, state_dir)


def run(args):
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="sac-bench-"))
    claude = find_claude()
    env = dict(os.environ, SAC_HOME=str(root / "sac-home"), SAC_CLAUDE_BIN=claude, NO_COLOR="1")
    os.environ.update(SAC_HOME=env["SAC_HOME"], SAC_CLAUDE_BIN=claude)
    provider = ProviderServer().start()
    try:
        agent = asyncio.run(run_agent_side(args, root, provider, env))
        naive = measure_naive(claude, provider, root, args.naive_turns, args.timeout)
        agent["engine_alone"] = measure_engine_alone(claude, provider, root, args.turns, args.timeout)
    finally:
        provider.stop()
        for pid in processes_mentioning(str(root)):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(str(root), ignore_errors=True)
    report = build_report(args, claude, agent, naive)
    report["machine"]["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return report


def build_report(args, claude, agent, naive):
    version = subprocess.run([claude, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    rows = {"sac API (Fleet.send)": summarise(agent["api"]), "sac CLI (agents send)": summarise(agent["cli"]),
            "naive (claude -p per turn)": summarise(naive),
            "claude stream-json alone (floor, no sac)": summarise(agent["engine_alone"])}
    naive_median = rows["naive (claude -p per turn)"]["median_s"]
    for row in rows.values():
        row["speed_up"] = naive_median / row["median_s"]
    speed_up = rows["sac API (Fleet.send)"]["speed_up"]
    rss = agent["rss"]
    goals = {"speed_up_ge_5x": speed_up >= SPEED_UP_GOAL,
             "daemon_rss_le_30mb": rss["daemon"]["rss_mb"] <= RSS_GOAL_MB,
             "shim_rss_le_30mb": rss["shim"]["rss_mb"] <= RSS_GOAL_MB}
    return {"date": time.strftime("%Y-%m-%d"), "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                                                         "kernel": platform.release()},
            "claude_version": version, "runtime": args.runtime, "rows": rows,
            "start_and_first_turn_s": agent["start_and_first_turn_s"], "rss": rss,
            "sac_overhead": summarise(agent["sac_overhead"]),
            "bare_python_rss_mb": bare_python_rss(), "engine_restarts": agent["restarts"], "goals": goals}


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
        "agent start + first turn: %.2f s (not in the rows above)" % report["start_and_first_turn_s"], "",
              "| process | RSS MB | peak (VmHWM) MB |", "|---|---:|---:|"]
    for name in ("daemon", "shim"):
        lines.append("| %s | %.1f | %.1f |" % (name, report["rss"][name]["rss_mb"], report["rss"][name]["hwm_mb"]))
    engine = report["rss"]["engine"]
    lines.append("| engine (%d processes, for context) | %.1f | |" % (engine["processes"], engine["rss_mb"]))
    lines.append("| bare `python -c` (floor, for context) | %.1f | |" % report["bare_python_rss_mb"])
    goals = report["goals"]
    speed_up = report["rows"]["sac API (Fleet.send)"]["speed_up"]
    lines += ["", "goal: long-lived >= %.0fx faster per turn: %.1fx  %s" % (SPEED_UP_GOAL, speed_up,
                                                                             met(goals["speed_up_ge_5x"])),
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
