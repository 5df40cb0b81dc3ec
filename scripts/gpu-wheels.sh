#!/usr/bin/env bash
# Download, into .whl/ (git-ignored), the wheels that the offline GPU machine lacks for
# scripts/gpu-check.sh: Python 3.12 on manylinux x86_64 with torch, torchvision, numpy, opencv,
# onnx*, aiohttp, safetensors, tensorboard, pyyaml, tqdm, hypothesis and pytest already there.
# What the checked paths import and that machine lacks: av (sources, sinks, the test media
# helpers), pyzmq (serve, bench serve), kornia + kornia-rs (training data, imported by the CLI's
# train commands). --no-deps: every dependency that is also missing is named here. One version
# of each, the ones the project is tested with. Needs pip and a package index (run it here,
# then carry .whl to the GPU machine: about 45 MiB).
#
# Usage: bash scripts/gpu-wheels.sh        (PYTHON=python3.11 ... to use another pip)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
WHEELS=(
  "av==18.1.0"
  "pyzmq==27.3.0"
  "kornia==0.9.0"
  "kornia-rs==0.2.0"
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  PLATFORMS+=(--platform "$p")
done

rm -rf .whl
mkdir -p .whl
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"

count=$(find .whl -type f -name '*.whl' | wc -l)
if [ "$count" -ne "${#WHEELS[@]}" ]; then
  echo "gpu-wheels: error: expected ${#WHEELS[@]} wheels, got $count:" >&2
  ls .whl >&2
  exit 1
fi
ls -1 .whl
echo "gpu-wheels: $(du -sh .whl | cut -f1) in .whl/ (carry it with the repository: 64 MiB in all)"
