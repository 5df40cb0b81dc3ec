#!/usr/bin/env bash
# One-shot GPU check, bounded to 8 minutes in all, that cannot pass without a working GPU.
#
# On a CUDA machine, from the repository root:
#   1. the missing dependencies from .whl/ (scripts/gpu-wheels.sh made it; no network needed),
#      else, online, a .venv with a torch build chosen from the driver and `pip install -e .[test]`;
#   2. torch must see and use the GPU (else exit 3);
#   3. every `gpu`-marked test (tests/gpu and the package tests that carry the marker): a skip is
#      a failure here, since a GPU test that skips on a GPU machine proved nothing;
#   4. bench model (fp32/bf16/fp16 at 640x360 and 1280x720, fp16 at 1920x1080), bench fidelity
#      (both models, fp16/bf16/fp32 against an IEEE fp32 reference), bench render (1280x720,
#      briefly) and bench serve (1 and 4 streams, briefly).
# It writes $OUT/report.md first (default OUT=./gpu-report) and folds every log into it; the
# benches add their JSON beside it: 5 files at most. Every step has a timeout, and the steps
# share one budget (GPU_CHECK_BUDGET_S, 480 s).
#
# Exit codes: 0 every step passed; 1 a step failed, timed out or did not fit the budget (or a
# gpu test skipped); 3 a GPU is there but torch cannot use it; 4 no GPU here (one line, no report).
#
# Usage: bash scripts/gpu-check.sh
#        OUT=/tmp/out PYTHON=/opt/torch/.venv/bin/python3 bash scripts/gpu-check.sh
#        GPU_CHECK_SMOKE=1 OUT=/tmp/out bash scripts/gpu-check.sh  (the same steps on the CPU at tiny
#            sizes: rehearses the script; gpu tests skip there, and the report says so)
#        GPU_CHECK_WHEELS=DIR (wheels other than .whl/), GPU_CHECK_NO_INSTALL=1 (use $PYTHON as is)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-./gpu-report}"
PYTHON="${PYTHON:-python3}"
SMOKE="${GPU_CHECK_SMOKE:-0}"
WHEELS="${GPU_CHECK_WHEELS:-.whl}"
SITE="${GPU_CHECK_SITE:-/tmp/stylestream-site}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-480}"
START=$SECONDS

if [ "$SMOKE" != "1" ] && ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
  echo "gpu-check: no GPU on this machine (nvidia-smi finds none); nothing checked (exit 4)"
  exit 4
fi

mkdir -p "$OUT" || { echo "gpu-check: error: cannot create $OUT" >&2; exit 1; }
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
REPORT="$OUT/report.md"
FAILED=0
NOTES=()

# Written first, so a run killed from outside still leaves what it had.
{
  echo "# stylestream GPU check$([ "$SMOKE" = "1" ] && echo " (SMOKE on the CPU: NOT a GPU result)")"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
  fi
  echo "- python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])' 2>&1)"
  echo
} >"$REPORT"

remaining() { echo $((BUDGET_S - (SECONDS - START))); }

# record TITLE RC SECONDS LOG COMMAND...: one report section with the log's tail.
record() {
  local title="$1" rc="$2" took="$3" log="$4"
  shift 4
  {
    echo "## $title"
    echo
    echo "\`$(printf '%q ' "$@")\` -> exit $rc$([ "$rc" -eq 124 ] && echo " (TIMED OUT)"), ${took} s"
    echo
    echo '```'
    grep -v -e ' INFO ' -e 'UNTRAINED MODEL' -e '^WARNING: Location' "$log" | tail -n 80
    echo '```'
    echo
  } >>"$REPORT"
  echo "gpu-check: $title -> exit $rc in ${took} s"
}

# step TITLE LIMIT_S COMMAND...: run it under a timeout that also fits the whole budget.
step() {
  local title="$1" limit="$2"
  shift 2
  local log="$LOGS/$(echo "$title" | tr -c 'a-zA-Z0-9\n' '-').log"
  local left
  left=$(($(remaining) - 5))
  if [ "$left" -lt 15 ]; then
    echo "not run: the ${BUDGET_S} s budget is spent" >"$log"
    FAILED=1
    record "$title" 124 0 "$log" "$@"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  echo "gpu-check: $title (at most ${limit} s) ..."
  timeout --signal=INT --kill-after=10 "$limit" "$@" >"$log" 2>&1
  local rc=$?
  [ "$rc" -ne 0 ] && FAILED=1
  record "$title" "$rc" $((SECONDS - t0)) "$log" "$@"
  LAST_LOG="$log"
  return "$rc"
}

# -- 1. dependencies -------------------------------------------------------------------------
online_install() {
  # Users' own machines: a CUDA 13 torch needs driver 580+, CUDA 12.6 runs on 525+.
  local driver major index
  driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
  major=${driver%%.*}
  if [ "$SMOKE" = "1" ]; then index=cpu
  elif [ "${major:-0}" -ge 580 ]; then index=cu130
  elif [ "${major:-0}" -ge 525 ]; then index=cu126
  else echo "driver ${driver:-unknown} is too old for a current torch (needs 525+)"; return 1
  fi
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv || return 1
  .venv/bin/python -m pip install -q --disable-pip-version-check torch torchvision \
    --index-url "https://download.pytorch.org/whl/$index" || return 1
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
}

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  rm -rf "$SITE"
  step "install the missing wheels from $WHEELS (offline)" 120 "$PYTHON" -m pip install -q \
    --disable-pip-version-check --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE:$PWD"
