#!/usr/bin/env bash
# The README's first command. Sets up and builds, converts the default model set from real
# pretrained weights (face-api.js's FaceExpressionNet, npm @vladmandic/face-api@1.7.15, MIT),
# crops the faces of the demo photos that package ships, predicts their expressions with
# `abaw-infer run`, and shows where the EXPR submission and the raw scores are.
# Downloads go to .cache/ and build/, both git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build="${BUILD_DIR:-build}"
demo="$build/demo"
tool="$build/abaw-infer"

[ -f models/default/manifest.json ] && [ -f models/default/faces/faces.json ] || bash scripts/make_default_model_set.sh
"$tool" info --model-set models/default

# Real faces from a registry package: face-api's demo photos (group photos; `crop` keeps the
# largest face of each). A still image is a one-frame video to `crop`.
mkdir -p "$demo/photos"
cp .cache/npm/face-api-1.7.15/demo/sample*.jpg "$demo/photos/"
rm -rf "$demo/crops" "$demo/output"
"$tool" crop --videos "$demo/photos" --output "$demo/crops"
"$tool" run --model-set models/default --crops "$demo/crops" --output "$demo/output"
"$tool" report --run "$demo/output" --crops "$demo/crops"

echo
echo "EXPR submission ($demo/output/submission/EXPR.txt): one row per photo, ABAW class index"
echo "(0 Neutral, 1 Anger, 2 Disgust, 3 Fear, 4 Happiness, 5 Sadness, 6 Surprise; 7 Other is never predicted):"
cat "$demo/output/submission/EXPR.txt"
echo "raw probabilities per photo: $demo/output/raw/EXPR/<photo>.csv; face crops: $demo/crops; summary: $demo/output/run.json"
echo "report (open it in a browser): $demo/output/report.html"
