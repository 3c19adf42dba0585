#!/usr/bin/env bash
# The real-GPU checks in one command, on a machine with an NVIDIA GPU (Volta or newer):
#
#   bash benches/gpu_check.sh [OUTPUT_DIR]
#
# Run from a checkout of this repository with hf-eco2ai installed (`pip install
# 'hf-eco2ai[test,bench]'` from the abi3 wheel, or `maturin develop --release`) and torch with
# CUDA. Each step runs under its own time limit (about 12 minutes in all at the defaults) and logs
# to OUTPUT_DIR (default gpu-check-<date>); the figures to record are at the end of each log
# (docs/gpu.md, "On a machine with a real GPU"). Exits 0 when every step passed, 1 when one
# failed, 2 when there is no GPU to check.
#
# Settings (environment): PYTHON (default python3), GPU_CHECK_BENCH_SECONDS (accuracy workload,
# default 30), GPU_CHECK_REFERENCE_SECONDS (each long reference window, default 5).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
BENCH_SECONDS=${GPU_CHECK_BENCH_SECONDS:-30}
REFERENCE_SECONDS=${GPU_CHECK_REFERENCE_SECONDS:-5}
OUT_DIR=${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT_DIR"
failed=()

step() {
    local name=$1 limit_s=$2
    shift 2
    echo "== $name (at most ${limit_s} s)"
    timeout --kill-after=10 "$limit_s" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
    local status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then
        [ "$status" -eq 124 ] && echo "== $name: stopped after ${limit_s} s" | tee -a "$OUT_DIR/$name.log"
        failed+=("$name (exit $status)")
    fi
    echo "== $name: exit $status"
}

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU answers nvidia-smi here; run it on a machine with one." >&2
    exit 2
fi
nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,driver_version,power.limit --format=csv | tee "$OUT_DIR/gpus.csv"

step import 60 "$PYTHON" -c "import hf_eco2ai, torch; print(hf_eco2ai.__file__, hf_eco2ai.__version__); \
assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('torch', torch.__version__, 'CUDA devices:', torch.cuda.device_count())"

# The counter's update period, instant power (field 186) support, and the real-GPU tests.
step real-gpu-tests 300 "$PYTHON" -m pytest -m gpu -q -s -p no:cacheprovider tests/test_nvml_real_gpu.py

# gpu:N against cuda:N, with CUDA's default order and with PCI bus order.
for order in FASTEST_FIRST PCI_BUS_ID; do
    step "device-order-$order" 60 env CUDA_DEVICE_ORDER="$order" "$PYTHON" -c "
import torch
from hf_eco2ai import EnergyMeter
nvml = next(s for s in EnergyMeter(sources='nvml').info()['sources'] if s['name'] == 'nvml')
for i in range(torch.cuda.device_count()):
    cuda_uuid = str(torch.cuda.get_device_properties(i).uuid)
    described = nvml.get(f'gpu:{i}', '')
    print(f'cuda:{i} {cuda_uuid} | gpu:{i} {described} | same GPU: {cuda_uuid in described}')
"
done

# Counter vs instant power over 10 ms to 10 s, and the window estimator against long windows.
step accuracy $((BENCH_SECONDS + 4 * REFERENCE_SECONDS + 120)) "$PYTHON" benches/bench_gpu_accuracy.py \
    --seconds "$BENCH_SECONDS" --reference-seconds "$REFERENCE_SECONDS"

echo
echo "gpu_check: logs in $OUT_DIR"
if [ "${#failed[@]}" -ne 0 ]; then
    printf 'gpu_check: failed: %s\n' "${failed[@]}"
    exit 1
fi
echo "gpu_check: every step passed"
