#!/usr/bin/env bash
# The highest open-loop arrival rate one llm-stress process sustains on this machine: Poisson
# arrivals at rising rates (RATES, default 4000,6000,8000,10000 requests/s), 5 s each, against
# `llm-stress bench-server` answering 8-chunk streams at once (one thread), over kept-alive
# connections. Prints, per rate, the requests sent and failed, the send rate, and the send
# lateness p50/p99/max (how late each request left against its scheduled instant), then the
# client's user and system CPU. Usage: scripts/open-loop-capacity.sh [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release/llm-stress}
[ -x "$bin" ] || (cd "$root" && cargo build --release -q)
rates=${RATES:-4000,6000,8000,10000}
runs=${1:-1}
work=$(mktemp -d /tmp/open-loop-capacity.XXXX)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/cases/models"
cp "$root/stress-cases/models/sim-small.yaml" "$work/cases/models/"
cat > "$work/cases/open-capacity.yaml" <<YAML
name: open-capacity
model: sim-small
kinds: [perf]
api: completions
matrix: { mode: custom, isl: [16], osl: [8], concurrency: [1] }
load: { mode: open, rate: [$rates], duration: 5s, warmup: 2, seed: 7, timeout_s: 30 }
YAML
"$bin" bench-server --port 18998 --tokens 8 --threads 1 > "$work/server.log" 2>&1 &
server=$!
sleep 1
for run in $(seq 1 "$runs"); do
  out="$work/run$run"
  /usr/bin/time -f 'client CPU: user %U s, system %S s' \
    "$bin" run "$work/cases" --url http://127.0.0.1:18998 --out "$out" --progress off \
    > "$work/run$run.log" 2> "$work/time$run.log" || true
  echo "run $run"
  find "$out" -name summary.json | sort | while read -r file; do
    python3 - "$file" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
s = report["summary"]
lat = s.get("lateness_ms") or {}
print(f"  rate {report['rate']:>6.0f}/s: sent {s['requests_ok'] + s['requests_failed']}, "
      f"failed {s['requests_failed']}, dropped {s['dropped']}, send rate {s['send_rate']:.0f}/s, "
      f"lateness p50 {lat.get('p50', 0):.3f} p99 {lat.get('p99', 0):.3f} max {lat.get('max', 0):.3f} ms")
PY
  done
  tail -1 "$work/time$run.log"
done
