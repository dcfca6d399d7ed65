#!/usr/bin/env bash
# Stops the shared llama-server that .ci/llama-server-up.sh started (its whole session).
set -euo pipefail
state="${LLM_STRESS_SHARED_SERVER_DIR:-${TMPDIR:-/tmp}/llm-stress-shared-server}"
[ -s "$state/pid" ] || { echo "no shared llama-server recorded in $state" >&2; exit 0; }
pid=$(cat "$state/pid")
kill -TERM -- "-$pid" 2>/dev/null || true
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -KILL -- "-$pid" 2>/dev/null || true
rm -f "$state/pid"
echo "stopped the shared llama-server (pid $pid)" >&2
