#!/usr/bin/env bash
# GPU check for `stylestream serve` (run on a CUDA machine from the repository root, with the
# project installed): per-frame styles in one batch on CUDA, then one serve process with N
# streams vs N live processes. On a GPU batching should pay most: one model call for N frames
# costs little more than for one, while N processes each pay their own launches and contexts.
set -euo pipefail
python -m pytest -q -m gpu tests/test_batching.py
stylestream bench serve --device cuda --precision fp16 --size 640x360 --fps 30 \
    --streams 1 2 4 8 --seconds 20 --json "${OUT:-.}/bench_serve_gpu.json"
