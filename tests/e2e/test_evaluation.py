#!/usr/bin/python3
"""End-to-end tests of `abaw-infer eval`, `check`, `tune` and `compare`.

Metrics  `eval` against an independent computation (numpy CCC with population moments,
         scikit-learn F1) on generated annotation folders with invalid frames, for a single-file
         submission, an ABAW 1-3 per-video folder and a raw-score folder; the edge cases of the
         ABAW metrics (constant predictions, absent classes, all-invalid videos, one frame);
         missing predictions, --allow-missing, --min-score and Windows line endings.
Check    `check` on a valid submission and on copies with one planted defect each: the exit code
         and the `FILE:LINE: kind:` line naming it; pandas-quoted headers, CRLF, no final newline
         and --max-report.
Tune     `tune` on raw scores built to need tuning (AU thresholds, EXPR mode filter, VA mean
         filter), checked against a numpy re-implementation of the post-processing and against
         `eval`; --write on a tiny model set; `run --manifest-patch` with the fragments and
         `run --eval` against `eval` on the written submissions.
Compare  `compare` on two generated run folders (raw scores with crop gaps, submissions, a video in
         one run only) against a numpy computation of every figure; its errors.

Run with Debian's Python (numpy, scikit-learn, torch): /usr/bin/python3 tests/e2e/test_evaluation.py [-v Class]
ABAW_INFER must name the built binary (default: build/abaw-infer).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.metrics import f1_score

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
TOOL = os.environ.get("ABAW_INFER", os.path.join(ROOT, "build", "abaw-infer"))
JOBS = max(2, min(4, os.cpu_count() or 2))  # tool processes at a time within one test

TASKS = ("VA", "EXPR", "AU")
COLUMNS = {
    "VA": ["valence", "arousal"],
    "EXPR": ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"],
    "AU": ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"],
}
ANNOT_HEADERS = {task: ",".join(cols) for task, cols in COLUMNS.items()}
HEADERS = {task: "image_location," + ANNOT_HEADERS[task] for task in TASKS}
RAW_HEADERS = {task: "frame,has_crop," + ANNOT_HEADERS[task] for task in TASKS}
LABEL_WIDTH = {"VA": 2, "EXPR": 1, "AU": 12}  # values per line of an annotation / submission row
ANNOT_DIRS = {"VA": "VA_Estimation_Challenge", "EXPR": "EXPR_Recognition_Challenge", "AU": "AU_Detection_Challenge"}

WORK = None  # one scratch folder for the whole module
_cache = {}
_lock = threading.Lock()


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="abaw-e2e-eval-")


def tearDownModule():
    for process in _cache.values():
        if isinstance(process, subprocess.Popen) and process.poll() is None:
            process.kill()  # only when a test failed before waiting for it
            process.wait()
    if WORK and not os.environ.get("ABAW_KEEP_TEST_FILES"):
        shutil.rmtree(WORK, ignore_errors=True)


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def output(result):
    return result.stdout + result.stderr


def scratch(*parts):
    """A fresh (removed) path under WORK."""
    path = os.path.join(WORK, *parts)
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        os.remove(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def location(video, frame):
    return "%s/%05d.jpg" % (video, frame)


# ---------------------------------------------------------------------------------------------
# Writing annotation and prediction files. Labels and predictions are dicts video -> array of
# shape (frames, width): VA (n, 2) floats (-5 invalid), EXPR (n, 1) ints (-1 invalid), AU
# (n, 12) ints (-1 not annotated). Values are rounded before use so the files hold them exactly.

def fmt_values(task, row):
    if task == "VA":
        return ",".join("-5" if v == -5 else "%.4f" % v for v in row)
    return ",".join(str(int(v)) for v in row)


def write_text(path, lines, newline="\n", final_newline=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = newline.join(lines) + (newline if final_newline else "")
    with open(path, "w", newline="") as f:
        f.write(text)
    return path


def write_annotations(folder, task, labels, newline="\n"):
    os.makedirs(folder, exist_ok=True)
    for video, rows in labels.items():
        write_text(os.path.join(folder, video + ".txt"),
                   [ANNOT_HEADERS[task]] + [fmt_values(task, r) for r in rows], newline)
    return folder


def write_submission(path, task, predictions, newline="\n", skip=()):
    """One ABAW 5/6/8 file; `skip` holds (video, frame) pairs left out."""
    lines = [HEADERS[task]]
    for video, rows in predictions.items():
        for f, row in enumerate(rows, start=1):
            if (video, f) not in skip:
                lines.append(location(video, f) + "," + fmt_values(task, row))
    return write_text(path, lines, newline)


def write_legacy(folder, task, predictions, newline="\n"):
    """ABAW 1-3 per-video files: the annotation header, one line per frame, no image column."""
    return write_annotations(folder, task, predictions, newline)


def write_raw(folder, task, raw):
    """Per-video raw scores as `run` writes them."""
    os.makedirs(folder, exist_ok=True)
    for video, rows in raw.items():
        write_text(os.path.join(folder, video + ".csv"),
                   [RAW_HEADERS[task]] + ["%d,1,%s" % (f, ",".join("%.6f" % v for v in row))
                                          for f, row in enumerate(rows, start=1)])
    return folder


def random_labels(task, rng, frames, invalid_rate=0.15, classes=8):
    """Random valid labels with some invalid frames (and, for AU, some AUs not annotated)."""
    if task == "VA":
        labels = np.round(rng.uniform(-1, 1, (frames, 2)), 3)
        labels[rng.random_sample(frames) < invalid_rate] = -5
    elif task == "EXPR":
        labels = rng.randint(0, classes, (frames, 1))
        labels[rng.random_sample(frames) < invalid_rate] = -1
    else:
        labels = (rng.random_sample((frames, 12)) < rng.uniform(0.2, 0.6, 12)).astype(int)
        labels[rng.random_sample((frames, 12)) < 0.05] = -1   # one AU not annotated
        labels[rng.random_sample(frames) < invalid_rate] = -1  # the whole frame invalid
    return labels


def random_predictions(task, rng, labels, classes=8):
    """Predictions that agree with the labels somewhat, so scores are neither 0 nor 1."""
    n = len(labels)
    if task == "VA":
        valid = np.where(labels == -5, 0, labels)
        return np.round(np.clip(0.6 * valid + rng.normal(0, 0.4, (n, 2)), -1, 1), 4)
    if task == "EXPR":
        guess = np.where(rng.random_sample((n, 1)) < 0.5, labels, rng.randint(0, classes, (n, 1)))
        return np.where(guess < 0, 0, guess)
    flip = rng.random_sample((n, 12)) < 0.3
    truth = np.where(labels < 0, 0, labels)
    return np.where(flip, 1 - truth, truth)


# ---------------------------------------------------------------------------------------------
# The independent reference of ABAW.md section 4.

def ccc(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0:
        return 0.0
    mx, my = x.mean(), y.mean()
    vx, vy = ((x - mx) ** 2).mean(), ((y - my) ** 2).mean()
    cov = ((x - mx) * (y - my)).mean()
    denominator = vx + vy + (mx - my) ** 2
    return 2 * cov / denominator if denominator > 0 else 0.0


def counts(truth, guess):
    truth, guess = np.asarray(truth), np.asarray(guess)
    tp = int(np.sum((truth == 1) & (guess == 1)))
    fp = int(np.sum((truth == 0) & (guess == 1)))
    fn = int(np.sum((truth == 1) & (guess == 0)))
    return tp, fp, fn


def reference(task, labels, predictions, missing=()):
    """Expected scores, pooling every annotated video; `missing` (video, frame) pairs are left out."""
    pooled_l, pooled_p, excluded, without = [], [], 0, 0
    for video, rows in labels.items():
        for f, label in enumerate(rows, start=1):
            invalid = (label == -5).any() if task == "VA" else (label < 0).all()
            if invalid:
                excluded += 1
            elif (video, f) in missing:
                without += 1
            else:
                pooled_l.append(label)
                pooled_p.append(predictions[video][f - 1])
    width = LABEL_WIDTH[task]
    L = np.array(pooled_l, float).reshape(-1, width)
    P = np.array(pooled_p, float).reshape(-1, width)
    parts = {}
    if task == "VA":
        for d, name in enumerate(COLUMNS["VA"]):
            parts[name] = {"score": ccc(P[:, d], L[:, d]), "frames": len(L)}
    elif task == "EXPR":
        y, p = L[:, 0].astype(int), P[:, 0].astype(int)
        f1 = f1_score(y, p, labels=list(range(8)), average=None, zero_division=0) if len(y) else np.zeros(8)
        for c, name in enumerate(COLUMNS["EXPR"]):
            tp, fp, fn = counts(y == c, p == c)
            parts[name] = {"score": float(f1[c]), "frames": len(y), "tp": tp, "fp": fp, "fn": fn}
    else:
        for a, name in enumerate(COLUMNS["AU"]):
            mask = L[:, a] >= 0
            y, p = L[mask, a].astype(int), P[mask, a].astype(int)
            f1 = float(f1_score(y, p, zero_division=0)) if len(y) else 0.0
            tp, fp, fn = counts(y, p)
            parts[name] = {"score": f1, "frames": int(mask.sum()), "tp": tp, "fp": fp, "fn": fn}
    score = sum(p["score"] for p in parts.values()) / len(parts)  # 8 classes, 12 AUs, 2 dimensions
    return {"score": score, "parts": parts, "videos": len(labels), "frames_evaluated": len(L),
            "frames_excluded": excluded, "frames_without_prediction": without}


# ---------------------------------------------------------------------------------------------
# Post-processing as models/README.md describes it (for `tune`).

def window(t, n, width):
    lo = max(0, t - width // 2)
    return lo, min(n, t - width // 2 + width)


def mean_filter(scores, width):
    scores = np.asarray(scores, float)
    if width <= 1:
        return scores
    out = np.empty_like(scores)
    for t in range(len(scores)):
        lo, hi = window(t, len(scores), width)
        out[t] = scores[lo:hi].mean(axis=0)
    return out


def mode_filter(labels, width, classes=8):
    labels = np.asarray(labels, int)
    if width <= 1:
        return labels
    out = np.empty_like(labels)
    for t in range(len(labels)):
        lo, hi = window(t, len(labels), width)
        out[t] = int(np.argmax(np.bincount(labels[lo:hi], minlength=classes)))  # ties: lowest index
    return out


TUNE_LINE = re.compile(r"^(VA|EXPR|AU) score: (-?[0-9.]+) -> (-?[0-9.]+) \(([+-][0-9.]+)\)$", re.M)


class Case(unittest.TestCase):
    def parallel(self, function, items):
        """function(item) for every item, JOBS at a time (each starts the tool, ~0.5 s of CPU); the
        first exception (a failed assertion too) is raised here."""
        with ThreadPoolExecutor(JOBS) as pool:
            return list(pool.map(function, items))

    def evaluate(self, task, predictions, annotations, *extra, code=0):
        """Runs `eval --json`, asserts the exit code and returns (the parsed JSON or None, the process)."""
        fd, json_path = tempfile.mkstemp(suffix=".json", dir=WORK)
        os.close(fd)
        os.remove(json_path)
        result = tool("eval", "--task", task.lower(), "--predictions", predictions, "--annotations", annotations,
                      "--json", json_path, *extra)
        self.assertEqual(result.returncode, code, "eval %s %s: %s" % (task, predictions, output(result)))
        if code != 0:
            return None, result
        with open(json_path) as f:
            return json.load(f), result

    def assert_matches(self, got, expected, places=6):
        """Every number of the reference, to 1e-6 for scores and exactly for counts."""
        self.assertAlmostEqual(got["score"], expected["score"], delta=10 ** -places)
        for key in ("videos", "frames_evaluated", "frames_excluded", "frames_without_prediction"):
            if key in expected:
                self.assertEqual(got[key], expected[key], key)
        self.assertEqual(sorted(got["parts"]), sorted(expected["parts"]))
        for name, part in expected["parts"].items():
            for key, value in part.items():
                if key == "score":
                    self.assertIsInstance(got["parts"][name]["score"], float, name)  # never NaN (null)
                    self.assertAlmostEqual(got["parts"][name]["score"], value, delta=10 ** -places, msg=name)
                else:
                    self.assertEqual(got["parts"][name][key], value, "%s %s" % (name, key))


# ---------------------------------------------------------------------------------------------

class Metrics(Case):
    """`eval` agrees with an independent computation of the ABAW metrics."""

    VIDEOS = [("10-60-1280x720", 83), ("2-30-640x360_left", 41), ("2-30-640x360_right", 57), ("video7", 120),
              ("vid_x", 9)]

    def dataset(self, task, seed, videos=None, classes=8):
        rng = np.random.RandomState(seed)
        labels, predictions = {}, {}
        for video, frames in videos or self.VIDEOS:
            labels[video] = random_labels(task, rng, frames, classes=classes)
            predictions[video] = random_predictions(task, rng, labels[video], classes=classes)
        return labels, predictions

    def folder(self, name):
        path = scratch(self.id().split(".")[-1], name)
        os.makedirs(path)
        return path

    def check_all_formats(self, task, seed):
        """The same predictions as a submission file and as a legacy folder, both with a video that is
        not annotated (ignored); the annotations have a video whose frames are all invalid (it counts
        as a video, adds no frame, and needs no prediction: the legacy folder has no file for it)."""
        labels, predictions = self.dataset(task, seed)
        rng = np.random.RandomState(seed + 100)
        labels["all_invalid"] = np.full((12, LABEL_WIDTH[task]), -5 if task == "VA" else -1)
        predictions["all_invalid"] = random_predictions(task, rng, labels["all_invalid"])
        annotations = write_annotations(self.folder("annotations"), task, labels)
        expected = reference(task, labels, predictions)
        self.assertEqual(expected["videos"], len(self.VIDEOS) + 1)
        self.assertGreater(expected["frames_excluded"], 12)
        self.assertTrue(0.05 < expected["score"] < 0.95, expected["score"])
        predictions["not_annotated"] = random_predictions(task, rng, random_labels(task, rng, 30))
        submission = write_submission(os.path.join(self.folder("submission"), task + ".txt"), task, predictions)
        legacy = write_legacy(self.folder("legacy"), task,
                              {v: p for v, p in predictions.items() if v != "all_invalid"})
        for got, result in self.parallel(lambda p: self.evaluate(task, p, annotations), [submission, legacy]):
            self.assert_matches(got, expected)
            self.assertEqual(got["task"], task)
            self.assertEqual(got.get("videos_not_annotated", 1), 1)
            self.assertIn("%s score: %.6f" % (task, expected["score"]), result.stdout)
        return labels

    def test_per_video(self):
        """--per-video: each video scored alone equals the reference on that video alone, worst
        first; a video with no valid label is not listed."""
        for task, seed in (("VA", 11), ("EXPR", 12), ("AU", 13)):
            labels, predictions = self.dataset(task, seed)
            labels["all_invalid"] = np.full((5, LABEL_WIDTH[task]), -5 if task == "VA" else -1)
            annotations = write_annotations(self.folder("annotations_" + task), task, labels)
            submission = write_submission(os.path.join(self.folder("submission_" + task), task + ".txt"), task,
                                          predictions)
            got, result = self.evaluate(task, submission, annotations, "--per-video")
            self.assert_matches(got, reference(task, labels, predictions))
            expected = {video: reference(task, {video: labels[video]}, predictions) for video, _ in self.VIDEOS}
            listed = [v["video"] for v in got["per_video"]]
            self.assertEqual(sorted(listed), sorted(expected))
            scores = [v["score"] for v in got["per_video"]]
            self.assertEqual(scores, sorted(scores), "worst first")
            for one in got["per_video"]:
                want = expected[one["video"]]
                self.assertEqual(one["frames_evaluated"], want["frames_evaluated"], one["video"])
                self.assertEqual(one["frames_excluded"], want["frames_excluded"], one["video"])
                self.assertAlmostEqual(one["score"], want["score"], delta=1e-6, msg=one["video"])
                for name, part in want["parts"].items():
                    self.assertAlmostEqual(one["parts"][name]["score"], part["score"], delta=1e-6,
                                           msg="%s %s" % (one["video"], name))
            self.assertIn("per video, worst first:", result.stdout)
            worst = got["per_video"][0]
            self.assertIn("%.6f" % worst["score"], result.stdout.split("per video, worst first:")[1].splitlines()[2])

    def test_va(self):
        labels = self.check_all_formats("VA", 1)
        self.assertTrue(any((rows == -5).any() for rows in labels.values()))

    def test_expr(self):
        self.check_all_formats("EXPR", 2)

    def test_au(self):
        labels = self.check_all_formats("AU", 3)
        every = np.concatenate(list(labels.values()))
        all_invalid = (every < 0).all(axis=1)
        self.assertTrue(all_invalid.any() and ((every < 0).any(axis=1) & ~all_invalid).any(),
                        "the data must have invalid frames and frames with some AUs not annotated")

    def test_raw_score_folder(self):
        """`<video>.csv` raw scores: EXPR argmax, AU >= 0.5, VA clipped to [-1, 1]."""
        rng = np.random.RandomState(4)
        calls = []
        for task in TASKS:
            labels = {v: random_labels(task, rng, n) for v, n in self.VIDEOS}
            if task == "VA":
                raw = {v: np.round(rng.uniform(-1.4, 1.4, (n, 2)), 4) for v, n in self.VIDEOS}
                predictions = {v: np.clip(r, -1, 1) for v, r in raw.items()}
            elif task == "EXPR":
                raw = {v: np.round(rng.dirichlet(np.ones(8), n), 6) for v, n in self.VIDEOS}
                predictions = {v: r.argmax(axis=1)[:, None] for v, r in raw.items()}
            else:
                raw = {v: np.round(rng.random_sample((n, 12)), 4) for v, n in self.VIDEOS}
                raw[self.VIDEOS[0][0]][:5] = 0.5  # exactly at the threshold: positive
                predictions = {v: (r >= 0.5).astype(int) for v, r in raw.items()}
            annotations = write_annotations(self.folder(task + "-annotations"), task, labels)
            folder = write_raw(self.folder(task + "-raw"), task, raw)
            calls.append((task, folder, annotations, reference(task, labels, predictions)))
        for (task, _, _, expected), (got, _) in zip(calls, self.parallel(lambda c: self.evaluate(*c[:3]), calls)):
            self.assert_matches(got, expected)

    def test_constant_va_predictions_score_zero(self):
        rng = np.random.RandomState(5)
        labels = {"a": np.round(rng.uniform(-1, 1, (30, 2)), 3), "b": np.round(rng.uniform(-1, 1, (20, 2)), 3)}
        labels["a"][3] = -5
        annotations = write_annotations(self.folder("annotations"), "VA", labels)
        # Labels constant (0.5) where valid, for the 0/0 case.
        flat = {v: np.where(r == -5, -5, 0.5) for v, r in labels.items()}
        flat_annotations = write_annotations(self.folder("flat-annotations"), "VA", flat)
        constant = {v: np.full((len(r), 2), 0.25) for v, r in labels.items()}
        same = {v: np.full((len(r), 2), 0.5) for v, r in labels.items()}
        calls = [  # (predictions, annotations): every CCC is 0, never NaN
            (write_submission(os.path.join(self.folder("constant"), "VA.txt"), "VA", constant), annotations),
            (write_submission(os.path.join(self.folder("same"), "VA.txt"), "VA", same), flat_annotations),
        ]
        results = self.parallel(lambda c: self.evaluate("VA", *c), calls)
        self.assert_matches(results[0][0], reference("VA", labels, constant))
        for (got, result), what in zip(results, ("constant predictions", "both constant and equal")):
            self.assertNotIn("nan", result.stdout.lower(), what)
            for name in ("valence", "arousal"):
                self.assertEqual(got["parts"][name]["score"], 0.0, "%s: %s" % (what, name))
            self.assertEqual(got["score"], 0.0, what)
            self.assertEqual(got["frames_evaluated"], 49, what)

    def test_absent_class_still_counts(self):
        """Class 7 (Other) is in neither labels nor predictions: F1 0, and the mean divides by 8."""
        labels, _ = self.dataset("EXPR", 6, classes=7)
        annotations = write_annotations(self.folder("annotations"), "EXPR", labels)
        # Perfect on the 7 present classes but one frame: labelled Neutral, predicted Anger.
        predictions = {v: np.where(r < 0, 0, r) for v, r in labels.items()}
        first = next(i for i, r in enumerate(labels["video7"]) if r[0] == 0)
        predictions["video7"][first] = 1
        got, _ = self.evaluate("EXPR", write_submission(os.path.join(self.folder("s"), "EXPR.txt"), "EXPR",
                                                        predictions), annotations)
        expected = reference("EXPR", labels, predictions)
        self.assert_matches(got, expected)
        self.assertEqual(got["parts"]["Other"], {"score": 0.0, "frames": expected["frames_evaluated"],
                                                 "tp": 0, "fp": 0, "fn": 0})
        self.assertEqual((got["parts"]["Neutral"]["fn"], got["parts"]["Anger"]["fp"]), (1, 1))
        self.assertLess(got["score"], 7 / 8)
        self.assertGreater(got["score"], 7 / 8 - 0.01)

    def test_single_frame(self):
        cases = [("VA", [[0.2, -0.3]], [[0.5, 0.1]]), ("EXPR", [[4]], [[4]]),
                 ("AU", [[1, 0, 1, -1, 0, 0, 1, 1, 0, 0, 0, 1]], [[1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0]])]

        def one(case):
            task, label, prediction = case
            labels, predictions = {"only": np.array(label)}, {"only": np.array(prediction)}
            annotations = write_annotations(self.folder(task + "-annotations"), task, labels)
            got, _ = self.evaluate(task, write_submission(os.path.join(self.folder(task), "s.txt"), task,
                                                          predictions), annotations)
            self.assert_matches(got, reference(task, labels, predictions))
            self.assertEqual(got["frames_evaluated"], 1)
            return got
        va, expr, au = self.parallel(one, cases)
        self.assertEqual(va["score"], 0.0)  # one frame: no variance, CCC 0
        self.assertEqual(expr["score"], 1 / 8)
        self.assertEqual(au["parts"]["AU6"]["frames"], 0)

    def test_missing_predictions(self):
        labels, predictions = self.dataset("EXPR", 11)
        annotations = write_annotations(self.folder("annotations"), "EXPR", labels)
        video = self.VIDEOS[1][0]
        valid = [f for f, r in enumerate(labels[video], start=1) if r[0] >= 0]
        missing = {(video, valid[3]), (video, valid[7])}
        submission = write_submission(os.path.join(self.folder("s"), "EXPR.txt"), "EXPR", predictions, skip=missing)
        # A legacy folder without one video's file; another with a file 10 lines short.
        gone, short = self.VIDEOS[3][0], self.VIDEOS[0][0]
        legacy = write_legacy(self.folder("legacy"), "EXPR", {v: p for v, p in predictions.items() if v != gone})
        truncated = write_legacy(self.folder("truncated"), "EXPR", dict(predictions, **{short: predictions[short][:-10]}))
        first_valid = next(f for f, r in enumerate(labels[gone], start=1) if r[0] >= 0)
        first_cut = next(f for f, r in enumerate(labels[short], start=1) if r[0] >= 0 and f > len(labels[short]) - 10)
        calls = [(submission, (), 3), (submission, ("--allow-missing",), 0), (legacy, (), 3), (truncated, (), 3)]
        results = self.parallel(lambda c: self.evaluate("EXPR", c[0], annotations, *c[1], code=c[2]), calls)
        self.assertIn(location(video, valid[3]), results[0][1].stderr)
        self.assertIn(location(gone, first_valid), results[2][1].stderr)
        self.assertIn(location(short, first_cut), results[3][1].stderr)
        got = results[1][0]
        self.assertEqual(got["frames_without_prediction"], 2)
        self.assert_matches(got, reference("EXPR", labels, predictions, missing))

    def test_min_score_gate(self):
        labels, predictions = self.dataset("VA", 12)
        annotations = write_annotations(self.folder("annotations"), "VA", labels)
        submission = write_submission(os.path.join(self.folder("s"), "VA.txt"), "VA", predictions)
        score = reference("VA", labels, predictions)["score"]
        (got, _), (_, below) = self.parallel(
            lambda c: self.evaluate("VA", submission, annotations, "--min-score", c[0], code=c[1]),
            [("%.6f" % (score - 0.01), 0), ("%.6f" % (score + 0.01), 7)])
        self.assertAlmostEqual(got["score"], score, delta=1e-6)
        self.assertIn("min-score", below.stderr)
        self.assertIn("VA score: %.6f" % score, below.stdout)

    def test_windows_line_endings(self):
        """CRLF annotation files, with a CRLF submission (AU) or CRLF legacy files (VA)."""
        def one(case):
            task, seed = case
            labels, predictions = self.dataset(task, seed)
            annotations = write_annotations(self.folder(task + "-annotations"), task, labels, newline="\r\n")
            if task == "VA":
                path = write_legacy(self.folder(task + "-legacy"), task, predictions, "\r\n")
            else:
                path = write_submission(os.path.join(self.folder(task), "s.txt"), task, predictions, newline="\r\n")
            got, _ = self.evaluate(task, path, annotations)
            self.assert_matches(got, reference(task, labels, predictions))
        self.parallel(one, [("VA", 13), ("AU", 15)])


# ---------------------------------------------------------------------------------------------

class Check(Case):
    """`check` accepts a valid submission and names the line and kind of every planted defect."""

    # Frame list order is not the sorted order: rows must follow the list, not the names.
    VIDEOS = [("vid_b", 6), ("2-30-640x360", 5), ("vid_a_left", 4)]
    DUMMY = {"VA": "0.5,-0.5", "EXPR": "0", "AU": "1,0,1,1,1,0,0,1,0,0,0,1"}

    def frame_list(self, task):
        path = os.path.join(WORK, "check", "frame_list_%s.txt" % task)
        with _lock:  # tests start the tool from threads
            if not os.path.exists(path):
                write_text(path, [HEADERS[task]] + [location(v, f) + "," + self.DUMMY[task]
                                                    for v, n in self.VIDEOS for f in range(1, n + 1)])
        return path

    def valid_lines(self, task):
        rng = np.random.RandomState(20)
        lines = [HEADERS[task]]
        for v, n in self.VIDEOS:
            for f in range(1, n + 1):
                if task == "VA":
                    values = "%.6f,%.6f" % tuple(rng.uniform(-1, 1, 2))
                elif task == "EXPR":
                    values = str(rng.randint(0, 8))
                else:
                    values = ",".join(str(x) for x in rng.randint(0, 2, 12))
                lines.append(location(v, f) + "," + values)
        return lines

    def check(self, task, lines, name, newline="\n", final_newline=True, extra=()):
        """Writes `lines` (None: an empty file) and runs `check`: (path, process)."""
        path = os.path.join(WORK, "check", self.id().split(".")[-1], name + ".txt")
        if lines is None:
            write_text(path, [], final_newline=False)
        else:
            write_text(path, lines, newline, final_newline)
        return path, tool("check", "--task", task.lower(), "--submission", path, "--frame-list",
                          self.frame_list(task), *extra)

    def reported(self, path, result):
        """[(line, kind, message)] of the `FILE:LINE: kind: message` lines about `path`."""
        return [(int(n), k, m) for n, k, m in
                re.findall(r"^%s:(\d+): (\w+): (.*)$" % re.escape(path), result.stdout, re.M)]

    def assert_defect(self, task, lines, name, kind, line, in_frame_list=False):
        """Exit 3, a `FILE:LINE: kind:` line, `INVALID`, and no other kind reported. Returns the message."""
        path, result = self.check(task, lines, name)
        text = output(result)
        self.assertEqual(result.returncode, 3, text)
        where = self.frame_list(task) if in_frame_list else path
        found = [m for n, k, m in self.reported(where, result) if (n, k) == (line, kind)]
        self.assertTrue(found, "no '%s:%d: %s:' in:\n%s" % (where, line, kind, text))
        self.assertIn("INVALID", result.stdout)
        kinds = set(re.findall(r"^\S+:\d+: (\w+):", result.stdout, re.M))
        self.assertEqual(kinds, {kind}, text)
        return found[0]

    def test_valid(self):
        for path, result in self.parallel(lambda t: self.check(t, self.valid_lines(t), "valid-" + t), TASKS):
            self.assertEqual(result.returncode, 0, output(result))
            self.assertIn("OK", result.stdout)
            self.assertNotIn("INVALID", result.stdout)
            self.assertNotIn("warning", output(result).lower())

    def test_wrong_header(self):
        def one(case):
            header, name = case
            lines = self.valid_lines("VA")
            lines[0] = header
            self.assert_defect("VA", lines, name, "header", 1)
        # A misspelt header, and the annotation header instead of the submission header.
        self.parallel(one, [("image_location,valence,arousals", "misspelt"), (ANNOT_HEADERS["VA"], "annotation")])

    def test_header_of_another_task(self):
        lines = self.valid_lines("VA")
        lines[0] = HEADERS["EXPR"]
        self.assertIn("EXPR", self.assert_defect("VA", lines, "expr-header", "header", 1))

    def test_missing_row(self):
        lines = self.valid_lines("AU")
        removed = lines.pop(8)  # frame list line 9
        message = self.assert_defect("AU", lines, "missing", "missing_row", 9, in_frame_list=True)
        self.assertIn(removed.split(",")[0], message)

    def test_duplicate_row(self):
        lines = self.valid_lines("VA")
        lines.insert(5, lines[3])  # line 4 again as line 6
        self.assertIn(lines[3].split(",")[0], self.assert_defect("VA", lines, "duplicate", "duplicate_row", 6))

    def test_extra_row(self):
        lines = self.valid_lines("EXPR")
        lines.insert(4, location("not_a_test_video", 1) + ",3")  # line 5
        lines.append(location("vid_b", 7) + ",3")  # one frame past the video's end, last line
        path, result = self.check("EXPR", lines, "extra")
        self.assertEqual(result.returncode, 3, output(result))
        self.assertEqual([(n, k) for n, k, _ in self.reported(path, result)],
                         [(5, "unknown_row"), (len(lines), "unknown_row")], output(result))

    def test_swapped_rows(self):
        lines = self.valid_lines("VA")
        lines[7], lines[8] = lines[8], lines[7]  # file lines 8 and 9
        path, result = self.check("VA", lines, "swapped")
        text = output(result)
        self.assertEqual(result.returncode, 3, text)
        reported = self.reported(path, result)
        self.assertTrue(reported, text)
        self.assertEqual({k for _, k, _ in reported}, {"order"}, text)
        self.assertLessEqual({n for n, _, _ in reported}, {8, 9}, text)

    def test_value_problems(self):
        """Each of VA 1.5, VA nan, EXPR 8, EXPR 'x' in its own copy, then more values in one file per task."""
        single = [("VA", "1.5", ("range",)), ("VA", "nan", ("range", "value")), ("EXPR", "8", ("range",)),
                  ("EXPR", "x", ("value",))]
        several = {"VA": [("-inf", ("range", "value")), ("abc", ("value",)), ("-1.0001", ("range",)),
                          ("", ("value", "columns"))],
                   "EXPR": [("-1", ("range",)), ("2.0", ("value",)), ("", ("value", "columns"))],
                   "AU": [("2", ("range",)), ("0.5", ("value",)), ("-1", ("range",))]}

        def plant(task, defects, name):
            lines = self.valid_lines(task)
            for i, (bad, _) in enumerate(defects):
                fields = lines[2 + 3 * i].split(",")  # lines 3, 6, 9, ...
                fields[-1] = bad
                lines[2 + 3 * i] = ",".join(fields)
            path, result = self.check(task, lines, name)
            self.assertEqual(result.returncode, 3, output(result))
            reported = {n: k for n, k, _ in self.reported(path, result)}
            for i, (bad, kinds) in enumerate(defects):
                self.assertIn(reported.get(3 + 3 * i), kinds, "%s '%s' on line %d: %s" % (task, bad, 3 + 3 * i,
                                                                                       output(result)))
            self.assertEqual(len(reported), len(defects), output(result))

        calls = [(t, [(bad, kinds)], "%s-%s" % (t, bad)) for t, bad, kinds in single]
        calls += [(t, defects, t + "-several") for t, defects in several.items()]
        self.parallel(lambda c: plant(*c), calls)

    def test_au_eleven_columns(self):
        lines = self.valid_lines("AU")
        lines[6] = lines[6].rsplit(",", 1)[0]
        self.assert_defect("AU", lines, "eleven", "columns", 7)

    def test_trailing_comma(self):
        lines = self.valid_lines("VA")
        lines[2] += ","
        self.assertIn("trailing comma", self.assert_defect("VA", lines, "trailing", "columns", 3))

    def test_empty_file(self):
        path, result = self.check("VA", None, "empty")
        text = output(result)
        self.assertEqual(result.returncode, 3, text)
        self.assertIn((1, "header"), [(n, k) for n, k, _ in self.reported(path, result)], text)
        self.assertIn("INVALID", text)

    def test_pandas_quoted_expr_header(self):
        lines = self.valid_lines("EXPR")
        lines[0] = 'image_location,"' + ANNOT_HEADERS["EXPR"] + '"'
        path, result = self.check("EXPR", lines, "quoted")
        self.assertEqual(result.returncode, 0, output(result))
        self.assertIn("warning", output(result).lower())
        self.assertIn("OK", result.stdout)

    def test_crlf_and_no_final_newline(self):
        cases = [("VA", "\r\n", True, "crlf"), ("EXPR", "\n", False, "no-final-newline"),
                 ("AU", "\r\n", False, "crlf-no-final-newline")]
        results = self.parallel(lambda c: self.check(c[0], self.valid_lines(c[0]), c[3], c[1], c[2]), cases)
        for (task, newline, final, name), (_, result) in zip(cases, results):
            self.assertEqual(result.returncode, 0, name + ": " + output(result))
            self.assertIn("OK", result.stdout, name)
            if newline == "\r\n":
                self.assertIn("warning", output(result).lower(), name)
                self.assertIn("CRLF", output(result), name)

    def test_max_report(self):
        lines = self.valid_lines("VA")
        for i in range(1, 14):
            lines[i] = lines[i].split(",")[0] + ",2.5,0"  # 13 range problems on lines 2..14
        path, result = self.check("VA", lines, "many", extra=("--max-report", "4"))
        text = output(result)
        self.assertEqual(result.returncode, 3, text)
        self.assertEqual([(n, k) for n, k, _ in self.reported(path, result)], [(n, "range") for n in range(2, 6)], text)
        self.assertIn("... 9 more", text)
        self.assertRegex(text, r"INVALID: 13 problem")


# ---------------------------------------------------------------------------------------------

TUNE_VIDEOS = [("t_alpha", 180), ("t_beta", 140), ("t_gamma_left", 230), ("t_delta", 95)]
AU_LOW = [0.20 + 0.01 * a for a in range(12)]  # AU a: positives in [AU_LOW, AU_LOW + 0.15]


def tune_data(task):
    """Raw scores and labels that a tuned post-processing scores much better on (cached)."""
    key = ("tune-data", task)
    if key in _cache:
        return _cache[key]
    rng = np.random.RandomState({"AU": 31, "EXPR": 32, "VA": 33}[task])
    labels, raw = {}, {}
    for video, n in TUNE_VIDEOS:
        if task == "AU":
            y = (rng.random_sample((n, 12)) < 0.4).astype(int)
            low = np.array(AU_LOW)
            p = np.where(y == 1, low + rng.uniform(0, 0.15, (n, 12)), rng.uniform(0, low - 0.05, (n, 12)))
            y[rng.random_sample((n, 12)) < 0.03] = -1
            y[rng.random_sample(n) < 0.05] = -1
            labels[video], raw[video] = y, np.round(p, 4)
        elif task == "EXPR":
            truth, t = np.empty(n, int), 0
            while t < n:  # piecewise constant: segments of 20..60 frames
                length = rng.randint(20, 61)
                truth[t:t + length] = rng.randint(0, 8)
                t += length
            guess = truth.copy()
            flips = np.where(rng.random_sample(n) < 0.12)[0]
            flips = flips[np.diff(np.concatenate([[-3], flips])) > 2]  # isolated flips
            guess[flips] = (truth[flips] + rng.randint(1, 8, len(flips))) % 8
            p = rng.dirichlet(np.ones(8), n) * 0.4
            p[np.arange(n), guess] += 0.6
            y = truth[:, None].copy()
            y[rng.random_sample(n) < 0.05] = -1
            labels[video], raw[video] = y, np.round(p, 6)
        else:
            t = np.arange(n)
            phase = rng.uniform(0, 2 * np.pi, 2)
            truth = np.stack([0.7 * np.sin(2 * np.pi * t / 90 + phase[0]),
                              0.6 * np.sin(2 * np.pi * t / 70 + phase[1])], axis=1)
            y = np.round(truth, 3)
            y[rng.random_sample(n) < 0.05] = -5
            labels[video], raw[video] = y, np.round(truth + rng.normal(0, 0.3, (n, 2)), 4)
    folder = os.path.join(WORK, "tune", task)
    shutil.rmtree(folder, ignore_errors=True)
    annotations = write_annotations(os.path.join(folder, "annotations"), task, labels)
    raw_folder = write_raw(os.path.join(folder, "raw"), task, raw)
    _cache[key] = labels, raw, annotations, raw_folder
    return _cache[key]


def tuned(task):
    """Runs `tune` once per task: (process, fragment, (before, after, gain) parsed from the report)."""
    key = ("tuned", task)
    if key not in _cache:
        _, _, annotations, raw_folder = tune_data(task)
        fragment_path = os.path.join(WORK, "tune", task, "fragment.json")
        result = tool("tune", "--task", task.lower(), "--raw", raw_folder, "--annotations", annotations,
                      "--fragment", fragment_path)
        fragment = None
        if result.returncode == 0 and os.path.exists(fragment_path):
            with open(fragment_path) as f:
                fragment = json.load(f)
        match = TUNE_LINE.search(result.stdout)
        numbers = tuple(float(x) for x in match.groups()[1:]) if match else None
        _cache[key] = result, fragment, numbers, fragment_path
    return _cache[key]


def background(name, *args):
    """Starts a Python helper script (ROOT-relative) once, in the background; wait() collects it."""
    with _lock:
        if name not in _cache:
            _cache[name] = subprocess.Popen([PYTHON, os.path.join(ROOT, args[0]), *args[1:]], text=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait(name):
    with _lock:
        process = _cache[name]
        if process.returncode is None:
            process.log, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError("%s failed (exit %s):\n%s" % (" ".join(process.args), process.returncode, process.log))


def start_tiny_set():
    background("tiny-set", "scripts/make_model_set.py", "--tiny", "--seed", "7", "--output",
               os.path.join(WORK, "sets", "tiny"))


def tiny_set():
    """A pristine tiny model set (exported once with scripts/make_model_set.py); copy before changing."""
    start_tiny_set()
    wait("tiny-set")
    return os.path.join(WORK, "sets", "tiny")


def start_fixture():
    background("fixture", "tests/fixtures/make_crops.py", "--output", os.path.join(WORK, "fixture"))


def fixture():
    """Crops and annotation folders from tests/fixtures/make_crops.py (fixed seed)."""
    start_fixture()
    wait("fixture")
    return os.path.join(WORK, "fixture")


def copy_set(name):
    path = scratch("sets", name)
    shutil.copytree(tiny_set(), path)
    return path


class Tune(Case):
    """`tune` finds the post-processing the data needs, and `run` applies what it wrote."""

    @classmethod
    def setUpClass(cls):
        start_tiny_set()  # both in the background while the tuning tests run
        start_fixture()
        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(tuned, TASKS))

    def tuned_ok(self, task):
        result, fragment, numbers, path = tuned(task)
        self.assertEqual(result.returncode, 0, output(result))
        self.assertIsNotNone(numbers, "no '%s score: before -> after (+gain)' line in:\n%s" % (task, result.stdout))
        self.assertIsNotNone(fragment, path)
        before, after, gain = numbers
        self.assertAlmostEqual(after - before, gain, delta=2e-6)
        return fragment, before, after

    def test_au_thresholds(self):
        fragment, before, after = self.tuned_ok("AU")
        labels, raw, annotations, raw_folder = tune_data("AU")
        self.assertEqual(list(fragment), ["tasks"])
        self.assertEqual(list(fragment["tasks"]), ["au"])
        thresholds = fragment["tasks"]["au"]["threshold"]
        self.assertEqual(len(thresholds), 12)
        self.assertAlmostEqual(before, 0.0, delta=1e-6)  # nothing clears 0.5
        self.assertGreater(after, 0.99)
        for a, t in enumerate(thresholds):
            scores = np.concatenate([raw[v][:, a] for v, _ in TUNE_VIDEOS])
            truth = np.concatenate([labels[v][:, a] for v, _ in TUNE_VIDEOS])
            highest_negative, lowest_positive = scores[truth == 0].max(), scores[truth == 1].min()
            self.assertTrue(highest_negative < t <= lowest_positive,
                            "%s: %s not in (%s, %s]" % (COLUMNS["AU"][a], t, highest_negative, lowest_positive))
        # `eval` on the raw folder (threshold 0.5) gives the before-score, and on predictions thresholded
        # with the fragment (compared in float32, as the tool does) the after-score.
        t32 = np.array(thresholds, np.float32)
        predictions = {v: (r.astype(np.float32) >= t32).astype(int) for v, r in raw.items()}
        submission = write_submission(os.path.join(WORK, "tune", "AU", "thresholded.txt"), "AU", predictions)
        (plain, _), (got, _) = self.parallel(lambda p: self.evaluate("AU", p, annotations), [raw_folder, submission])
        self.assertAlmostEqual(plain["score"], before, delta=1e-6)
        self.assertAlmostEqual(got["score"], after, delta=1e-6)
        self.assert_matches(got, reference("AU", labels, predictions))

    def test_expr_mode_filter(self):
        fragment, before, after = self.tuned_ok("EXPR")
        labels, raw, annotations, raw_folder = tune_data("EXPR")
        width = fragment["tasks"]["expr"]["mode_filter"]
        self.assertGreater(width, 1)
        self.assertGreater(after, before + 0.01)
        self.assertIn("mode_filter: 0 -> %d" % width, tuned("EXPR")[0].stdout)
        plain = {v: r.argmax(axis=1)[:, None] for v, r in raw.items()}
        self.assertAlmostEqual(reference("EXPR", labels, plain)["score"], before, delta=1e-6)
        filtered = {v: mode_filter(r.argmax(axis=1), width)[:, None] for v, r in raw.items()}
        self.assertAlmostEqual(reference("EXPR", labels, filtered)["score"], after, delta=1e-6)
        got, _ = self.evaluate("EXPR", write_legacy(os.path.join(WORK, "tune", "EXPR", "filtered"), "EXPR", filtered),
                               annotations)
        self.assertAlmostEqual(got["score"], after, delta=1e-6)

    def test_va_mean_filter(self):
        fragment, before, after = self.tuned_ok("VA")
        labels, raw, annotations, raw_folder = tune_data("VA")
        width = fragment["tasks"]["va"]["mean_filter"]
        self.assertGreater(width, 1)
        self.assertGreater(after, before + 0.01)
        self.assertIn("mean_filter: 0 -> %d" % width, tuned("VA")[0].stdout)
        got, _ = self.evaluate("VA", raw_folder, annotations)
        self.assertAlmostEqual(got["score"], before, delta=1e-6)
        filtered = {v: np.clip(mean_filter(r, width), -1, 1) for v, r in raw.items()}
        self.assertAlmostEqual(reference("VA", labels, filtered)["score"], after, delta=2e-6)

    def test_write_updates_the_model_set(self):
        set_dir = copy_set("write")
        with open(os.path.join(set_dir, "manifest.json")) as f:
            original = json.load(f)
        _, _, annotations, raw_folder = tune_data("AU")
        fragment_path = os.path.join(WORK, "tune", "write-fragment.json")
        result = tool("tune", "--task", "au", "--raw", raw_folder, "--annotations", annotations,
                      "--model-set", set_dir, "--write", "--fragment", fragment_path)
        self.assertEqual(result.returncode, 0, output(result))
        with open(fragment_path) as f:
            fragment = json.load(f)
        self.assertEqual(fragment, tuned("AU")[1], "the set's threshold 0.5 is the default starting point")
        with open(os.path.join(set_dir, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["tasks"]["au"]["threshold"], fragment["tasks"]["au"]["threshold"])
        original["tasks"]["au"]["threshold"] = fragment["tasks"]["au"]["threshold"]
        self.assertEqual(manifest, original, "only the thresholds change")
        info = tool("info", "--model-set", set_dir)
        self.assertEqual(info.returncode, 0, output(info))
        # --write without --model-set is a usage error.
        result = tool("tune", "--task", "au", "--raw", raw_folder, "--annotations", annotations, "--write")
        self.assertEqual(result.returncode, 2, output(result))

    def test_run_with_manifest_patch_and_eval(self):
        patch = {"tasks": {}}
        for task in TASKS:
            fragment = tuned(task)[1]
            self.assertIsNotNone(fragment, task)
            patch["tasks"].update(fragment["tasks"])
        patch_path = write_text(os.path.join(WORK, "tune", "patch.json"), [json.dumps(patch)])
        crops = os.path.join(fixture(), "crops")
        set_dir = copy_set("patched")
        with open(os.path.join(set_dir, "manifest.json")) as f:
            manifest_before = f.read()
        ann = {task: os.path.join(fixture(), "annotations", ANNOT_DIRS[task], "Validation_Set") for task in TASKS}
        out = scratch("run-patched")
        result = tool("run", "--model-set", set_dir, "--crops", crops, "--output", out,
                      "--manifest-patch", patch_path, "--eval",
                      *[a for task in TASKS for a in ("--annotations", task.lower() + "=" + ann[task])])
        self.assertEqual(result.returncode, 0, output(result))
        with open(os.path.join(set_dir, "manifest.json")) as f:
            self.assertEqual(f.read(), manifest_before, "--manifest-patch must not change the set")
        # The patch took effect: the submissions are the raw scores post-processed with it.
        thresholds = np.array(patch["tasks"]["au"]["threshold"], np.float32)
        for task in TASKS:
            rows = {}
            with open(os.path.join(out, "submission", task + ".txt")) as f:
                for line in f.read().splitlines()[1:]:
                    name, values = line.split(",", 1)
                    video, frame = name.split("/")
                    rows.setdefault(video, []).append([float(x) for x in values.split(",")])
            for video, values in rows.items():
                got = np.array(values)
                with open(os.path.join(out, "raw", task, video + ".csv")) as f:
                    scores = np.array([[float(x) for x in l.split(",")[2:]] for l in f.read().splitlines()[1:]])
                if task == "AU":
                    expected = (scores.astype(np.float32) >= thresholds).astype(float)
                    np.testing.assert_array_equal(got, expected, err_msg=video)
                elif task == "EXPR":
                    expected = mode_filter(scores.argmax(axis=1), patch["tasks"]["expr"]["mode_filter"])
                    np.testing.assert_array_equal(got[:, 0], expected, err_msg=video)
                else:
                    expected = np.clip(mean_filter(scores, patch["tasks"]["va"]["mean_filter"]), -1, 1)
                    np.testing.assert_allclose(got, expected, atol=2e-6, err_msg=video)
        # evaluation.json has the same numbers as `eval` on the written submissions.
        with open(os.path.join(out, "evaluation.json")) as f:
            evaluation = json.load(f)
        self.assertEqual(sorted(evaluation), sorted(TASKS))
        scored = self.parallel(lambda t: self.evaluate(t, os.path.join(out, "submission", t + ".txt"), ann[t]), TASKS)
        for task, (got, _) in zip(TASKS, scored):
            self.assert_matches(evaluation[task], got, places=9)
            self.assertIn("%s score: %.6f" % (task, got["score"]), result.stdout)


# ---------------------------------------------------------------------------------------------

class Compare(Case):
    """`compare` against numpy on two generated run folders."""

    VIDEOS = {"vid_a": 40, "vid_b": 25, "vid_c_left": 9}

    def make_runs(self):
        """Two run folders whose raw scores differ by noise of a different size per video, with
        crop gaps that differ between the runs; B lacks vid_c_left and has an extra video."""
        rng = np.random.RandomState(5)
        a_dir, b_dir = scratch("compare", "a"), scratch("compare", "b")
        data = {}
        for task in TASKS:
            width = len(COLUMNS[task])
            for video, n in self.VIDEOS.items():
                base = rng.uniform(-1, 1, (n, width)) if task == "VA" else rng.uniform(0, 1, (n, width))
                noise = rng.normal(0, {"vid_a": 0.01, "vid_b": 0.05, "vid_c_left": 0.02}[video], (n, width))
                crops_a = (rng.random_sample(n) > 0.1).astype(int)
                crops_b = (rng.random_sample(n) > 0.1).astype(int)
                data[task, video] = (np.round(base, 6), np.round(base + noise, 6), crops_a, crops_b)
            for run, side in ((a_dir, 0), (b_dir, 1)):
                videos = [v for v in self.VIDEOS if not (side == 1 and v == "vid_c_left")]
                if side == 1:
                    videos.append("vid_only_b")
                    data[task, "vid_only_b"] = (None, np.round(rng.uniform(0, 1, (3, width)), 6), None, np.ones(3, int))
                folder = os.path.join(run, "raw", task)
                os.makedirs(folder, exist_ok=True)
                lines_sub = [HEADERS[task]]
                for video in videos:
                    scores, crops = data[task, video][side], data[task, video][2 + side]
                    write_text(os.path.join(folder, video + ".csv"), [RAW_HEADERS[task]] + [
                        "%d,%d,%s" % (f + 1, crops[f], ",".join("%.6f" % v for v in scores[f])) for f in range(len(scores))])
                    for f in range(len(scores)):
                        if task == "VA":
                            values = ",".join("%.6f" % v for v in np.clip(scores[f], -1, 1))
                        elif task == "EXPR":
                            values = str(int(np.argmax(scores[f])))
                        else:
                            values = ",".join(str(int(v >= 0.5)) for v in scores[f])
                        lines_sub.append(location(video, f + 1) + "," + values)
                write_text(os.path.join(run, "submission", task + ".txt"), lines_sub)
        return a_dir, b_dir, data

    def expected(self, task, data):
        diffs, per_video, va_a, va_b, labels = [], [], [], [], []
        for video in self.VIDEOS:
            if video == "vid_c_left":  # only in A
                continue
            a, b, crops_a, crops_b = data[task, video]
            both = (crops_a == 1) & (crops_b == 1)
            d = np.abs(a[both] - b[both])
            diffs.append(d)
            per_video.append((video, d.mean(), d.max(), int(both.sum())))
            va_a.append(a[both])
            va_b.append(b[both])
            if task == "EXPR":
                labels.append(np.argmax(a, axis=1) == np.argmax(b, axis=1))
            elif task == "AU":
                labels.append((a >= 0.5) == (b >= 0.5))
        d = np.concatenate(diffs)
        expected = {"mean_abs": d.mean(), "max_abs": d.max(), "frames": sum(v[3] for v in per_video),
                    "worst": sorted(per_video, key=lambda v: -v[1])}
        if task == "VA":
            va_a, va_b = np.concatenate(va_a), np.concatenate(va_b)
            expected["ccc"] = [ccc(va_a[:, c], va_b[:, c]) for c in range(2)]
        if labels:
            agree = np.concatenate(labels)
            expected["agreement"] = agree.mean()
            expected["rows"] = len(agree)
            if task == "AU":
                expected["per_au"] = agree.mean(axis=0)
        return expected

    def test_figures_match_numpy(self):
        a_dir, b_dir, data = self.make_runs()
        json_path = scratch("compare", "out.json")
        result = tool("compare", a_dir, b_dir, "--json", json_path)
        self.assertEqual(result.returncode, 0, output(result))
        with open(json_path) as f:
            got = json.load(f)
        self.assertEqual(sorted(got), sorted(TASKS))
        for task in TASKS:
            want, have = self.expected(task, data), got[task]
            self.assertEqual(have["videos"], 2)
            self.assertEqual((have["videos_only_a"], have["videos_only_b"]), (1, 1))
            self.assertEqual(have["frames"], want["frames"])
            self.assertAlmostEqual(have["mean_abs"], want["mean_abs"], delta=1e-6)
            self.assertAlmostEqual(have["max_abs"], want["max_abs"], delta=1e-6)
            self.assertEqual([w["video"] for w in have["worst"]], [w[0] for w in want["worst"]])
            for w, (video, mean, largest, frames) in zip(have["worst"], want["worst"]):
                self.assertAlmostEqual(w["mean_abs"], mean, delta=1e-6, msg=video)
                self.assertAlmostEqual(w["max_abs"], largest, delta=1e-6, msg=video)
                self.assertEqual(w["frames"], frames, video)
            if task == "VA":
                self.assertAlmostEqual(have["ccc"]["valence"], want["ccc"][0], delta=1e-6)
                self.assertAlmostEqual(have["ccc"]["arousal"], want["ccc"][1], delta=1e-6)
                self.assertNotIn("labels", have)
            else:
                self.assertEqual(have["labels"]["rows"], want["rows"])
                self.assertAlmostEqual(have["labels"]["agreement"], want["agreement"], delta=1e-9)
                self.assertLess(have["labels"]["agreement"], 1.0)  # the noise flips some labels
            if task == "AU":
                np.testing.assert_allclose([have["labels"]["per_au"][c] for c in COLUMNS["AU"]], want["per_au"],
                                           atol=1e-9)
        self.assertIn("worst: vid_b", result.stdout)
        self.assertIn("CCC between the runs", result.stdout)

    def test_a_run_with_itself_agrees_exactly(self):
        a_dir, _, _ = self.make_runs()
        result = tool("compare", a_dir, a_dir)
        self.assertEqual(result.returncode, 0, output(result))
        self.assertIn("raw scores |A - B|: max 0, mean 0", result.stdout)
        self.assertIn("100.0000% of rows agree", result.stdout)

    def test_errors_name_the_file(self):
        a_dir, b_dir, _ = self.make_runs()
        short = os.path.join(b_dir, "raw", "VA", "vid_a.csv")
        with open(short) as f:
            lines = f.read().splitlines()
        write_text(short, lines[:-1])
        result = tool("compare", a_dir, b_dir)
        self.assertEqual(result.returncode, 3, output(result))
        self.assertIn(short, result.stderr)
        self.assertIn("did not predict the same video", result.stderr)

        empty = scratch("compare", "empty")
        os.makedirs(empty)
        result = tool("compare", a_dir, empty)
        self.assertEqual(result.returncode, 3, output(result))
        self.assertIn("share no task", result.stderr)
        self.assertEqual(tool("compare", a_dir).returncode, 2)  # RUN_B missing

    def test_text_commands_do_not_load_libtorch(self):
        """The binary itself links neither LibTorch nor OpenCV (they live in the module beside it)."""
        linked = subprocess.run(["ldd", TOOL], capture_output=True, text=True).stdout
        self.assertNotIn("libtorch", linked)
        self.assertNotIn("libopencv", linked)
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(TOOL), "libabaw-infer-models.so")))


if __name__ == "__main__":
    unittest.main()
