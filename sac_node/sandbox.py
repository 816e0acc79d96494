"""The sandbox an engine runs in: apptainer, bwrap (bubblewrap) or none.

`choose_runtime` resolves `isolation.runtime` on this host (with one cached probe
of bwrap); `build_launch` is a pure function from the engine's argv, paths, env,
secrets and the spec's `isolation` to a `Launch` (argv, env, cwd, secret files).
Secrets never enter an argv: bwrap inherits them from its own environment,
apptainer reads them from a 0600 `--env-file`. docs/isolation.md has the threat model.
"""

import os
import re
import shutil
import subprocess
from collections import namedtuple

from . import egress
from .protocol.errors import AgentError, SandboxUnavailable, SpecError

RUNTIMES = ("auto", "apptainer", "bwrap", "none")
SANDBOX_UID = 1000  # non-zero: Claude Code refuses bypassPermissions as root
APPTAINER_HOME = "/home/agent"
APPTAINER_WORKDIR = "/work"
ENV_FILE_NAME = "engine.env"  # in the agent's dir, never inside the sandbox

# Top-level host dirs never mirrored into a bwrap sandbox: homes, fresh or private state.
_SKIP_TOP = frozenset(["home", "root", "tmp", "proc", "dev", "run", "lost+found"])
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values apptainer's --env passes through literally (no shell eval, no CSV split).
_PLAIN_VALUE_RE = re.compile(r"^[A-Za-z0-9_./:@%+~-]*$")


class Launch(namedtuple("Launch", "argv env cwd secret_files runtime properties egress")):
    """How to start the engine: exec `argv` with exactly `env` in `cwd`.

    `secret_files` maps host paths to text the caller writes with mode 0600
    before the exec (apptainer's --env-file, the sandbox's /etc/hosts). `properties`
    is for status. `egress` (egress.Egress) says what the caller's relay must serve.
    """


Bind = namedtuple("Bind", "src dst mode")
HostRoot = namedtuple("HostRoot", "entries resolv_conf gpu_devices")
HostRoot.__doc__ = """What bwrap needs to know of this host's file system (see `scan_root`).

entries: ((name, kind, link_target), ...) for each top-level entry of /, kind in dir|file|symlink;
resolv_conf: the real path of /etc/resolv.conf when it lies outside /etc, else None;
gpu_devices: /dev/nvidia* and /dev/dri paths to pass through when the spec asks for GPUs."""
ProbeResult = namedtuple("ProbeResult", "ok detail")


def scan_root(root="/"):
    """Read the host facts `build_launch` needs for bwrap (the only I/O of the bwrap layout)."""
    entries = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.islink(path):
            entries.append((name, "symlink", os.readlink(path)))
        elif os.path.isdir(path):
            entries.append((name, "dir", None))
        elif os.path.isfile(path):
            entries.append((name, "file", None))
    resolv = os.path.realpath(os.path.join(root, "etc", "resolv.conf"))
    if not os.path.exists(resolv) or resolv.startswith(os.path.join(root, "etc") + os.sep):
        resolv = None
    devs = sorted(os.path.join("/dev", n) for n in _listdir("/dev") if n.startswith("nvidia"))
    if os.path.isdir("/dev/dri"):
        devs.append("/dev/dri")
    return HostRoot(tuple(entries), resolv, tuple(devs))


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


_PROBES = {}


def probe_bwrap(bwrap="bwrap", run=subprocess.run):
    """Does bwrap work here (user namespaces can be disabled by the site)? Cached per binary."""
    if bwrap in _PROBES:
        return _PROBES[bwrap]
    argv = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-user",
            "--unshare-pid", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--", "true"]
    try:
        done = run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        result = ProbeResult(done.returncode == 0, lines[-1] if lines else "exit code %d" % done.returncode)
    except (OSError, subprocess.SubprocessError) as exc:
        result = ProbeResult(False, str(exc))
    _PROBES[bwrap] = result
    return result


