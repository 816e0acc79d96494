"""The import rules of issue 2, enforced.

- import-linter keeps the contracts in pyproject.toml (sac_node never imports
  sac_fleet nor a third-party package but msgpack; sac_fleet's layers point down).
- vermin says sac_node's source runs on Python 3.8 (hosts are old).
- an ast walk says every import in sac_node is stdlib, msgpack or sac_node itself.

Each check is run once against a small bad sample first, so a check that
could never fail would show up here as a failing test.
"""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
NODE_PKG = REPO / "sac_node"
ALLOWED_THIRD_PARTY = {"msgpack"}
VERMIN_ARGS = ["-t=3.8-", "--no-tips", "--violations", "--eval-annotations"]


def run_tool(argv, cwd):
    """Run a command with this interpreter's environment; return (exit code, output)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(cwd)
    proc = subprocess.run(
        argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    return proc.returncode, proc.stdout


def lint_imports_argv(*extra):
    """import-linter's CLI from the same environment as the running interpreter."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return [sys.executable, "-c", code, "--no-cache", *extra]


def vermin_argv(*paths):
    """vermin's CLI from the same environment (vermin has no `python -m vermin`)."""
    code = "import sys; from vermin import main; sys.exit(main())"
    return [sys.executable, "-c", code, *VERMIN_ARGS, *paths]


def foreign_imports(source, filename="<src>"):
    """Return 'line: module' for each import in source that is not stdlib, msgpack or sac_node."""
    tree = ast.parse(source, filename=filename)
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and _dynamic_import_target(node):
            names = [_dynamic_import_target(node)]
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY or top == "sac_node":
                continue
            found.append((node.lineno, "%s:%d: %s" % (filename, node.lineno, name)))
    return [text for _, text in sorted(found)]


def _dynamic_import_target(call):
    """The constant module name of __import__("x") or importlib.import_module("x"), else None."""
    func = call.func
    is_dunder = isinstance(func, ast.Name) and func.id == "__import__"
    is_importlib = isinstance(func, ast.Attribute) and func.attr == "import_module"
    if not (is_dunder or is_importlib) or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
        return arg.value
    return None


# --- import-linter -------------------------------------------------------------------------

BAD_CONTRACTS = """
[tool.importlinter]
root_packages = ["nodepkg", "fleetpkg"]
include_external_packages = true

[[tool.importlinter.contracts]]
name = "nodepkg never imports fleetpkg"
type = "forbidden"
source_modules = ["nodepkg"]
forbidden_modules = ["fleetpkg"]

[[tool.importlinter.contracts]]
name = "nodepkg imports no third-party package"
type = "forbidden"
source_modules = ["nodepkg"]
forbidden_modules = ["yaml"]
"""


def test_import_linter_catches_a_forbidden_import(tmp_path):
    (tmp_path / "nodepkg").mkdir()
    (tmp_path / "fleetpkg").mkdir()
    (tmp_path / "fleetpkg" / "__init__.py").write_text("")
    (tmp_path / "nodepkg" / "__init__.py").write_text("import fleetpkg\nimport yaml\n")
    (tmp_path / "pyproject.toml").write_text(BAD_CONTRACTS)
    code, out = run_tool(lint_imports_argv(), tmp_path)
    assert code != 0, out
    assert "nodepkg never imports fleetpkg BROKEN" in out, out
    assert "nodepkg imports no third-party package BROKEN" in out, out


# The head's layers, checked with pyproject.toml's own contracts on a sample that breaks each one.
BAD_FLEET = {
    "frontends/cli.py": "import fleetpkg.remote.ssh\n",          # a frontend reaching a host itself
    "control/ops.py": "import fleetpkg.frontends.cli\n",         # control calling up into a frontend
    "remote/ssh.py": "import fleetpkg.control.ops\n",            # I/O that decides what to do
    "core/one.py": "import fleetpkg.core.two\n",                 # a cycle between siblings
    "core/two.py": "import fleetpkg.core.one\n",
}
HEAD_CONTRACTS = ["frontends reach hosts only through sac_fleet.api", "control never imports a frontend",
                  "remote does only I/O toward hosts: no control, no frontend",
                  "no import cycle between sibling modules"]


def _renamed_contracts():
    """pyproject.toml's import-linter section, about the sample's packages instead of sac's."""
    text = (REPO / "pyproject.toml").read_text()
    section = text[text.index("[tool.importlinter]"):]
    return section.replace("sac_fleet", "fleetpkg").replace("sac_node", "nodepkg")


def test_each_layer_contract_catches_its_bad_import(tmp_path):
    for package in ("nodepkg", "fleetpkg", "fleetpkg/frontends", "fleetpkg/control", "fleetpkg/remote",
                    "fleetpkg/core"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for module in ("api.py", "sync.py"):
        (tmp_path / "fleetpkg" / module).write_text("")
    for path, source in BAD_FLEET.items():
        (tmp_path / "fleetpkg" / path).write_text(source)
    (tmp_path / "pyproject.toml").write_text(_renamed_contracts())
    code, out = run_tool(lint_imports_argv(), tmp_path)
    assert code != 0, out
    for name in HEAD_CONTRACTS:
        assert name.replace("sac_fleet", "fleetpkg") + " BROKEN" in out, out


def test_import_contracts_in_pyproject_are_kept():
    code, out = run_tool(lint_imports_argv(), REPO)
    assert code == 0, "import-linter contracts broken:\n" + out
    assert "0 broken" in out, out


# --- vermin: sac_node runs on Python 3.8 -------------------------------------------------------

def test_vermin_rejects_code_newer_than_3_8(tmp_path):
    bad = tmp_path / "newer.py"
    bad.write_text(textwrap.dedent("""\
        def pick(items: list[int]) -> int:
            match items:
                case [first, *_]:
                    return first
            return 0
    """))
    code, out = run_tool(vermin_argv(str(bad)), tmp_path)
    assert code != 0, out
    assert "Target versions not met" in out, out


def test_sac_node_runs_on_python_3_8():
    code, out = run_tool(vermin_argv(str(NODE_PKG)), REPO)
    assert code == 0, "sac_node needs a Python newer than 3.8:\n" + out


# --- ast walk: stdlib + msgpack only -----------------------------------------------------------

def test_foreign_import_detector_flags_third_party_and_fleet():
    source = textwrap.dedent("""\
        import os, json
        import os.path
        from collections import OrderedDict
        from . import rpc
        from .protocol import errors
        import msgpack
        from sac_node.protocol import framing
        import requests
        from sac_fleet.core import spec
        from yaml import safe_load
        importlib.import_module("aiohttp.web")
        __import__("json")
    """)
    found = foreign_imports(source, "fake.py")
    assert found == [
        "fake.py:8: requests",
        "fake.py:9: sac_fleet.core",
        "fake.py:10: yaml",
        "fake.py:11: aiohttp.web",
    ]


def test_sac_node_imports_only_stdlib_and_msgpack():
    files = sorted(NODE_PKG.rglob("*.py"))
    assert files, "no sources found under %s" % NODE_PKG
    found = []
    for path in files:
        found.extend(foreign_imports(path.read_text(encoding="utf-8"), str(path.relative_to(REPO))))
    assert found == [], "sac_node may import only the standard library and msgpack:\n" + "\n".join(found)
