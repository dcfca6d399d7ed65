#!/bin/bash
# Queues the worker array, then the merge once every task of the array has ended.
# Usage: LLM_STRESS_URL=http://server:8000 ./submit.sh [extra sbatch options for the array]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export LLM_STRESS_RUN_ID="${LLM_STRESS_RUN_ID:-slurm-$(date -u +%Y%m%dT%H%M%SZ)}"
array=$(sbatch --parsable --export=ALL "$@" "$here/workers.sbatch")
sbatch --export=ALL --dependency="afterany:${array%%;*}" "$here/merge.sbatch"
echo "run $LLM_STRESS_RUN_ID: workers job $array, merge queued after it"