def choose_runtime(requested, which=shutil.which, probe_bwrap=probe_bwrap, source=None):
    """The runtime to use for `isolation.runtime` on this host, or SandboxUnavailable saying what to do."""
    where = "%s: " % source if source else ""
    requested = requested or "auto"
    if requested not in RUNTIMES:
        raise SpecError("%sisolation.runtime is %r; use one of %s" % (where, requested, ", ".join(RUNTIMES)))
    if requested == "none":
        return "none"
    apptainer = which("apptainer") or which("singularity")
    if requested == "apptainer" or (requested == "auto" and apptainer):
        if not apptainer:
            raise SandboxUnavailable("%sisolation.runtime is apptainer but `apptainer` is not on PATH on this host; "
                                     "install it or set isolation.runtime: auto (bwrap)" % where)
        return "apptainer"
    bwrap = which("bwrap")
    probe = probe_bwrap(bwrap) if bwrap else None
    if bwrap and probe.ok:
        return "bwrap"
    why = ("bwrap does not work here (%s; the site may disable unprivileged user namespaces)" % probe.detail
           if bwrap else "`bwrap` is not on PATH")
    if requested == "bwrap":
        raise SandboxUnavailable("%sisolation.runtime is bwrap but %s; install bubblewrap or use "
                                 "isolation.runtime: apptainer" % (where, why))
    raise SandboxUnavailable(
        "%sno sandbox on this host: `apptainer` is not on PATH and %s; install Apptainer or bubblewrap, "
        "or set `isolation: {runtime: none}` in the spec to run this agent unsandboxed" % (where, why))


def parse_bind(entry, host_home):
    """`src:dst[:ro|rw]` (or `src`, bound at the same path) -> Bind; `~` is this host's home."""
    parts = str(entry).split(":")
    if len(parts) == 1:
        parts.append(parts[0])
    mode = parts[2] if len(parts) == 3 else "rw"
    if len(parts) > 3 or mode not in ("ro", "rw") or not parts[0] or not parts[1]:
        raise SpecError("isolation.binds entry %r: write it as src:dst, src:dst:ro or src:dst:rw" % (entry,))
    src, dst = (_expand(p, host_home) for p in parts[:2])
    for path in (src, dst):
        if not os.path.isabs(path) or "," in path:
            raise SpecError("isolation.binds entry %r: %r must be an absolute path without commas" % (entry, path))
    return Bind(os.path.normpath(src), os.path.normpath(dst), mode)


def _expand(path, host_home):
    if path == "~" or path.startswith("~/"):
        return host_home + path[1:]
    return path


def _under(path, prefix):
    """Is `path` equal to or below `prefix`?"""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def build_launch(runtime, engine_argv, workdir, home, env, secrets, isolation, ro_paths, agent_dir,
                 host_home=None, binary=None, host_root=None, host_env=None, exists=os.path.exists, sockets=()):
    """The Launch of `engine_argv` inside `runtime` (apptainer | bwrap | none); pure but for defaults.

    workdir, home, agent_dir: host paths (agent_dir is <state_dir>/agents/<name>);
    env: the non-secret environment (HOME is set here to the home the engine sees);
    secrets: {NAME: value}, reach the engine's environment but never an argv;
    isolation: the spec's `isolation` (node_spec.Isolation); ro_paths: host paths bound read-only at the same path.
    Optional: host_home (default $HOME), binary (the runtime's executable), host_root
    (`scan_root()`), host_env (apptainer's own environment, default os.environ), exists,
    sockets ((host path, path inside), ...: unix sockets the shim serves, bound into the sandbox).
    """
    host_home = os.path.normpath(host_home or os.path.expanduser("~"))
    binds = [parse_bind(b, host_home) for b in isolation.binds]
    env = {k: str(v) for k, v in env.items() if k not in secrets}
    for key in list(env) + list(secrets):
        if not _KEY_RE.fullmatch(key):
            raise SpecError("env: %r is not a valid environment variable name" % (key,))
    net = egress.plan(isolation.network, env, agent_dir, runtime)
    if net.url:
        env["ANTHROPIC_BASE_URL"] = net.url
    if net.network == "none":
        env.setdefault("CLAUDE_CODE_MAX_RETRIES", "0")  # no network: retries only delay the failure
    engine_argv = egress.inside_argv(net, engine_argv)
    state_dir = os.path.dirname(os.path.dirname(os.path.normpath(agent_dir)))
    if runtime != "none":
        _check_sources(workdir, binds, state_dir, exists)
    served = [Bind(src, dst, "rw") for src, dst in sockets]  # in the state dir, on purpose
    if runtime == "bwrap":
        launch = _bwrap_launch(engine_argv, workdir, home, env, secrets, binds, ro_paths, isolation,
                               binary, host_root or scan_root(), (host_home, state_dir), exists, net, served)
    elif runtime == "apptainer":
        launch = _apptainer_launch(engine_argv, workdir, home, env, secrets, binds, ro_paths, isolation,
                                   binary, agent_dir, host_home, host_env, exists, net, served)
    elif runtime == "none":
        launch = _none_launch(engine_argv, workdir, home, env, secrets, binds, net)
    else:
        raise SpecError("isolation.runtime %r must be resolved with choose_runtime first" % (runtime,))
    _refuse_secrets_in_argv(launch.argv, secrets)
    return launch