elif [ "${GPU_CHECK_NO_INSTALL:-0}" = "1" ]; then
  export PYTHONPATH="$PWD"
  NOTES+=("no wheels and GPU_CHECK_NO_INSTALL=1: $PYTHON used as it is")
else
  step "install online (.venv, torch for this driver, .[test])" 300 online_install
  PYTHON="$PWD/.venv/bin/python"
  export PYTHONPATH="$PWD"
fi
STYLESTREAM=("$PYTHON" -c 'import sys; from streamer.cli import main; sys.exit(main())')

# -- 2. torch must use the GPU ---------------------------------------------------------------
if [ "$SMOKE" = "1" ]; then
  PROBE='import torch; print("torch", torch.__version__, "(smoke: CPU)")'
else
  PROBE='import torch
assert torch.cuda.is_available(), "torch sees no CUDA device (torch.version.cuda=%s)" % torch.version.cuda
x = torch.ones(256, 256, device="cuda"); torch.cuda.synchronize()
assert float((x @ x)[0, 0]) == 256.0
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(),
      "on", torch.cuda.get_device_name(), "; defaults: cudnn.allow_tf32", torch.backends.cudnn.allow_tf32,
      ", matmul", torch.get_float32_matmul_precision())'
fi
if ! step "torch uses the device" 90 "$PYTHON" -c "$PROBE"; then
  if [ "$SMOKE" != "1" ]; then
    echo "**A GPU is present but torch cannot use it (exit 3).**" >>"$REPORT"
    echo "gpu-check: a GPU is present but torch cannot use it; report in $REPORT" >&2
    exit 3
  fi
fi

# -- 3. gpu tests ----------------------------------------------------------------------------
mapfile -t TEST_PATHS < <(
  echo tests/gpu
  grep -rl --include='test_*.py' -e 'mark\.gpu' tests | grep -v '^tests/gpu/' | sort
)
if step "gpu tests" 150 "$PYTHON" -m pytest -m gpu -q -rfEs --tb=short -p no:cacheprovider --timeout 120 \
  "${TEST_PATHS[@]}"; then :; fi
SUMMARY=$(grep -E '(passed|failed|skipped|error|no tests ran)' "${LAST_LOG:-/dev/null}" | tail -n 1)
if echo "$SUMMARY" | grep -qE '[0-9]+ skipped'; then
  if [ "$SMOKE" = "1" ]; then
    NOTES+=("gpu tests: skipped on the CPU as expected in smoke mode ($SUMMARY): NOT a GPU result")
  else
    FAILED=1
    NOTES+=("gpu tests: some SKIPPED on a GPU machine ($SUMMARY): counted as a failure")
  fi
fi

# -- 4. benches ------------------------------------------------------------------------------
if [ "$SMOKE" = "1" ]; then
  DEVICE=cpu
  MODEL=(--sizes 128x64 --precision fp32 bf16 --no-reference --repeats 1 --warmup 0)
  FIDELITY=(--models video --precision bf16 --size 64)
  RENDER=(--size 160x96 --frames 8 --repeat 1)
  SERVE=(--streams 1 2 --size 160x96 --fps 15 --seconds 8)
else
  DEVICE=cuda
  MODEL=(--sizes 640x360 1280x720 --precision fp32 bf16 fp16 --gpu-sizes 1920x1080
    --gpu-precision fp16 --repeats 5 --warmup 2)
  FIDELITY=(--models video image --precision fp16 bf16 fp32 --size 512)
  RENDER=(--size 1280x720 --frames 48 --repeat 1)
  SERVE=(--streams 1 4 --size 640x360 --fps 30 --seconds 8)
fi
step "bench model" 100 "${STYLESTREAM[@]}" bench model --device "$DEVICE" --large-style-size 0 \
  "${MODEL[@]}" --json "$OUT/bench-model.json"
step "bench fidelity" 70 "${STYLESTREAM[@]}" bench fidelity --device "$DEVICE" "${FIDELITY[@]}" \
  --json "$OUT/bench-fidelity.json"
step "bench render" 60 "${STYLESTREAM[@]}" bench render --device "$DEVICE" "${RENDER[@]}" \
  --untrained --json "$OUT/bench-render.json"
step "bench serve" 110 "${STYLESTREAM[@]}" bench serve --device "$DEVICE" "${SERVE[@]}" \
  --json "$OUT/bench-serve.json"

# -- verdict ---------------------------------------------------------------------------------
{
  for note in "${NOTES[@]}"; do echo "- $note"; done
  echo
  echo "Total: $((SECONDS - START)) s of ${BUDGET_S}; $([ "$FAILED" -eq 0 ] && echo "every step passed" || echo "SOME STEPS FAILED (see their exit codes and notes)")$([ "$SMOKE" = "1" ] && echo " (smoke run on the CPU)")."
} >>"$REPORT"
echo "gpu-check: report in $REPORT"
exit "$FAILED"
