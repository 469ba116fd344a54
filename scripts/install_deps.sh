#!/usr/bin/env bash
# Installs the Debian packages attnlab builds and tests with (only those missing).
# The CUDA toolkit (nvcc, cuBLAS, NCCL) is expected under /usr/local/cuda when present.
set -euo pipefail
packages=(build-essential cmake ninja-build ccache pkg-config
          libeigen3-dev libgtest-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libfmt-dev
          libutf8proc-dev zlib1g-dev libzstd-dev
          python3 python3-numpy python3-torch python3-regex fortunes
          python3-matplotlib chromium)  # figures (scripts/plot.py); the report page's browser test
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[attnlab] installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
