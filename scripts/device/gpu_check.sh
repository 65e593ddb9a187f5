#!/usr/bin/env bash
# Every GPU check of the project in one run, at most about 9 minutes (the phase limits below): the CUDA
# tests (tests/test_cuda.py), then scripts/benchmark_gpu_train.py eager (RITM and FCFI HRNet18s,
# batch 32/64, host and device click simulation) and compiled (reduce-overhead, device
# simulation, batch 64). Each phase has a hard time limit; the benchmark writes its table after
# every row, so a phase cut short keeps what it measured. From the repository root:
#   bash scripts/device/gpu_check.sh [OUT_DIR]          # default: $OUT, else ./gpu_check
# Phase limits in seconds (environment): TESTS_S=180 EAGER_S=150 COMPILED_S=210; BENCHMARK_ARGS are
# added to both benchmark runs (a dry run on a CPU: BENCHMARK_ARGS="--device cpu --tiny").
# On an offline machine whose image lacks Hydra, albumentations, ...: scripts/device/fetch_wheels.sh
# (run where pip can download) leaves wheels in .whl/, which this script installs to /tmp/site.
# Results: tests.txt, eager/gpu_train.{md,json}, compiled/gpu_train.{md,json}, benchmark.txt.
set -uo pipefail
out=${1:-${OUT:-gpu_check}}
mkdir -p "$out/eager" "$out/compiled"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline WANDB_SILENT=true
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing .whl/ failed" >&2; exit 2; }
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
logged() {  # logged FILE COMMAND...: the command's output on the terminal and appended to FILE
    local log=$1; shift
    "$@" 2>&1 | tee -a "$log"
    return "${PIPESTATUS[0]}"
}
extra=(${BENCHMARK_ARGS:-})
status=0
command -v nvidia-smi >/dev/null && logged "$out/tests.txt" nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
logged "$out/tests.txt" python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"
logged "$out/tests.txt" timeout "${TESTS_S:-180}" python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py || status=1
logged "$out/benchmark.txt" timeout "${EAGER_S:-150}" python3 scripts/benchmark_gpu_train.py --simulations host device \
    --budget-s $(( ${EAGER_S:-150} * 4 / 5 )) --out "$out/eager" "${extra[@]}" || status=1
logged "$out/benchmark.txt" timeout "${COMPILED_S:-210}" python3 scripts/benchmark_gpu_train.py --simulations device --batch-sizes 64 \
    --compile reduce-overhead --budget-s $(( ${COMPILED_S:-210} / 2 )) --out "$out/compiled" "${extra[@]}" || status=1
echo "== summary (full logs under $out) =="  # last, so that a caller keeping only the output's end has it
grep -E "passed|failed|error|skipped in" "$out/tests.txt" | tail -n 5
cat "$out/eager/gpu_train.md" "$out/compiled/gpu_train.md" 2>/dev/null
exit $status
