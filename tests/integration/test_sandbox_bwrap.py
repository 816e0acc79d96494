"""Real bubblewrap: what a sandboxed agent can and cannot touch on this host."""

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from sac_node import sandbox, site_check
from sac_node.node_spec import Isolation
from sac_node.protocol.errors import SandboxUnavailable
from tests.fixtures import procs
from tests.fixtures.tools import require

pytestmark = pytest.mark.integration

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "DISABLE_TELEMETRY": "1"}


class Layout(object):
    """<state>/agents/a1/{work,home} for the agent under test, a2 beside it with a secret file."""

    def __init__(self, root, host_home):
        self.host_home = host_home
        self.state = os.path.join(root, "state")
        self.agent = os.path.join(self.state, "agents", "a1")
        self.work = os.path.join(self.agent, "work")
        self.home = os.path.join(self.agent, "home")
        self.other = os.path.join(self.state, "agents", "a2", "secret.txt")
        self.other_secret = "OTHER-AGENT-" + uuid.uuid4().hex
        self.host_secrets = os.path.join(self.state, "secrets.env")
        for path in (self.work, self.home, os.path.dirname(self.other)):
            os.makedirs(path)
        with open(self.other, "w") as f:
            f.write(self.other_secret)
        with open(self.host_secrets, "w") as f:
            f.write("PROVIDER_KEY=" + self.other_secret + "\n")

    def launch(self, script, secrets=None, binds=(), ro_paths=()):
        return sandbox.build_launch(
            "bwrap", ["/bin/sh", "-c", script], workdir=self.work, home=self.home, env=dict(ENV, HOME=self.home),
            secrets=secrets or {}, isolation=Isolation("bwrap", binds=tuple(binds), network="host"),
            ro_paths=list(ro_paths), agent_dir=self.agent, host_home=self.host_home)

    def run(self, script, **kw):
        plan = self.launch(script, **kw)
        done = subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=60)
        return done.returncode, done.stdout.decode("utf-8", "replace")


@pytest.fixture
def planted_ssh():
    """A file in the real host user's ~/.ssh (removed afterwards): the sandbox hides the real $HOME too."""
    ssh = os.path.join(os.path.expanduser("~"), ".ssh")
    created = not os.path.isdir(ssh)
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    path = os.path.join(ssh, "sac-sandbox-test-" + uuid.uuid4().hex[:8])
    content = "PLANTED-SSH-KEY-" + uuid.uuid4().hex
    with open(path, "w") as f:
        f.write(content)
    yield path, content
    os.unlink(path)
    if created:
        os.rmdir(ssh)


@pytest.fixture
def layout(bwrap_bin, tmp_path):
    return Layout(str(tmp_path), os.path.expanduser("~"))


@pytest.fixture
def mirrored_layout(bwrap_bin):
    """The HPC shape: home and state dir under a system dir that the sandbox mirrors read-only."""
    for parent in ("/var/lib", "/srv", "/mnt", "/opt"):
        if os.path.isdir(parent) and os.access(parent, os.W_OK):
            break
    else:
        require("a writable system dir (/var/lib, /srv, /mnt or /opt)", "to place a fake home outside /home and /tmp")
    root = tempfile.mkdtemp(prefix="sac-sandbox-test-", dir=parent)
    home = os.path.join(root, "home-u")
    os.makedirs(os.path.join(home, ".ssh"))
    with open(os.path.join(home, ".ssh", "id_ed25519"), "w") as f:
        f.write("MIRRORED-HOME-KEY")
    yield Layout(os.path.join(home, ".sac-parent"), home)
    shutil.rmtree(root)


def test_agent_can_create_a_file_in_its_workdir(layout):
    code, out = layout.run("echo made-inside > created.txt && pwd")
    assert code == 0, out
    assert out.strip() == layout.work
    with open(os.path.join(layout.work, "created.txt")) as f:
        assert f.read() == "made-inside\n"


def test_agent_home_is_writable_and_is_its_own(layout):
    code, out = layout.run('mkdir -p "$HOME/.claude" && echo {} > "$HOME/.claude.json" && echo ok')
    assert code == 0 and out.strip() == "ok", out
    assert os.path.isfile(os.path.join(layout.home, ".claude.json"))


def test_agent_cannot_write_outside_its_workspace(layout):
    host_home = os.path.expanduser("~")
    target = os.path.join(host_home, "sac-sandbox-escape-" + uuid.uuid4().hex[:8])
    beside = os.path.join(os.path.dirname(layout.agent), "escape")
    code, out = layout.run("touch %s; echo rc=$?; touch /usr/sac-escape; echo rc=$?; touch /sac-escape; echo rc=$?; "
                           "touch %s" % (target, beside))
    assert out.count("rc=1") == 3, out
    assert "Read-only file system" in out
    assert not os.path.exists(target)
    assert not os.path.exists("/usr/sac-escape") and not os.path.exists("/sac-escape")
    # paths around the agent's dirs are an in-memory tmpfs: writable inside, never reaching the host
    assert not os.path.exists(beside)


def test_agent_cannot_read_ssh_keys_other_agents_or_host_secrets(layout, planted_ssh):
    path, content = planted_ssh
    code, out = layout.run("cat %s; cat %s; cat %s; ls %s; ls ~; ls /home /root" % (
        path, layout.other, layout.host_secrets, os.path.dirname(path)))
    assert content not in out
    assert layout.other_secret not in out
    assert "No such file or directory" in out
    with open(path) as f:
        assert f.read() == content  # untouched


