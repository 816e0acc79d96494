"""startup_commands: one shell runs them, then execs the engine in the environment they leave."""

import subprocess

from sac_node.startup import STARTUP_FAILED, with_startup


def test_no_startup_commands_leave_the_argv_alone():
    assert with_startup((), ["claude", "-p"]) == ["claude", "-p"]


def test_the_engine_inherits_what_the_lines_export_and_gets_its_own_argv(tmp_path):
    (tmp_path / "env.sh").write_text("export FROM_FILE=sourced\n")
    argv = with_startup(["export FOO=1", "source %s" % (tmp_path / "env.sh"), "# a comment"],
                        ["sh", "-c", 'echo "$FOO $FROM_FILE $1"', "x", "arg with space"], sh="bash")
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stdout == "1 sourced arg with space\n"


def test_a_failing_line_stops_there_and_says_which_on_stderr():
    argv = with_startup(["true", "false", "echo never"], ["echo", "engine"], sh="bash")
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == STARTUP_FAILED and done.stdout == ""
    assert done.stderr == "sac: startup_commands[1] failed (exit 1): false\n"


def test_quotes_and_dollars_in_a_line_do_not_break_the_message():
    argv = with_startup(['test "$HOME" = "`echo nope`"'], ["true"], sh="bash")
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == STARTUP_FAILED
    assert "startup_commands[0] failed (exit 1): test '$HOME' = ''echo nope''" in done.stderr
