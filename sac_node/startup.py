"""`spec.startup_commands`: one shell runs them in the sandbox, then execs the engine.

The engine so inherits the environment they leave (`module load`, `source venv/bin/activate`,
`export FOO=1`), as its tools do. launch.prepare wraps every engine start's argv with
`with_startup`; lifecycle.py (hooks) uses the same shell.
"""

import shutil

STARTUP_FAILED = 97  # the exit code of an engine whose startup_commands failed


def shell(which=shutil.which):
    """The shell that runs hooks and startup commands: bash where this host has one (`source`), else sh.
    By name: the sandbox's PATH finds it (an Apptainer image has its own)."""
    return "bash" if which("bash") else "sh"


def with_startup(lines, argv, sh=None):
    """`argv` preceded by the spec's startup_commands, in one shell that then execs it.

    A line that fails stops there: the shell says which on stderr and exits STARTUP_FAILED.
    """
    if not lines:
        return list(argv)
    script = "".join("{ :\n%s\n} || { echo \"sac: startup_commands[%d] failed (exit $?): %s\" >&2; exit %d; }\n"
                     % (line, i, one_line(line).replace("\"", "'").replace("$", "\\$").replace("`", "'"),
                        STARTUP_FAILED) for i, line in enumerate(lines))
    return [sh or shell(), "-c", script + "exec \"$@\"", "sac-startup"] + list(argv)


def one_line(text):
    return " ".join(text.split())[:200]
