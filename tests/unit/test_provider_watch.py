"""ProviderWatch: when a turn gives up on its provider, and diagnose: why it cannot be reached."""

import asyncio
import socket

from sac_node import engine
from sac_node.node_spec import NodeSpec
from sac_node.provider_watch import ProviderWatch, diagnose

read = NodeSpec.from_wire  # a spec dict as the node reads it


def retry(attempt, status=None, error="unknown"):
    return {"type": "system", "subtype": "api_retry", "attempt": attempt, "error_status": status, "error": error}


def test_a_refused_key_gives_up_at_the_first_retry():
    watch = ProviderWatch(give_up_s=8)
    assert watch.retrying(retry(1, 401, "authentication_failed"), now=100.0) == "HTTP 401 authentication_failed"
    watch = ProviderWatch(give_up_s=8)
    assert watch.retrying(retry(1, 403, "permission_error"), now=100.0).startswith("HTTP 403")


def test_no_connection_or_a_5xx_gives_up_once_retries_went_on_for_give_up_s():
    watch = ProviderWatch(give_up_s=8)
    assert [watch.retrying(retry(n), now=100.0 + t) for n, t in ((1, 0), (2, 0.5), (3, 1.6), (4, 3.6))] == [None] * 4
    assert watch.retrying(retry(5), now=108.1) == "no connection after 5 tries in 8s"
    watch = ProviderWatch(give_up_s=8)
    assert watch.retrying(retry(1, 500, "server_error"), now=0.0) is None
    assert watch.retrying(retry(5, 500, "server_error"), now=9.0) == "HTTP 500 server_error after 5 tries in 9s"


def test_rate_limits_and_overload_are_left_to_claude_code_and_the_accounts():
    watch = ProviderWatch(give_up_s=0)
    assert watch.retrying(retry(1, 429, "rate_limit"), now=0.0) is None
    assert watch.retrying(retry(9, 529, "overloaded"), now=60.0) is None


def test_degraded_until_the_provider_answers_again():
    watch = ProviderWatch(give_up_s=8)
    assert watch.degraded() is None
    watch.retrying(retry(1), now=0.0)
    watch.gave_up("connection refused by 127.0.0.1:9", now=1796378400.0)
    assert watch.degraded() == ("provider unreachable (connection refused by 127.0.0.1:9, "
                                "since 2026-12-04T10:00:00Z)")
    watch.gave_up("connection refused by 127.0.0.1:9", now=1796378999.0)  # still down: since stays
    assert "since 2026-12-04T10:00:00Z" in watch.degraded()
    watch.answered()
    assert watch.degraded() is None
    # A retry after an answer starts a new count.
    assert watch.retrying(retry(1), now=5000.0) is None


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_diagnose_names_a_refused_connection_a_tls_failure_and_silence():
    port = _closed_port()
    assert asyncio.run(diagnose("http://127.0.0.1:%d" % port)) == "connection refused by 127.0.0.1:%d" % port

    async def plain_and_silent():
        async def answer_plain(reader, writer):
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await writer.drain()
            writer.close()

        plain = await asyncio.start_server(answer_plain, "127.0.0.1", 0)
        held = []
        silent = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)  # never speaks
        try:
            p1 = plain.sockets[0].getsockname()[1]
            p2 = silent.sockets[0].getsockname()[1]
            return (p1, await diagnose("https://127.0.0.1:%d" % p1), await diagnose("http://127.0.0.1:%d" % p1),
                    p2, await diagnose("https://127.0.0.1:%d" % p2, timeout=0.5))
        finally:
            for writer in held:
                writer.close()
            plain.close()
            silent.close()
            await plain.wait_closed()
            await silent.wait_closed()

    p1, tls, ok, p2, silence = asyncio.run(plain_and_silent())
    assert tls.startswith("TLS handshake with 127.0.0.1:%d failed" % p1)
    assert ok is None
    assert silence == "no TLS answer from 127.0.0.1:%d within 0.5s" % p2


def test_no_provider_and_no_login_is_said_at_start():
    spec = {"name": "a1", "claude": {"provider": {}}}
    nothing = engine.login_problem(read(spec), {}, lambda rel: False)
    assert nothing.startswith("agent a1 has no model provider and no login: set spec.claude.provider.base_url")
    assert engine.login_problem(read(spec), {"ANTHROPIC_API_KEY": "k"}, lambda rel: False) is None
    assert engine.login_problem(read(dict(spec, env={"CLAUDE_CODE_OAUTH_TOKEN": "t"})), {}, lambda rel: False) is None
    assert engine.login_problem(read(spec), {}, lambda rel: rel == ".claude/.credentials.json") is None
    local = {"name": "a1", "claude": {"provider": {"base_url": "http://127.0.0.1:8787"}}}
    assert engine.login_problem(read(local), {}, lambda rel: False) is None
    assert engine.login_problem(read({"name": "a1", "engine": {"kind": "command"}}), {}, lambda rel: False) is None


def test_a_tls_diagnosis_works_in_a_shim_which_keeps_ssl_out_of_memory():
    import subprocess
    import sys
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer_plain():
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer_plain)
    thread.start()
    code = ("import sys; sys.modules['ssl'] = None; import asyncio; from sac_node.provider_watch import diagnose; "
            "print(asyncio.run(diagnose('https://127.0.0.1:%d')))" % port)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    finally:
        thread.join(10)
        server.close()
    assert out.stdout.startswith("TLS handshake with 127.0.0.1:%d failed" % port), out.stderr
