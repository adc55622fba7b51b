#!/usr/bin/env bash
# GPU build check and benchmark, in one go (a GPU host is often lent for minutes, not days):
#
#   bash scripts/bench_gpu.sh [OUT_DIR]            (default: build-cuda/results)
#
# 1. builds abaw-infer against the CUDA LibTorch inside a PyTorch package (the Python given by
#    $PYTHON; its torch.utils.cmake_prefix_path is put first on CMAKE_PREFIX_PATH, so OpenCV,
#    CLI11, spdlog and nlohmann_json come from the system or from CMAKE_PREFIX_PATH) and fails
#    unless CMake reports "CUDA code paths: ON";
# 2. `abaw-infer info --device cuda` on a tiny model set, then the same crops through the default
#    model set (models/default, if present) on CPU and on CUDA, compared with
#    tests/compare_outputs.py (tolerances below: cuDNN may use TF32 for convolutions);
# 3. scripts/benchmark.py for each encoder in $ENCODERS (random-weight CLIP sets exported with
#    this Python's torch) and each precision in $PRECISIONS, on $FRAMES generated frames with
#    batch $BATCH on both sides; then the first encoder in its last precision again with
#    --preprocess-on host (the default on CUDA is device), and encoder-only runs of it with each
#    TorchScript executor (ABAW_JIT_EXECUTOR=legacy, the default, and profiling).
#
# Every step's log and JSON lands in OUT_DIR; the last lines printed are a table of images/s.
# Environment: PYTHON (default python3: a Python whose torch has CUDA, plus numpy and cv2),
# BUILD_DIR (build-cuda), FRAMES (10000), VIDEOS (10), BATCH (128), ENCODERS ("ViT-B/16 ViT-L/14",
# or tiny / ViT-B/32), PRECISIONS ("fp32 fp16"), STEPS ("build check bench extras"),
# CMAKE_PREFIX_PATH, DEVICE (cuda; cpu runs the same steps on the CPU, e.g. to try the script
# with ENCODERS=tiny PRECISIONS=fp32 FRAMES=300 and Debian's /usr/bin/python3).
# Exit status: 0 when every step ran; otherwise the status of the first step that failed (the
# remaining steps are skipped only when the build failed).
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
PYTHON="${PYTHON:-python3}"
BUILD_DIR="${BUILD_DIR:-build-cuda}"
FRAMES="${FRAMES:-10000}"
VIDEOS="${VIDEOS:-10}"
BATCH="${BATCH:-128}"
ENCODERS="${ENCODERS:-ViT-B/16 ViT-L/14}"
PRECISIONS="${PRECISIONS:-fp32 fp16}"
STEPS="${STEPS:-build check bench extras}"
DEVICE="${DEVICE:-cuda}"
out="${1:-$BUILD_DIR/results}"
mkdir -p "$out" "$BUILD_DIR"
out="$(cd "$out" && pwd)"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$root/$BUILD_DIR" ;; esac
work="$BUILD_DIR/benchmark"
tool="$BUILD_DIR/abaw-infer"
status=0

say() { printf '[bench_gpu %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "FAILED: $*"; [ "$status" -ne 0 ] || status=1; }
has_step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  [ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/gpu /'
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), nproc $(nproc)"
  "$PYTHON" -c 'import torch, cv2, numpy; print("python torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "opencv", cv2.__version__, "numpy", numpy.__version__)'
  command -v nvcc >/dev/null && nvcc --version | tail -1
  "${CXX:-c++}" --version | head -1
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt" >&2

if has_step build; then
  say "configure + build in $BUILD_DIR"
  torch_prefix="$("$PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" || {
    fail "$PYTHON cannot import torch"; exit 1; }
  extra=()
  # PyTorch wheels ship cuDNN as the nvidia-cudnn package; Caffe2's CMake config looks for it
  cudnn="$("$PYTHON" -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) if nvidia.cudnn.__file__ else list(nvidia.cudnn.__path__)[0])' 2>/dev/null)"
  if [ -n "$cudnn" ] && [ -d "$cudnn/include" ]; then
    lib="$(ls "$cudnn"/lib/libcudnn.so* 2>/dev/null | head -1)"
    [ -n "$lib" ] && extra+=("-DCUDNN_INCLUDE_PATH=$cudnn/include" "-DCUDNN_LIBRARY_PATH=$lib")
  fi
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S "$root" -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DABAW_BUILD_TESTS=OFF \
        -DCMAKE_PREFIX_PATH="$torch_prefix${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}" "${extra[@]}" \
        > "$out/configure.log" 2>&1
  rc=$?
  grep -E "abaw-infer: LibTorch|CMake Error" "$out/configure.log" >&2
  if [ $rc -ne 0 ]; then fail "cmake configure (exit $rc), see $out/configure.log"; tail -30 "$out/configure.log" >&2; exit $rc; fi
  if [ "$DEVICE" != cpu ] && ! grep -q "CUDA code paths: ON" "$out/configure.log"; then
    fail "the LibTorch found has no CUDA (see $out/configure.log)"; exit 1
  fi
  start=$(date +%s)
  cmake --build "$BUILD_DIR" --target abaw-infer -j "$(nproc)" > "$out/build.log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    fail "build (exit $rc), see $out/build.log"; grep -E "error|Error" "$out/build.log" | head -40 >&2; exit $rc
  fi
  say "built $tool in $(( $(date +%s) - start )) s"
fi
[ -x "$tool" ] || { fail "no $tool (run the build step)"; exit 1; }

