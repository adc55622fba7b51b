#!/usr/bin/python3
"""How large `abaw-infer report` files get and how fast a browser opens them, on a generated run.

    /usr/bin/python3 scripts/bench_report.py [--videos 100] [--frames 10000] [--tool build/abaw-infer]

Writes a run folder (run.json, raw/{VA,EXPR,AU}/<video>.csv with 5% of frames without a face)
and annotation folders for every task into a scratch folder, runs `report` with the annotations,
and prints: the seconds `report` took, the file's size, and, when Debian's `chromium` is
installed, the milliseconds headless Chromium took from the start of loading the page to the
first screen of timelines drawn (how the page opens: the others draw as they scroll into view)
and to every timeline drawn ("#all"), as the page records them, median of 3 loads. Needs numpy (Debian's /usr/bin/python3).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import numpy as np

HEADERS = {"VA": "valence,arousal", "EXPR": "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
           "AU": "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"}
FOLDERS = {"VA": "VA_Estimation_Challenge", "EXPR": "EXPR_Recognition_Challenge", "AU": "AU_Detection_Challenge"}


def write_lines(path, header, body):
    with open(path, "w") as f:
        f.write(header + "\n")
        f.write("\n".join(body) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=100)
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--tool", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                  "abaw-infer"))
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="abaw-bench-report-")
    try:
        run = os.path.join(work, "run")
        rng = np.random.default_rng(0)
        t = np.arange(args.frames)
        for video in range(args.videos):
            name = "video%03d" % video
            has_crop = (rng.random(args.frames) > 0.05).astype(int)
            va = np.clip(np.stack([np.sin(t / 300 + video), np.cos(t / 500 + video)], 1) * 0.7
                         + rng.normal(0, 0.1, (args.frames, 2)), -1, 1)
            logits = rng.normal(0, 1, (args.frames, 8))
            expr = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            au = rng.random((args.frames, 12))
            for task, values in (("VA", va), ("EXPR", expr), ("AU", au)):
                folder = os.path.join(run, "raw", task)
                os.makedirs(folder, exist_ok=True)
                body = ["%d,%d,%s" % (f + 1, has_crop[f], ",".join("%.6f" % v for v in row))
                        for f, row in enumerate(values)]
                write_lines(os.path.join(folder, name + ".csv"), "frame,has_crop," + HEADERS[task], body)
                labels = {"VA": lambda: ["%.3f,%.3f" % tuple(r) for r in np.round(va + rng.normal(0, 0.2, va.shape), 3).clip(-1, 1)],
                          "EXPR": lambda: [str(x) for x in rng.integers(0, 8, args.frames)],
                          "AU": lambda: [",".join(str(x) for x in r) for r in rng.integers(0, 2, (args.frames, 12))]}[task]()
                folder = os.path.join(work, "annotations", FOLDERS[task], "Validation_Set")
                os.makedirs(folder, exist_ok=True)
                write_lines(os.path.join(folder, name + ".txt"), HEADERS[task], labels)
        with open(os.path.join(run, "run.json"), "w") as f:
            json.dump({"tool": "abaw-infer", "device": "cpu"}, f)
        report = os.path.join(work, "report.html")
        annotations = [a for task in FOLDERS for a in
                       ("--annotations", os.path.join(work, "annotations", FOLDERS[task], "Validation_Set"))]
        start = time.perf_counter()
        subprocess.run([args.tool, "report", "--run", run, "--output", report, *annotations], check=True,
                       capture_output=True)
        seconds = time.perf_counter() - start
        size = os.path.getsize(report)
        print("report: %d videos x %d frames, 3 tasks with annotations: %.1f s, %.1f MB"
              % (args.videos, args.frames, seconds, size / 1e6))
        chromium = shutil.which("chromium")
        if chromium:
            # Opening as a user does (timelines drawn as they come into view), and "#all" (every one).
            for suffix, attribute, what in (("", "data-first-screen-after-ms", "the first screen of timelines"),
                                            ("#all", "data-drawn-after-ms", "every timeline")):
                loads = []
                for _ in range(3):
                    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                          "--window-size=1150,1000", "--virtual-time-budget=60000",
                                          "--user-data-dir=" + os.path.join(work, "profile"), "--dump-dom",
                                          "file://" + report + suffix], capture_output=True, text=True,
                                         timeout=600).stdout
                    match = re.search(attribute + r'="(\d+)"', dom)
                    loads.append(int(match.group(1)) if match else -1)
                print("headless Chromium: %s drawn %d ms after the start of loading (median of 3: %s)"
                      % (what, sorted(loads)[1], ", ".join(str(x) for x in loads)))
    finally:
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
