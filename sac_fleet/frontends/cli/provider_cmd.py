"""`sac provider ...` commands."""

import asyncio
import os
import sys
from pathlib import Path

import typer

from sac_node.protocol.errors import SacError

app = typer.Typer(no_args_is_help=True, help="The built-in Anthropic-compatible provider: try the whole path offline.")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8787, "--port", help="Port to listen on (0 = a free port)."),
    script: Path = typer.Option(None, "--script", help="YAML or JSON script: replies, tool calls, faults."),
):
    """Serve an Anthropic-Messages-compatible provider (echoes prompts unless scripted)."""
    from sac_fleet.provider.script import load_script  # aiohttp and pydantic load only for this command

    parsed = load_script(script) if script is not None else None
    try:
        asyncio.run(_serve(host, port, parsed))
    except KeyboardInterrupt:
        pass


async def _serve(host, port, script):
    from sac_fleet.provider.server import Provider, start_site, stop_site

    provider = Provider(script, on_request=lambda record: _say(record.line()))
    try:
        runner, url = await start_site(provider, host, port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise SacError("cannot listen on %s:%d: %s; choose another --port (0 = a free port)" % (host, port, reason)) from exc
    _say("sac provider listening on %s" % url)
    try:
        await asyncio.Event().wait()
    finally:
        await stop_site(provider, runner)


def _say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
