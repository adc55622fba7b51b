#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang + AddressSanitizer + UBSan) and runs each for
# SECONDS (default 20; CI uses this). A longer campaign: bash scripts/fuzz.sh 3600.
# Seeds: tests/fuzz/corpus/<target>/ (committed); new inputs go to build-fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
command -v clang++-14 >/dev/null || { echo "fuzz: clang++-14 missing (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" >/dev/null
failed=0
for target in annotation frame_list submission manifest crop_name video_name; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  seeds="tests/fuzz/corpus/$target"
  artifacts="$build/artifacts/$target/"
  rm -rf "$artifacts" && mkdir -p "$artifacts"
  if "$build/fuzz_$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -artifact_prefix="$artifacts" \
      "$corpus" "$seeds" >"$build/fuzz_$target.log" 2>&1; then
    echo "fuzz_$target: clean for ${seconds}s ($(grep -o 'Done [0-9]* runs' "$build/fuzz_$target.log" | tail -n 1))"
  else
    echo "fuzz_$target: FAILED, see $build/fuzz_$target.log" >&2
    tail -n 30 "$build/fuzz_$target.log" >&2
    # CI machines are thrown away: print the failing input so it can be replayed elsewhere
    # (base64 -d > crash; build-fuzz/fuzz_<target> crash).
    for input in "$artifacts"*; do
      [ -f "$input" ] || continue
      echo "fuzz_$target: failing input $(basename "$input") ($(stat -c %s "$input") bytes), base64:" >&2
      base64 -w 0 "$input" >&2 && echo >&2
    done
    failed=1
  fi
done
exit $failed
