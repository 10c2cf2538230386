#!/usr/bin/env bash
# Submit one SLURM job per experiment that runs its whole grid (cells, then plots) sequentially.
#
#   ./launch_all_experiments.sh MODEL ORGANISM [full|diffing|plotting] [logitdiff options...]
#
# ORGANISM may be a comma-separated list or all (every organism of MODEL): one job per experiment
# then runs all their cells, the finetunes of the base model sharing its passes; plots stay per organism.
# Extra options go to every experiment (the one an experiment sweeps is left out for it). Mode
# plotting jobs ask for no GPU. Resources and the rest of the environment: see
# scripts/launch_common.sh.
set -euo pipefail
# shellcheck source=scripts/launch_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/launch_common.sh"

parse_arguments "$@"
check_tools

# Check every call before submitting anything, so a bad option submits nothing.
for exp in $(experiments); do
  experiment_arguments "$exp" quiet
  check_call "$exp"
done

for exp in $(experiments); do
  experiment_arguments "$exp"
  if [ "$MODE" = plotting ]; then resource_flags plotting; else resource_flags compute; fi
  submit --job-name="ld_${exp}_${MODEL}_${ORGANISM}" --output="$LOG_DIR/%x_%j.out" "${RESOURCE_FLAGS[@]}" \
    -- "$LOGITDIFF_BIN" "$exp" --model "$MODEL" --organism "$ORGANISM" --mode "$MODE" "${RUN_ARGS[@]}"
  echo "$exp: job $JOB_ID"
done
print_cancel_hint
