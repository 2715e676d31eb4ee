#!/usr/bin/env bash
# The GPU checks, in under 5 minutes on an NVIDIA H100/H200:
#   1. the CUDA tests (tests/test_gpu.py: CPU/GPU agreement of training, inference, bf16, the fast paths);
#   2. benchmarks/run_all.py on the GPU: matmul rate, training (batch 64 and 512) and Monte-Carlo inference
#      (float32 and bfloat16) speed, agreement with the CPU, and APOGEE DR14's size (277,000 stars x 100
#      passes) timed in float32 and bfloat16; its table goes to benchmarks/results/core-<host>-cuda.md.
# Without a CUDA device it stops at once with a message and exit status 1.
# Usage: bash benchmarks/gpu.sh   (PYTHON=... to use another interpreter than .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu.sh: no CUDA device visible to torch $("$PYTHON" -c 'import torch; print(torch.__version__)')" \
        "(nvidia-smi: $(nvidia-smi -L 2>/dev/null | head -1 || echo 'not found')); run it on a machine with an NVIDIA GPU" >&2
    exit 1
fi
mkdir -p benchmarks/results
"$PYTHON" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)'
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee benchmarks/results/gpu-tests-"$(hostname)".txt
"$PYTHON" benchmarks/run_all.py --device cuda --dr14
