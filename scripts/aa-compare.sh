#!/usr/bin/env bash
# A/A check of `llm-stress compare`: runs the same trials PAIRS times in pairs of separate
# processes and compares each pair. Identical settings should never come out `regressed`;
# the tally says how many metrics came out inconclusive (too few samples to decide).
#
#   scripts/aa-compare.sh CASES_DIR FILTER [PAIRS] [OUT]
#
# Uses target/release/llm-stress (build it first: cargo build --release).
set -euo pipefail
cases=${1:?cases folder}
filter=${2:?trial filter, such as "[perf] demo-chat"}
pairs=${3:-10}
out=${4:-$(mktemp -d)}
bin=${LLM_STRESS_BIN:-target/release/llm-stress}
mkdir -p "$out"
for i in $(seq 1 "$pairs"); do
  for side in a b; do
    LLM_STRESS_RUN_ID="aa$i$side" "$bin" run "$cases" --out "$out" --filter "$filter" \
      --progress off >"$out/run-$i$side.log" 2>&1 || echo "run $i$side: some trial failed its checks"
  done
  code=0
  "$bin" compare "$out/aa${i}a" "$out/aa${i}b" >"$out/compare-$i.txt" 2>&1 || code=$?
  echo "pair $i: exit $code"
done
echo "== trial outcomes over $pairs pairs"
grep -h '^\[.* — ' "$out"/compare-*.txt | awk '{print $NF}' | sort | uniq -c
echo "== metrics not unchanged"
grep -h -E ' (regressed|inconclusive|improved)$' "$out"/compare-*.txt | grep -v '^\[' \
  | awk '{print $1, $NF}' | sort | uniq -c
echo "output: $out"
