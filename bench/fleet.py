"""Fleet over SSH: cold `sac fleet up` and warm `sac fleet status` versus `ansible all -m ping`.

    python bench/fleet.py [--hosts 16,32] [--repeat 3] [--json]
    python bench/fleet.py --engine [--hosts 8] [--repeat 2]   (the engine upload: bench/fleet_engine.py)

For each N, N real OpenSSH sshd hosts are started on loopback (127.0.0.2..,
tests/fixtures/sshd.py) once, with an inventory that lists them and no agents,
and an Ansible YAML inventory for the same hosts. Measured in the same run,
interleaved round by round:

  cold up     `sac fleet up` with no node.pyz cached and no daemon (state dirs wiped,
              daemons killed before each sample): connect, probe, upload, start, attach
  warm status `sac fleet status` while the daemons run: connect, probe, attach, facts
  ansible     `ansible all -i hosts.yaml -m ping -f N` (fresh ControlPath dir each run)

each sac row both as the real CLI (`python -m sac_fleet ...`, wall time including
Python start-up) and via the Python API in-process (a fresh `Fleet` per sample),
plus the node daemon's RSS, node.pyz's size, a per-phase profile of the API runs
and the cost of one SSH exec here (root's ~/.bashrc runs on every exec).
Loopback only; every process started here is stopped at the end.
"""

import argparse
import asyncio
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

import yaml  # noqa: E402

from sac_fleet.api import Fleet  # noqa: E402
from sac_fleet.control import fleet_ops  # noqa: E402
from sac_fleet.remote import node_client, ssh, ssh_path  # noqa: E402
from sac_fleet.remote.host_settings import HostSettings  # noqa: E402
from sac_fleet.remote.pyz import build_pyz  # noqa: E402
from sac_node import __version__ as SAC_VERSION  # noqa: E402
from tests.fixtures import sshd as sshd_fixture  # noqa: E402
from tests.fixtures.sshd import SshdFleet, sshd_available  # noqa: E402
from tests.fixtures.agents import processes_mentioning  # noqa: E402

GOALS = {"warm_status": 0.25, "cold_up": 1.0}  # x ansible ping (median)
RSS_GOAL_MB = 30.0
PYZ_GOAL_KB = 300.0
ROWS = ("sac fleet up, cold (CLI)", "sac fleet up, cold (API)", "sac fleet status, warm (CLI)",
        "sac fleet status, warm (API)", "ansible all -m ping")
HELD_ROW = "fleet_status() again on a connected Fleet (context)"
PHASES = ("connect", "probe", "upload", "probe + start daemon", "attach", "facts")
FLEET = "(fleet)"  # the host name of fleet-wide phases
FLEET_PHASES = ("Fleet.load (inventory)", "all hosts linked (connect_all)", "after linking (observe, plan)")


def median(values):
    return statistics.median(values) if values else None


def summarise(samples):
    return {"n": len(samples), "median_s": median(samples), "min_s": min(samples), "max_s": max(samples),
            "samples_s": [round(s, 3) for s in samples]}


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(argv, **kwargs):
    """subprocess.run plus its wall time and its CPU time (user + sys, with its waited-for children)."""
    cpu, start = children_cpu_s(), time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    return proc, time.monotonic() - start, children_cpu_s() - cpu


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def read_status_mb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


# -- per-phase timings of the API runs (wrappers around sac's own calls; sources untouched) ---------


