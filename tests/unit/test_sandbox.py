"""sac_node.sandbox: exact argv and env per runtime, secrets never in argv, clear refusals."""

import pytest

from sac_node import egress, sandbox
from sac_node.node_spec import Isolation
from sac_node.protocol.errors import AgentError, SandboxUnavailable, SpecError

AGENT = "/home/u/.sac/agents/rev"
WORK = AGENT + "/work"
HOME = AGENT + "/home"
CLAUDE_PKG = "/home/u/.local/share/claude"
KEY = "sk-ant-test-0123456789"
ENV = {"HOME": HOME, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "ANTHROPIC_BASE_URL": "http://127.0.0.1:8787",
       "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"}
ENGINE = [CLAUDE_PKG + "/claude", "-p", "--input-format", "stream-json"]
HOST_ENV = {"PATH": "/usr/bin:/bin", "APPTAINERENV_EVIL": "1", "APPTAINER_BINDPATH": "/home",
            "APPTAINER_CACHEDIR": "/scratch/u/cache", "ANTHROPIC_API_KEY": KEY, "SSH_AUTH_SOCK": "/tmp/ssh-x/agent"}
ROOT = sandbox.HostRoot(
    entries=(("bin", "symlink", "usr/bin"), ("etc", "dir", None), ("home", "dir", None), ("opt", "dir", None),
             ("proc", "dir", None), ("root", "dir", None), ("run", "dir", None), ("scratch", "dir", None),
             ("tmp", "dir", None), ("usr", "dir", None), ("var", "dir", None)),
    resolv_conf="/run/systemd/resolve/stub-resolv.conf", gpu_devices=("/dev/nvidia0", "/dev/nvidiactl"))


def isolation(**over):
    base = {"runtime": "auto", "image": None, "binds": [], "network": "host", "gpus": False}  # golden: as before
    base.update(over)
    return Isolation.from_wire(base)


def launch(runtime, iso=None, env=None, secrets=None, exists=lambda p: True, engine=None, **kw):
    return sandbox.build_launch(
        runtime, engine or ENGINE, workdir=WORK, home=HOME, env=ENV if env is None else env,
        secrets={"ANTHROPIC_API_KEY": KEY} if secrets is None else secrets, isolation=iso or isolation(),
        ro_paths=[CLAUDE_PKG], agent_dir=AGENT, host_home="/home/u", binary="/usr/bin/" + runtime,
        host_root=ROOT, host_env=HOST_ENV, exists=exists, **kw)


def test_apptainer_minimal_spec_golden():
    got = launch("apptainer")
    assert got.argv == [
        "/usr/bin/apptainer", "exec", "--containall", "--cleanenv",
        "--home", HOME + ":/home/agent", "--pwd", "/work", "--bind", WORK + ":/work",
        "--bind", CLAUDE_PKG + ":" + CLAUDE_PKG + ":ro",
        "--env", "ANTHROPIC_BASE_URL=http://127.0.0.1:8787", "--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "--env", "DISABLE_TELEMETRY=1", "--env", "HOME=/home/agent", "--env", "LANG=C.UTF-8",
        "--env", "PATH=/usr/bin:/bin", "--env-file", AGENT + "/engine.env",
        "/home/u/.sac/images/sac-base.sif"] + ENGINE
    assert got.secret_files == {AGENT + "/engine.env": "ANTHROPIC_API_KEY='%s'\n" % KEY}
    # apptainer's own environment: no key, no APPTAINERENV_ injection, no site bind path
    assert got.env == {"PATH": "/usr/bin:/bin", "APPTAINER_CACHEDIR": "/scratch/u/cache"}
    assert got.cwd == WORK
    assert got.runtime == "apptainer"
    assert got.properties["image"] == "/home/u/.sac/images/sac-base.sif"
    assert got.properties["binds"] == 0 and got.properties["sandboxed"] is True


