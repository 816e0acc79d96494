"""Claude Code's hook command for sac: report one hook event to the agent's shim. Stdlib only.

Claude Code runs it (`python3 -I -S <home>/.claude/sac-hook.py`) with the hook's input JSON
on stdin; it sends a trimmed copy, one JSON line, to the unix socket named by
SAC_HOOKS_SOCKET (bound into the sandbox) and exits 0 whatever happens, at once: a hook
must never hold up or block the agent.
"""

import json
import os
import socket
import sys


def trimmed(data):
    """The fields the shim reads, with a short summary of the tool's input."""
    tool_input = data.get("tool_input") if isinstance(data.get("tool_input"), dict) else {}
    summary = ""
    for key in ("command", "file_path", "pattern", "url", "description", "prompt"):
        if isinstance(tool_input.get(key), str):
            summary = " ".join(tool_input[key].split())[:120]
            break
    keep = ("hook_event_name", "tool_name", "tool_use_id", "message", "trigger", "source", "session_id")
    out = {k: data[k] for k in keep if isinstance(data.get(k), str)}
    out["summary"] = summary
    return out


def main():
    path = os.environ.get("SAC_HOOKS_SOCKET")
    try:
        data = json.loads(sys.stdin.buffer.read(1 << 22) or b"{}")
        line = json.dumps(trimmed(data if isinstance(data, dict) else {})).encode() + b"\n"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            # from the socket's own dir: an unsandboxed agent's path may be too long for AF_UNIX
            os.chdir(os.path.dirname(path) or ".")
            sock.connect(os.path.basename(path))
            sock.sendall(line)
        finally:
            sock.close()
    except Exception:  # noqa: BLE001 - whatever goes wrong, the agent goes on
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
