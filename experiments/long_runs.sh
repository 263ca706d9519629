#!/usr/bin/env bash
# The three standard-suite experiments, in the order their answers are wanted, each resuming from the
# measures committed so far (sleepnet run --keep): some 135 core-hours in all on the paper network
# (standard ~24, measured; saturation ~20 beyond the models it takes from standard; stochastic ~90,
# docs/stochastic.md §5), more than any one machine of this project's sandbox lives, so each machine
# adds what it can.
#
#   bash experiments/long_runs.sh [STEP ...]      # default: all steps, in order
#   RESULTS=/work/main/experiments/results PY=/work/main/.venv/bin/python \
#       bash /tmp/worktree/experiments/long_runs.sh          # from a worktree of a fixed commit
#
# Steps (each a `sleepnet run` with --workers 2, 2 cores; docs/design.md, "Resumable work"):
#   core        standard_mnist.toml, the control and sleep-fgsm of every seed: the sleep verdict
#   standard    standard_mnist.toml, every model (takes what `core` measured)
#   saturation  saturation_mnist.toml (takes its control, sleep-fgsm and adv-pgd from standard's copy)
#   stochastic  stochastic_mnist.toml (the same three; its stochastic models cost days on 2 cores), in
#               a first pass (--only-measures: clean accuracy, AutoAttack L-inf, the geometry) first
#
# Every measure is copied into experiments/results/<file>/units/ the moment it is finished (core's into
# standard_mnist's: they are the same units): commit that folder before the machine goes (git add
# experiments/results/*/units). A finished step leaves its report in runs/<step>/ (report.md,
# metrics.json, results.csv, figures/), copied to experiments/results/<file>/ (core's to
# standard_mnist_core/). The models are trained again on each machine; a
# model that comes out with other weights than the copy's (another CPU) is named in a warning, and its
# measures are made again. Stop with SIGTERM to this script (it stops the run, which keeps what is
# done); the same command again resumes (a step finished on this machine runs again over its finished
# run, reusing every measure whose inputs are unchanged, and rebuilds its report). Results do
# not depend on the number of workers beyond float rounding, but the hashes hold the thread counts:
# keep --workers 2 on 2 cores for the copies to be taken.
set -euo pipefail
# RESULTS: where the copies and reports go; a run from a worktree of a fixed commit (so that editing
# the checkout meanwhile changes nothing it runs) sets it to the checkout's experiments/results, to
# commit there. PY: the Python with sleepnet's dependencies (a worktree has no .venv: set it). Both
# are read against the folder the command was started in (PY not through its links: a venv's python is one).
R=$(realpath -m "${RESULTS:-$(dirname "$0")/results}")
PY=$(realpath -ms "${PY:-$(dirname "$0")/../.venv/bin/python}")
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
STANDARD_KEEP=$R/standard_mnist/units

child=
# SIGTERM (or Ctrl-C) to this script reaches the run too, which stops its workers and keeps what is done
trap '[ -z "$child" ] || { kill -TERM "$child" 2>/dev/null; wait "$child"; }; exit 143' TERM INT

run() {  # run STEP FILE KEEP RESULTS [sleepnet run options...]
    local step=$1 file=$2 keep=$3 results=$4
    shift 4
    # finished here before: run again over it (--force reuses its models and measures where their inputs
    # are unchanged), so that an edited file or newer code is not answered with the old report
    local again=()
    [ ! -f "runs/$step/metrics.json" ] || again=(--force)
    echo "== $step: $(date -u +%FT%TZ)${again:+ (again over the finished run)}"
    "$PY" -m sleepnet run "experiments/$file" -o "runs/$step" --workers 2 --keep "$keep" "${again[@]}" "$@" &
    child=$!
    wait "$child"
    child=
    # the report's files copied beside the kept measures, each put in place by a rename (a machine that
    # goes mid-copy leaves the old file or the new, not half of one); figures/ replaced, not merged into
    mkdir -p "$results"
    local f new="$results/.new-$$"
    rm -rf "$results"/.new-*  # this one, and any a stopped run left (never units/)
    mkdir "$new"
    cp -r "runs/$step/report.md" "runs/$step/metrics.json" "runs/$step/results.csv" "runs/$step/figures" "$new/"
    for f in report.md metrics.json results.csv; do mv -f "$new/$f" "$results/$f"; done
    rm -rf "$results/figures"
    mv "$new/figures" "$results/figures"
    rmdir "$new"
}