def test_apptainer_full_spec_golden():
    env = dict(ENV, PROJECT="demo", NOTE="it's $HOME, \"quoted\"", LIST="a,b=c")
    iso = isolation(runtime="apptainer", image="~/images/custom.sif", gpus=True,
                    binds=["/data/shared:/data:ro", "/scratch/me/run1:/scratch", "~/refs:/refs:rw"])
    got = launch("apptainer", iso, env=env, secrets={"ANTHROPIC_API_KEY": KEY, "GH_TOKEN": "gh'x"})
    assert got.argv == [
        "/usr/bin/apptainer", "exec", "--containall", "--cleanenv",
        "--home", HOME + ":/home/agent", "--pwd", "/work", "--bind", WORK + ":/work",
        "--bind", CLAUDE_PKG + ":" + CLAUDE_PKG + ":ro",
        "--bind", "/data/shared:/data:ro", "--bind", "/scratch/me/run1:/scratch:rw", "--bind", "/home/u/refs:/refs:rw",
        "--nv",
        "--env", "ANTHROPIC_BASE_URL=http://127.0.0.1:8787", "--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "--env", "DISABLE_TELEMETRY=1", "--env", "HOME=/home/agent", "--env", "LANG=C.UTF-8",
        "--env", "PATH=/usr/bin:/bin", "--env", "PROJECT=demo", "--env-file", AGENT + "/engine.env",
        "/home/u/images/custom.sif"] + ENGINE
    # values apptainer would split (commas, '=') or shell-evaluate travel quoted in the 0600 file
    assert got.secret_files[AGENT + "/engine.env"] == (
        "ANTHROPIC_API_KEY='%s'\nGH_TOKEN='gh'\\''x'\nLIST='a,b=c'\nNOTE='it'\\''s $HOME, \"quoted\"'\n" % KEY)
    assert got.properties["binds"] == 3 and got.properties["gpus"] is True


def test_apptainer_without_secrets_needs_no_env_file():
    got = launch("apptainer", secrets={})
    assert "--env-file" not in got.argv and got.secret_files == {}


def test_bwrap_golden():
    iso = isolation(binds=["/scratch/me/run1:/scratch/run1", "/data/shared:/data:ro"])
    got = launch("bwrap", iso)
    assert got.argv == [
        "/usr/bin/bwrap", "--symlink", "usr/bin", "/bin", "--ro-bind", "/etc", "/etc", "--ro-bind", "/opt", "/opt",
        "--ro-bind", "/scratch", "/scratch", "--ro-bind", "/usr", "/usr", "--ro-bind", "/var", "/var",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/var/tmp",
        "--ro-bind", "/data/shared", "/data", "--bind", "/scratch/me/run1", "/scratch/run1",
        "--ro-bind", "/run/systemd/resolve/stub-resolv.conf", "/run/systemd/resolve/stub-resolv.conf",
        "--ro-bind", CLAUDE_PKG, CLAUDE_PKG, "--bind", HOME, HOME, "--bind", WORK, WORK,
        "--remount-ro", "/", "--unshare-user", "--uid", "1000", "--gid", "1000", "--unshare-pid",
        "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--chdir", WORK, "--"] + ENGINE
    # the secret reaches the engine through bwrap's own environment, which bwrap passes on
    assert got.env == dict(ENV, ANTHROPIC_API_KEY=KEY)
    assert got.secret_files == {} and got.cwd == WORK
    assert got.properties == {
        "runtime": "bwrap", "sandboxed": True, "read_only_root": True, "user_namespace": True,
        "pid_namespace": True, "uid": 1000, "binds": 2, "network": "host", "gpus": False,
        "workdir": WORK, "home": HOME, "hidden": []}


