"""isolation.network as an agent sees it: real bwrap, real Claude Code, the built-in provider scripting Bash."""

import array
import asyncio
import re
import secrets
import socket
import ssl
import subprocess
import threading

import pytest

from tests.fixtures.tools import require

pytestmark = pytest.mark.integration

# Run by the agent's Bash tool: one line per thing it must not reach, BLOCKED or REACHED.
PROBE = r'''
import socket, struct, sys
def tcp(host, port):
    s = socket.socket(); s.settimeout(3)
    s.connect((host, port)); s.close()
def dns(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(struct.pack(">HHHHHH", 7, 0x100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x01\x00\x01", (host, port))
    s.recvfrom(512)
def unix(path):
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.close()
def resolve(name):
    socket.getaddrinfo(name, 443)
checks = [("loopback-tcp", tcp, ("127.0.0.1", PORT)), ("host-address-tcp", tcp, ("ADDR", PORT)),
          ("dns-udp", dns, ("127.0.0.1", PORT)), ("dns-lookup", resolve, ("example.com",)),
          ("node-socket", unix, ("NODESOCK",))]
for name, check, args in checks:
    try:
        check(*args); print(name, "REACHED")
    except Exception as exc:
        print(name, "BLOCKED", type(exc).__name__)
'''


class Listeners:
    """A TCP listener and a UDP 'DNS server' on every address of this machine, counting who reached them."""

    def __init__(self):
        self.tcp = socket.socket()
        self.tcp.bind(("0.0.0.0", 0))
        self.tcp.listen(8)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("0.0.0.0", self.port))
        self.reached = []
        for target in (self._accept, self._answer):
            threading.Thread(target=target, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, peer = self.tcp.accept()
            except OSError:
                return
            self.reached.append(("tcp", peer))
            conn.close()

    def _answer(self):
        while True:
            try:
                data, peer = self.udp.recvfrom(512)
            except OSError:
                return
            self.reached.append(("udp", peer))
            self.udp.sendto(data[:2] + b"\x81\x80" + data[4:], peer)  # a reply, whatever it says

    def close(self):
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def listeners():
    got = Listeners()
    yield got
    got.close()


def host_address():
    """A non-loopback IPv4 address of this machine."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        return line.split()[3].split("/")[0]
    require("a non-loopback IPv4 address on this machine", "to show the sandbox cannot reach it")


def probe_script(sac_env, listeners, address):
    code = (PROBE.replace("PORT", str(listeners.port)).replace("ADDR", address)
            .replace("NODESOCK", str(sac_env.home / "node.sock")))
    sac_env.provider.load_script({"rules": [{"match": "probe", "tool": "Bash",
                                             "input": {"command": "python3 - <<'EOF'\n%sEOF" % code,
                                                       "description": "network probe"},
                                             "then": "probe said: {tool_result}"}]})


def probe_lines(reply):
    """{check: 'BLOCKED <error>' | 'REACHED'} from the probe's output quoted in the reply."""
    return dict((m.group(1), m.group(2)) for m in re.finditer(r"([a-z-]+) ((?:BLOCKED|REACHED)\b[^\n]*)", reply))


def test_provider_network_reaches_only_the_provider(sac_env, listeners):
    address = host_address()
    # the control: from the host, both listeners answer at both addresses
    for host in ("127.0.0.1", address):
        socket.create_connection((host, listeners.port), timeout=3).close()
    sac_env.wait_for(lambda: len(listeners.reached) == 2, what="the control connections")
    listeners.reached.clear()
    probe_script(sac_env, listeners, address)
    sac_env.write_spec("a1", claude={"allowed_tools": ["Bash"]})  # isolation.network: the default
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "hello").stdout.strip() == "echo: hello"  # through the relay
    turn = sac_env.sac_json("agents", "send", "a1", "probe the network")
    assert turn["status"] == "completed", turn
    seen = probe_lines(turn["reply"])
    assert set(seen) == {"loopback-tcp", "host-address-tcp", "dns-udp", "dns-lookup", "node-socket"}, turn["reply"]
    assert all(v.startswith("BLOCKED") for v in seen.values()), seen
    assert listeners.reached == []  # nothing arrived at this machine's other ports
    status = sac_env.sac_json("agents", "status", "a1")
    assert status["isolation"]["network"] == "provider"
    assert "provider" in sac_env.sac("agents", "list").stdout.splitlines()[1].split()


