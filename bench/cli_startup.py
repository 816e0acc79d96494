"""Wall and CPU time of common `sac` commands, each a fresh process, and the heavy packages each one imports.

    python bench/cli_startup.py [--repeat 20] [--json]

Each row runs `python -m sac_fleet ...` (as the `sac` script does) in a fresh interpreter;
rows are interleaved round by round so load from elsewhere hits them alike:

  python -c pass                  the interpreter alone (floor, for context)
  sac --help, sac agents send --help
  sac agents list                 a running node daemon with one idle agent
  sac fleet status INV            an inventory with one local host (no SSH) and that agent
  sac agents send NAME TEXT       one turn to that agent, straight to the node daemon
  sac agents send (gateway)       the same while `sac fleet serve` runs (the CLI goes through it)

The agent's engine is examples/engines/fast_engine.py (instant replies, no sandbox), so a
send row is start-up plus a millisecond turn. CPU time (user + system of the `sac` process
alone) is steadier than wall time on a busy machine. Each row is also run once under
`python -X importtime` to list the heavy packages it loads. State lives in a temporary
SAC_HOME; every process started here is stopped at the end.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.agents import processes_mentioning  # noqa: E402

AGENT = "bench"
FAST_ENGINE = REPO / "examples" / "engines" / "fast_engine.py"
HEAVY = ("aiohttp", "asyncssh", "cryptography", "mcp", "pydantic", "yaml", "rich", "typer")


def sac_argv(*args):
    return [sys.executable, "-m", "sac_fleet"] + [str(a) for a in args]


def write_setup(root):
    """The agent's spec and an inventory with one local host that runs it."""
    spec = {"apiVersion": "sac/v1", "kind": "Agent", "metadata": {"name": AGENT},
            "spec": {"engine": {"command": [sys.executable, str(FAST_ENGINE)]}, "workdir": "./work",
                     "restart": {"policy": "never"}, "isolation": {"runtime": "none"}}}
    agent_dir = root / "agents" / AGENT
    agent_dir.mkdir(parents=True)
    (agent_dir / "spec.yaml").write_text(json.dumps(spec, indent=2))  # JSON is YAML
    inventory = root / "inventory.yaml"
    inventory.write_text(json.dumps({"hosts": {"local": {"transport": "local"}},
                                     "agents": [{"spec": "agents/%s" % AGENT}]}, indent=2))
    return inventory


def check(proc, argv):
    if proc.returncode != 0:
        raise SystemExit("%s exited %d: %s" % (" ".join(map(str, argv[1:])), proc.returncode, proc.stderr.strip()))
    return proc


def timed(argv, env):
    """(wall seconds, CPU seconds: user + system) of one run of `argv`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=str(REPO))
    took = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    check(proc, argv)
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(argv, env):
    """(heavy top-level packages the command imports, its total import time in s) from -X importtime."""
    argv = [argv[0], "-X", "importtime"] + argv[1:]
    proc = check(subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=str(REPO)), argv)
    found, total_us = set(), 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue  # the header line
        if not name.startswith("  "):  # a top-level import: its cumulative time counts once
            total_us += int(cumulative)
        top = name.strip().split(".")[0]
        if top in HEAVY:
            found.add(top)
    return sorted(found), total_us / 1e6


class Gateway:
    """`sac fleet serve --port 0` for this machine's agents, until stopped."""

    def __init__(self, env, root):
        self.log = root / "gateway.log"
        with open(str(self.log), "w") as log:
            self.proc = subprocess.Popen(sac_argv("fleet", "serve", "--port", "0", "--no-access-log"), env=env,
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        line = ""
        while not line.startswith("token file:"):
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("the gateway exited: %s" % self.log.read_text()[-2000:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def measure(rows, env, repeat):
    """{row name: summary} of `rows` ({name: argv}), interleaved round by round after a warm-up round."""
    samples = {name: ([], []) for name in rows}
    for round_no in range(repeat + 1):
        for name, argv in rows.items():
            wall, cpu = timed(argv, env)
            if round_no:
                samples[name][0].append(wall)
                samples[name][1].append(cpu)
    report = {}
    for name, argv in rows.items():
        heavy, import_s = heavy_imports(argv, env)
        report[name] = dict(summarise(samples[name][0]), cpu_median_ms=statistics.median(samples[name][1]) * 1e3,
                            heavy=heavy, import_s=import_s)
    return report


def summarise(samples):
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(samples), "median_ms": statistics.median(samples) * 1e3, "p95_ms": p95 * 1e3,
            "min_ms": ordered[0] * 1e3}


def run(args):
    root = Path(tempfile.mkdtemp(prefix="sac-cli-bench-"))
    env = dict(os.environ, SAC_HOME=str(root / "sac-home"), NO_COLOR="1", COLUMNS="200")
    env.pop("SAC_INVENTORY", None)
    inventory = write_setup(root)
    load_before = os.getloadavg()[0]
    gateway = None
    try:
        check(subprocess.run(sac_argv("fleet", "up", "-i", inventory), env=env, capture_output=True, text=True,
                             timeout=120), ["sac", "fleet", "up"])
        rows = {"python -c pass (floor)": [sys.executable, "-c", "pass"],
                "sac --help": sac_argv("--help"),
                "sac agents send --help": sac_argv("agents", "send", "--help"),
                "sac agents list": sac_argv("agents", "list"),
                "sac fleet status INV": sac_argv("fleet", "status", "-i", inventory),
                "sac agents send": sac_argv("agents", "send", AGENT, "hello")}
        report = measure(rows, env, args.repeat)
        gateway = Gateway(env, root)
        report.update(measure({"sac agents send (via gateway)": sac_argv("agents", "send", AGENT, "hello")},
                              env, args.repeat))
    finally:
        if gateway is not None:
            gateway.stop()
        subprocess.run(sac_argv("agents", "stop", AGENT), env=env, capture_output=True, timeout=60)
        try:
            os.kill(json.loads((root / "sac-home" / "daemon.json").read_text())["pid"], signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            pass
        deadline = time.time() + 5
        while processes_mentioning(str(root)) and time.time() < deadline:
            time.sleep(0.1)
        for pid in processes_mentioning(str(root)):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(str(root), ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(REPO), capture_output=True,
                            text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d"), "commit": commit or "-",
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
            "rows": report}


def render(report):
    m = report["machine"]
    lines = ["sac CLI start-up  %s  commit %s  %d cores  Python %s  (load %s before/after)" % (
        report["date"], report["commit"], m["cores"], m["python"], "/".join(map(str, m["load_avg_1m"]))), "",
        "| command | median ms | p95 ms | min ms | CPU ms (median) | n | imports ms | heavy packages imported |",
        "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, row in report["rows"].items():
        lines.append("| %s | %.0f | %.0f | %.0f | %.0f | %d | %.0f | %s |" % (
            name, row["median_ms"], row["p95_ms"], row["min_ms"], row["cpu_median_ms"], row["n"], row["import_s"] * 1e3,
            ", ".join(row["heavy"]) or "-"))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="samples per command (default 20)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
