#!/usr/bin/env bash
# Builds the library and the unit tests with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DABAW_SANITIZE=ON, into build-asan/ or $ASAN_BUILD_DIR) and runs the unit tests under them.
# CI runs it after the main suite; any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${ASAN_BUILD_DIR:-build-asan}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DABAW_SANITIZE=ON >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target unit_tests
ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
  "$build/tests/unit_tests"