class PhaseClock:
    """Collects (host, phase, seconds) while `active`; patched into sac_fleet.remote once."""

    def __init__(self):
        self.active, self.records = False, []

    def wrap(self, owner, attr, phase, host_of):
        """Time `owner.attr`; `phase` is a name or a function of the call's result."""
        original = getattr(owner, attr)

        async def timed(*args, **kwargs):
            start = time.monotonic()
            result = None
            try:
                result = await original(*args, **kwargs)
                return result
            finally:
                if self.active:
                    name = phase(result) if callable(phase) else phase
                    self.records.append((host_of(*args), name, time.monotonic() - start))
        setattr(owner, attr, timed)

    def install(self):
        self.wrap(ssh_path.SSHPath, "connect", "connect", lambda path, *a, **k: path.settings.name)
        self.wrap(ssh_path.SSHPath, "probe", probe_phase, lambda path, *a, **k: path.settings.name)
        self.wrap(ssh.SSHConnection, "upload", "upload", lambda conn, *a, **k: conn.name)
        self.wrap(ssh_path.SSHPath, "attach", "attach", lambda path, *a, **k: path.settings.name)
        self.wrap(node_client.NodeClient, "facts", "facts", lambda client, *a, **k: client.host)
        self.wrap(fleet_ops, "connect_all", "all hosts linked (connect_all)", lambda *a, **k: FLEET)

    def take(self):
        """Per phase: median and max over hosts of that host's total in the phase, and calls per host."""
        records, self.records = self.records, []
        per_host = {}
        for host, phase, seconds in records:
            entry = per_host.setdefault(phase, {}).setdefault(host, [0.0, 0])
            entry[0] += seconds
            entry[1] += 1
        return {phase: {"median_s": median([v[0] for v in hosts.values()]),
                        "max_s": max(v[0] for v in hosts.values()),
                        "calls_per_host": max(v[1] for v in hosts.values())}
                for phase, hosts in per_host.items()}


def probe_phase(info):
    return "probe + start daemon" if (info or {}).get("started") else "probe"


CLOCK = PhaseClock()


def merge_setenv(config_text):
    """sshd honours only its first `SetEnv` line: fold every SetEnv of a config into that one."""
    def text(host):
        lines = config_text(host).splitlines()
        pairs = [pair for line in lines if line.startswith("SetEnv ") for pair in line.split()[1:]]
        kept = [line for line in lines if not line.startswith("SetEnv ")]
        return "\n".join(kept + (["SetEnv " + " ".join(pairs)] if pairs else [])) + "\n"
    return text


sshd_fixture._config_text = merge_setenv(sshd_fixture._config_text)


# -- the hosts --------------------------------------------------------------------------------------


