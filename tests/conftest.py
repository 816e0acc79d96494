"""Shared fixtures. Real parts only: in CI (CI=true) a missing sshd, bwrap, Slurm or
Claude Code CLI fails the test; on a developer machine it skips with the reason."""

pytest_plugins = [
    "tests.fixtures.tools",
    "tests.fixtures.provider",
    "tests.fixtures.sshd",
    "tests.fixtures.agents",
    "tests.fixtures.fleet",
    "tests.fixtures.slurm",
]
