#!/usr/bin/env bash
# The README's first command: set up, build, make the demo model set and sample crops, run
# `abaw-infer run`, and show where the submissions and raw scores are.
#
# Until the default model set from real pretrained weights lands, the demo set is exported by
# scripts/make_model_set.py with random weights (a tiny CLIP encoder and the ABAW6 TCN +
# Transformer heads): the pipeline is real, the predictions are not meaningful.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build="${BUILD_DIR:-build}"
demo="$build/demo"
python=/usr/bin/python3  # Debian's Python: it has torch, numpy and OpenCV

if [ ! -f "$demo/model-set/manifest.json" ]; then
  "$python" scripts/make_model_set.py --tiny --seed 0 --output "$demo/model-set" --name demo-random-weights \
    --window 32 --mode-filter 5 >/dev/null
fi
if [ ! -d "$demo/sample/crops" ]; then
  "$python" tests/fixtures/make_crops.py --output "$demo/sample" >/dev/null
fi
"$build/abaw-infer" info --model-set "$demo/model-set"
"$build/abaw-infer" run --model-set "$demo/model-set" --crops "$demo/sample/crops" --output "$demo/output" \
  --frame-list "va=$demo/sample/frame_lists/VA.txt" \
  --frame-list "expr=$demo/sample/frame_lists/EXPR.txt" \
  --frame-list "au=$demo/sample/frame_lists/AU.txt"
echo
echo "EXPR submission ($demo/output/submission/EXPR.txt), first rows:"
head -n 4 "$demo/output/submission/EXPR.txt"
echo "raw scores per video: $demo/output/raw/{VA,EXPR,AU}/<video>.csv; run summary: $demo/output/run.json"
