"""The Python API as docs/python-api.md shows it: the example script, and SyncFleet on a real agent."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sac_fleet.sync import SyncFleet
from sac_node.protocol.errors import AgentNotFound

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python_api.py"


def test_example_script_starts_an_agent_sends_two_turns_and_stops_it(sac_env):
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--runtime", "bwrap"], env=sac_env.env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("provider listening on http://127.0.0.1:")
    assert re.fullmatch(r"started python-api-example \(state \w+\)", lines[1])
    assert lines[2].startswith("hello -> echo: hello  [completed in ")
    assert lines[3].startswith("how are you? -> echo: how are you?  [completed in ")
    assert lines[4:] == ["turns completed: 2", "python-api-example: stopped"]
    assert not sac_env.agent_dir("python-api-example").exists()


def test_sync_fleet_drives_a_real_agent(sac_env):
    spec_dir = sac_env.write_spec("a1")
    with SyncFleet(state_dir=str(sac_env.home)) as fleet:
        assert fleet.start(spec_dir)["started"]
        records = []
        turn = fleet.send("a1", "hello sync", on_record=records.append)
        assert turn["status"] == "completed" and turn["reply"] == "echo: hello sync"
        assert any((r.get("event") or {}).get("type") == "result" for r in records)

        # follow yields the live transcript of the next turn; break unsubscribes
        last = fleet.tail("a1", 1)[-1]["seq"]
        fleet.send("a1", "second", wait=False)
        ended = None
        for record in fleet.follow("a1", from_seq=last):
            event = record.get("event") or {}
            if event.get("subtype") == "turn_ended":
                ended = event
                break
        assert ended["status"] == "completed"
        assert fleet.status("a1")["turns"]["completed"] == 2

        with pytest.raises(AgentNotFound):
            fleet.status("ghost")
        assert fleet.stop("a1")["state"] == "stopped"
