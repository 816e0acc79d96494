"""`python -m sac_fleet` is the `sac` command."""

from .frontends.cli.app import main

main()
