"""sac's Python API in one script: a provider, an agent, two turns.

    python examples/python_api.py                 # agents live in $SAC_HOME (default ~/.sac)
    python examples/python_api.py --runtime none  # on a machine without bwrap or Apptainer

It starts sac's built-in provider inside this process (so it needs no account and
no network), writes a spec that points an agent at it, starts the agent, sends
two turns and prints the replies, then stops the agent and deletes it.
Claude Code must be installed (`claude` on PATH, or SAC_CLAUDE_BIN).
"""

import argparse
import asyncio
import tempfile
from pathlib import Path

from sac_fleet.api import Fleet
from sac_fleet.provider.server import ProviderServer

SPEC = """\
apiVersion: sac/v1
kind: Agent
metadata: {name: %(name)s}
spec:
  workdir: ./work
  claude:
    provider: {base_url: "%(url)s"}
  isolation: {runtime: %(runtime)s}
"""


async def converse(spec_dir, name):
    """Start the agent of `spec_dir`, send it two turns, then stop and delete it."""
    async with Fleet() as fleet:
        started = await fleet.start(spec_dir)
        print("started %s (state %s)" % (name, started["status"]["state"]))
        try:
            for prompt in ("hello", "how are you?"):
                turn = await fleet.send(name, prompt, timeout=120)
                print("%s -> %s  [%s in %.2fs]" % (prompt, turn["reply"], turn["status"], turn["timings"]["run_s"]))
            status = await fleet.status(name)
            print("turns completed: %d" % status["turns"]["completed"])
        finally:
            stopped = await fleet.stop(name)
            print("%s: %s" % (name, stopped["state"]))
            await fleet.delete(name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="python-api-example", help="the agent's name")
    parser.add_argument("--runtime", default="auto", choices=["auto", "bwrap", "apptainer", "none"],
                        help="the agent's sandbox (isolation.runtime)")
    args = parser.parse_args()
    with ProviderServer() as provider, tempfile.TemporaryDirectory() as tmp:
        print("provider listening on %s" % provider.url)
        spec_dir = Path(tmp) / args.name
        spec_dir.mkdir()
        (spec_dir / "spec.yaml").write_text(SPEC % {"name": args.name, "url": provider.url, "runtime": args.runtime})
        asyncio.run(converse(spec_dir, args.name))


if __name__ == "__main__":
    main()
