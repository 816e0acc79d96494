"""The engine's output as lines, from a real child process and from any chunking of its pipe."""

import asyncio
import sys

from hypothesis import given, settings, strategies as st

from sac_node import engine_proc
from sac_node.engine_proc import EngineProcess


async def test_lines_exit_code_and_stdin_of_a_real_process():
    out, err = [], []
    script = ("import sys\n"
              "for line in sys.stdin: sys.stdout.write('got ' + line); sys.stdout.flush()\n"
              "sys.stderr.write('bye\\n'); sys.stdout.write('x' * 300000); sys.exit(3)\n")
    proc = await EngineProcess.start([sys.executable, "-c", script], out.append, err.append)
    assert proc.pid and proc.returncode is None
    proc.write(b"one\ntwo\n")
    await proc.drain()
    proc.close_stdin()
    assert await asyncio.wait_for(proc.wait(), 30) == 3
    await asyncio.wait_for(proc.output_closed, 30)
    assert out == [b"got one\n", b"got two\n", b"x" * 300000]  # the last line, unended, comes at EOF
    assert err == [b"bye\n"] and proc.returncode == 3


async def test_cancelling_a_wait_leaves_the_exit_to_be_seen():
    proc = await EngineProcess.start([sys.executable, "-c", "import time; time.sleep(0.3)"], [].append, [].append)
    try:
        await asyncio.wait_for(proc.wait(), 0.01)
    except asyncio.TimeoutError:
        pass
    assert await asyncio.wait_for(proc.wait(), 30) == 0


def _feed(chunks, limit=None):
    lines = []
    proc = EngineProcess(lines.append, [].append)
    if limit is not None:
        proc_limit, engine_proc.LINE_LIMIT = engine_proc.LINE_LIMIT, limit
    try:
        for chunk in chunks:
            proc.pipe_data_received(1, chunk)
    finally:
        if limit is not None:
            engine_proc.LINE_LIMIT = proc_limit
    return lines, proc


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8), st.data())
def test_any_chunking_gives_the_same_lines(texts, data):
    stream = b"".join(t + b"\n" for t in texts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)]) if b > a]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        lines, _ = _feed(chunks)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    assert lines == [t + b"\n" for t in texts]


async def test_a_line_over_the_limit_comes_in_pieces_and_the_next_one_is_whole():
    lines, _ = _feed([b"a" * 6, b"a" * 6, b"aa\nnext\n"], limit=10)
    assert lines == [b"a" * 12, b"aa\n", b"next\n"]


async def test_a_line_whose_handling_fails_costs_no_other_line(caplog):
    seen = []

    def handle(line):
        seen.append(line)
        if line == b"bad\n":
            raise OSError("No space left on device")

    proc = EngineProcess(handle, [].append)
    proc.pipe_data_received(1, b"one\nbad\ntwo\n")
    assert seen == [b"one\n", b"bad\n", b"two\n"]
    assert "No space left on device" in caplog.text
