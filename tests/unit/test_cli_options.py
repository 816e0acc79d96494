"""One rule for where the inventory goes, the same host-key options on every fleet command, help that
reads: what a user types and sees, run as the real `sac` in a fresh interpreter."""

import pytest

from tests.fixtures.cli_imports import run_sac

INVENTORY_COMMANDS = [["fleet", "up"], ["fleet", "plan"], ["fleet", "status"], ["fleet", "down"],
                      ["fleet", "serve", "--port", "0"], ["fleet", "send", "a1", "hi"], ["fleet", "tail", "a1"],
                      ["mcp"]]
CONNECTING = INVENTORY_COMMANDS


@pytest.mark.parametrize("command", INVENTORY_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_takes_the_inventory_as_dash_i_else_from_the_environment(tmp_path, command):
    given = tmp_path / "given.yaml"
    ran = run_sac(command + ["-i", given], tmp_path)
    assert (ran.code, ran.stderr.strip()) == (2, "error: %s: no such file (check the path)" % given)
    from_env = tmp_path / "from-env.yaml"
    ran = run_sac(command, tmp_path, env={"SAC_INVENTORY": str(from_env)})
    assert (ran.code, ran.stderr.strip()) == (2, "error: %s: no such file (check the path)" % from_env)


@pytest.mark.parametrize("command", [c for c in INVENTORY_COMMANDS if c[1:2] in (["up"], ["plan"], ["status"], ["down"])],
                         ids=lambda c: " ".join(c[:2]))
def test_the_old_positional_inventory_still_works_and_says_to_use_dash_i(tmp_path, command):
    given = tmp_path / "old.yaml"
    ran = run_sac(command + [given], tmp_path)
    assert ran.code == 2 and "error: %s: no such file" % given in ran.stderr
    assert "deprecated; use -i %s" % given in ran.stderr
    assert "[INVENTORY]" not in run_sac(command + ["--help"], tmp_path).stdout


@pytest.mark.parametrize("command", CONNECTING, ids=lambda c: " ".join(c[:2]))
def test_every_fleet_command_that_connects_has_the_host_key_option(tmp_path, command):
    ran = run_sac(command + ["--help"], tmp_path)
    assert ran.code == 0 and "--accept-new-host-keys" in ran.stdout, ran.stdout + ran.stderr


def test_no_flag_shows_a_bool_metavar_and_every_option_says_what_it_does(tmp_path):
    """Walk every command's help: `--help <bool>` reads as if --help took a value."""
    from sac_fleet.frontends.cli.app import app
    import typer.main

    root = typer.main.get_command(app)
    missing = []

    def walk(cmd, path):
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub, path + [sub.name])
        for param in cmd.params:
            if param.param_type_name == "option" and not param.help and not param.hidden:
                missing.append("%s %s" % (" ".join(path), param.opts[0]))
    walk(root, ["sac"])
    assert missing == []
    for args in (["provider", "serve", "--help"], ["fleet", "up", "--help"], ["agents", "send", "--help"]):
        ran = run_sac(args, tmp_path)
        assert ran.code == 0 and "<bool>" not in ran.stdout, ran.stdout


def test_version_and_shell_completion(tmp_path):
    from sac_node import __version__

    ran = run_sac(["--version"], tmp_path)
    assert (ran.code, ran.stdout) == (0, "sac %s\n" % __version__)
    ran = run_sac([], tmp_path, env={"_SAC_COMPLETE": "complete_bash", "COMP_WORDS": "sac fleet st", "COMP_CWORD": "2"})
    assert (ran.code, ran.stdout.split()) == (0, ["status"])
    assert "--install-completion" in run_sac(["--help"], tmp_path).stdout
