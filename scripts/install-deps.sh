#!/usr/bin/env bash
# Installs every build, test and run dependency of mixtape from Debian 12's
# archive. Idempotent: packages already present are left alone.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libopenblas-dev libhdf5-dev libpng-dev zlib1g-dev
      libjpeg62-turbo-dev libarchive-dev libopenmpi-dev openmpi-bin iproute2
      python3 python3-torch python3-h5py python3-numpy python3-matplotlib
      dataset-fashion-mnist)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
