#!/usr/bin/env bash
# System packages avplug uses beyond PyPI: FFmpeg's libraries and CLI (torchcodec decoding, the
# benchmarks' decode ceiling).  Installs them with apt-get when missing and we are root; otherwise
# says what is missing (avplug then falls back to PyAV, which bundles its own FFmpeg).
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: installing ffmpeg with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq ffmpeg >/dev/null
else
  echo "system_deps: ffmpeg is missing and cannot be installed here (not root or no apt-get);" \
       "torchcodec decoding and the ffmpeg decode ceiling in benchmarks will be unavailable." >&2
fi
