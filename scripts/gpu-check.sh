#!/usr/bin/env bash
# One-shot GPU check (at most ~8 minutes once installed). On a CUDA machine it:
#   1. creates .venv and installs the project with its test extras (pip install -e '.[test]'),
#   2. runs every `gpu`-marked test,
#   3. `bench model` in fp16 at 1280x720 and 1920x1080 (published vs ours, peak memory of both),
#   4. `bench fidelity` of fp16 against fp32 on the bundled photos (both models),
#   5. `bench render` at 1920x1080 (model only vs pipelined fps),
#   6. `bench live` for 60 s at 1280x720,
# and writes one Markdown report, $OUT/report.md (default OUT=./gpu-report), with every
# command, its exit code, its time and its output. Without CUDA it prints one line and exits 0.
#
# Usage: bash scripts/gpu-check.sh            (from a fresh copy: only Python and the driver needed)
#        OUT=/tmp/report PYTHON=python3.11 bash scripts/gpu-check.sh
#        GPU_CHECK_SMOKE=1 bash scripts/gpu-check.sh   (tiny sizes on the CPU: checks the script)
#        GPU_CHECK_NO_INSTALL=1 ...   (use the active Python environment instead of .venv)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-./gpu-report}"
PYTHON="${PYTHON:-python3}"
SMOKE="${GPU_CHECK_SMOKE:-0}"

if [ "$SMOKE" != "1" ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: skipped: no CUDA GPU on this machine (nvidia-smi finds none)"
    exit 0
  fi
fi

if [ "${GPU_CHECK_NO_INSTALL:-0}" != "1" ]; then
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv || { echo "gpu-check: error: cannot create .venv with $PYTHON" >&2; exit 1; }
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
  if ! pip install -q --disable-pip-version-check -e '.[test]'; then
    echo "gpu-check: error: pip install -e '.[test]' failed" >&2
    exit 1
  fi
fi

if [ "$SMOKE" = "1" ]; then
  DEVICE=cpu; PRECISION=bf16; MODEL_SIZES="128x64 160x96"; RENDER_SIZE=160x96; LIVE_SIZE=160x96
  LIVE_SECONDS=5; FIDELITY_SIZE=64; TESTS=(-m gpu)
  MODEL_EXTRA=(--no-reference --repeats 1 --warmup 0); RENDER_EXTRA=(--frames 8 --repeat 1)
else
  if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu-check: skipped: the GPU driver is there but torch sees no CUDA device"
    exit 0
  fi
  DEVICE=cuda; PRECISION=fp16; MODEL_SIZES="1280x720 1920x1080"; RENDER_SIZE=1920x1080
  LIVE_SIZE=1280x720; LIVE_SECONDS=60; FIDELITY_SIZE=512; TESTS=(-m gpu)
  MODEL_EXTRA=(--repeats 5); RENDER_EXTRA=(--frames 48 --repeat 2)
fi

mkdir -p "$OUT"
REPORT="$OUT/report.md"
START=$(date +%s)
{
  echo "# stylestream GPU check"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- $(python -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)')"
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  fi
  echo "- device used: $DEVICE ($PRECISION)"
  echo
} >"$REPORT"

FAILED=0
# step TITLE TIMEOUT_S COMMAND...: run it, append its command, exit code, time and output.
step() {
  local title="$1" limit="$2"
  shift 2
  local log="$OUT/$(echo "$title" | tr -c 'a-zA-Z0-9\n' '-').log"
  local t0=$SECONDS
  echo "gpu-check: $title ..."
  timeout --signal=INT --kill-after=15 "$limit" "$@" >"$log" 2>&1
  local rc=$?
  local took=$((SECONDS - t0))
  [ "$rc" -ne 0 ] && FAILED=1
  {
    echo "## $title"
    echo
    echo "\`$*\` -> exit $rc$([ "$rc" -eq 124 ] && echo " (timed out after ${limit} s)"), ${took} s"
    echo
    echo '```'
    grep -v -e ' INFO ' -e 'UNTRAINED MODEL' "$log" | tail -n 60
    echo '```'
    echo
  } >>"$REPORT"
  echo "gpu-check: $title -> exit $rc in ${took} s"
}

# shellcheck disable=SC2086
step "gpu tests" 90 python -m pytest "${TESTS[@]}" -q -rs -p no:cacheprovider
step "bench model" 120 stylestream bench model --device "$DEVICE" --precision "$PRECISION" \
  --sizes $MODEL_SIZES --gpu-sizes --large-style-size 0 "${MODEL_EXTRA[@]}" \
  --json "$OUT/bench-model.json"
step "bench fidelity" 60 stylestream bench fidelity --device "$DEVICE" \
  --precision "$PRECISION" --size "$FIDELITY_SIZE" --json "$OUT/bench-fidelity.json"
step "bench render" 80 stylestream bench render --device "$DEVICE" --size "$RENDER_SIZE" \
  "${RENDER_EXTRA[@]}" --json "$OUT/bench-render.json"
step "bench live" $((LIVE_SECONDS + 40)) stylestream bench live --device "$DEVICE" \
  --size "$LIVE_SIZE" --seconds "$LIVE_SECONDS" --json "$OUT/bench-live.json"

echo "Total: $(( $(date +%s) - START )) s; $([ "$FAILED" -eq 0 ] && echo "every step passed" || echo "SOME STEPS FAILED (see their exit codes)")." >>"$REPORT"
echo "gpu-check: report in $REPORT"
exit "$FAILED"
