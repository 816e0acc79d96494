"""The `sac` command: a thin typer layer over sac_fleet's API.

Each command group lives in its own module; SacError is caught once, here.
"""

import logging
import sys

import typer

from sac_node.protocol.errors import SacError

from . import accounts_cmd, agents_cmd, fleet_cmd, mcp_cmd, node_cmd, provider_cmd, spec_cmd
from .render import LazyConsole, print_error, styled

def _tidy_help():
    """Typer's help as sac wants it: a flag shows no `<bool>` type (it takes no value), and a hidden
    argument (a deprecated positional INVENTORY) stays out of the usage line."""
    from typer.core import TyperArgument, TyperOption

    value_type = TyperOption.display_type_rich
    TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else value_type(self, ctx)
    usage = TyperArgument.get_usage_pieces
    TyperArgument.get_usage_pieces = lambda self, ctx: [] if self.hidden else usage(self, ctx)


_tidy_help()
app = typer.Typer(
    name="sac",
    help="Long-lived, sandboxed Claude Code agents from a spec.yaml; fleets of them over SSH.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, powershell
)
app.add_typer(spec_cmd.app, name="spec")
app.add_typer(agents_cmd.app, name="agents")
app.add_typer(fleet_cmd.app, name="fleet")
app.add_typer(provider_cmd.app, name="provider")
app.add_typer(accounts_cmd.app, name="accounts")
app.add_typer(mcp_cmd.app, name="mcp")
app.add_typer(node_cmd.app, name="node")

err_console = LazyConsole(stderr=True)


def _print_version(value):
    if value:
        from sac_node import __version__

        sys.stdout.write("sac %s\n" % __version__)
        raise typer.Exit(0)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
          version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print sac's version and exit.")):
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app.info.context_settings = {"obj": {"debug": debug}}
    _State.debug = debug


class _State:
    debug = False


def main():
    """Entry point of the `sac` console script."""
    try:
        code = app(standalone_mode=False)
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        sys.exit(code if isinstance(code, int) else 0)
    except SacError as exc:
        if _State.debug:
            raise
        print_error(exc, err_console)
        sys.exit(exc.data.get("exit_code", 2) if isinstance(exc.data, dict) else 2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print(styled(("aborted", "red")))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):  # click's (or typer's vendored click's) usage errors
            show()
            sys.exit(code)
        raise
