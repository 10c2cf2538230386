# Shared by launch_all_experiments.sh and launch_array_experiments.sh (sourced, not run).
#
# Environment (all optional):
#   PARTITION (compute)  TIME (24:00:00)  GPUS (1; 0 = no GPU request at all)  CPUS (8)  MEM (64G)
#   PLOT_TIME (01:00:00)  PLOT_MEM (16G)   resources of plotting-only jobs (1 CPU, never a GPU)
#   EXTRA_SBATCH_FLAGS   more sbatch flags, whitespace-separated, added to every job
#   EXPERIMENTS          experiments to launch (default: all that `logitdiff grid --list` lists)
#   <EXPERIMENT>_ARGS    logitdiff arguments for one experiment only, e.g. MIX_RATIO_ARGS, or
#                        TOPK_DEPTH_ARGS="--values 5,10"
#   LOG_DIR (logs)       where job logs go
#   LOGITDIFF            the logitdiff command (default: the one on PATH)
#   DRY_RUN=1            print the sbatch commands instead of submitting (sbatch not needed)

SUBMITTED_IDS=()

die() {
  echo "error: $*" >&2
  exit 2
}

usage_and_exit() {
  echo "usage: $(basename "$0") MODEL ORGANISM[,ORGANISM...]|all [full|diffing|plotting] [logitdiff options...]" >&2
  echo "  e.g. GPUS=1 $(basename "$0") gemma3_1B cake_bake diffing --organism-variant mix1-1p0" >&2
  echo "       GPUS=1 $(basename "$0") gemma3_1B cake_bake,fda_approval diffing --array-unit pass" >&2
  exit 2
}

# Parse MODEL ORGANISM [MODE] [extra...] into MODEL, ORGANISM, MODE, EXTRA_ARGS.
parse_arguments() {
  [ $# -ge 2 ] || usage_and_exit
  case "$1" in -h | --help) usage_and_exit ;; esac
  MODEL=$1 ORGANISM=$2
  shift 2
  MODE=full
  if [ $# -gt 0 ] && [[ $1 != -* ]]; then
    MODE=$1
    shift
  fi
  case "$MODE" in full | diffing | plotting) ;; *) die "MODE must be full, diffing or plotting, got '$MODE'" ;; esac
  EXTRA_ARGS=("$@")
}

# Fail before submitting anything when a tool is missing.
check_tools() {
  LOGITDIFF_BIN=$(command -v "${LOGITDIFF:-logitdiff}" || true)
  [ -n "$LOGITDIFF_BIN" ] || die "'${LOGITDIFF:-logitdiff}' not found: activate the environment where logitdiff is installed (pip install -e .) or set LOGITDIFF=/path/to/logitdiff"
  if [ "${DRY_RUN:-0}" != 1 ]; then
    command -v sbatch >/dev/null || die "'sbatch' not found: run this on a SLURM login node (or DRY_RUN=1 to only print the commands)"
  fi
  read_experiments
  for exp in $(experiments); do
    [[ " $ALL_EXPERIMENTS " == *" $exp "* ]] || die "EXPERIMENTS: unknown experiment '$exp' (known: $ALL_EXPERIMENTS)"
  done
  LOG_DIR=$(mkdir -p "${LOG_DIR:-logs}" && cd "${LOG_DIR:-logs}" && pwd)
}

experiments() {
  echo "${EXPERIMENTS:-$ALL_EXPERIMENTS}"
}

# Words of the per-experiment argument variable, e.g. topk-depth -> $TOPK_DEPTH_ARGS.
experiment_args() {
  local var
  var="$(echo "$1" | tr 'a-z-' 'A-Z_')_ARGS"
  echo "${!var:-}"
}

# What logitdiff knows (configs/experiments), read once so the launchers name no experiment or option:
#   ALL_EXPERIMENTS  the experiments, space-separated
#   SWEPT_FLAG       experiment -> the option it sweeps; given globally it is left out for that experiment
#   GRID_OPTIONS     " --opt ... ": options that change the grid; they are also given to `logitdiff grid`
# On failure logitdiff has printed its one-line error.
read_experiments() {
  local listing options exp flag opt
  listing=$("$LOGITDIFF_BIN" grid --list) || exit 2
  options=$("$LOGITDIFF_BIN" grid --list-options) || exit 2
  ALL_EXPERIMENTS="" GRID_OPTIONS=" "
  declare -gA SWEPT_FLAG=()
  while IFS=$'\t' read -r exp flag; do
    ALL_EXPERIMENTS+="${ALL_EXPERIMENTS:+ }$exp"
    SWEPT_FLAG[$exp]=$flag
  done <<<"$listing"
  while read -r opt; do
    GRID_OPTIONS+="$opt "
  done <<<"$options"
}

