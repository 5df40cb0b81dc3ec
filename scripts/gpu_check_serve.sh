#!/usr/bin/env bash
# GPU check for `stylestream serve` (run on a CUDA machine from the repository root; the
# dependencies as scripts/gpu-check.sh sets them up): per-frame styles in one batch on CUDA and
# a serve round of two streams, then one serve process with N streams vs N live processes. On a
# GPU batching should pay most: one model call for N frames costs little more than for one,
# while N processes each pay their own launches and contexts.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"
"$PYTHON" -m pytest -q -rs -m gpu tests/adaattn_video/test_mixed_batch.py \
    tests/gpu/test_cuda_paths.py -k "mixed or serve"
"$PYTHON" -c 'import sys; from streamer.cli import main; sys.exit(main())' bench serve \
    --device cuda --precision fp16 --size 640x360 --fps 30 --streams 1 2 4 8 --seconds 20 \
    --json "${OUT:-.}/bench_serve_gpu.json"
