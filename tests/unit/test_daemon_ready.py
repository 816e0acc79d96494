"""A daemon's node.sock answers only once its daemon.json names it.

`daemon --detach` returns as soon as node.sock answers, and the head's probe then reads
daemon.json to say whether a daemon runs. A socket that answered before daemon.json was
written made a loaded host report "the node daemon did not start" for a daemon that had.
"""

import asyncio
import json
import os

from sac_node.daemon import Node
from sac_node.probe import answers, daemon_of
from sac_node.state_dir import StateDir


async def test_node_sock_answers_only_after_daemon_json_names_this_daemon(tmp_path):
    state = StateDir(str(tmp_path / "state")).create()
    with open(os.path.join(state.root, "daemon.json"), "w") as fh:  # a daemon of before, stopped
        json.dump({"pid": 1, "sha": "old", "stopped_at": 1.0}, fh)
    node = Node(state)
    answered_while_writing = []
    write_info = node._write_info

    def spy(**extra):
        if not extra:  # the start's write, not the stop's
            answered_while_writing.append(answers(state.socket))
        write_info(**extra)

    node._write_info = spy
    ready = asyncio.Event()
    serving = asyncio.ensure_future(node.serve(on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        assert answered_while_writing == [False]
        found = daemon_of(state.root)
        assert found["alive"] and found["pid"] == os.getpid() and "stopped_at" not in found
        assert sorted(os.listdir(state.root)).count("node.sock") == 1
        assert not [n for n in os.listdir(state.root) if n.startswith("node.sock.")]
    finally:
        node.shutdown()
        await asyncio.wait_for(serving, 10)
