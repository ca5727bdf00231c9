#!/usr/bin/env bash
# Every GPU check in one run, for a machine lent briefly: the CUDA tests (tests/test_cuda.py,
# without pytest), then the GPU decode and CLIP benchmarks. Budget: under 8 minutes on one H200.
# It needs torch with CUDA; of the project's other dependencies only pure-Python wheels, which
# `--prepare` downloads here (a machine with PyPI) into .gpu-wheels/ to be carried along:
#
#     bash bench/gpu_check.sh --prepare            # here: fetch the wheels
#     bash bench/gpu_check.sh "$OUT"               # there: figures and logs go to $OUT
set -uo pipefail
cd "$(dirname "$0")/.."
wheels=.gpu-wheels
if [ "${1:-}" = "--prepare" ]; then
    rm -rf "$wheels" && mkdir -p "$wheels"
    python3 -m pip download -q --no-deps -d "$wheels" pretty_midi mido six importlib_resources packaging
    ls "$wheels"
    exit 0
fi
out="${1:-${OUT:-gpu-figures}}"
mkdir -p "$out"
deps="$out/.deps"
if ! python3 -c "import pretty_midi, mido" 2>/dev/null; then
    [ -d "$wheels" ] || { echo "gpu_check: pretty_midi is missing and there is no $wheels/ (run --prepare where PyPI is reachable)" >&2; exit 2; }
    python3 -m pip install -q --no-deps --no-index --target "$deps" "$wheels"/*.whl || exit 2
fi
export PYTHONPATH="$PWD:$deps${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "gpu_check: torch sees no CUDA GPU" >&2; exit 2; }
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true

status=0
step() {  # name, seconds, command...: run one step under a time limit, keep its output
    local name=$1 limit=$2; shift 2
    echo "== $name" | tee -a "$out/summary.txt"
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1; local rc=$?
    tail -n 40 "$out/$name.txt" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || { echo "!! $name exited $rc" | tee -a "$out/summary.txt"; status=1; }
}
step cuda-tests 120 python3 tests/test_cuda.py
step decode 240 python3 bench/decode.py --device cuda --quick
step clip 120 python3 bench/clip.py --device cuda
exit $status
