#!/usr/bin/env bash
# A lead and two workers on this machine, the model played by the built-in provider.
# Run from the repository root after `make venv tools`:  examples/agents-talk/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sac="${SAC:-$root/.venv/bin/sac}"
export SAC_HOME="${SAC_HOME:-$root/.agents-talk-home}"
export SAC_CLAUDE_BIN="${SAC_CLAUDE_BIN:-$root/.tools/node_modules/.bin/claude}"
mkdir -p "$SAC_HOME"

"$sac" provider serve --port 8788 --script "$here/provider-script.yaml" >"$SAC_HOME/provider.log" 2>&1 &
provider=$!
trap '"$sac" agents stop lead >/dev/null 2>&1; "$sac" agents stop lit >/dev/null 2>&1;
      "$sac" agents stop data >/dev/null 2>&1; kill $provider 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$SAC_HOME/provider.log" 2>/dev/null && break; sleep 0.1; done

for agent in lit data lead; do "$sac" agents start "$here/$agent"; done

echo "== the lead plans: it lists whom it may ask, then asks each worker"
"$sac" agents send lead "plan the review"

echo "== each worker's transcript shows who asked"
"$sac" agents tail lit -n 5
"$sac" agents status data --json | python3 -c 'import json,sys; print("data: turns by caller", json.load(sys.stdin)["turns_by_caller"])'

echo "== an agent outside the lead's comms.ask is refused, and the refusal is in the lead's transcript"
"$sac" agents send lead "ask the world"
"$sac" agents tail lead -n 10 | grep refused
