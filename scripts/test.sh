#!/usr/bin/env bash
# Installs everything the test suite needs, then runs it:
#   - Debian packages for the real RTSP server (GStreamer, driven by the system python3-gi;
#     gstreamer1.0-libav: the H.264 decoder the independent GStreamer reader of Ray joins uses)
#     and for the browser tests (chromium), nginx-rtmp and srt-tools for the output tests, iproute2 for the two-node Ray test (ip netns),
#     when apt-get is available;
#   - a virtual environment .venv with the project and its test extras.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-tools gstreamer1.0-libav python3-gi
  chromium
  nginx libnginx-mod-rtmp srt-tools
  iproute2
)

if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
pip install -q --disable-pip-version-check -e '.[test]'
python -m pytest "$@"