def _check_sources(workdir, binds, state_dir, exists):
    for bind in binds:
        if not exists(bind.src):
            raise SandboxUnavailable("isolation.binds %s:%s: %s does not exist on this host; create it or "
                                     "remove the bind" % (bind.src, bind.dst, bind.src))
    for label, src in [("workdir", workdir)] + [("isolation.binds " + b.src, b.src) for b in binds]:
        if _under(state_dir, src):
            raise SandboxUnavailable("%s would expose the sac state dir %s (other agents, secrets) to the agent; "
                                     "choose a path outside it" % (label, state_dir))


def _refuse_secrets_in_argv(argv, secrets):
    for name, value in secrets.items():
        # substrings only for key-like lengths: a 1-char "secret" is inside every "--bind"
        if value and any(value == arg or (len(value) >= 8 and value in arg) for arg in argv):
            raise AgentError("refusing to start: the value of %s appears in the engine's command line "
                             "(spec claude.flags or engine.command?); pass secrets only through "
                             "claude.provider.api_key_env" % name)


def _none_launch(engine_argv, workdir, home, env, secrets, binds, net):
    full = _engine_env(env, home, secrets)
    props = {"runtime": "none", "sandboxed": False, "read_only_root": False, "user_namespace": False,
             "pid_namespace": False, "uid": None, "binds": 0, "ignored_binds": len(binds), "network": "host",
             "workdir": workdir, "home": home}
    return Launch(list(engine_argv), full, workdir, {}, "none", props, net)


def _engine_env(env, home, secrets):
    full = dict(env)
    full["HOME"] = home
    full.update(secrets)
    return full


def _bwrap_launch(engine_argv, workdir, home, env, secrets, binds, ro_paths, isolation, binary,
                  host_root, hide, exists, net, served=()):
    """bwrap argv: a tmpfs root with the host's system dirs read-only, homes and state hidden."""
    argv, mounts = [binary or shutil.which("bwrap") or "bwrap"], []
    top = _mirror_root(argv, mounts, host_root)
    argv += ["--proc", "/proc", "--dev", "/dev"]
    tmpfs = ["/tmp", "/run"] + (["/var/tmp"] if "var" in top else [])
    for path in sorted(set(p for p in hide if p != "/")):
        if _visible(path, top, tmpfs):
            tmpfs.append(path)
    for path in tmpfs:
        argv += ["--tmpfs", path]
        mounts.append(Bind(None, path, "tmpfs"))
    wanted = [Bind(p, p, "ro") for p in ro_paths]
    if host_root.resolv_conf:
        wanted.append(Bind(host_root.resolv_conf, host_root.resolv_conf, "ro"))
    wanted += binds + [Bind(home, home, "rw"), Bind(workdir, workdir, "rw")] + _egress_binds(net) + list(served)
    for bind in sorted(wanted, key=lambda b: b.dst.rstrip("/").count("/")):  # parents before children
        if not _check_target(bind, mounts, exists):
            continue
        argv += ["--ro-bind" if bind.mode == "ro" else "--bind", bind.src, bind.dst]
        mounts.append(bind)
    if isolation.gpus:
        for dev in host_root.gpu_devices:
            argv += ["--dev-bind", dev, dev]
    uid = str(SANDBOX_UID)
    argv += ["--remount-ro", "/", "--unshare-user", "--uid", uid, "--gid", uid, "--unshare-pid",
             "--unshare-ipc", "--unshare-uts"] + (["--unshare-net"] if net.network != "host" else []) + [
             "--die-with-parent", "--new-session", "--chdir", workdir, "--"]
    props = {"runtime": "bwrap", "sandboxed": True, "read_only_root": True, "user_namespace": True,
             "pid_namespace": True, "uid": SANDBOX_UID, "binds": len(binds), "network": net.network,
             "gpus": isolation.gpus, "workdir": workdir, "home": home,
             "hidden": [p for p in tmpfs if p not in ("/tmp", "/run", "/var/tmp")]}
    full_env = _engine_env(env, home, secrets)  # bwrap passes its own environment through
    return Launch(argv + list(engine_argv), full_env, workdir, dict([net.hosts] if net.hosts else []), "bwrap",
                  props, net)


def _egress_binds(net):
    """The relay's socket and the /etc/hosts that names the provider, bound into the sandbox."""
    binds = [Bind(net.socket, egress.INSIDE_SOCKET, "ro")] if net.socket else []
    return binds + ([Bind(net.hosts[0], "/etc/hosts", "ro")] if net.hosts else [])


