#!/usr/bin/env bash
# The offline demo: the built-in provider and a real, sandboxed Claude Code agent.
# Run it through `make demo` (which installs what it needs first).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sac="${SAC:-$here/.venv/bin/sac}"
export SAC_HOME="${SAC_HOME:-$here/.demo-home}"
export SAC_CLAUDE_BIN="${SAC_CLAUDE_BIN:-$here/.tools/node_modules/.bin/claude}"
port="${SAC_DEMO_PORT:-8787}"
log="$SAC_HOME/provider.log"
mkdir -p "$SAC_HOME"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "built-in provider on 127.0.0.1:$port (scripted by examples/provider-demo.yaml)"
"$sac" provider serve --port "$port" --script "$here/examples/provider-demo.yaml" >"$log" 2>&1 &
provider=$!
trap 'kill $provider 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$log" 2>/dev/null && break; kill -0 $provider 2>/dev/null || break; sleep 0.1; done
cat "$log"
if ! kill -0 $provider 2>/dev/null || ! grep -q listening "$log"; then
  echo "demo: the provider could not start on 127.0.0.1:$port (is another one running? SAC_DEMO_PORT=... picks another port, then edit examples/agents/echo/spec.yaml)" >&2
  exit 1
fi

step "sac spec check examples/agents/echo"
"$sac" spec check "$here/examples/agents/echo"

step "sac agents start examples/agents/echo"
"$sac" agents start "$here/examples/agents/echo"

step "three turns in one long-lived session"
"$sac" agents send echo "Hello, agent."
"$sac" agents send echo "What did I just say?"
"$sac" agents send echo "Please write a note in your workdir."
echo "note.txt on the host: $(cat "$SAC_HOME/agents/echo/work/note.txt")"

step "sac agents status echo"
"$sac" agents status echo

step "sac agents tail echo"
"$sac" agents tail echo -n 40

step "sac agents stop echo"
"$sac" agents stop echo
echo
echo "State, journal and transcript are in $SAC_HOME/agents/echo/."
echo "Try it yourself: $sac provider serve & then $sac agents start examples/agents/echo"
