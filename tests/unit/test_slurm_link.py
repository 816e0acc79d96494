"""The link a Slurm job dials back to the login daemon: a job with its token reports its shims and
bridges streams to them; a connection without the token gets nothing."""

import asyncio
import json
import os
import socket
import threading

from sac_node.slurm_link import JobLinks, LinkClient, write_token


def test_a_job_with_its_token_is_heard_and_bridges_a_stream_to_its_shim(tmp_path):
    root = tmp_path / "state" / "slurm"
    job_dir = root / "k1"
    job_dir.mkdir(parents=True)
    write_token(str(job_dir))
    assert oct(os.stat(job_dir / "link.json").st_mode & 0o777) == "0o600"
    shim_path = str(tmp_path / "shim.sock")
    shim = socket.socket(socket.AF_UNIX)
    shim.bind(shim_path)
    shim.listen()

    def echo_shim():
        conn, _ = shim.accept()
        conn.sendall(b"shim got: " + conn.recv(100))
        conn.close()

    threading.Thread(target=echo_shim, daemon=True).start()

    async def main():
        changes = []
        links = JobLinks(str(root), on_change=lambda: changes.append(len(links.controls)))
        await links.listen("127.0.0.1")
        client = LinkClient(str(tmp_path / "state"), str(job_dir), lambda agent: shim_path)
        await asyncio.get_event_loop().run_in_executor(None, client.report, {"alpha": 4242})
        for _ in range(100):
            if links.shim_pid("k1", "alpha"):
                break
            await asyncio.sleep(0.02)
        assert links.shim_pid("k1", "alpha") == 4242 and links.shim_pid("k2", "alpha") is None
        assert changes == [1]  # a job dialled in: the login daemon's squeue answer is stale
        reader, writer = await links.open_stream("k1", "alpha")
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.read(100), 5) == b"shim got: hello"
        writer.close()
        client.close()
        for _ in range(100):
            if "k1" not in links.controls:
                break
            await asyncio.sleep(0.02)
        assert links.shim_pid("k1", "alpha") is None  # the job's link closed: its shims are not reachable
        assert changes == [1, 0]

        where = json.loads((root / "listen.json").read_text())
        reader, writer = await asyncio.open_connection(where["address"], where["port"])
        writer.write(json.dumps({"job": "k1", "token": "guess", "kind": "control"}).encode() + b"\n")
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed without a word
        assert "k1" not in links.controls
        writer.close()
        links.server.close()
        await links.server.wait_closed()

    try:
        asyncio.run(main())
    finally:
        shim.close()
