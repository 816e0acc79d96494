"""The engine upload: cold `sac fleet up` of N hosts that have no Claude Code, against `ansible -m copy`.

    python bench/fleet.py --engine [--hosts 8] [--repeat 2] [--json]

N real sshd hosts on loopback (bench/fleet.py's Bench), whose login PATH has no `claude`; the
inventory names one Claude Code agent that no host may run (labels nobody has), so that `up`
provisions the engine everywhere and starts nothing. Measured in the same run, round by round:

  cold up       `sac fleet up` (CLI) with empty state dirs: node.pyz and the engine (~245 MB) to every host
  second up     `sac fleet up` again: nothing to upload (the probe finds the verified engine)
  ansible copy  `ansible all -m copy` of the same file to the same hosts (the destination removed first)

and, in the first round only, on the first host alone, a cold `up` per wire codec (SAC_ENGINE_CODEC none / zlib / xz), plus
zstd and plain `cat` through the OpenSSH client as a reference (zstd is not in Python's standard
library before 3.14, so a host cannot be assumed to decode it).
"""

import os
import shlex
import subprocess
import sys
import time

import yaml

from sac_fleet.remote.engine_ship import CODECS, head_engine

CODEC_ROWS = tuple("cold up, 1 host, codec %s" % codec for codec in CODECS)


def engine_inventory(bench, hosts):
    """A sac inventory of `hosts` with one Claude Code agent that is never placed."""
    spec_dir = bench.root / "agents" / "engine-user"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "spec.yaml").write_text("apiVersion: sac/v1\nkind: Agent\n")
    fields = {h.name: dict(h.inventory_fields(), python=bench.args.host_python) for h in hosts}
    path = bench.root / ("engine-%d.yaml" % len(hosts))
    path.write_text(yaml.safe_dump({"defaults": {"connect_timeout": 30}, "hosts": fields, "agents": [
        {"spec": "agents/engine-user", "placement": {"labels": {"bench": "nowhere"}}}]}, sort_keys=False))
    return path


def sac_up(bench, inventory, expect_upload, codec=None):
    env = dict(bench.env, SAC_ENGINE_CODEC=codec) if codec else bench.env
    argv = [sys.executable, "-m", "sac_fleet", "fleet", "up", str(inventory), "--json"]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=bench.args.timeout)
    elapsed = time.monotonic() - start
    import json

    rows = json.loads(proc.stdout)["hosts"]
    for row in rows:
        uploaded = any("uploaded Claude Code" in done for done in row["bootstrap"])
        if row["state"] != "ok" or uploaded != expect_upload:
            raise RuntimeError("sac fleet up: host %s: %s %s %s" % (row["name"], row["state"], row["reason"],
                                                                   row["bootstrap"]))
    return elapsed


def ansible_copy(bench, engine):
    for host in bench.hosts:
        (host.state_dir / "ansible-claude").unlink(missing_ok=True)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="True",
               ANSIBLE_LOCAL_TEMP=str(bench.root / "ansible-tmp"),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(bench.root / "cp"))
    argv = [bench.args.ansible, "all", "-i", str(bench.ansible_inventory), "-f", str(bench.count), "-o", "-m", "copy",
            "-a", "src=%s dest={{ engine_dest }} mode=0755" % engine.path]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=bench.args.timeout)
    elapsed = time.monotonic() - start
    if proc.returncode != 0 or proc.stdout.count("CHANGED") != bench.count:
        raise RuntimeError("ansible copy: exit %d: %s %s" % (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:]))
    return elapsed


def with_engine_dest(bench):
    """The Ansible inventory with each host's destination (in its own state dir)."""
    doc = yaml.safe_load(bench.ansible_inventory.read_text())
    for host in bench.hosts:
        doc["all"]["hosts"][host.name]["engine_dest"] = str(host.state_dir / "ansible-claude")
    bench.ansible_inventory.write_text(yaml.safe_dump(doc, sort_keys=False))


