#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every test: the C++ unit tests and the end-to-end tests
# that export tiny model sets with scripts/, run abaw-infer, and compare it with the independent
# Python reference in tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-$(nproc)}" "$@"
