#!/usr/bin/python3
"""Speed and detection quality of `abaw-infer crop`, per video and detector.

For each video and detector, runs the whole `crop` command --runs times (a fresh output folder
each time) and prints the median wall time as frames/s, the per-stage seconds `crop` logs
(decoding runs on its own thread, overlapping the rest), the share of frames with a face, and
the share of frames whose box agrees with YuNet's (intersection over union >= 0.5; a frame
where exactly one of the two finds a face disagrees).

    /usr/bin/python3 scripts/bench_crop.py                      # ../shared/realdata/videos
    /usr/bin/python3 scripts/bench_crop.py --videos clip.mp4 --detectors tiny --runs 1
    /usr/bin/python3 scripts/bench_crop.py --pair liveportrait_d18 liveportrait_d20 --detectors tiny --extra "--faces 2"

--pair A B builds one 2-person video from two clips of --videos (a folder; both the same size):
A|B side by side, swapped halfway (cv2 needed, as in Debian's python3-opencv). With several
people (`--faces N`), "frames with a face" is given per person's folder.

Needs only the standard library. The numbers are measured here, on this machine's CPUs; set
OPENBLAS_CORETYPE as the machine needs (these machines: Haswell).
"""

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("ABAW_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
STAGES = re.compile(r"seconds: decode ([\d.]+) on its own thread, detect ([\d.]+), landmarks ([\d.]+), "
                    r"descriptors ([\d.]+), crop\+write ([\d.]+)")


def boxes(folder, video):
    """{frame: (x, y, w, h)} for the frames with a face, and the number of frames."""
    found, frames = {}, 0
    with open(os.path.join(folder, video + ".boxes.csv"), newline="") as f:
        for row in csv.DictReader(f):
            frames += 1
            if row["x"]:
                found[int(row["frame"])] = tuple(float(row[k]) for k in ("x", "y", "width", "height"))
    return found, frames


def iou(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    h = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def run_crop(tool, video, detector_args, runs, work):
    """Median wall seconds, the stage seconds of the median run, and the output folder of the last run."""
    walls, stages, out = [], [], None
    for r in range(runs):
        out = os.path.join(work, f"run{r}")
        shutil.rmtree(out, ignore_errors=True)
        start = time.monotonic()
        result = subprocess.run([tool, "crop", "--videos", video, "--output", out, *detector_args],
                                capture_output=True, text=True)
        walls.append(time.monotonic() - start)
        if result.returncode != 0:
            raise SystemExit(f"error: crop {' '.join(detector_args)} failed on {video}:\n{result.stderr}")
        match = STAGES.search(result.stderr)
        stages.append(tuple(float(x) for x in match.groups()) if match else (0.0,) * 5)
    median = statistics.median(walls)
    return median, stages[walls.index(sorted(walls)[len(walls) // 2])], out


def make_pair(folder, clips, work):
    """<work>/<A>+<B>.mp4: the clips' frames side by side (as long as the shorter), swapped halfway."""
    import cv2
    import numpy as np
    frames = []
    for clip in clips:
        capture, decoded = cv2.VideoCapture(os.path.join(folder, clip + ".mp4")), []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            decoded.append(frame)
        frames.append(decoded)
    count = min(len(f) for f in frames)
    h, w = frames[0][0].shape[:2]
    path = os.path.join(work, f"{clips[0]}+{clips[1]}.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30, (2 * w, h))
    for i in range(count):
        a, b = frames[0][i], frames[1][i]
        writer.write(np.hstack([a, b] if i < count // 2 else [b, a]))
    writer.release()
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tool", default=os.path.join(ROOT, "build", "abaw-infer"))
    p.add_argument("--videos", default=os.path.join(SHARED, "realdata", "videos"),
                   help="a video file or a folder of .mp4 files")
    p.add_argument("--detectors", default="tiny,haar,yunet", help="comma-separated, from tiny, haar, yunet")
    p.add_argument("--yunet-model", default=os.path.join(SHARED, "models", "yunet", "face_detection_yunet_2023mar.onnx"))
    p.add_argument("--runs", type=int, default=3, help="runs per video and detector (the median is shown)")
    p.add_argument("--pair", nargs=2, metavar=("A", "B"),
                   help="bench one video made of clips A and B of --videos side by side, swapped halfway")
    p.add_argument("--extra", default="", help="more crop options for every run, e.g. '--style aligned'")
    args = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="abaw-bench-crop-")
    if args.pair:
        videos = [make_pair(args.videos, args.pair, work)]
    elif os.path.isdir(args.videos):
        videos = sorted(os.path.join(args.videos, f) for f in os.listdir(args.videos) if f.endswith(".mp4"))
    else:
        videos = [args.videos]
    if not videos:
        raise SystemExit(f"error: no .mp4 files in {args.videos}")
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    options = {"tiny": ["--detector", "tiny"], "haar": ["--detector", "haar"],
               "yunet": ["--detector", "yunet", "--yunet-model", args.yunet_model]}
    for d in detectors:
        if d not in options:
            raise SystemExit(f"error: unknown detector {d}")
    compare = "yunet" in detectors or os.path.exists(args.yunet_model)

    print("| video | frames | detector | frames/s (whole command) | decode / detect / landmarks / descriptors / "
          "crop+write (s) | frames with a face | agrees with YuNet (IoU >= 0.5) |")
    print("|---|---|---|---|---|---|---|")
    try:
        for video in videos:
            name = os.path.splitext(os.path.basename(video))[0]
            reference = None
            if compare:
                _, _, out = run_crop(args.tool, video, options["yunet"], 1, os.path.join(work, "yunet-ref"))
                reference = boxes(out, name)[0]
            for d in detectors:
                extra = args.extra.split() if args.extra else []
                wall, stages, out = run_crop(args.tool, video, options[d] + extra, args.runs, os.path.join(work, d))
                # `--extra "--faces 2"`: a folder per person (<video>_left, ...); a face per person
                folders = [name] if os.path.exists(os.path.join(out, name + ".boxes.csv")) else sorted(
                    f[:-len(".boxes.csv")] for f in os.listdir(out) if f.endswith(".boxes.csv"))
                people = [boxes(out, folder) for folder in folders]
                found, frames = people[0]
                agree = "-"
                if reference is not None and len(people) == 1:
                    same = sum(1 for f in range(1, frames + 1)
                               if (f in found) == (f in reference) and (f not in found or iou(found[f], reference[f]) >= 0.5))
                    agree = f"{100.0 * same / frames:.1f} %"
                with_face = " / ".join(f"{100.0 * len(f) / frames:.1f} %" for f, _ in people)
                print(f"| {name} | {frames} | {d} | {frames / wall:.0f} | "
                      f"{' / '.join(f'{x:.2f}' for x in stages)} | {with_face} | {agree} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