def test_bwrap_hides_a_home_and_state_dir_that_live_under_a_mirrored_dir():
    agent = "/scratch/u/.sac/agents/rev"
    got = sandbox.build_launch(
        "bwrap", ["/bin/true"], workdir=agent + "/work", home=agent + "/home", env={}, secrets={},
        isolation=isolation(), ro_paths=[], agent_dir=agent, host_home="/scratch/u", binary="bwrap",
        host_root=ROOT, exists=lambda p: True)
    line = " ".join(got.argv)
    assert "--tmpfs /scratch/u " in line
    assert line.index("--tmpfs /scratch/u ") < line.index("--bind %s/home " % agent)  # bound back after hiding
    assert got.properties["hidden"] == ["/scratch/u"]  # state dir /scratch/u/.sac is inside it


def test_bwrap_passes_gpus_only_when_asked():
    assert "/dev/nvidia0" not in launch("bwrap").argv
    argv = launch("bwrap", isolation(gpus=True)).argv
    assert argv[argv.index("/dev/nvidia0") - 1] == "--dev-bind"


def test_bwrap_refuses_a_bind_target_it_cannot_create():
    iso = isolation(binds=["/data/shared:/usr/data:ro"])
    with pytest.raises(SandboxUnavailable, match="/usr/data does not exist inside the read-only /usr"):
        launch("bwrap", iso, exists=lambda p: p != "/usr/data")


def test_none_runs_the_engine_directly_and_says_unsandboxed():
    got = launch("none", isolation(runtime="none", binds=["/data:/data"]))
    assert got.argv == ENGINE and got.cwd == WORK
    assert got.env["ANTHROPIC_API_KEY"] == KEY and got.env["HOME"] == HOME
    assert got.properties["sandboxed"] is False and got.properties["ignored_binds"] == 1


@pytest.mark.parametrize("runtime", ["apptainer", "bwrap", "none"])
def test_secret_never_in_argv(runtime):
    got = launch(runtime, secrets={"ANTHROPIC_API_KEY": KEY, "OTHER": "s3cr3t-value"})
    assert not any(KEY in a or "s3cr3t-value" in a for a in got.argv)


@pytest.mark.parametrize("runtime", ["apptainer", "bwrap", "none"])
def test_refuses_to_start_when_a_secret_would_reach_argv(runtime):
    with pytest.raises(AgentError, match="value of ANTHROPIC_API_KEY appears in the engine's command line"):
        launch(runtime, engine=ENGINE + ["--api-key", KEY])


def test_missing_bind_source_names_the_bind():
    iso = isolation(binds=["/data/gone:/data:ro"])
    with pytest.raises(SandboxUnavailable, match="isolation.binds /data/gone:/data: /data/gone does not exist"):
        launch("bwrap", iso, exists=lambda p: p != "/data/gone")


def test_missing_image_says_where_it_was_looked_for():
    with pytest.raises(SandboxUnavailable, match="isolation.image /home/u/.sac/images/sac-base.sif does not exist"):
        launch("apptainer", exists=lambda p: not p.endswith(".sif"))


@pytest.mark.parametrize("bind", ["~", "/home/u", "/home"])
def test_refuses_binds_that_expose_the_state_dir(bind):
    with pytest.raises(SandboxUnavailable, match="would expose the sac state dir /home/u/.sac"):
        launch("bwrap", isolation(binds=[bind + ":/h"]))


@pytest.mark.parametrize("entry", ["a:b:c:d", "/x:/y:rx", "rel:/y", "/x:rel", "/x,y:/z", ":/y"])
def test_malformed_bind_is_a_spec_error(entry):
    with pytest.raises(SpecError, match="isolation.binds entry"):
        launch("bwrap", isolation(binds=[entry]))


def test_parse_bind_defaults_and_home_expansion():
    assert sandbox.parse_bind("/d", "/home/u") == sandbox.Bind("/d", "/d", "rw")
    assert sandbox.parse_bind("~/d/:/d:ro", "/home/u") == sandbox.Bind("/home/u/d", "/d", "ro")


def test_unknown_network_is_a_spec_error():
    with pytest.raises(SpecError, match="isolation.network is 'open'; use one of provider, none, host"):
        launch("bwrap", isolation(network="open"))