# Set RUN_ARGS (for `logitdiff EXPERIMENT`) and GRID_ARGS (for `logitdiff grid`) of experiment "$1"
# from EXTRA_ARGS followed by its own *_ARGS variable; "$2" = quiet skips the notes.
experiment_arguments() {
  local exp=$1 quiet=${2:-} swept own args=() opt
  swept=${SWEPT_FLAG[$exp]}
  read -r -a own <<<"$(experiment_args "$exp")"
  RUN_ARGS=() GRID_ARGS=()
  set -- "${EXTRA_ARGS[@]}"
  while [ $# -gt 0 ]; do
    opt=${1%%=*}
    if [ "$opt" = "$swept" ]; then
      [ -n "$quiet" ] || echo "note: $exp sweeps ${swept#--}; $1 is not passed to it" >&2
      [[ $1 == *=* ]] || shift
    else
      args+=("$1")
    fi
    shift
  done
  args+=("${own[@]}")
  RUN_ARGS=("${args[@]}")
  set -- "${args[@]}"
  while [ $# -gt 0 ]; do
    if [[ $GRID_OPTIONS == *" ${1%%=*} "* ]]; then
      GRID_ARGS+=("$1")
      if [[ $1 != *=* ]] && [ $# -gt 1 ]; then
        GRID_ARGS+=("$2")
        shift
      fi
    fi
    shift
  done
}

# Stop with logitdiff's own one-line error unless `logitdiff EXPERIMENT --check` accepts the whole
# argument list the jobs of experiment "$1" will get (RUN_ARGS, from experiment_arguments).
check_call() {
  local exp=$1 msg
  if ! msg=$("$LOGITDIFF_BIN" "$exp" --check --model "$MODEL" --organism "$ORGANISM" --mode "$MODE" "${RUN_ARGS[@]}" 2>&1 >/dev/null); then
    msg=$(printf '%s\n' "$msg" | grep -v '^[[:space:]]*$' | tail -n 1)
    die "$exp: ${msg#error: }"
  fi
}

# Quote words for a POSIX sh command line (sbatch --wrap runs /bin/sh).
shell_join() {
  local out="" word
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+="$word "
    else
      out+="'${word//\'/\'\\\'\'}' "
    fi
  done
  echo "${out% }"
}

# Set RESOURCE_FLAGS for a compute job ("$1" = compute) or a plotting-only job ("$1" = plotting).
resource_flags() {
  RESOURCE_FLAGS=("--partition=${PARTITION:-compute}")
  if [ "$1" = compute ]; then
    RESOURCE_FLAGS+=("--time=${TIME:-24:00:00}" "--cpus-per-task=${CPUS:-8}" "--mem=${MEM:-64G}")
    [ "${GPUS:-1}" = 0 ] || RESOURCE_FLAGS+=("--gres=gpu:${GPUS:-1}")
  else
    RESOURCE_FLAGS+=("--time=${PLOT_TIME:-01:00:00}" "--cpus-per-task=1" "--mem=${PLOT_MEM:-16G}")
  fi
  local extra
  read -r -a extra <<<"${EXTRA_SBATCH_FLAGS:-}"
  RESOURCE_FLAGS+=("${extra[@]}")
}

# submit SBATCH_FLAG... -- COMMAND WORD...; sets JOB_ID (a placeholder under DRY_RUN).
submit() {
  local flags=() wrapped
  while [ "$1" != -- ]; do
    flags+=("$1")
    shift
  done
  shift
  wrapped=$(shell_join "$@")
  if [ "${DRY_RUN:-0}" = 1 ]; then
    JOB_ID="DRYRUN$((${#SUBMITTED_IDS[@]} + 1))"
    echo "sbatch $(shell_join "${flags[@]}") --wrap $(shell_join "$wrapped")"
  else
    if ! JOB_ID=$(sbatch --parsable "${flags[@]}" --wrap "$wrapped"); then
      print_cancel_hint >&2
      die "sbatch failed (see above) for: $wrapped"
    fi
    JOB_ID=${JOB_ID%%;*}
  fi
  SUBMITTED_IDS+=("$JOB_ID")
}

print_cancel_hint() {
  [ ${#SUBMITTED_IDS[@]} -gt 0 ] || return 0
  echo "logs: $LOG_DIR"
  echo "cancel all: scancel ${SUBMITTED_IDS[*]}"
}