def openssh_pipe(bench, host, engine, compress):
    """`cat` or `zstd -1` of the engine through the OpenSSH client into the host's state dir, timed."""
    ssh = ["ssh", "-i", str(bench.sshd.client_key), "-p", str(host.port), "-o",
           "UserKnownHostsFile=%s" % bench.sshd.known_hosts, "-o", "StrictHostKeyChecking=yes", "root@" + host.address]
    dest = shlex.quote(str(host.state_dir / "openssh-claude"))
    remote = "zstd -d -q -f -o %s" % dest if compress else "cat > %s" % dest
    reader = ["zstd", "-1", "-T1", "-q", "-c", engine.path] if compress else ["cat", engine.path]
    start = time.monotonic()
    source = subprocess.Popen(reader, stdout=subprocess.PIPE)
    sink = subprocess.run(ssh + [remote], stdin=source.stdout, capture_output=True, timeout=bench.args.timeout)
    source.stdout.close()
    source.wait()
    if sink.returncode != 0 or os.path.getsize(str(host.state_dir / "openssh-claude")) != engine.size:
        raise RuntimeError("openssh pipe failed: %s" % sink.stderr[-500:])
    return time.monotonic() - start


def measure(bench, repeat):
    """{row: [seconds]}, the paths interleaved round by round."""
    engine = head_engine()
    with_engine_dest(bench)
    inventory, single = engine_inventory(bench, bench.hosts), engine_inventory(bench, bench.hosts[:1])
    rows = {}

    def keep(row, seconds):
        rows.setdefault(row, []).append(seconds)

    for round_ in range(repeat):
        bench.wipe()
        keep("cold up, %d hosts (engine + node.pyz)" % bench.count, sac_up(bench, inventory, True))
        keep("second up, %d hosts (nothing to upload)" % bench.count, sac_up(bench, inventory, False))
        keep("ansible all -m copy, %d hosts" % bench.count, ansible_copy(bench, engine))
        if round_:
            continue  # the one-host codec rows: one sample each (xz alone takes a minute)
        for codec, row in zip(CODECS, CODEC_ROWS):
            bench.wipe()
            keep(row, sac_up(bench, single, True, codec))
        keep("OpenSSH client: cat | ssh 'cat >', 1 host", openssh_pipe(bench, bench.hosts[0], engine, False))
        keep("OpenSSH client: zstd -1 | ssh 'zstd -d', 1 host", openssh_pipe(bench, bench.hosts[0], engine, True))
    return engine, rows


def render(report):
    lines = ["engine upload, %s: %d hosts on loopback, %d samples each, engine %d MB (%s)" % (
        report["date"], report["hosts"], report["repeat"], report["engine_mb"], report["engine_version"]), "",
        "| path | median s | min s | max s | x ansible copy |", "|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        lines.append("| %s | %.2f | %.2f | %.2f | %.2f |" % (name, row["median_s"], row["min_s"], row["max_s"],
                                                            row["x_ansible_copy"]))
    return "\n".join(lines)


def run(args, bench_class, summarise):
    import shutil
    import tempfile
    from pathlib import Path

    root = tempfile.mkdtemp(prefix="sac-bench-engine-")
    count = args.hosts[0]
    bench = bench_class(Path(root) / ("n%d" % count), count, args)
    try:
        engine, samples = measure(bench, args.repeat)
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)
    rows = {name: summarise(values) for name, values in samples.items()}
    peer = rows["ansible all -m copy, %d hosts" % count]["median_s"]
    for row in rows.values():
        row["x_ansible_copy"] = row["median_s"] / peer
    return {"date": time.strftime("%Y-%m-%d"), "hosts": count, "repeat": args.repeat, "engine_mb": engine.size >> 20,
            "engine_version": engine.version, "load_avg_1m": os.getloadavg()[0], "rows": rows}
