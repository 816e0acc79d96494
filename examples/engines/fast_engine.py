"""An engine that answers every turn at once: Claude Code's stream-json protocol, nothing else.

    engine: {command: [python3, /path/to/fast_engine.py]}

Reads one JSON line per turn on stdin ({"type":"user","message":{...}}) and writes
`system` (init), `assistant` and `result` events as JSON lines, flushing each. The
reply echoes the prompt. `--resume <id>` (or $SAC_RESUME_SESSION, which sac sets
when it restarts a command engine) continues that session id; other
arguments are ignored. Benchmarks use it so their numbers are sac's own cost,
not a model's. Standard library only; Python >= 3.8.
"""

import json
import os
import sys
import uuid


def session_from(argv, environ=None):
    """The id after `--resume`, else the one sac hands a restarted engine, else a new one."""
    if "--resume" in argv[:-1]:
        return argv[argv.index("--resume") + 1]
    environ = os.environ if environ is None else environ
    return environ.get("SAC_RESUME_SESSION") or str(uuid.uuid4())


def prompt_of(line):
    """The text of a user turn (string content or a list of text blocks)."""
    content = json.loads(line).get("message", {}).get("content", "")
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content)


def main(argv):
    session = session_from(argv)
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = "echo: " + prompt_of(line)
        for event in (
            {"type": "system", "subtype": "init", "session_id": session, "model": "fast-engine", "tools": []},
            {"type": "assistant", "session_id": session,
             "message": {"role": "assistant", "content": [{"type": "text", "text": reply}]}},
            {"type": "result", "subtype": "success", "is_error": False, "result": reply, "session_id": session,
             "num_turns": 1, "duration_ms": 0, "usage": {"input_tokens": len(line) // 4, "output_tokens":
                                                         len(reply) // 4 + 1}},
        ):
            out.write(json.dumps(event) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
