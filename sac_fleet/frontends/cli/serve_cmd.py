"""`sac fleet serve [-i INVENTORY]`: the HTTP gateway (REST, SSE, A2A) over an open Fleet.

Attach with `fleet_cmd.app.add_typer(serve_cmd.app)` (a nameless Typer merges its command).
"""

import asyncio
import errno
import ipaddress
import logging
import sys

import typer

from .options import ACCEPT_NEW, OLD_INVENTORY, inventory_of, optional_inventory
from .render import LazyConsole, styled

app = typer.Typer()
out = LazyConsole()
err = LazyConsole(stderr=True)


def _say(line):
    out.print(line)
    sys.stdout.flush()


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _access_log():
    logger = logging.getLogger("sac.gateway.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@app.command()
def serve(old_inventory: str = OLD_INVENTORY,
          inventory: str = typer.Option(None, "--inventory", "-i", metavar="FILE",
                                        help="Serve this inventory's hosts (default: $SAC_INVENTORY, else "
                                             "./inventory.yaml; with neither, this machine's agents)."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
          port: int = typer.Option(8642, "--port", help="Port to listen on (0: any free port)."),
          print_token: bool = typer.Option(False, "--print-token",
                                           help="Also print the `default` token's value."),
          accept_new: bool = ACCEPT_NEW,
          access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                          help="Log each request (method, path, status; never headers).")):
    """Serve the fleet over HTTP: POST /v1/turn, turn lookup, status, SSE transcripts and A2A."""
    from sac_fleet.api import Fleet, register_gateway, unregister_gateway
    from sac_fleet.frontends.gateway.http import serve as run_gateway
    from sac_fleet.frontends.gateway.tokens import (Keyring, ensure_default, load_or_create_token, token_path,
                                                    tokens_path)

    inventory = optional_inventory(inventory_of(inventory, old_inventory))

    path, named = token_path(), tokens_path()
    ensure_default(named, path)  # the single token of before is the `default` admin one
    token = load_or_create_token(path) if path.exists() else None  # None: `default` was revoked
    if access_log:
        _access_log()
    if not _is_loopback(host):
        err.print(styled(("warning:", "yellow"), " listening on %s, beyond this machine: anyone who can reach it and "
                  "holds the token drives your agents; plain HTTP, so put TLS in front of it" % host))

    def on_host(name, state, detail):
        if state != "connecting":
            _say("host %-12s %s %s" % (name, state, detail or ""))

    def on_ready(url):
        registered.append(register_gateway(url, inventory, path))
        _say("sac gateway on %s serving %s" % (url, inventory or "this machine's agents"))
        _say("tokens: %s (`sac fleet token list`; changes apply at once)" % named)
        if token is None:
            _say("token file: none (the `default` token was revoked; `sac fleet token add` makes others)")
            return
        _say("token file: %s (the `default` admin token; send `Authorization: Bearer <token>`)" % path)
        if print_token:
            _say("token: %s" % token)

    fleet = Fleet(inventory=inventory, accept_new_host_keys=accept_new)
    registered = []
    try:
        asyncio.run(run_gateway(fleet, host, port, Keyring(named), on_ready=on_ready, on_host=on_host,
                                access_log=access_log))
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        err.print(styled(("error:", "red"), " cannot listen on %s:%d: %s (choose another --port)" % (host, port, exc.strerror)))
        raise typer.Exit(2)
    finally:
        for registry in registered:
            unregister_gateway(registry)


if __name__ == "__main__":
    app()
