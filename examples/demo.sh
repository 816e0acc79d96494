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

# Start from a clean slate: a previous demo's agents and daemon are stopped and forgotten.
"$sac" fleet down -i "$here/inventory.example.yaml" >/dev/null 2>&1 || true
rm -rf "$SAC_HOME/agents"

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
"$sac" spec check "$here/examples/agents/echo" | head -20

step "sac fleet up -i inventory.example.yaml   (a local host; SSH hosts are commented examples in it)"
"$sac" fleet up -i "$here/inventory.example.yaml"

step "a second up changes nothing"
"$sac" fleet up -i "$here/inventory.example.yaml" | tail -1

step "three turns in one long-lived session, routed by sac fleet send"
"$sac" fleet send echo "Hello, agent." -i "$here/inventory.example.yaml"
"$sac" fleet send echo "What did I just say?" -i "$here/inventory.example.yaml"
"$sac" fleet send echo "Please write a note in your workdir." -i "$here/inventory.example.yaml"
echo "note.txt on the host: $(cat "$SAC_HOME/agents/echo/work/note.txt")"

step "sac fleet status -i inventory.example.yaml"
"$sac" fleet status -i "$here/inventory.example.yaml"

step "sac agents status echo   (the same agent, seen from this machine's node)"
"$sac" agents status echo

step "sac fleet tail echo"
"$sac" fleet tail echo -n 40 -i "$here/inventory.example.yaml"

step "sac fleet down -i inventory.example.yaml"
"$sac" fleet down -i "$here/inventory.example.yaml"
echo
echo "State, journal and transcript are in $SAC_HOME/agents/echo/."
echo "Next: uncomment an SSH host in inventory.example.yaml and run $sac fleet up -i inventory.example.yaml again."