# -- isolation.network ---------------------------------------------------------------

INSIDE = egress.inside_argv(egress.Egress("provider", None, "http://127.0.0.1:8787", None, None), ENGINE)


def test_inside_argv_starts_the_listener_then_the_engine():
    assert INSIDE[:4] == ["python3", "-I", "-S", "-c"] and "def main(argv)" in INSIDE[4]
    assert INSIDE[5:] == ["127.0.0.1", "8787", "/run/sac/provider.sock"] + ENGINE


def test_bwrap_provider_network_golden():
    got = launch("bwrap", isolation(network="provider"))
    assert got.argv == [
        "/usr/bin/bwrap", "--symlink", "usr/bin", "/bin", "--ro-bind", "/etc", "/etc", "--ro-bind", "/opt", "/opt",
        "--ro-bind", "/scratch", "/scratch", "--ro-bind", "/usr", "/usr", "--ro-bind", "/var", "/var",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/var/tmp",
        "--ro-bind", AGENT + "/net.sock", "/run/sac/provider.sock",
        "--ro-bind", "/run/systemd/resolve/stub-resolv.conf", "/run/systemd/resolve/stub-resolv.conf",
        "--ro-bind", CLAUDE_PKG, CLAUDE_PKG, "--bind", HOME, HOME, "--bind", WORK, WORK,
        "--remount-ro", "/", "--unshare-user", "--uid", "1000", "--gid", "1000", "--unshare-pid",
        "--unshare-ipc", "--unshare-uts", "--unshare-net", "--die-with-parent", "--new-session",
        "--chdir", WORK, "--"] + INSIDE
    assert got.env == dict(ENV, ANTHROPIC_API_KEY=KEY)  # an address URL is the same inside: same port on lo
    assert got.secret_files == {} and got.properties["network"] == "provider"
    assert got.egress.target == ("127.0.0.1", 8787) and got.egress.socket == AGENT + "/net.sock"


def test_bwrap_none_network_unshares_without_a_relay():
    got = launch("bwrap", isolation(network="none"))
    assert "--unshare-net" in got.argv and "/run/sac/provider.sock" not in got.argv
    assert got.argv[-len(ENGINE) - 1:] == ["--"] + ENGINE
    assert got.env["CLAUDE_CODE_MAX_RETRIES"] == "0" and got.properties["network"] == "none"
    assert got.egress.target is None


def test_host_network_is_the_hosts():
    for runtime in ("bwrap", "apptainer"):
        got = launch(runtime, isolation(network="host"))
        assert "--unshare-net" not in got.argv and "--net" not in got.argv and got.argv[-len(ENGINE):] == ENGINE
        assert got.properties["network"] == "host"
    assert launch("none", isolation(runtime="none", network="provider")).properties["network"] == "host"


def test_https_provider_keeps_its_name_mapped_to_loopback():
    env = dict(ENV, ANTHROPIC_BASE_URL="https://llm.example.org/anthropic/v1?x=1")
    got = launch("bwrap", isolation(network="provider"), env=env)
    # the host name stays (SNI, certificate, Host); a privileged port is listened for on 8443 inside
    assert got.env["ANTHROPIC_BASE_URL"] == "https://llm.example.org:8443/anthropic/v1?x=1"
    assert got.egress.target == ("llm.example.org", 443)
    assert got.secret_files == {AGENT + "/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\tllm.example.org\n"}
    line = " ".join(got.argv)
    assert "--ro-bind %s/hosts /etc/hosts " % AGENT in line
    assert got.argv[got.argv.index("--") + 6:][:2] == ["127.0.0.1", "8443"]


def test_default_provider_is_relayed_too():
    env = {k: v for k, v in ENV.items() if k != "ANTHROPIC_BASE_URL"}
    got = launch("bwrap", isolation(network="provider"), env=env)
    assert got.env["ANTHROPIC_BASE_URL"] == "https://api.anthropic.com:8443"
    assert got.egress.target == ("api.anthropic.com", 443)