def test_the_relay_carries_only_to_the_provider_and_follows_a_restart(sac_env):
    sac_env.write_spec("a1")
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "one").stdout.strip() == "echo: one"
    sac_env.sac("agents", "restart", "a1")
    assert sac_env.sac("agents", "send", "a1", "two").stdout.strip() == "echo: two"
    relay = sac_env.agent_dir("a1") / "net.sock"
    assert oct(relay.stat().st_mode & 0o777) == "0o600"
    # what the relay's socket hands out is a connection to the provider, nothing else
    asker = socket.socket(socket.AF_UNIX)
    asker.connect(str(relay))
    _, ancillary, _, _ = asker.recvmsg(1, socket.CMSG_LEN(4))
    asker.close()
    fds = array.array("i")
    fds.frombytes(ancillary[0][2][:4])
    upstream = socket.socket(fileno=fds[0])
    upstream.setblocking(True)
    assert upstream.getpeername() == ("127.0.0.1", int(sac_env.provider_url.rsplit(":", 1)[1]))
    upstream.sendall(b"GET /v1/models HTTP/1.0\r\nHost: x\r\n\r\n")
    answer = upstream.recv(4096)
    upstream.close()
    assert answer.startswith(b"HTTP/1.")


def test_network_none_fails_the_turn_with_the_reason(sac_env):
    sac_env.write_spec("a1", extra={"isolation": {"runtime": "bwrap", "network": "none"}})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    turn = sac_env.sac_json("agents", "send", "a1", "anyone there?", check=False)
    assert turn["status"] == "failed", turn
    assert "isolation.network is none" in turn["error"]
    assert sac_env.sac_json("agents", "status", "a1")["isolation"]["network"] == "none"
    assert sac_env.provider.requests == []  # nothing reached the provider


def test_host_network_is_opt_in_and_shown(sac_env, listeners):
    sac_env.write_spec("a1", extra={"isolation": {"runtime": "bwrap", "network": "host"}})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "hi").stdout.strip() == "echo: hi"
    assert sac_env.sac_json("agents", "status", "a1")["isolation"]["network"] == "host"
    row = sac_env.sac("agents", "list").stdout.splitlines()[1].split()
    assert "host" in row and "provider" not in row
    assert "network:    host" in sac_env.sac("agents", "status", "a1").stdout


def test_relay_turn_leaves_no_key_in_any_cmdline(sac_env):
    from tests.integration.test_agent_isolation import cmdlines_and_environs
    key = "sk-test-" + secrets.token_hex(20)
    sac_env.env["SAC_TEST_PROVIDER_KEY"] = key
    sac_env.write_spec("a1", claude={"provider": {"base_url": sac_env.provider_url,
                                                  "api_key_env": "SAC_TEST_PROVIDER_KEY"}})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "k").stdout.strip() == "echo: k"
    seen = list(cmdlines_and_environs())
    relays = [pid for pid, cmdline, _ in seen if b"relay" in cmdline and b"def main(argv)" in cmdline]
    assert relays  # the inside listener runs, next to the engine
    assert not [pid for pid, cmdline, _ in seen if key.encode() in cmdline]


def test_site_check_shows_a_sandbox_cannot_reach_a_host_port(bwrap_bin, listeners):
    from sac_node import site_check
    address = host_address()
    for host in ("127.0.0.1", address):
        output, props = site_check.self_check("bwrap", reach=(host, listeners.port))
        assert output.strip().startswith("%s:%d: unreachable from the sandbox" % (host, listeners.port)), output
        assert props["network"] == "none"
    assert listeners.reached == []
    # the same probe unsandboxed reaches it: the check can tell the difference
    output, _ = site_check.self_check("none", reach=("127.0.0.1", listeners.port))
    assert output.strip() == "127.0.0.1:%d: REACHABLE from the sandbox" % listeners.port