class Bench:
    """N sshd hosts, a sac inventory and an Ansible inventory over them, and the ways to measure."""

    def __init__(self, root, count, args):
        self.root, self.count, self.args = Path(root), count, args
        self.sshd = SshdFleet(self.root / "sshd")
        # SHLVL=1 from sshd makes bash skip ~/.bashrc (it sources it for ssh commands only at SHLVL < 2)
        extra = ["SetEnv SHLVL=1"] if args.skip_bashrc else []
        self.sshd_setenv = None
        self.hosts = self.sshd.start(count, log_level="ERROR", extra_config=extra)
        self.sshd_setenv = [l for l in self.hosts[0].config_path.read_text().splitlines() if l.startswith("SetEnv")]
        self.inventory = self.root / "inventory.yaml"
        self.ansible_inventory = self.root / "hosts.yaml"
        self.env = dict(os.environ, SAC_HOME=str(self.root / "head-home"), NO_COLOR="1", COLUMNS="200")
        self._write_inventories()

    def _write_inventories(self):
        hosts = {h.name: dict(h.inventory_fields(), python=self.args.host_python) for h in self.hosts}
        self.inventory.write_text(yaml.safe_dump({"defaults": {"connect_timeout": 30}, "hosts": hosts,
                                                  "agents": []}, sort_keys=False))
        key, known = str(self.sshd.client_key), str(self.sshd.known_hosts)
        ansible_hosts = {h.name: {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": "root",
                                  "ansible_ssh_private_key_file": key,
                                  "ansible_python_interpreter": self.args.host_python} for h in self.hosts}
        common = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % known
        self.ansible_inventory.write_text(yaml.safe_dump(
            {"all": {"hosts": ansible_hosts, "vars": {"ansible_ssh_common_args": common}}}, sort_keys=False))

    def wipe(self):
        """Cold hosts: kill every node daemon and session process, empty the state dirs."""
        # Only the daemons (their argv names the state dir): SIGKILLing a shell that is still inside
        # ~/.bashrc could leave a lock behind (pyenv rehash's) that stalls every shell of this user.
        for host in self.hosts:
            kill_all(processes_mentioning(str(host.state_dir)))
        deadline = time.monotonic() + 10
        while any(processes_mentioning(str(h.state_dir)) for h in self.hosts) and time.monotonic() < deadline:
            time.sleep(0.02)
        for host in self.hosts:
            shutil.rmtree(str(host.state_dir), ignore_errors=True)
            host.state_dir.mkdir(parents=True)

    def close(self):
        for host in self.hosts:
            kill_all(processes_mentioning(str(host.state_dir)))
        self.sshd.close()

    # -- samples --------------------------------------------------------------------------------

    def sac_cli(self, command, expect_bootstrap):
        argv = [sys.executable, "-m", "sac_fleet", "fleet", command, str(self.inventory), "--json"]
        proc, elapsed, cpu = run_timed(argv, env=self.env, timeout=self.args.timeout)
        if proc.returncode != 0:
            raise RuntimeError("sac fleet %s exited %d: %s %s" % (command, proc.returncode, proc.stdout[-2000:],
                                                                 proc.stderr[-2000:]))
        check_hosts(json.loads(proc.stdout)["hosts"], self.count, expect_bootstrap, "CLI " + command)
        return elapsed, cpu

    async def sac_api(self, command, expect_bootstrap, held=None):
        """One sample through a fresh Fleet; `held` gets the time of a second call on the same Fleet."""
        CLOCK.active = True
        start, cpu = time.monotonic(), time.process_time()
        fleet = Fleet(inventory=str(self.inventory))
        try:
            fleet.load()
            CLOCK.records.append((FLEET, FLEET_PHASES[0], time.monotonic() - start))
            report = await asyncio.wait_for(fleet.up() if command == "up" else fleet.fleet_status(),
                                            self.args.timeout)
            elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
            CLOCK.active = False
            linked = sum(t for host, phase, t in CLOCK.records if host == FLEET)
            CLOCK.records.append((FLEET, FLEET_PHASES[2], elapsed - linked))
            check_hosts(report["hosts"], self.count, expect_bootstrap, "API " + command)
            if held is not None:
                again = time.monotonic()
                check_hosts((await fleet.fleet_status())["hosts"], self.count, False, "API status again")
                held.append(time.monotonic() - again)
        finally:
            CLOCK.active = False
            await fleet.close()
        return elapsed, cpu

    def ansible_ping(self):
        control = tempfile.mkdtemp(prefix="cp-", dir=str(self.root))
        env = dict(os.environ, ANSIBLE_SSH_CONTROL_PATH_DIR=control, ANSIBLE_NOCOLOR="1",
                   ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_LOCAL_TEMP=str(self.root / "ansible-tmp"))
        argv = [self.args.ansible, "all", "-i", str(self.ansible_inventory), "-m", "ping", "-f", str(self.count),
                "-o"]
        try:
            proc, elapsed, cpu = run_timed(argv, env=env, timeout=self.args.timeout)
        finally:
            kill_all(processes_mentioning(control))  # the ControlPersist masters this run left
        pongs = proc.stdout.count("SUCCESS")
        if proc.returncode != 0 or pongs != self.count:
            raise RuntimeError("ansible ping: exit %d, %d/%d SUCCESS: %s %s" % (
                proc.returncode, pongs, self.count, proc.stdout[-2000:], proc.stderr[-2000:]))
        return elapsed, cpu

    def daemon_rss(self):
        """VmRSS / VmHWM of the node daemon of the first host."""
        pid = json.loads((self.hosts[0].state_dir / "daemon.json").read_text())["pid"]
        return {"pid": pid, "rss_mb": read_status_mb(pid, "VmRSS"), "hwm_mb": read_status_mb(pid, "VmHWM")}


def check_hosts(rows, count, expect_bootstrap, what):
    """Every host answered; a cold run uploaded the pyz everywhere, a warm one did nothing."""
    bad = [r for r in rows if r["state"] != "ok"]
    if len(rows) != count or bad:
        raise RuntimeError("%s: %d hosts, not ok: %s" % (what, len(rows), bad[:3]))
    for row in rows:
        uploaded = any(a.startswith("uploaded") for a in row["bootstrap"])
        if uploaded != expect_bootstrap or (not expect_bootstrap and row["bootstrap"]):
            raise RuntimeError("%s: host %s was not %s: %s" % (what, row["name"], "cold" if expect_bootstrap
                                                               else "warm", row["bootstrap"]))