def test_hidden_home_and_state_under_a_mirrored_system_dir(mirrored_layout):
    lay = mirrored_layout
    code, out = lay.run("cat %s/.ssh/id_ed25519; cat %s; ls %s; echo w > in-work.txt && echo wrote" % (
        lay.host_home, lay.other, os.path.dirname(os.path.dirname(lay.agent))))
    assert "MIRRORED-HOME-KEY" not in out and lay.other_secret not in out
    assert "wrote" in out and os.path.isfile(os.path.join(lay.work, "in-work.txt"))
    assert "a2" not in out.split()


def test_uid_is_1000_and_host_pids_are_invisible(layout):
    code, out = layout.run("id -u; id -g; test -e /proc/%d && echo host-pid-visible; ls /proc | grep -c '^[0-9]'"
                           % os.getpid())
    lines = out.split()
    assert lines[:2] == ["1000", "1000"], out
    assert "host-pid-visible" not in out
    assert int(lines[-1]) <= 4  # the sandbox's own few processes


def test_secret_reaches_the_engine_env_but_no_cmdline(layout):
    secret = "sk-sac-test-" + uuid.uuid4().hex
    plan = layout.launch('printf %s "$ANTHROPIC_API_KEY" > seen.txt; sleep 30', secrets={"ANTHROPIC_API_KEY": secret})
    proc = subprocess.Popen(plan.argv, env=plan.env, cwd=plan.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = os.path.join(layout.work, "seen.txt")
        deadline = time.time() + 20
        while not (os.path.exists(seen) and os.path.getsize(seen)) and time.time() < deadline:
            time.sleep(0.05)
        with open(seen) as f:
            assert f.read() == secret
        assert proc.poll() is None  # still running (sleeping) while we scan
        scanned = procs.processes()
        for process in scanned.values():
            assert secret.encode() not in process.cmdline, "secret in argv of pid %s" % process.pid
        assert len(scanned) > 3
    finally:
        proc.kill()
        proc.wait()


def test_spec_binds_honour_read_only_and_read_write(layout, tmp_path):
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    shared.mkdir()
    scratch.mkdir()
    (shared / "ref.txt").write_text("reference")
    code, out = layout.run("cat /data/ref.txt; echo x > /data/new.txt; echo rc=$?; echo y > /scratch/out.txt && echo rw",
                           binds=["%s:/data:ro" % shared, "%s:/scratch" % scratch])
    assert "reference" in out and "rc=0" not in out and "rw" in out, out
    assert not (shared / "new.txt").exists()
    assert (scratch / "out.txt").read_text() == "y\n"


def test_claude_code_runs_inside(layout, claude_bin):
    real = os.path.realpath(claude_bin)
    code, out = layout.run("%s --version" % real, ro_paths=[os.path.dirname(real)])
    assert code == 0 and "Claude Code" in out, out


def test_probe_of_real_bwrap_succeeds(bwrap_bin):
    assert sandbox.probe_bwrap(bwrap_bin).ok
    assert sandbox.choose_runtime("bwrap") == "bwrap"


def test_auto_refuses_without_apptainer_and_a_working_bwrap(bwrap_bin):
    # /bin/false stands in for a bwrap that cannot create a user namespace; the real probe runs it
    which = {"bwrap": "/bin/false"}.get
    with pytest.raises(SandboxUnavailable) as info:
        sandbox.choose_runtime("auto", which=which)
    msg = info.value.message
    assert "no sandbox on this host: `apptainer` is not on PATH and bwrap does not work here" in msg
    assert "isolation: {runtime: none}" in msg


def test_claude_bash_tool_is_confined(layout, claude_bin, provider, planted_ssh):
    """The real CLI, told by the built-in provider to run Bash, writes its workdir and nothing else."""
    path, content = planted_ssh
    escape = os.path.join(os.path.expanduser("~"), "sac-claude-escape-" + uuid.uuid4().hex[:8])
    command = "echo made > hello.txt; cat %s; cat %s; touch %s; id -u" % (path, layout.other, escape)
    provider.load_script({"rules": [{"match": "go", "tool": "Bash",
                                     "input": {"command": command, "description": "probe"},
                                     "then": "Done. The tool said: {tool_result}"}]})
    real = os.path.realpath(claude_bin)
    env = dict(ENV, HOME=layout.home, **provider.client_env())
    secrets = {"ANTHROPIC_API_KEY": env.pop("ANTHROPIC_API_KEY")}
    plan = sandbox.build_launch(
        "bwrap", [real, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
                  "--allowedTools", "Bash", "--permission-mode", "bypassPermissions"],
        workdir=layout.work, home=layout.home, env=env, secrets=secrets, isolation=Isolation("bwrap", network="host"),
        ro_paths=[os.path.dirname(real)], agent_dir=layout.agent, host_home=layout.host_home)
    line = b'{"type":"user","message":{"role":"user","content":"go"}}\n'
    done = subprocess.run(plan.argv, env=plan.env, cwd=plan.cwd, input=line, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)
    out = done.stdout.decode("utf-8", "replace")
    assert '"type":"result"' in out, done.stderr.decode("utf-8", "replace")[-2000:]
    with open(os.path.join(layout.work, "hello.txt")) as f:
        assert f.read() == "made\n"
    assert not os.path.exists(escape)
    sent = repr(provider.requests)  # every tool result went back to the provider
    assert "No such file or directory" in sent
    assert content not in sent and content not in out
    assert layout.other_secret not in sent and layout.other_secret not in out


def test_site_self_check_reports_a_confined_agent(bwrap_bin):
    output, properties = site_check.self_check("bwrap")
    assert properties["runtime"] == "bwrap" and properties["read_only_root"] is True
    assert output.splitlines() == ["uid inside: 1000", "host home: hidden", "root: read-only",
                                   "workdir: writable", "secret via env: yes"]
