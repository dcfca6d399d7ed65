#!/usr/bin/env bash
# nextest setup script (profile `real`, see .config/nextest.toml): starts one llama-server with
# SmolLM2-135M for every trial of the run, fully detached (its own session, no inherited
# output, so nextest does not wait on it), and hands its URL to the trials as LLM_STRESS_URL
# through $NEXTEST_ENV. Stop it afterwards with .ci/llama-server-down.sh.
set -euo pipefail
: "${LLAMA_SERVER:?set it with: eval \"\$(.ci/install-llama.sh)\"}"
: "${SMOLLM2_GGUF:?set it with: eval \"\$(.ci/install-llama.sh)\"}"
state="${LLM_STRESS_SHARED_SERVER_DIR:-${TMPDIR:-/tmp}/llm-stress-shared-server}"
mkdir -p "$state"
if [ -s "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
  echo "a shared llama-server is already running (pid $(cat "$state/pid")); stop it with .ci/llama-server-down.sh" >&2
  exit 1
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "$LLAMA_SERVER" -m "$SMOLLM2_GGUF" --host 127.0.0.1 --port "$port" -np 4 -c 4096 \
  --metrics --no-webui </dev/null >"$state/server.log" 2>&1 &
echo $! >"$state/pid"
url="http://127.0.0.1:$port"
for _ in $(seq 1 240); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" "$url" 2>/dev/null; then
    echo "LLM_STRESS_URL=$url" >>"${NEXTEST_ENV:-/dev/stdout}"
    echo "shared llama-server at $url (pid $(cat "$state/pid"), log $state/server.log)" >&2
    exit 0
  fi
  if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
echo "llama-server did not become healthy; its log ends:" >&2
tail -n 20 "$state/server.log" >&2
kill -TERM -- "-$(cat "$state/pid")" 2>/dev/null || true
rm -f "$state/pid"
exit 1