def test_http_provider_on_another_address_is_reached_on_loopback_same_port():
    got = launch("bwrap", isolation(network="provider"), env=dict(ENV, ANTHROPIC_BASE_URL="http://10.1.2.3:4000/v"))
    assert got.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000/v" and got.egress.target == ("10.1.2.3", 4000)
    assert got.secret_files == {}


@pytest.mark.parametrize("url, message", [
    ("https://10.1.2.3:8443", "relays https by host name"),
    ("ftp://provider.example.org", "needs an http:// or https:// provider URL"),
])
def test_provider_urls_the_relay_cannot_serve_are_refused(url, message):
    with pytest.raises(SpecError, match=message):
        launch("bwrap", isolation(network="provider"), env=dict(ENV, ANTHROPIC_BASE_URL=url))


def test_apptainer_provider_network_golden():
    env = dict(ENV, ANTHROPIC_BASE_URL="https://llm.example.org:9443")
    got = launch("apptainer", isolation(runtime="apptainer", network="provider"), env=env)
    inside = egress.inside_argv(got.egress, ENGINE)
    assert got.argv == [
        "/usr/bin/apptainer", "exec", "--containall", "--cleanenv",
        "--home", HOME + ":/home/agent", "--pwd", "/work", "--bind", WORK + ":/work",
        "--bind", CLAUDE_PKG + ":" + CLAUDE_PKG + ":ro",
        "--bind", AGENT + "/net.sock:/run/sac/provider.sock:ro", "--bind", AGENT + "/hosts:/etc/hosts:ro",
        "--net", "--network", "none",
        "--env", "ANTHROPIC_BASE_URL=https://llm.example.org:9443", "--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "--env", "DISABLE_TELEMETRY=1", "--env", "HOME=/home/agent", "--env", "LANG=C.UTF-8",
        "--env", "PATH=/usr/bin:/bin", "--env-file", AGENT + "/engine.env",
        "/home/u/.sac/images/sac-base.sif"] + inside
    assert inside[5:8] == ["127.0.0.1", "9443", "/run/sac/provider.sock"]
    assert got.secret_files[AGENT + "/hosts"].endswith("127.0.0.1\tllm.example.org\n")
    assert got.properties["network"] == "provider" and got.egress.target == ("llm.example.org", 9443)


def test_apptainer_none_network_golden():
    got = launch("apptainer", isolation(runtime="apptainer", network="none"))
    assert got.argv == [
        "/usr/bin/apptainer", "exec", "--containall", "--cleanenv",
        "--home", HOME + ":/home/agent", "--pwd", "/work", "--bind", WORK + ":/work",
        "--bind", CLAUDE_PKG + ":" + CLAUDE_PKG + ":ro", "--net", "--network", "none",
        "--env", "ANTHROPIC_BASE_URL=http://127.0.0.1:8787", "--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "--env", "CLAUDE_CODE_MAX_RETRIES=0", "--env", "DISABLE_TELEMETRY=1", "--env", "HOME=/home/agent",
        "--env", "LANG=C.UTF-8", "--env", "PATH=/usr/bin:/bin", "--env-file", AGENT + "/engine.env",
        "/home/u/.sac/images/sac-base.sif"] + ENGINE
    assert got.properties["network"] == "none"


def test_a_failed_turn_without_network_says_why():
    assert "isolation.network is none" in egress.failure_hint("none", "engine reported an error: x")
    assert egress.failure_hint("provider", "engine reported an error: x") == "engine reported an error: x"
    assert egress.failure_hint("none", None) is None


def test_invalid_env_name_is_refused():
    with pytest.raises(SpecError, match="not a valid environment variable name"):
        launch("apptainer", env=dict(ENV, **{"BAD-NAME": "x"}))


def ok(path):
    return sandbox.ProbeResult(True, "")