async def measure(bench, repeat):
    """Interleave the paths round by round, so machine load hits all of them alike."""
    samples = {row: [] for row in ROWS + (HELD_ROW,)}
    cpu = {row: [] for row in ROWS}
    profiles = {"up": [], "status": []}

    def keep(row, sample):
        samples[row].append(sample[0])
        cpu[row].append(sample[1])

    for _ in range(repeat):
        bench.wipe()
        keep(ROWS[0], bench.sac_cli("up", True))
        keep(ROWS[2], bench.sac_cli("status", False))
        keep(ROWS[3], await bench.sac_api("status", False, held=samples[HELD_ROW]))
        profiles["status"].append(CLOCK.take())
        keep(ROWS[4], bench.ansible_ping())
        bench.wipe()
        keep(ROWS[1], await bench.sac_api("up", True))
        profiles["up"].append(CLOCK.take())
    rss = bench.daemon_rss()
    return samples, cpu, {kind: merge_profiles(runs) for kind, runs in profiles.items()}, rss


def merge_profiles(runs):
    """Median over runs of each phase's per-host median and max."""
    phases = [p for p in PHASES + FLEET_PHASES if any(p in run for run in runs)]
    return {p: {"median_s": median([run[p]["median_s"] for run in runs if p in run]),
                "max_s": median([run[p]["max_s"] for run in runs if p in run]),
                "calls_per_host": max(run[p]["calls_per_host"] for run in runs if p in run)} for p in phases}


# -- the cost of one SSH exec here (serial, one host) -------------------------------------------------


async def exec_floor(bench, n=5):
    """Medians on one host, nothing else running: connect, exec `true`, exec python, the probe, RPC."""
    host = bench.hosts[0]
    target = ssh.SSHTarget(name=host.name, address=host.address, port=host.port, user="root",
                           identity_file=str(bench.sshd.client_key), known_hosts=str(bench.sshd.known_hosts))
    settings = HostSettings(name=host.name, transport="ssh", python=bench.args.host_python,
                            state_dir=str(host.state_dir), connect_timeout=30, target=target)
    shell = "bash" if bench.args.skip_bashrc else "bash + ~/.bashrc"
    timings = {"ssh connect + auth": [], "exec `true` (channel + %s)" % shell: [],
               "exec `%s -c pass`" % bench.args.host_python: [], "probe (no start)": [],
               "stream-local channel + host.facts": []}
    names = list(timings)
    for _ in range(n):
        start = time.monotonic()
        path = ssh_path.SSHPath(settings)
        await path.connect()
        conn = path.conn
        timings[names[0]].append(time.monotonic() - start)
        try:
            for name, command in ((names[1], "true"), (names[2], "%s -c pass" % bench.args.host_python)):
                start = time.monotonic()
                await conn.run(command, timeout=30)
                timings[name].append(time.monotonic() - start)
            start = time.monotonic()
            info = await path.probe(ssh_path.node_probe.LOOK)
            timings[names[3]].append(time.monotonic() - start)
            start = time.monotonic()
            client = await path.attach(info)
            await client.facts(timeout=30)
            timings[names[4]].append(time.monotonic() - start)
            await client.close()
        finally:
            conn.close()
    result = {name: median(values) for name, values in timings.items()}
    if (Path.home() / ".bashrc").exists():
        result["local: `. ~/.bashrc` alone"] = local_cost(["bash", "--norc", "--noprofile", "-c", ". ~/.bashrc"], n)
    result["head: `python -m sac_fleet fleet --help` (start-up, CLI imports)"] = local_cost(
        [sys.executable, "-m", "sac_fleet", "fleet", "--help"], n)
    result["head: `python -c 'import asyncssh'`"] = local_cost([sys.executable, "-c", "import asyncssh"], n)
    return result


def local_cost(argv, n):
    """Median wall time of a local command."""
    runs = []
    for _ in range(n):
        start = time.monotonic()
        subprocess.run(argv, capture_output=True, timeout=60, cwd=str(REPO))
        runs.append(time.monotonic() - start)
    return median(runs)


# -- report -----------------------------------------------------------------------------------------


