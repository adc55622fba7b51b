#!/usr/bin/python3
"""Speed and memory of `abaw-infer run --videos`: videos to a submission in one command.

For each video, runs the whole `run --videos` command --runs times (a fresh output folder each
time) and prints the median wall time as frames/s, the per-stage seconds of the median run (from
its run.json: decoding on its own thread; face detection, landmarks, cutting and JPEG on the
streaming thread; the encoder and heads on the main thread; the stages overlap, so they add up to
more than the wall time), its peak resident memory, and the same for `crop` followed by
`run --crops` (both commands' wall time added), with whether both wrote the same submission.

    /usr/bin/python3 scripts/bench_videos.py                 # liveportrait_s18 and _d6
    /usr/bin/python3 scripts/bench_videos.py --long 30       # also a 30-minute video: peak memory

--long N concatenates the shared clips (scaled to 480x480, 30 frames/s) with OpenCV, once and
over and over into an N-minute video, and reports the peak memory of one run on each against one
on a single clip: memory flat with a video's length shows as equal peaks for the same content.

Needs OpenCV's Python module for --long (Debian's /usr/bin/python3). The numbers are
measured on this machine's CPUs; set OPENBLAS_CORETYPE as the machine needs (these: Haswell).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("ABAW_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
CLIPS = os.path.join(SHARED, "realdata", "videos")


def timed(command):
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return wall


def median_run(commands_for, runs):
    """Median over `runs` of the summed wall seconds of commands_for(output) and that run's output."""
    results = []
    for r in range(runs):
        out = commands_for(r)
        wall = sum(timed(c) for c in out[0])
        results.append((wall, out[1]))
    results.sort(key=lambda x: x[0])
    return results[len(results) // 2]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def make_long_video(path, minutes):
    """The clips, scaled to 480x480, one after the other and again until `minutes` at 30 frames/s
    (0: each clip once). Returns the frame count."""
    import cv2
    clips = sorted(os.path.join(CLIPS, f) for f in os.listdir(CLIPS) if f.endswith(".mp4"))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (480, 480))
    if not writer.isOpened():
        raise SystemExit("error: OpenCV cannot write mp4v here")
    frames, target = 0, int(minutes * 60 * 30) if minutes > 0 else sys.maxsize
    once = minutes <= 0
    while frames < target:
        for clip in clips:
            capture = cv2.VideoCapture(clip)
            ok, frame = capture.read()
            while ok and frames < target:
                writer.write(cv2.resize(frame, (480, 480), interpolation=cv2.INTER_AREA))
                frames += 1
                ok, frame = capture.read()
            if frames >= target:
                break
        if once:
            break
    writer.release()
    return frames


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tool", default=os.path.join(ROOT, "build", "abaw-infer"))
    p.add_argument("--model-set", default=os.path.join(ROOT, "models", "default"))
    p.add_argument("--videos", nargs="+",
                   default=[os.path.join(CLIPS, "liveportrait_s18.mp4"), os.path.join(CLIPS, "liveportrait_d6.mp4")])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--long", type=float, default=0, help="minutes of a concatenated video for the memory check")
    p.add_argument("--extra", default="", help="more options for run and crop, e.g. '--detector haar'")
    args = p.parse_args(argv)
    extra = args.extra.split()
    work = tempfile.mkdtemp(prefix="abaw-bench-videos-")
    try:
        print("| video | frames | run --videos frames/s | stages (s): decode / detect / landmarks / crop / jpeg "
              "/ encode / heads | peak RSS (MB) | crop + run --crops frames/s | same submission |")
        print("|---|---|---|---|---|---|---|")
        for video in args.videos:
            name = os.path.splitext(os.path.basename(video))[0]

            def direct(r):
                out = os.path.join(work, f"{name}-direct{r}")
                shutil.rmtree(out, ignore_errors=True)
                return [[args.tool, "run", "--model-set", args.model_set, "--videos", video, "--output", out,
                         *extra]], out

            def two_steps(r):
                crops, out = os.path.join(work, f"{name}-crops{r}"), os.path.join(work, f"{name}-two{r}")
                shutil.rmtree(crops, ignore_errors=True)
                shutil.rmtree(out, ignore_errors=True)
                return [[args.tool, "crop", "--videos", video, "--output", crops, *extra],
                        [args.tool, "run", "--model-set", args.model_set, "--crops", crops, "--output", out]], out

            wall, out = median_run(direct, args.runs)
            wall2, out2 = median_run(two_steps, args.runs)
            with open(os.path.join(out, "run.json")) as f:
                summary = json.load(f)
            stages = summary["video_stages"]["seconds"]
            frames = summary["video_stages"]["frames_decoded"]
            same = read(os.path.join(out, "submission", "EXPR.txt")) == read(os.path.join(out2, "submission", "EXPR.txt"))
            split = " / ".join(f"{s:.2f}" for s in (stages["decode"], stages["detect"], stages["landmarks"],
                                                     stages["crop"], stages["jpeg"], summary["seconds"]["encode"],
                                                     summary["seconds"]["heads"]))
            print(f"| {name} | {frames} | {frames / wall:.0f} | {split} | {summary['peak_rss_mb']:.0f} | "
                  f"{frames / wall2:.0f} | {'yes' if same else 'NO'} |", flush=True)
        if args.long > 0:
            # The same content once and over and over: memory flat with length means equal peaks.
            once_video, long_video = os.path.join(work, "once.mp4"), os.path.join(work, "long.mp4")
            make_long_video(once_video, 0)
            frames = make_long_video(long_video, args.long)
            print(f"\nthe clips once (once.mp4) and for {args.long:g} minutes (long.mp4, {frames} frames), "
                  "480x480, 30 frames/s")
            print("| video | frames | wall (s) | frames/s | peak RSS (MB) |")
            print("|---|---|---|---|---|")
            for video in (args.videos[-1], once_video, long_video):
                out = os.path.join(work, "memory")
                shutil.rmtree(out, ignore_errors=True)
                wall = timed([args.tool, "run", "--model-set", args.model_set, "--videos", video, "--output", out,
                              *extra])
                with open(os.path.join(out, "run.json")) as f:
                    summary = json.load(f)
                n = summary["video_stages"]["frames_decoded"]
                print(f"| {os.path.basename(video)} | {n} | {wall:.1f} | {n / wall:.0f} | {summary['peak_rss_mb']:.0f} |",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
