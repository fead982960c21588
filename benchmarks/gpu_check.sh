#!/usr/bin/env bash
# The GPU check: sonoflow's training loops on one CUDA device, with images/s, GPU utilisation
# (nvidia-smi, every second: mean and p10), peak memory and the CPU images/s for the ratio.
# Needs only `make install`; installs nothing. Under 8 minutes on one modern GPU.
#
#   make install && bash benchmarks/gpu_check.sh [extra arguments for benchmarks/gpu_check.py]
#
# Fails (exit 1, a line on stderr) when there is no CUDA device: no nvidia-smi, or torch sees none.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

fail() { echo "gpu_check: FAILED: $*" >&2; exit 1; }

[ -x "$PYTHON" ] || fail "no $PYTHON: run 'make install' first"
command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: no NVIDIA driver on this machine"
nvidia-smi -L >/dev/null 2>&1 || fail "nvidia-smi lists no GPU: $(nvidia-smi -L 2>&1 | head -1)"
"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || fail "torch $("$PYTHON" -c 'import torch; print(torch.__version__)') sees no CUDA device (CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES-unset}')"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
started=$SECONDS
timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@" || fail "benchmarks/gpu_check.py exited with $? (124: over 8 minutes)"
echo "gpu_check: done in $((SECONDS - started)) s"