def run_one(count, args, root):
    bench = Bench(Path(root) / ("n%d" % count), count, args)
    Fleet(inventory=str(bench.inventory)).load()  # pay the one-time imports (pydantic) outside the samples
    try:
        async def go():
            measured = await measure(bench, args.repeat)
            return measured + (await exec_floor(bench),)
        samples, cpu, profile, rss, floor = asyncio.run(go())
    finally:
        bench.close()
    rows = {name: summarise(values) for name, values in samples.items()}
    for name, values in cpu.items():
        rows[name]["head_cpu_s"] = median(values)
    peer = rows[ROWS[4]]["median_s"]
    for row in rows.values():
        row["x_ansible"] = row["median_s"] / peer
    return {"hosts": count, "sshd_setenv": bench.sshd_setenv, "rows": rows, "profile": profile, "daemon_rss": rss, "exec_floor": floor,
            "goals": goals_of(rows, rss)}


def goals_of(rows, rss):
    data, _ = build_pyz()
    goals = {}
    for kind, limit in (("warm_status", GOALS["warm_status"]), ("cold_up", GOALS["cold_up"])):
        for how in ("CLI", "API"):
            name = [r for r in ROWS if kind.split("_")[1] in r and how in r][0]
            goals["%s_%s" % (kind, how.lower())] = {"row": name, "x_ansible": rows[name]["x_ansible"],
                                                    "limit": limit, "met": rows[name]["x_ansible"] <= limit}
    goals["daemon_rss"] = {"mb": rss["rss_mb"], "limit": RSS_GOAL_MB, "met": rss["rss_mb"] <= RSS_GOAL_MB}
    goals["pyz_size"] = {"kb": len(data) / 1024.0, "limit": PYZ_GOAL_KB, "met": len(data) / 1024.0 <= PYZ_GOAL_KB}
    return goals


