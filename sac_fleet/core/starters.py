"""Starter specs for `sac spec new NAME --from PATTERN`: commented spec.yaml files to edit.

Each pattern is a whole spec that passes `sac spec check` as written (tests/unit/test_starters.py).
"""

from __future__ import annotations

from pathlib import Path

from sac_node.protocol.errors import SpecError

from .spec import NAME_RE, SPEC_FILE
from .wording import did_you_mean

_HEAD = """\
# {name}: a sac agent spec (docs/spec-reference.md). Check it with `sac spec check {name}`.
apiVersion: sac/v1
kind: Agent
metadata:
  name: {name}                # lowercase letters, digits and '-'
  labels: {role: assistant}     # free-form; `sac fleet` selects agents by label
spec:
  workdir: work               # relative: under the agent's own dir on its host
"""

STARTERS = {
    "local": _HEAD + """\
  isolation:
    runtime: bwrap            # bubblewrap: no root, no daemon; auto picks apptainer where installed
    network: provider         # the sandbox reaches only the model provider
  claude:
    allowed_tools: [Read, Grep, Glob, "Bash(git status:*)"]
  startup_prompts:
    - "Read README.md and say in one line what this project is."
""",
    "remote": _HEAD + """\
  placement:                  # used by `sac fleet up` with an inventory (docs/inventory.md)
    hosts: [login1]           # a host named in the inventory; or labels: {gpu: "true"}
    singleton: true           # never two live copies, even when a host comes back
  env:
    PROJECT: /scratch/project # plain settings; credentials go in the host's secrets.env
  restart:
    policy: on-failure
    max_retries: 5
""",
    "provider-only": _HEAD + """\
  claude:
    provider:
      base_url: http://127.0.0.1:8787   # an Anthropic-compatible server (`sac provider serve`)
      api_key_env: SAC_PROVIDER_KEY     # the NAME of the variable in the host's secrets.env
    model: claude-sonnet-4-5
  isolation:
    network: provider         # only a relay to base_url: no other address, no DNS
""",
    "accounts": _HEAD + """\
  claude:
    accounts:                 # tried in order; the next one takes over near a limit
      - {name: main, api_key_env: ANTHROPIC_KEY_MAIN}
      - {name: spare, api_key_env: ANTHROPIC_KEY_SPARE, limit_tokens: 2000000}
      - {name: login, config_dir: ~/.claude-login}   # a Claude Code config dir with an OAuth login
    quota:
      rotate_at: 0.9          # move on at 90% of an account's limit
      cooldown_s: 60
""",
}


def starter_text(name: str, pattern: str) -> str:
    """The starter spec of ``pattern`` for an agent called ``name``."""
    if pattern not in STARTERS:
        raise SpecError("--from %s: no such pattern (choose one of %s)%s"
                        % (pattern, ", ".join(STARTERS), did_you_mean(pattern, STARTERS)))
    if not NAME_RE.fullmatch(name):
        raise SpecError("%s is not a valid agent name (lowercase letters, digits and '-', starting with a letter or "
                        "digit, at most 63 characters)" % name)
    return STARTERS[pattern].replace("{name}", name)


def write_starter(target, pattern: str = "local") -> Path:
    """Write ``target/spec.yaml`` (the agent's name is ``target``'s last part); refuse to overwrite one."""
    directory = Path(target)
    path = directory / SPEC_FILE
    text = starter_text(directory.resolve().name, pattern)
    if path.exists():
        raise SpecError("%s already exists (edit it, or choose another NAME)" % path)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
