#!/usr/bin/env bash
# Submit, per experiment, one SLURM array job (one task per cell, or per model pass with
# --array-unit pass) and one plotting job that runs after the array, whatever its tasks' outcome.
#
#   ./launch_array_experiments.sh MODEL ORGANISM [full|diffing|plotting] [logitdiff options...]
#
# ORGANISM may be a comma-separated list or all (every organism of MODEL): one array per experiment
# over all their cells; with --array-unit pass one task runs one shared pass of all the organisms.
# Array sizes come from `logitdiff grid EXPERIMENT --count` with the same options. Extra options
# go to every experiment (the one an experiment sweeps is left out for it). ARRAY=0-0 overrides
# the computed range, e.g. to run only the first cell as a test. Mode plotting submits only the
# plotting jobs. Resources and the rest of the environment: see scripts/launch_common.sh.
set -euo pipefail
# shellcheck source=scripts/launch_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/launch_common.sh"

parse_arguments "$@"
check_tools

# Check every call and size every array before submitting anything, so a bad option submits nothing.
declare -A COUNT
for exp in $(experiments); do
  experiment_arguments "$exp" quiet
  check_call "$exp"
  COUNT[$exp]=$("$LOGITDIFF_BIN" grid "$exp" --count --model "$MODEL" --organism "$ORGANISM" "${GRID_ARGS[@]}") ||
    die "could not size the $exp array (see the message above)"
  [[ ${COUNT[$exp]} =~ ^[1-9][0-9]*$ ]] || die "logitdiff grid $exp --count printed '${COUNT[$exp]}', expected a positive number"
done

for exp in $(experiments); do
  experiment_arguments "$exp"
  base=("$LOGITDIFF_BIN" "$exp" --model "$MODEL" --organism "$ORGANISM" "${RUN_ARGS[@]}")
  name="ld_${exp}_${MODEL}_${ORGANISM}"
  dependency=()
  if [ "$MODE" != plotting ]; then
    resource_flags compute
    range=${ARRAY:-0-$((COUNT[$exp] - 1))}
    submit --job-name="$name" --array="$range" --output="$LOG_DIR/%x_%A_%a.out" "${RESOURCE_FLAGS[@]}" \
      -- "${base[@]}" --mode "$MODE" --array-job
    echo "$exp: array job $JOB_ID, tasks $range of ${COUNT[$exp]} (0-$((COUNT[$exp] - 1)))"
    dependency=(--dependency="afterany:$JOB_ID")
  fi
  resource_flags plotting
  submit --job-name="${name}_plot" --output="$LOG_DIR/%x_%j.out" "${dependency[@]}" "${RESOURCE_FLAGS[@]}" \
    -- "${base[@]}" --mode plotting
  echo "$exp: plotting job $JOB_ID${dependency:+ (after the array, whatever its outcome)}"
done
print_cancel_hint
