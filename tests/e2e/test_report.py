#!/usr/bin/python3
"""End-to-end tests of `abaw-infer report` (one self-contained HTML file per run) and `render`.

Content   a real run (the tiny seeded model set on the fixture crops, with annotations): no
          external URL, one timeline per video, the embedded data equal to the raw CSVs (in its
          8- and 16-bit encoding), the scores and the worst-first video table equal to `eval
          --per-video` on the run's submissions, the EXPR confusion matrix adding up.
Long      a generated 5000-frame video reduced to --max-points bins: per-bin means and min/max
          envelopes equal numpy's.
Browser   headless Chromium (Debian's `chromium`; skipped when it is not installed) runs the
          page's script: every timeline is drawn, and a screenshot is written
          (ABAW_KEEP_TEST_FILES=1 keeps it).
Render    `render` on a generated video with a known box: the overlay decodes with the input's frame
          count and rate, and the box's edge is drawn in its colour exactly where the boxes file
          says, only on the frames with a face.

Run with Debian's Python (numpy, torch): /usr/bin/python3 tests/e2e/test_report.py [-v Class]
ABAW_INFER must name the built binary (default: build/abaw-infer).
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
TOOL = os.environ.get("ABAW_INFER", os.path.join(ROOT, "build", "abaw-infer"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ANNOTATION_DIRS = {"VA": "VA_Estimation_Challenge", "EXPR": "EXPR_Recognition_Challenge",
                   "AU": "AU_Detection_Challenge"}

WORK = None


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="abaw-e2e-report-")


def tearDownModule():
    if WORK and not os.environ.get("ABAW_KEEP_TEST_FILES"):
        shutil.rmtree(WORK, ignore_errors=True)
    elif WORK:
        print("kept", WORK)


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def embedded_data(html):
    match = re.search(r'<script type="application/json" id="abaw-report-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def u8(text):
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8)


def u16(text):
    return np.frombuffer(base64.b64decode(text), dtype="<u2")


def read_raw(path):
    with open(path) as f:
        lines = f.read().splitlines()[1:]
    rows = np.array([[float(x) for x in line.split(",")] for line in lines])
    # The tool reads scores as float32; so do the expected values.
    return rows[:, 1].astype(int), rows[:, 2:].astype(np.float32).astype(np.float64)


def va_code(v):
    return np.rint((np.clip(v, -1, 1) + 1) / 2 * 65534).astype(int)


class RealRun(unittest.TestCase):
    """A run of the tiny model set over the fixture crops, scored against the fixture's annotations."""

    @classmethod
    def setUpClass(cls):
        if getattr(cls, "html", None):  # made already (Browser uses it too)
            return
        cls.fixture = os.path.join(WORK, "fixture")
        subprocess.run([PYTHON, os.path.join(ROOT, "tests/fixtures/make_crops.py"), "--output", cls.fixture],
                       check=True, capture_output=True)
        cls.set = os.path.join(WORK, "set")
        subprocess.run([PYTHON, os.path.join(ROOT, "scripts/make_model_set.py"), "--tiny", "--seed", "7", "--output",
                        cls.set], check=True, capture_output=True)
        cls.annotations = {task: os.path.join(cls.fixture, "annotations", folder, "Validation_Set")
                           for task, folder in ANNOTATION_DIRS.items()}
        cls.out = os.path.join(WORK, "run")
        annotation_args = [a for task, path in cls.annotations.items() for a in ("--annotations", path)]
        run = tool("run", "--model-set", cls.set, "--crops", os.path.join(cls.fixture, "crops"), "--output", cls.out,
                   *annotation_args)
        assert run.returncode == 0, run.stderr
        cls.report = os.path.join(WORK, "report.html")
        cls.result = tool("report", "--run", cls.out, "--crops", os.path.join(cls.fixture, "crops"), "--output",
                          cls.report, *annotation_args)
        with open(cls.report) as f:
            cls.html = f.read()
        cls.data = embedded_data(cls.html)

    def videos(self, task):
        folder = os.path.join(self.out, "raw", task)
        return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".csv"))

    def test_self_contained_with_one_timeline_per_video(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        self.assertIn("report: " + self.report, self.result.stdout)
        self.assertNotRegex(self.html, r"https?://|src=\"//|<link|@import|url\(")
        videos = self.videos("EXPR")
        self.assertEqual(self.html.count('<canvas class="timeline"'), len(videos))
        self.assertEqual([v["video"] for v in self.data["videos"]], videos)
        self.assertEqual(self.data["tasks"], ["VA", "EXPR", "AU"])
        self.assertIn('src="data:image/jpeg;base64,', self.html)  # thumbnails, from --crops

    def test_embedded_values_equal_the_raw_scores(self):
        thresholds = None
        with open(os.path.join(self.set, "manifest.json")) as f:
            manifest = json.load(f)
        thresholds = manifest["tasks"]["au"].get("threshold", [0.5] * 12)
        for video in self.data["videos"]:
            name = video["video"]
            for task in video["tasks"]:  # AU's rows leave out vid_dense (its annotations do)
                has_crop, raw = read_raw(os.path.join(self.out, "raw", task, name + ".csv"))
                t = video["tasks"][task]
                self.assertEqual((t["frames"], t["bins"]), (len(raw), len(raw)), name)
                if task == "VA":
                    for c, dim in enumerate(("valence", "arousal")):
                        np.testing.assert_array_equal(u16(t["pred"][dim]["min"]), va_code(raw[:, c]), name)
                        np.testing.assert_array_equal(u16(t["pred"][dim]["max"]), va_code(raw[:, c]), name)
                elif task == "EXPR":
                    for c in range(8):
                        np.testing.assert_array_equal(u8(t["probs"][c]), np.rint(raw[:, c] * 255), name)
                    np.testing.assert_array_equal(u8(t["pred"]), raw.argmax(axis=1) + 1, name)
                else:
                    for c in range(12):
                        np.testing.assert_array_equal(u8(t["probs"][c]), np.rint(raw[:, c] * 255), name)
                    np.testing.assert_allclose(t["thresholds"], thresholds, rtol=1e-6)
            # frames without a crop, as 1-based inclusive ranges
            missing = [f + 1 for f in np.flatnonzero(has_crop == 0)]
            listed = [f for a, b in video["no_face"] for f in range(a, b + 1)]
            self.assertEqual(listed, missing, name)

    def test_annotations_are_embedded(self):
        for video in self.data["videos"]:
            path = os.path.join(self.annotations["EXPR"], video["video"] + ".txt")
            if not os.path.exists(path):
                self.assertNotIn("true", video["tasks"]["EXPR"])
                continue
            with open(path) as f:
                labels = np.array([int(x) for x in f.read().splitlines()[1:]])
            np.testing.assert_array_equal(u8(video["tasks"]["EXPR"]["true"]), labels + 1)  # -1 -> 0 (none)

    def test_scores_and_worst_first_table_equal_eval(self):
        for task in ("VA", "EXPR", "AU"):
            json_path = os.path.join(WORK, "eval-%s.json" % task)
            result = tool("eval", "--task", task.lower(), "--predictions", os.path.join(self.out, "submission", task + ".txt"),
                          "--annotations", self.annotations[task], "--per-video", "--json", json_path)
            self.assertEqual(result.returncode, 0, result.stderr)
            with open(json_path) as f:
                evaluation = json.load(f)
            metric = "CCC" if task == "VA" else "F1"
            self.assertIn("<h2>%s: %s %.4f</h2>" % (task, metric, evaluation["score"]), self.html)
            section = self.html.split("<h2>%s:" % task)[1].split("<h2>")[0]
            rows = re.findall(r'<tr><td><a href="#video-\d+">([^<]+)</a></td><td>([-0-9.]+)</td><td>(\d+)</td></tr>',
                              section)
            self.assertEqual([r[0] for r in rows], [v["video"] for v in evaluation["per_video"]])
            for (video, score, frames), want in zip(rows, evaluation["per_video"]):
                self.assertEqual(score, "%.4f" % want["score"], video)
                self.assertEqual(int(frames), want["frames_evaluated"], video)
            if task == "EXPR":
                matrix = section.split('<table class="confusion">')[1].split("</table>")[0]
                counts = [int(x) for x in re.findall(r">(\d+)</td>", matrix)]
                self.assertEqual(len(counts), 64)
                self.assertEqual(sum(counts), evaluation["frames_evaluated"])


class LongVideo(unittest.TestCase):
    """A generated run with one 5000-frame video: bins, means and envelopes against numpy."""

    def test_reduced_to_max_points(self):
        run = os.path.join(WORK, "long")
        rng = np.random.default_rng(3)
        frames = 5000
        has_crop = (rng.random(frames) > 0.05).astype(int)
        va = np.round(np.clip(np.cumsum(rng.normal(0, 0.05, (frames, 2)), axis=0) / 10, -1, 1), 6)
        logits = rng.normal(0, 1, (frames, 8))
        expr = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 6)
        as_read = lambda values: values.astype(np.float32).astype(np.float64)  # the tool's float32
        for task, values in (("VA", va), ("EXPR", expr)):
            folder = os.path.join(run, "raw", task)
            os.makedirs(folder)
            header = "frame,has_crop," + (
                "valence,arousal" if task == "VA" else
                "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other")
            with open(os.path.join(folder, "long.csv"), "w") as f:
                f.write(header + "\n" + "".join("%d,%d,%s\n" % (t + 1, has_crop[t], ",".join("%.6f" % v for v in row))
                                                for t, row in enumerate(values)))
        with open(os.path.join(run, "run.json"), "w") as f:
            json.dump({"tool": "abaw-infer", "device": "cpu"}, f)  # no model set: plain post-processing
        report = os.path.join(run, "r.html")
        result = tool("report", "--run", run, "--output", report, "--max-points", "1000")
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(report) as f:
            html = f.read()
        self.assertIn("plain (argmax, AU threshold 0.5, no filters)", html)
        video = embedded_data(html)["videos"][0]
        bins = 1000
        edges = [b * frames // bins for b in range(bins + 1)]
        self.assertEqual((video["tasks"]["VA"]["bins"], video["tasks"]["EXPR"]["bins"]), (bins, bins))
        for c, dim in enumerate(("valence", "arousal")):
            low = [as_read(va)[edges[b]:edges[b + 1], c].min() for b in range(bins)]
            high = [as_read(va)[edges[b]:edges[b + 1], c].max() for b in range(bins)]
            np.testing.assert_array_equal(u16(video["tasks"]["VA"]["pred"][dim]["min"]), va_code(np.array(low)))
            np.testing.assert_array_equal(u16(video["tasks"]["VA"]["pred"][dim]["max"]), va_code(np.array(high)))
        for c in range(8):
            means = np.array([as_read(expr)[edges[b]:edges[b + 1], c].mean() for b in range(bins)])
            got = u8(video["tasks"]["EXPR"]["probs"][c]).astype(int)
            self.assertLessEqual(np.abs(got - np.rint(means * 255)).max(), 1)  # float sums: a rounding edge at most
        self.assertEqual(sum(b - a + 1 for a, b in video["no_face"]), int((has_crop == 0).sum()))

    def test_errors(self):
        empty = os.path.join(WORK, "not-a-run")
        os.makedirs(empty)
        result = tool("report", "--run", empty)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("run.json", result.stderr)

    def test_a_raw_file_without_frames(self):
        run = os.path.join(WORK, "no-frames")
        os.makedirs(os.path.join(run, "raw", "EXPR"))
        with open(os.path.join(run, "raw", "EXPR", "empty.csv"), "w") as f:
            f.write("frame,has_crop,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n")
        with open(os.path.join(run, "run.json"), "w") as f:
            json.dump({"tool": "abaw-infer"}, f)
        result = tool("report", "--run", run)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(run, "report.html")) as f:
            video = embedded_data(f.read())["videos"][0]
        self.assertEqual((video["frames"], video["tasks"]["EXPR"]["bins"]), (0, 0))


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (apt-get install chromium)")
class Browser(unittest.TestCase):
    """The page's script runs in a real browser and draws every timeline."""

    def test_headless_chromium_draws_every_timeline(self):
        RealRun.setUpClass()
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--user-data-dir=" + os.path.join(WORK, "chromium-profile")]
        url = "file://" + RealRun.report + "#all"  # every timeline at once (by default: as they come into view)
        dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", url], capture_output=True,
                             text=True, timeout=300)
        self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        count = len(RealRun.data["videos"])
        self.assertIn('data-timelines-drawn="%d"' % count, dom.stdout)
        self.assertEqual(dom.stdout.count('data-drawn="1"'), count)
        screenshot = os.path.join(WORK, "report.png")
        shot = subprocess.run(flags + ["--window-size=1150,2400", "--screenshot=" + screenshot,
                                       "file://" + RealRun.report],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(shot.returncode, 0, shot.stderr[-2000:])
        self.assertGreater(os.path.getsize(screenshot), 20000)


class Render(unittest.TestCase):
    """The overlay video: frame count and rate kept, the box drawn where boxes.csv says."""

    FRAMES, FPS, SIZE = 30, 25.0, (160, 120)
    BOX = (40, 30, 60, 50)  # x, y, width, height

    def make_inputs(self):
        import cv2
        folder = os.path.join(WORK, "render")
        os.makedirs(folder, exist_ok=True)
        video = os.path.join(folder, "clip.mp4")
        writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), self.FPS, self.SIZE)
        for _ in range(self.FRAMES):
            writer.write(np.full((self.SIZE[1], self.SIZE[0], 3), 128, np.uint8))
        writer.release()
        boxes = os.path.join(folder, "clip.boxes.csv")
        with open(boxes, "w") as f:
            f.write("frame,x,y,width,height,score\n")
            for t in range(1, self.FRAMES + 1):
                f.write("%d,%d,%d,%d,%d,0.9\n" % ((t,) + self.BOX) if t <= 20 else "%d,,,,,\n" % t)
        run = os.path.join(folder, "run")
        rng = np.random.default_rng(1)
        for task, width in (("VA", 2), ("EXPR", 8), ("AU", 12)):
            os.makedirs(os.path.join(run, "raw", task), exist_ok=True)
            values = rng.uniform(-1, 1, (self.FRAMES, 2)) if task == "VA" else rng.uniform(0, 1, (self.FRAMES, width))
            header = {"VA": "valence,arousal", "EXPR": "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
                      "AU": "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"}[task]
            with open(os.path.join(run, "raw", task, "clip.csv"), "w") as f:
                f.write("frame,has_crop," + header + "\n")
                for t in range(self.FRAMES):
                    f.write("%d,%d,%s\n" % (t + 1, int(t < 20), ",".join("%.6f" % v for v in values[t])))
        with open(os.path.join(run, "run.json"), "w") as f:
            json.dump({"tool": "abaw-infer"}, f)
        return video, boxes, run

    def test_overlay_keeps_frames_and_draws_the_box(self):
        import cv2
        video, boxes, run = self.make_inputs()
        output = os.path.join(WORK, "render", "clip.overlay.mp4")
        result = tool("render", "--video", video, "--boxes", boxes, "--run", run, "--output", output)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("overlay: " + output + " (30 frames", result.stdout)
        capture = cv2.VideoCapture(output)
        self.assertAlmostEqual(capture.get(cv2.CAP_PROP_FPS), self.FPS, places=3)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        self.assertEqual(len(frames), self.FRAMES)
        x, y, w, h = self.BOX
        edge = lambda frame: frame[y + 10:y + h - 10, x].astype(int).mean(axis=0)  # BGR along the left edge
        for t in (4, 15):  # with a face: the box colour (0, 200, 0), after MPEG-4 compression
            b, g, r = edge(frames[t])
            self.assertGreater(g, 150, t)
            self.assertLess(max(b, r), 90, t)
        b, g, r = edge(frames[25])  # no face: the grey background
        self.assertLess(abs(g - r), 30)
        self.assertLess(abs(g - b), 30)

    def test_a_video_the_run_did_not_predict_is_an_error(self):
        video, boxes, run = self.make_inputs()
        other = os.path.join(WORK, "render", "other.mp4")
        shutil.copyfile(video, other)
        result = tool("render", "--video", other, "--boxes", boxes, "--run", run, "--output",
                      os.path.join(WORK, "render", "x.mp4"))
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("no raw scores for video 'other'", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(WORK, "render", "x.mp4")))


if __name__ == "__main__":
    unittest.main()