def versions(args):
    ansible = subprocess.run([args.ansible, "--version"], capture_output=True, text=True, timeout=60).stdout
    import asyncssh
    return {"sac": SAC_VERSION, "commit": git_commit(), "python_head": platform.python_version(),
            "python_hosts": subprocess.run([args.host_python, "--version"], capture_output=True,
                                           text=True).stdout.strip(),
            "asyncssh": asyncssh.__version__, "ansible": (ansible.splitlines() or ["?"])[0],
            "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()}


def git_commit():
    """HEAD's short hash, or $SAC_BENCH_COMMIT when run from an export without .git."""
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else os.environ.get("SAC_BENCH_COMMIT")


def run(args):
    load_before = os.getloadavg()[0]
    data, sha = build_pyz()
    start = time.monotonic()
    build_pyz.cache_clear()
    build_pyz()
    pyz_build_s = time.monotonic() - start
    CLOCK.install()
    root = tempfile.mkdtemp(prefix="sac-bench-fleet-")
    try:
        results = [run_one(count, args, root) for count in args.hosts]
    finally:
        for pid in processes_mentioning(root):
            kill_all([pid])
        shutil.rmtree(root, ignore_errors=True)
    return {"date": time.strftime("%Y-%m-%d"),
            "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
            "versions": versions(args), "repeat": args.repeat, "host_python": args.host_python,
            "bashrc_on_exec": not args.skip_bashrc,
            "pyz": {"bytes": len(data), "sha": sha[:12], "build_s": pyz_build_s}, "results": results}


def render(report):
    """The report as plain text with Markdown tables."""
    met = lambda ok: "met" if ok else "NOT MET"  # noqa: E731
    v = report["versions"]
    lines = ["sac fleet over SSH  %s  %d cores (load %s before/after)  sac %s (%s)  %s  asyncssh %s  %s" % (
        report["date"], report["machine"]["cores"], "/".join(map(str, report["machine"]["load_avg_1m"])), v["sac"],
        v["commit"], v["ansible"], v["asyncssh"], v["openssh"]),
        "hosts run %s; ~/.bashrc on each exec: %s; node.pyz %d bytes (%.1f KB), built in %.0f ms" % (
            v["python_hosts"], "yes" if report["bashrc_on_exec"] else "no (SHLVL=1)", report["pyz"]["bytes"], report["pyz"]["bytes"] / 1024.0,
            report["pyz"]["build_s"] * 1e3)]
    for res in report["results"]:
        n = res["hosts"]
        lines += ["", "N = %d hosts, %d repeats; hosts' sshd: %s" % (n, report["repeat"], res.get("sshd_setenv")), "",
                  "| path | median s | min s | max s | x ansible ping | head CPU s (median) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, row in res["rows"].items():
            head_cpu = "%.2f" % row["head_cpu_s"] if "head_cpu_s" in row else ""
            lines.append("| %s | %.2f | %.2f | %.2f | %.2f | %s |" % (
                name, row["median_s"], row["min_s"], row["max_s"], row["x_ansible"], head_cpu))
        lines += ["", "per-phase time of the API runs, per host (median over hosts / slowest host; "
                  "the last three rows are fleet-wide), s:", "",
                  "| phase | cold up: median | cold up: max | calls/host | warm status: median | "
                  "warm status: max | calls/host |", "|---|---:|---:|---:|---:|---:|---:|"]
        up, status = res["profile"]["up"], res["profile"]["status"]
        for phase in PHASES + FLEET_PHASES:
            cells = []
            for prof in (up, status):
                p = prof.get(phase)
                cells += ["%.2f" % p["median_s"], "%.2f" % p["max_s"], str(p["calls_per_host"])] if p else ["-"] * 3
            lines.append("| %s | %s |" % (phase, " | ".join(cells)))
        lines += ["", "one host alone (serial, median), s:", ""]
        lines += ["- %s: %.3f" % (name, value) for name, value in res["exec_floor"].items()]
        g, rss = res["goals"], res["daemon_rss"]
        lines += ["", "node daemon RSS %.1f MB (peak %.1f MB)" % (rss["rss_mb"], rss["hwm_mb"])]
        for key in ("warm_status_cli", "warm_status_api", "cold_up_cli", "cold_up_api"):
            lines.append("goal: %s <= %.2f x ansible ping: %.2f x  %s" % (
                g[key]["row"], g[key]["limit"], g[key]["x_ansible"], met(g[key]["met"])))
        lines.append("goal: node daemon <= %.0f MB RSS: %.1f MB  %s" % (RSS_GOAL_MB, g["daemon_rss"]["mb"],
                                                                      met(g["daemon_rss"]["met"])))
        lines.append("goal: node.pyz <= %.0f KB: %.1f KB  %s" % (PYZ_GOAL_KB, g["pyz_size"]["kb"],
                                                                met(g["pyz_size"]["met"])))
    return "\n".join(lines)


def find_ansible():
    for candidate in (shutil.which("ansible"), str(REPO / ".tools" / "ansible" / "bin" / "ansible")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", default="16,32", help="comma-separated host counts (default 16,32)")
    parser.add_argument("--repeat", type=int, default=3, help="samples per path and N (default 3)")
    parser.add_argument("--host-python", default="/usr/bin/python3",
                        help="the hosts' python, for sac and Ansible alike (default /usr/bin/python3)")
    parser.add_argument("--ansible", default=None,
                        help="the ansible program (default: on PATH, else .tools/ansible/bin/ansible)")
    parser.add_argument("--skip-bashrc", action="store_true",
                        help="hosts' sshd sets SHLVL=1 so bash skips ~/.bashrc on every exec (sac and Ansible alike)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per sample (default 300)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--engine", action="store_true",
                        help="measure the engine upload against `ansible -m copy` instead (bench/fleet_engine.py)")
    args = parser.parse_args(argv)
    try:
        args.hosts = [int(n) for n in args.hosts.split(",") if n.strip()]
    except ValueError:
        parser.error("--hosts: give counts like 16,32")
    if not args.hosts or min(args.hosts) < 1 or max(args.hosts) > 200 or args.repeat < 1:
        parser.error("--hosts must be 1..200 each and --repeat at least 1")
    args.ansible = args.ansible or find_ansible()
    if not args.ansible:
        parser.error("ansible not found: `python -m venv .tools/ansible && .tools/ansible/bin/pip install "
                     "ansible-core`, or pass --ansible PATH")
    reason = sshd_available()
    if reason:
        parser.error("cannot start sshd hosts: %s" % reason)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.engine:
        import fleet_engine

        report = fleet_engine.run(args, Bench, summarise)
        print(json.dumps(report, indent=2) if args.json else fleet_engine.render(report))
        return 0
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