def _mirror_root(argv, mounts, host_root):
    """Mirror the host's top-level entries read-only, except homes and private state; return dir names."""
    top = set()
    for name, kind, target in host_root.entries:
        if name in _SKIP_TOP:
            continue
        path = "/" + name
        if kind == "symlink":
            argv += ["--symlink", target, path]
        elif kind in ("dir", "file"):
            argv += ["--ro-bind", path, path]
            mounts.append(Bind(path, path, "ro"))
            top.add(name)
    return top


def _visible(path, top, tmpfs):
    """Would `path` be visible in the sandbox without an extra tmpfs over it?"""
    parts = path.strip("/").split("/")
    return parts[0] in top and not any(_under(path, t) for t in tmpfs)


def _check_target(bind, mounts, exists):
    """Is a mount needed, and can bwrap make its target (on a tmpfs, a rw bind or an existing path)?"""
    covering = [m for m in mounts if _under(bind.dst, m.dst)]
    if not covering:
        return True  # on the root tmpfs
    parent = max(covering, key=lambda m: len(m.dst))
    if parent.mode in ("tmpfs", "rw"):
        return True
    host_path = parent.src + bind.dst[len(parent.dst):]
    if bind.mode == "ro" and host_path == bind.src:
        return False  # already visible read-only at this path
    if not exists(host_path):
        raise SandboxUnavailable("bind target %s does not exist inside the read-only %s; choose a destination "
                                 "under a new top-level dir (e.g. /data) or create it on the host"
                                 % (bind.dst, parent.dst))
    return True


def _apptainer_launch(engine_argv, workdir, home, env, secrets, binds, ro_paths, isolation, binary,
                      agent_dir, host_home, host_env, exists, net, served=()):
    image = os.path.normpath(_expand(isolation.image, host_home))
    if not exists(image):
        raise SandboxUnavailable("isolation.image %s does not exist on this host; build or copy the image there "
                                 "(docs/isolation.md) or point isolation.image at one" % image)
    argv = [binary or shutil.which("apptainer") or shutil.which("singularity") or "apptainer",
            "exec", "--containall", "--cleanenv", "--home", "%s:%s" % (home, APPTAINER_HOME),
            "--pwd", APPTAINER_WORKDIR, "--bind", "%s:%s" % (workdir, APPTAINER_WORKDIR)]
    for path in ro_paths:
        argv += ["--bind", "%s:%s:ro" % (path, path)]
    for bind in binds + _egress_binds(net) + list(served):
        argv += ["--bind", "%s:%s:%s" % bind]
    if net.network != "host":
        argv += ["--net", "--network", "none"]
    if isolation.gpus:
        argv.append("--nv")
    env = dict(env, HOME=APPTAINER_HOME)
    in_file = dict(secrets)
    for key in sorted(env):
        if _PLAIN_VALUE_RE.fullmatch(env[key]):
            argv += ["--env", "%s=%s" % (key, env[key])]
        else:
            in_file[key] = env[key]  # apptainer would split or shell-evaluate it on the command line
    files = dict([net.hosts] if net.hosts else [])
    if in_file:
        path = os.path.join(agent_dir, ENV_FILE_NAME)
        files[path] = "".join("%s=%s\n" % (k, _sh_quote(in_file[k])) for k in sorted(in_file))
        argv += ["--env-file", path]
    props = {"runtime": "apptainer", "sandboxed": True, "read_only_root": True, "user_namespace": None,
             "pid_namespace": True, "uid": "host", "binds": len(binds), "network": net.network,
             "gpus": isolation.gpus, "image": image, "workdir": APPTAINER_WORKDIR,
             "home": APPTAINER_HOME}
    return Launch(argv + [image] + list(engine_argv), _apptainer_env(host_env), workdir, files,
                  "apptainer", props, net)


def _sh_quote(value):
    return "'" + value.replace("'", "'\\''") + "'"


def _apptainer_env(host_env):
    """apptainer's own environment: PATH and where it caches, nothing that adds binds or variables."""
    host_env = os.environ if host_env is None else host_env
    keep = ("PATH", "USER", "LOGNAME", "LANG", "TMPDIR", "XDG_RUNTIME_DIR", "APPTAINER_CACHEDIR",
            "APPTAINER_TMPDIR", "SINGULARITY_CACHEDIR", "SINGULARITY_TMPDIR")
    env = {key: host_env[key] for key in keep if key in host_env}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


if __name__ == "__main__":  # the site check lives in its own module; this keeps the documented command
    from sac_node.site_check import main
    main()