def broken(path):
    return sandbox.ProbeResult(False, "setting up uid map: Permission denied")


def test_choose_runtime_prefers_apptainer_then_working_bwrap():
    both = {"apptainer": "/usr/bin/apptainer", "bwrap": "/usr/bin/bwrap"}.get
    assert sandbox.choose_runtime("auto", which=both, probe_bwrap=broken) == "apptainer"
    only_bwrap = {"bwrap": "/usr/bin/bwrap"}.get
    assert sandbox.choose_runtime("auto", which=only_bwrap, probe_bwrap=ok) == "bwrap"
    assert sandbox.choose_runtime("none", which=lambda n: None, probe_bwrap=broken) == "none"


def test_auto_without_any_sandbox_refuses_with_the_documented_message():
    with pytest.raises(SandboxUnavailable) as info:
        sandbox.choose_runtime("auto", which={"bwrap": "/usr/bin/bwrap"}.get, probe_bwrap=broken, source="spec.yaml")
    msg = info.value.message
    assert msg.startswith("spec.yaml: no sandbox on this host: `apptainer` is not on PATH and bwrap does not work")
    assert "Permission denied" in msg and "isolation: {runtime: none}" in msg
    with pytest.raises(SandboxUnavailable, match="`bwrap` is not on PATH"):
        sandbox.choose_runtime("auto", which=lambda n: None, probe_bwrap=ok)


def test_explicit_runtime_that_is_missing_is_refused():
    with pytest.raises(SandboxUnavailable, match="isolation.runtime is apptainer but `apptainer` is not on PATH"):
        sandbox.choose_runtime("apptainer", which=lambda n: None, probe_bwrap=ok)
    with pytest.raises(SandboxUnavailable, match="isolation.runtime is bwrap but bwrap does not work"):
        sandbox.choose_runtime("bwrap", which={"bwrap": "/usr/bin/bwrap"}.get, probe_bwrap=broken)
    with pytest.raises(SpecError, match="use one of auto, apptainer, bwrap, none"):
        sandbox.choose_runtime("docker")


def test_probe_is_run_once_per_binary():
    calls = []

    def run(argv, **kw):
        calls.append(argv)
        raise OSError("no such file")

    first = sandbox.probe_bwrap("/nonexistent/bwrap-once", run=run)
    again = sandbox.probe_bwrap("/nonexistent/bwrap-once", run=run)
    assert first == again and not first.ok and len(calls) == 1
    assert "--unshare-user" in calls[0] and "--uid" in calls[0]


def test_short_secret_values_do_not_trip_the_argv_guard():
    # "b" is inside "--bind"; only whole arguments or key-length values count as leaks
    assert launch("bwrap", secrets={"A": "b"}).env["A"] == "b"


SOCKETS = ((AGENT + "/hooks.sock", "/run/sac/hooks.sock"),)


def test_a_served_socket_from_the_state_dir_is_bound_into_bwrap_and_apptainer_only():
    # A bind of the state dir is refused (test_refuses_binds_that_expose_the_state_dir); the shim's own
    # sockets are not binds of the spec: they are bound one by one, read-write (connect needs it).
    argv = launch("bwrap", sockets=SOCKETS).argv
    at = argv.index(AGENT + "/hooks.sock")
    assert argv[at - 1:at + 2] == ["--bind", AGENT + "/hooks.sock", "/run/sac/hooks.sock"]
    assert argv.index("/run") < at  # the tmpfs on /run first, so bwrap can create the target
    assert "--bind" in launch("apptainer", sockets=SOCKETS).argv
    assert "%s/hooks.sock:/run/sac/hooks.sock:rw" % AGENT in launch("apptainer", sockets=SOCKETS).argv
    assert launch("none", isolation(runtime="none"), sockets=SOCKETS).argv == ENGINE
    assert launch("bwrap", sockets=SOCKETS).properties["binds"] == 0  # not the spec's binds