first() {  # first STEP FILE KEEP MEASURES [sleepnet run options...]: a first pass (sleepnet run
    # --only-measures): those measures of every model and seed before the rest, so that the answer over
    # seeds comes before the step's end; it leaves no report (the run after it makes one). Skipped where
    # the step finished here before (the run after it, with --force, makes whatever is new)
    local step=$1 file=$2 keep=$3 measures=$4
    shift 4
    [ ! -f "runs/$step/metrics.json" ] || return 0
    echo "== $step, first pass ($measures): $(date -u +%FT%TZ)"
    "$PY" -m sleepnet run "experiments/$file" -o "runs/$step" --workers 2 --keep "$keep" \
        --only-measures "$measures" "$@" &
    child=$!
    wait "$child"
    child=
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(core standard saturation stochastic)
for step in "${steps[@]}"; do  # every name checked before any work
    case $step in
        core | standard | saturation | stochastic) ;;
        *) echo "long_runs.sh: unknown step '$step' (core, standard, saturation, stochastic)" >&2; exit 2 ;;
    esac
done
[ -x "$PY" ] || { echo "long_runs.sh: no Python at $PY (set PY=/path/to/.venv/bin/python)" >&2; exit 2; }
# `python -m sleepnet` imports this tree's sleepnet/. Installed, sleepnet.kernels, .converters and .presets
# are kernels/, converters/ and experiments/presets/ (pyproject.toml); a worktree is not installed, so
# where PY finds another tree's or none of them, they are linked into this tree's sleepnet/ (untracked,
# ignored links), and removed again if PY still cannot import sleepnet from here. this_tree exits 0: this
# tree's sleepnet; 3: another tree's, or a part not found here; 1 (its error the last line): PY cannot
# import it (a dependency missing, ...)
this_tree() { "$PY" -c '
import importlib, os, sys
for name in ("sleepnet", "sleepnet.kernels", "sleepnet.converters", "sleepnet.presets"):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        sys.exit(print(f"No module named {name!r}") or 3)
    if not (path := os.path.realpath(module.__file__)).startswith(os.getcwd() + "/"):
        sys.exit(print(f"{name} is imported from {path}") or 3)' 2>&1 | tail -n 1; return "${PIPESTATUS[0]}"; }
refuse() { echo "long_runs.sh: $PY does not import sleepnet from $PWD${1:+: $1}" >&2; exit 2; }
why=$(this_tree) && rc=0 || rc=$?
if [ "$rc" = 3 ]; then
    made=()
    for link in kernels:../kernels converters:../converters presets:../experiments/presets; do
        name=sleepnet/${link%%:*}
        [ -e "$name" ] || [ -L "$name" ] || { ln -s "${link#*:}" "$name" && made+=("$name"); }
    done
    why=$(this_tree) || { rm -f "${made[@]}"; refuse "$why"; }
elif [ "$rc" != 0 ]; then
    refuse "$why"
fi
for step in "${steps[@]}"; do
    case $step in
        core) run core standard_mnist.toml "$STANDARD_KEEP" "$R/standard_mnist_core" \
                  --models control,sleep-fgsm ;;
        standard) run standard standard_mnist.toml "$STANDARD_KEEP" "$R/standard_mnist" ;;
        saturation) run saturation saturation_mnist.toml "$R/saturation_mnist/units" "$R/saturation_mnist" \
                        --reuse "$STANDARD_KEEP" ;;
        stochastic)  # first AutoAttack at every L-inf budget (with EOT, and without for the -no-eot
            # passes; its rand version, EOT 1, of the deterministic models and the -no-eot passes too: the
            # comparison like for like) and the geometry of every model and seed: the findings over
            # seeds, days before the rest
            first stochastic stochastic_mnist.toml "$R/stochastic_mnist_suite/units" \
                clean,clean-over-draws,autoattack-linf,autoattack-rand-linf,analysis-geometry \
                --reuse "$STANDARD_KEEP"
            run stochastic stochastic_mnist.toml "$R/stochastic_mnist_suite/units" \
                "$R/stochastic_mnist_suite" --reuse "$STANDARD_KEEP" ;;
    esac
done