def test_a_provider_named_by_host_name_is_reached_under_that_name(sac_env):
    # the URL keeps the name (what TLS would check); the sandbox's own /etc/hosts maps it to its loopback
    url = sac_env.provider_url.replace("127.0.0.1", "localhost")
    sac_env.provider.load_script({"rules": [{"match": "hosts", "tool": "Bash",
                                             "input": {"command": "cat /etc/hosts", "description": "hosts"},
                                             "then": "hosts: {tool_result}"}]})
    sac_env.write_spec("a1", claude={"provider": {"base_url": url}, "allowed_tools": ["Bash"]})
    sac_env.sac("agents", "start", sac_env.specs / "a1")
    assert sac_env.sac("agents", "send", "a1", "by name").stdout.strip() == "echo: by name"
    turn = sac_env.sac_json("agents", "send", "a1", "show hosts")
    written = (sac_env.agent_dir("a1") / "hosts").read_text()
    assert written.splitlines()[-1] == "127.0.0.1\tlocalhost"
    assert turn["reply"].split("hosts: ", 1)[1].strip() == written.strip()  # the sandbox's /etc/hosts is sac's


def test_the_relay_dials_the_current_target_after_a_rotation(tmp_path):
    """The shim re-points the relay at each engine start: a new provider address is used at once."""
    from sac_node import egress

    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    path = str(tmp_path / "provider.sock")

    def peer_via_relay():
        asker = socket.socket(socket.AF_UNIX)
        asker.connect(path)
        _, ancillary, _, _ = asker.recvmsg(1, socket.CMSG_LEN(4))
        asker.close()
        fds = array.array("i")
        fds.frombytes(ancillary[0][2][:4])
        with socket.socket(fileno=fds[0]) as upstream:
            return upstream.getpeername()[1]

    async def scenario():
        relay = egress.ProviderRelay()
        seen = []
        loop = asyncio.get_event_loop()
        for server in servers:
            port = server.getsockname()[1]
            await relay.serve(egress.Egress("provider", ("127.0.0.1", port), None, None, path))
            seen.append(await loop.run_in_executor(None, peer_via_relay))
        relay.close()
        return seen

    try:
        assert asyncio.run(scenario()) == [s.getsockname()[1] for s in servers]
    finally:
        for server in servers:
            server.close()


def self_signed_localhost(directory):
    """(cert path, key path) of a certificate for DNS:localhost."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsFront:
    """An HTTPS front for the built-in provider on localhost: TLS ends here, not in sac's relay."""

    def __init__(self, cert, key, target_port):
        self.names = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        context.sni_callback = lambda sock, name, ctx: self.names.append(name)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def pipe(reader, writer):
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            except (OSError, ssl.SSLError):
                pass
            writer.close()

        async def on_client(reader, writer):
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def serve():
            self.server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=context)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        ready.wait(10)

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_an_https_provider_keeps_tls_end_to_end_through_the_relay(sac_env, tmp_path):
    work = tmp_path / "tls-work"
    work.mkdir()
    cert, key = self_signed_localhost(work)
    front = TlsFront(cert, key, int(sac_env.provider_url.rsplit(":", 1)[1]))
    try:
        url = "https://localhost:%d/" % front.port
        sac_env.write_spec("a1", claude={"provider": {"base_url": url}},
                           extra={"workdir": str(work), "env": {"NODE_EXTRA_CA_CERTS": str(cert)}})
        sac_env.sac("agents", "start", sac_env.specs / "a1")
        turn = sac_env.sac_json("agents", "send", "a1", "over tls", check=False)
        assert turn["status"] == "completed" and turn["reply"] == "echo: over tls", turn
        # the engine's TLS reached the front with the provider's name: the relay passed bytes, not plaintext
        assert front.names and set(front.names) == {"localhost"}
    finally:
        front.close()
