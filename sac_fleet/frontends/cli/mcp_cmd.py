"""`sac mcp`: serve the fleet to MCP clients over stdio; `sac mcp install` adds it to a .mcp.json."""

import json
import os
import sys
from pathlib import Path

import typer

from sac_node.protocol.errors import ConfigError

from .options import ACCEPT_NEW
from .render import LazyConsole

app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                  help="Serve agents as MCP tools over stdio (`sac mcp`), or add that server to a .mcp.json.")
err = LazyConsole(stderr=True)

INVENTORY = typer.Option(None, "--inventory", "-i", metavar="FILE",
                         help="Serve every host of this inventory.yaml (default: $SAC_INVENTORY, else "
                              "./inventory.yaml; with neither, only this machine's agents).")


@app.callback()
def _default(ctx: typer.Context, inventory: Path = INVENTORY, accept_new: bool = ACCEPT_NEW):
    """Serve agents as MCP tools over stdio (the same as `sac mcp serve`)."""
    if ctx.invoked_subcommand is None:
        _serve(inventory, accept_new)


@app.command()
def serve(inventory: Path = INVENTORY, accept_new: bool = ACCEPT_NEW):
    """Serve MCP over stdin/stdout until the client hangs up (stdout carries only the protocol)."""
    _serve(inventory, accept_new)


def _serve(inventory, accept_new=False):
    from sac_fleet.frontends.mcp.server import run  # the mcp SDK loads only for this command

    from .options import optional_inventory

    try:
        run(inventory=optional_inventory(inventory), accept_new_host_keys=accept_new)
    except KeyboardInterrupt:
        pass


@app.command()
def install(
    inventory: Path = INVENTORY,
    write: bool = typer.Option(False, "--write", help="Merge the entry into the .mcp.json instead of printing it."),
    file: Path = typer.Option(Path(".mcp.json"), "--file", help="The .mcp.json to write (with --write)."),
    name: str = typer.Option("sac", "--name", help="The server's key under mcpServers."),
    always_load: bool = typer.Option(True, "--always-load/--no-always-load",
                                     help="Ask Claude Code to wait for this server before its first request."),
):
    """Print (or, with --write, merge into ./.mcp.json) the entry that lets Claude Code use `sac mcp`."""
    entry = server_entry(inventory, always_load)
    if not write:
        sys.stdout.write(json.dumps({"mcpServers": {name: entry}}, indent=2) + "\n")
        err.print("add this to your project's .mcp.json, or run `sac mcp install --write`", style="dim")
        return
    verb = merge_entry(file, name, entry)
    err.print("%s: %s mcpServers.%s (%s %s)" % (file, verb, name, entry["command"], " ".join(entry["args"])))


def server_entry(inventory=None, always_load=True):
    """The mcpServers entry that runs this installation's `sac mcp` (absolute paths, so any cwd works).

    Claude Code connects MCP servers in the background, and a headless `claude -p` (a sac
    agent, say) may send its first request before the tools are there; `alwaysLoad` makes
    it wait for this server (up to MCP_CONNECT_TIMEOUT_MS, 5 s by default).
    """
    script = Path(sys.executable).parent / "sac"
    if script.is_file() and os.access(script, os.X_OK):
        command, args = str(script), ["mcp"]
    else:
        command, args = sys.executable, ["-m", "sac_fleet", "mcp"]
    if inventory is not None:
        path = Path(inventory).expanduser().resolve()
        if not path.is_file():
            raise ConfigError("--inventory %s: no such file; give the path of an inventory.yaml" % inventory)
        args += ["--inventory", str(path)]
    entry = {"command": command, "args": args}
    if always_load:
        entry["alwaysLoad"] = True
    return entry


def merge_entry(file, name, entry):
    """Set mcpServers.<name> in the JSON file `file`, keeping everything else; returns what changed."""
    file = Path(file)
    doc = {}
    if file.exists():
        try:
            doc = json.loads(file.read_text() or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError("%s:%d: not valid JSON (%s); fix it or choose another --file"
                              % (file, exc.lineno, exc.msg)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("mcpServers", {}), dict):
        raise ConfigError("%s: expected a JSON object with an mcpServers object; fix it or choose another --file"
                          % file)
    servers = doc.setdefault("mcpServers", {})
    verb = "unchanged" if servers.get(name) == entry else "updated" if name in servers else "added"
    servers[name] = entry
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, file)
    return verb
