#!/usr/bin/env bash
# One-command GPU check: on a machine with a CUDA GPU, torch preinstalled and no network,
# run every cuda-marked test and the `cuda` suite from this working tree, and leave the
# results and logs in OUTDIR. Bounded to under 8 minutes (each step has its own limit).
#
#   benchmarks/gpu_check.sh OUTDIR
#
# mfbench is made importable without installing anything from the network: an editable
# install with no dependencies into a virtual environment that sees the system's packages
# (torch, triton, numba, pytest... as the GPU image has them), or, where pip cannot do that,
# a folder of links that lays the tree out as the installed package.
#
# OUTDIR receives: setup.log, cuda-tests.log (+ cuda-tests.xml), cuda-suite.log,
# cuda-<gpu>.json (the suite's results file), cuda-<gpu>.md (its table), summary.txt.
# Exit status: 0 all passed; 1 a step failed (see summary.txt); 2 usage; 3 no CUDA device.
set -uo pipefail

readonly TESTS_LIMIT=200   # seconds for the cuda-marked tests
readonly SUITE_LIMIT=230   # seconds for the cuda suite (cases time out after 40 s of epochs each)

if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
    echo "usage: $0 OUTDIR   (runs the cuda-marked tests and the cuda suite; results and logs go to OUTDIR)" >&2
    exit 2
fi
out=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "gpu_check: cannot create $1" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
summary="$out/summary.txt"
: > "$summary"

note() { echo "gpu_check: $*" | tee -a "$summary"; }

if ! gpu=$("$python" -c 'import torch, sys
if not torch.cuda.is_available():
    sys.exit(1)
print(torch.cuda.get_device_name(0))' 2>>"$out/setup.log"); then
    note "no CUDA device visible to $python (torch.cuda.is_available() is False): nothing to check here; run this on a GPU machine"
    exit 3
fi
slug=$(printf '%s' "$gpu" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
slug=${slug##*-}   # "nvidia-h200" -> "h200": the results file is named after the card
note "GPU: $gpu; results in $out"

# --- make mfbench importable from this tree, without the network ---------------------------
env_dir="$out/venv"
"$python" -m venv --system-site-packages --without-pip "$env_dir" >>"$out/setup.log" 2>&1
if "$env_dir/bin/python" -m pip install --no-deps --no-build-isolation --no-index -e "$repo" >>"$out/setup.log" 2>&1; then
    py="$env_dir/bin/python"
    mfbench=("$py" -m mfbench)
    note "mfbench installed editable (no dependencies) into $env_dir"
else
    # A tree of links shaped like the installed package: mfbench/ with plugins/ inside it.
    shim="$out/shim"
    rm -rf "$shim" && mkdir -p "$shim/mfbench"
    for entry in "$repo"/mfbench/*; do ln -s "$entry" "$shim/mfbench/"; done
    ln -s "$repo/plugins" "$shim/mfbench/plugins"
    export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
    py="$python"
    mfbench=("$py" -m mfbench)
    note "pip could not install without the network (see setup.log): using the package tree of links in $shim"
fi
if ! "$py" -c 'import mfbench, mfbench.plugins.strategies.native_sgd, mfbench.run.suites' >>"$out/setup.log" 2>&1; then
    note "FAILED: mfbench is not importable from $repo (see setup.log)"
    exit 1
fi

status=0

# --- every cuda-marked test ----------------------------------------------------------------
note "cuda-marked tests (limit ${TESTS_LIMIT} s)..."
(cd "$repo" && timeout -k 10 "$TESTS_LIMIT" "$py" -m pytest tests -m cuda -p mfbench.pytest_plugin -p no:cacheprovider \
    -q -rs --junitxml="$out/cuda-tests.xml") >"$out/cuda-tests.log" 2>&1
rc=$?
note "cuda-marked tests: exit $rc ($(tail -n 1 "$out/cuda-tests.log"))"
((rc == 0)) || status=1

# --- the cuda suite ------------------------------------------------------------------------
results="$out/cuda-$slug.json"
note "cuda suite (limit ${SUITE_LIMIT} s)..."
(cd "$out" && timeout -k 10 "$SUITE_LIMIT" "${mfbench[@]}" run --suite cuda --format github -o "$results") \
    >"$out/cuda-suite.log" 2>&1
rc=$?
note "cuda suite: exit $rc, results $results"
((rc == 0)) || status=1
if [[ -f $results ]]; then
    "${mfbench[@]}" report "$results" --format github >"$out/cuda-$slug.md" 2>>"$out/cuda-suite.log" || status=1
fi

if ((status == 0)); then note "all passed"; else note "FAILED: see the logs in $out"; fi
exit "$status"