if has_step check; then
  say "check: info --device $DEVICE on a tiny set; default set CPU vs $DEVICE"
  tiny="$work/models/tiny-check"
  if [ ! -f "$tiny/manifest.json" ]; then
    "$PYTHON" scripts/make_model_set.py --tiny --output "$tiny" --seed 0 > "$out/check-tiny-export.log" 2>&1 ||
      fail "make_model_set.py --tiny (see $out/check-tiny-export.log)"
  fi
  "$tool" info --model-set "$tiny" --device "$DEVICE" > "$out/check-info.txt" 2>&1 || fail "abaw-infer info --device $DEVICE"
  cat "$out/check-info.txt" >&2
  if [ -f models/default/manifest.json ]; then
    data="$work/check-data"
    if [ ! -f "$data/dataset.json" ]; then
      "$PYTHON" scripts/benchmark.py _make_dataset "$data" 600 4 1 > "$out/check-data.log" 2>&1 ||
        fail "generating the check crops (see $out/check-data.log)"
    fi
    check_run() {  # DEVICE
      rm -rf "$work/check-$1"
      "$tool" run --model-set models/default --crops "$data/crops" --tasks expr \
          --frame-list "expr=$data/frame_lists/EXPR.txt" --device "${1%-again}" --output "$work/check-$1" \
          > "$out/check-run-$1.log" 2>&1
    }
    check_run cpu || fail "run --device cpu (see $out/check-run-cpu.log)"
    other="$DEVICE"
    [ "$DEVICE" = cpu ] && other=cpu-again  # on the CPU: two runs, which must agree
    if ! check_run "$other"; then
      fail "run --device $DEVICE (see $out/check-run-$other.log)"
      tail -3 "$out/check-run-$other.log" >&2
      if [ -z "${ABAW_JIT_EXECUTOR:-}" ] && ABAW_JIT_EXECUTOR=profiling check_run "$other"; then
        say "run --device $DEVICE works with ABAW_JIT_EXECUTOR=profiling only: using it for the benchmarks below"
        export ABAW_JIT_EXECUTOR=profiling
      fi
    fi
    "$PYTHON" tests/compare_outputs.py "$work/check-cpu" "$work/check-$other" --model-set models/default \
        --raw-atol 2e-3 --tie-eps 2e-3 > "$out/check-compare.txt" 2>&1 ||
      fail "CPU and $DEVICE outputs differ (see $out/check-compare.txt)"
    tail -5 "$out/check-compare.txt" >&2
  else
    say "no models/default (scripts/make_default_model_set.sh makes it): CPU-vs-CUDA check skipped"
  fi
fi

bench() {  # NAME, then benchmark.py arguments
  local name="$1"; shift
  say "benchmark $name: $*"
  "$PYTHON" scripts/benchmark.py --tool "$tool" --work "$work" --frames "$FRAMES" --videos "$VIDEOS" \
      --batch-size "$BATCH" --device "$DEVICE" --json "$out/$name.json" "$@" > "$out/$name.txt" 2> "$out/$name.log"
  local rc=$?
  if [ $rc -ne 0 ]; then fail "benchmark $name (exit $rc), see $out/$name.log"; tail -5 "$out/$name.log" >&2; fi
  tail -4 "$out/$name.txt" >&2
}

if has_step bench; then
  for enc in $ENCODERS; do
    for prec in $PRECISIONS; do
      bench "bench-${enc//\//-}-$prec" --encoder "$enc" --precision "$prec"
    done
  done
fi

if has_step extras; then
  enc="${ENCODERS%% *}"  # the first encoder
  prec="${PRECISIONS##* }"  # the last precision
  tag="${enc//\//-}"
  bench "bench-$tag-$prec-preprocess-host" --encoder "$enc" --precision "$prec" --preprocess-on host
  model_set="$work/models/$tag-window300-seed0"
  for executor in legacy profiling; do
    for p in $PRECISIONS; do
      name="encode-$tag-$p-$executor"
      say "encoder only, $executor executor, $p"
      ABAW_JIT_EXECUTOR=$executor "$tool" bench --model-set "$model_set" --stage encode --frames 4096 \
          --batch-size "$BATCH" --device "$DEVICE" --precision "$p" --json > "$out/$name.json" 2> "$out/$name.log" ||
        fail "bench --stage encode ($executor, $p), see $out/$name.log"
    done
  done
fi

# the table: one line per benchmark JSON
"$PYTHON" - "$out" <<'EOF' | tee "$out/summary.txt"
import glob, json, os, sys
out = sys.argv[1]
print("%-40s %9s %9s %9s %9s %7s %7s %9s %9s" % ("benchmark", "(a) img/s", "(b) img/s", "(c) img/s",
                                                 "(d) img/s", "(c)/(b)", "(c)/(d)", "RSS(c)MB", "RSS(d)MB"))
for path in sorted(glob.glob(os.path.join(out, "bench-*.json"))):
    try:
        r = json.load(open(path))
        t = r["table"]
        rate = lambda k: "%9.0f" % t[k]["images_per_second_median"] if t.get(k) else "%9s" % "-"
        cb = r["ratios"]["c_over_b"]
        print("%-40s %s %s %s %s %7s %7.2f %9.0f %9.0f" % (
            os.path.basename(path)[6:-5], rate("a_decode"), rate("b_encode"), rate("c_run"), rate("d_python"),
            "%.2f" % cb if cb else "-", r["ratios"]["c_over_d_excl_loading"],
            t["c_run"]["peak_rss_mb_max"], t["d_python"]["peak_rss_mb_max"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("%-40s unreadable: %s" % (os.path.basename(path), e))
for path in sorted(glob.glob(os.path.join(out, "encode-*.json"))):
    try:
        r = json.load(open(path))
        print("%-40s encoder only: %.0f img/s (%d frames, batch %d)" % (
            os.path.basename(path)[:-5], r["frames"] / r["seconds"], r["frames"], r["batch_size"]))
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as e:
        print("%-40s unreadable: %s" % (os.path.basename(path), e))
EOF
exit $status
