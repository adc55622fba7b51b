#!/usr/bin/python3
"""End-to-end tests of `abaw-infer run` and `abaw-infer info`.

Model sets are exported with the project's own scripts (tiny CLIP + tiny ABAW6 heads, fixed
seeds); crops come from tests/fixtures/make_crops.py (gaps at the start, middle and end of
videos, _left/_right names, a one-frame video, videos shorter than the window and lengths that
are not multiples of it). Every run is compared with tests/reference_pipeline.py, an
independent Python implementation of the manifest semantics.

Run with Debian's Python (it needs torch): /usr/bin/python3 tests/e2e/test_run.py [-k NAME]
ABAW_INFER must name the built binary (ctest sets it).
"""

import json
import os
import shutil
import subprocess
import sys
import signal
import tempfile
import time
import unittest

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
TOOL = os.environ.get("ABAW_INFER", os.path.join(ROOT, "build", "abaw-infer"))
HEADERS = {
    "VA": "image_location,valence,arousal",
    "EXPR": "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
    "AU": "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26",
}

WORK = None  # one scratch folder for the whole module
_sets = {}


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="abaw-e2e-")
    subprocess.run([PYTHON, os.path.join(ROOT, "tests/fixtures/make_crops.py"), "--output", fixture()],
                   check=True, capture_output=True)


def tearDownModule():
    if WORK and not os.environ.get("ABAW_KEEP_TEST_FILES"):
        shutil.rmtree(WORK, ignore_errors=True)


def fixture(*parts):
    return os.path.join(WORK, "fixture", *parts)


# make_model_set.py options (after --tiny) of each test set.
SET_OPTIONS = {
    "plain": [],
    "mean": ["--merge", "mean", "--stride", "3", "--missing-frames", "nearest_feature", "--normalize", "l2"],
    "filters": ["--missing-frames", "interpolate_predictions", "--mode-filter", "5", "--mean-filter", "va=3",
                "--mean-filter", "au=4", "--au-threshold", "0.8,0.8,0.7,0.5,0.5,0.5,0.6,0.8,0.8,0.8,0.3,0.7"],
}


def model_set(name):
    """Exports the tiny model set `name` once, with scripts/make_model_set.py."""
    if name not in _sets:
        path = os.path.join(WORK, "sets", name)
        subprocess.run([PYTHON, os.path.join(ROOT, "scripts/make_model_set.py"), "--tiny", "--seed", "7",
                        "--output", path, *SET_OPTIONS[name]], check=True, capture_output=True, text=True)
        _sets[name] = path
    return _sets[name]


def copy_of_plain_set(name):
    """A fresh copy of the "plain" set in WORK/sets/NAME, for a test to break or patch."""
    path = os.path.join(WORK, "sets", name)
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(model_set("plain"), path)
    return path


def frame_list_args():
    return ["--frame-list", "va=" + fixture("frame_lists", "VA.txt"),
            "--frame-list", "expr=" + fixture("frame_lists", "EXPR.txt"),
            "--frame-list", "au=" + fixture("frame_lists", "AU.txt")]


def tool(*args, env=None):
    """Runs the tool; `env`: variables added to this process's environment."""
    return subprocess.run([TOOL, *args], capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_lines(path):
    with open(path, newline="") as f:
        return f.read().split("\n")


class Case(unittest.TestCase):
    def out(self, name):
        path = os.path.join(WORK, "out", self.id().split(".")[-1], name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def run_tool_only(self, set_dir, extra=()):
        out = self.out("tool")
        return out, tool("run", "--model-set", set_dir, "--crops", fixture("crops"), "--output", out,
                         *frame_list_args(), *extra)

    def run_both(self, set_dir, inputs, extra=(), tool_only=()):
        """Runs the tool and the reference on the same inputs and asserts they agree. `tool_only`:
        options the reference has no counterpart for (they must not change the predictions)."""
        ours, ref = self.out("tool"), self.out("reference")
        result = tool("run", "--model-set", set_dir, "--crops", fixture("crops"), "--output", ours,
                      "--batch-size", "5", *inputs, *extra, *tool_only)
        self.assertEqual(result.returncode, 0, result.stderr)
        reference = subprocess.run([PYTHON, os.path.join(ROOT, "tests/reference_pipeline.py"), "--model-set",
                                    set_dir, "--crops", fixture("crops"), "--output", ref, *inputs, *extra],
                                   capture_output=True, text=True)
        self.assertEqual(reference.returncode, 0, reference.stderr)
        compared = subprocess.run([PYTHON, os.path.join(ROOT, "tests/compare_outputs.py"), "--model-set", set_dir,
                                   ref, ours], capture_output=True, text=True)
        self.assertEqual(compared.returncode, 0, compared.stdout + compared.stderr)
        return ours, result


class Parity(Case):
    """The tool agrees with the independent reference for every manifest feature."""

    def check_rows_match_frame_lists(self, ours):
        for task in ("VA", "EXPR", "AU"):
            expected = read_lines(fixture("frame_lists", task + ".txt"))
            got = read_lines(os.path.join(ours, "submission", task + ".txt"))
            self.assertEqual(got[0], HEADERS[task])
            self.assertEqual(got[-1], "", "file must end with a newline")
            self.assertEqual([l.split(",")[0] for l in got[1:-1]],
                             [l.split(",")[0] for l in expected[1:] if l], task)

    def test_concatenate_zero_feature(self):
        ours, result = self.run_both(model_set("plain"), frame_list_args())
        self.check_rows_match_frame_lists(ours)
        summary = read_json(os.path.join(ours, "run.json"))
        fx = read_json(fixture("fixture.json"))
        self.assertEqual(summary["videos"]["failed"], [])
        self.assertEqual(summary["frames"]["decoded"], summary["frames"]["crops"])
        self.assertGreater(summary["frames"]["filled"], 0)
        self.assertIn("encoder", summary["frames_per_second"])
        self.assertIn("VA submission:", result.stdout)
        self.assertTrue(fx)

    def test_packed_batches(self):
        """--pack-batches fills batches across videos and still agrees with the reference."""
        set_dir = model_set("plain")
        ours, _ = self.run_both(set_dir, frame_list_args(), tool_only=["--pack-batches"])
        self.check_rows_match_frame_lists(ours)

        crops_per_video = [sum(1 for name in os.listdir(os.path.join(fixture("crops"), video))
                               if name.endswith(".jpg"))
                           for video in sorted(os.listdir(fixture("crops")))]
        summary = read_json(os.path.join(ours, "run.json"))
        self.assertTrue(summary["pack_batches"])
        self.assertEqual(summary["encoder_batches"], -(-sum(crops_per_video) // 5))
        per_video = self.out("per-video")
        result = tool("run", "--model-set", set_dir, "--crops", fixture("crops"), "--output", per_video,
                      "--batch-size", "5", *frame_list_args())
        self.assertEqual(result.returncode, 0, result.stderr)
        summary = read_json(os.path.join(per_video, "run.json"))
        self.assertFalse(summary["pack_batches"])
        self.assertEqual(summary["encoder_batches"], sum(-(-n // 5) for n in crops_per_video))
        self.assertLess(-(-sum(crops_per_video) // 5), summary["encoder_batches"])

    def test_mean_merge_nearest_feature(self):
        ours, _ = self.run_both(model_set("mean"), frame_list_args())
        self.check_rows_match_frame_lists(ours)

    def test_interpolation_filters_and_thresholds(self):
        self.run_both(model_set("filters"), frame_list_args())

    def test_window_override(self):
        self.run_both(model_set("plain"), frame_list_args(), ["--window", "4"])
        self.run_both(model_set("mean"), frame_list_args(), ["--window", "6", "--stride", "2"])
        _, result = self.run_tool_only(model_set("plain"), ["--window", "6", "--stride", "2"])
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("merge 'concatenate' needs stride = window", result.stderr)

    def test_annotation_folders(self):
        ann = fixture("annotations")
        ours, _ = self.run_both(model_set("plain"), [
            "--annotations", os.path.join(ann, "VA_Estimation_Challenge", "Validation_Set"),
            "--annotations", "expr=" + os.path.join(ann, "EXPR_Recognition_Challenge", "Validation_Set"),
            "--tasks", "va,expr"])
        rows = read_lines(os.path.join(ours, "submission", "EXPR.txt"))
        videos = sorted(f[:-4] for f in os.listdir(os.path.join(ann, "EXPR_Recognition_Challenge", "Validation_Set")))
        self.assertEqual(rows[1], videos[0] + "/00001.jpg," + rows[1].split(",")[1])
        self.assertFalse(os.path.exists(os.path.join(ours, "submission", "AU.txt")))

    def test_crops_only_warns(self):
        ours, result = self.run_both(model_set("plain"), ["--tasks", "va"])
        self.assertIn("highest crop number", result.stderr)

    def test_multitask_head(self):
        """One TorchScript head returning a dict feeds all three tasks, with a class map."""
        base = model_set("plain")
        path = os.path.join(WORK, "sets", "multi")
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(base, path)
        script = """
import sys, torch
from typing import Dict
class Multi(torch.nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.va = torch.nn.Linear(d, 2); self.expr = torch.nn.Linear(d, 7); self.au = torch.nn.Linear(d, 12)
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"va": torch.tanh(self.va(x)), "expr": self.expr(x), "au": self.au(x)}
torch.manual_seed(3)
torch.jit.script(Multi(int(sys.argv[2]))).save(sys.argv[1])
"""
        manifest = read_json(os.path.join(path, "manifest.json"))
        script_path = os.path.join(WORK, "make_multi_head.py")  # torch.jit.script needs a source file
        with open(script_path, "w") as f:
            f.write(script)
        subprocess.run([PYTHON, script_path, os.path.join(path, "multi.pt"),
                        str(manifest["encoder"]["feature_dim"])], check=True)
        manifest["tasks"] = {
            "va": {"head": {"file": "multi.pt", "output": "va"}},
            "expr": {"head": {"file": "multi.pt", "output": "expr"}, "class_map": [5, 0, 2, 3, 4, 6, 1, None]},
            "au": {"head": {"file": "multi.pt", "output": "au"}},
        }
        with open(os.path.join(path, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
        ours, _ = self.run_both(path, frame_list_args())
        labels = [l.split(",")[1] for l in read_lines(os.path.join(ours, "submission", "EXPR.txt"))[1:] if l]
        self.assertNotIn("7", labels, "Other is not predicted by this head")

    def test_columns_heads_of_a_per_frame_model(self):
        """An HSEmotion-style per-frame model: the encoder's own outputs are the task scores."""
        path = copy_of_plain_set("columns")
        manifest = read_json(os.path.join(path, "manifest.json"))
        self.assertGreaterEqual(manifest["encoder"]["feature_dim"], 22)
        for head in set(t["head"] if isinstance(t["head"], str) else t["head"]["file"]
                        for t in manifest["tasks"].values()):
            os.remove(os.path.join(path, head))  # a columns set has no head files
        manifest["tasks"] = {
            "va": {"head": {"columns": [0, 2]}, "activation": "tanh", "mean_filter": 3},
            "expr": {"head": {"columns": [2, 10]}, "class_map": [7, 6, 5, 4, 3, 2, 1, 0]},
            "au": {"head": {"columns": [10, 22]}},
        }
        with open(os.path.join(path, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
        info = tool("info", "--model-set", path)
        self.assertEqual(info.returncode, 0, info.stderr)
        self.assertIn("encoder columns 10..21", info.stdout)
        self.run_both(path, frame_list_args())

    def test_text_embeddings_head_zero_shot_expr(self):
        """An EmoCLIP-style zero-shot EXPR head: scale * cos(frame feature, one text row per class)."""
        path = copy_of_plain_set("text")
        manifest = read_json(os.path.join(path, "manifest.json"))
        dim = manifest["encoder"]["feature_dim"]
        rows = torch.randn(7, dim, generator=torch.Generator().manual_seed(19)) * 2.0
        torch.save(rows, os.path.join(path, "expr_text.pt"))  # what scripts/export_clip_text.py writes
        manifest["tasks"]["expr"] = {"head": {"text_embeddings": "expr_text.pt", "logit_scale": 30},
                                     "class_map": [6, 0, 1, 2, 3, 4, 5, None], "mode_filter": 3}
        with open(os.path.join(path, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
        info = tool("info", "--model-set", path)
        self.assertEqual(info.returncode, 0, info.stderr)
        self.assertIn("text embeddings expr_text.pt (logit scale 30)", info.stdout)
        ours, _ = self.run_both(path, frame_list_args())
        labels = {l.split(",")[1] for l in read_lines(os.path.join(ours, "submission", "EXPR.txt"))[1:] if l}
        self.assertNotIn("7", labels, "Other has no text row")

    def test_video_subset(self):
        ours, _ = self.run_both(model_set("plain"), frame_list_args(), ["--only", "vid_one,2-person_left"])
        rows = read_lines(os.path.join(ours, "submission", "VA.txt"))[1:-1]
        self.assertEqual(sorted({r.split("/")[0] for r in rows}), ["2-person_left", "vid_one"])


    def test_either_torchscript_executor_gives_the_same_bytes(self):
        submissions = {}
        for executor in ("legacy", "profiling"):
            out = self.out(executor)
            result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", out,
                          *frame_list_args(), env={"ABAW_JIT_EXECUTOR": executor})
            self.assertEqual(result.returncode, 0, result.stderr)
            folder = os.path.join(out, "submission")
            submissions[executor] = {name: read_lines(os.path.join(folder, name)) for name in os.listdir(folder)}
        self.assertEqual(sorted(submissions["legacy"]), ["AU.txt", "EXPR.txt", "VA.txt"])
        self.assertEqual(submissions["legacy"], submissions["profiling"])
        unknown = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output",
                       self.out("unknown"), *frame_list_args(), env={"ABAW_JIT_EXECUTOR": "fast"})
        self.assertEqual(unknown.returncode, 2)
        self.assertIn("ABAW_JIT_EXECUTOR='fast': expected legacy or profiling", unknown.stderr)

    def test_channels_last_encoder_input(self):
        """encoder.memory_format channels_last: same results as the reference, which does the same."""
        path = copy_of_plain_set("channels-last")
        manifest = read_json(os.path.join(path, "manifest.json"))
        manifest["encoder"]["memory_format"] = "channels_last"
        json.dump(manifest, open(os.path.join(path, "manifest.json"), "w"))
        self.run_both(path, frame_list_args())
        info = tool("info", "--model-set", path)
        self.assertEqual(info.returncode, 0, info.stderr)
        self.assertIn("fp32, channels_last", info.stdout)

    def test_normalising_on_the_device_gives_the_same_bytes(self):
        """--preprocess-on device (8-bit pixels, normalised by LibTorch) equals the host path."""
        host, _ = self.run_both(model_set("filters"), frame_list_args())  # auto: host on the CPU
        ours = self.out("device")
        result = tool("run", "--model-set", model_set("filters"), "--crops", fixture("crops"), "--output", ours,
                      "--batch-size", "5", *frame_list_args(), "--preprocess-on", "device")
        self.assertEqual(result.returncode, 0, result.stderr)
        for folder in ("submission", "raw/VA", "raw/EXPR", "raw/AU"):
            names = sorted(os.listdir(os.path.join(host, folder)))
            self.assertEqual(names, sorted(os.listdir(os.path.join(ours, folder))))
            for name in names:
                with open(os.path.join(host, folder, name), "rb") as a, open(os.path.join(ours, folder, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), os.path.join(folder, name))
        for folder, place in ((host, "host"), (ours, "device")):
            with open(os.path.join(folder, "run.json")) as f:
                self.assertEqual(json.load(f)["preprocess_on"], place)


class Shards(Case):
    """--shard K/N runs merged with `merge` reproduce one run byte for byte; merge also ensembles."""

    def test_three_shards_merge_to_one_run(self):
        one = self.out("one")
        result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", one,
                      *frame_list_args())
        self.assertEqual(result.returncode, 0, result.stderr)
        shards = []
        for k in (1, 2, 3):
            out = self.out("shard%d" % k)
            result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", out,
                          "--shard", "%d/3" % k, *frame_list_args())
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "submission")), "a shard writes no submission")
            shards.append(out)
        merged = self.out("merged")
        result = tool("merge", "--inputs", *shards, "--output", merged, "--model-set", model_set("plain"),
                      *frame_list_args())
        self.assertEqual(result.returncode, 0, result.stderr)
        for task in ("VA", "EXPR", "AU"):
            with open(os.path.join(one, "submission", task + ".txt"), "rb") as a, \
                    open(os.path.join(merged, "submission", task + ".txt"), "rb") as b:
                self.assertEqual(a.read(), b.read(), task)

        missing = self.out("missing-shard")
        result = tool("merge", "--inputs", *shards[:2], "--output", missing, "--model-set", model_set("plain"),
                      *frame_list_args())
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn("missing shard", result.stderr)

    def test_ensemble_is_the_weighted_mean_of_raw_scores(self):
        first, second = self.out("plain"), self.out("mean")
        for out, name in ((first, "plain"), (second, "mean")):
            result = tool("run", "--model-set", model_set(name), "--crops", fixture("crops"), "--output", out,
                          "--tasks", "va", *frame_list_args()[:2])
            self.assertEqual(result.returncode, 0, result.stderr)
        merged = self.out("ensemble")
        result = tool("merge", "--inputs", first, second, "--weights", "1,3", "--output", merged,
                      *frame_list_args()[:2])
        self.assertEqual(result.returncode, 0, result.stderr)
        a = read_lines(os.path.join(first, "raw", "VA", "vid_gaps.csv"))[1:-1]
        b = read_lines(os.path.join(second, "raw", "VA", "vid_gaps.csv"))[1:-1]
        m = read_lines(os.path.join(merged, "raw", "VA", "vid_gaps.csv"))[1:-1]
        for la, lb, lm in zip(a, b, m):
            for va, vb, vm in zip(la.split(",")[2:], lb.split(",")[2:], lm.split(",")[2:]):
                self.assertAlmostEqual(float(vm), (float(va) + 3 * float(vb)) / 4, places=5)


class FeatureCache(Case):
    """--features reuses the encoder output and never trusts a stale or corrupt entry."""

    def test_reuse_stale_and_corrupt_entries(self):
        cache = os.path.join(WORK, "feature-cache")
        crops = os.path.join(WORK, "cache-crops")
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)

        def run(name, set_dir, *extra, cache=cache):
            out = self.out(name)
            result = tool("run", "--model-set", set_dir, "--crops", crops, "--output", out, "--features", cache,
                          *frame_list_args(), *extra)
            self.assertEqual(result.returncode, 0, result.stderr)
            return out, result, read_json(os.path.join(out, "run.json"))

        first, _, summary = run("first", model_set("plain"))
        self.assertEqual(summary["frames"]["from_feature_cache"], 0)
        self.assertEqual(len([f for f in os.listdir(cache) if f.endswith(".features")]), 6)
        # Read back into features kept in a file (--features-in-memory 0): the same submissions.
        second, _, summary = run("second", model_set("plain"), "--features-in-memory", "0")
        self.assertEqual(summary["frames"]["from_feature_cache"], summary["frames"]["crops"])
        self.assertEqual(summary["frames"]["decoded"], 0)
        for task in ("VA", "EXPR", "AU"):
            self.assertEqual(read_lines(os.path.join(first, "submission", task + ".txt")),
                             read_lines(os.path.join(second, "submission", task + ".txt")))
        # Computed with every video's features in a file: the same entries, byte for byte, the same
        # raw scores, and no file left in the output folder.
        spilled_cache = os.path.join(WORK, "feature-cache-spilled")
        shutil.rmtree(spilled_cache, ignore_errors=True)
        spilled, _, summary = run("spilled", model_set("plain"), "--features-in-memory", "0", cache=spilled_cache)
        self.assertEqual(summary["frames"]["from_feature_cache"], 0)
        for entry in sorted(os.listdir(cache)):
            self.assertEqual(read_bytes(os.path.join(cache, entry)), read_bytes(os.path.join(spilled_cache, entry)),
                             entry)
        self.assertEqual(sorted(os.listdir(spilled)), sorted(os.listdir(first)))
        for folder, _, files in os.walk(os.path.join(first, "raw")):
            for name in files:
                path = os.path.join(folder, name)
                self.assertEqual(read_bytes(path), read_bytes(os.path.join(spilled, os.path.relpath(path, first))), path)

        # Another post-processing of the same encoder: the cache is used, the result is the
        # reference's for that set.
        filters = model_set("filters")
        _, _, summary = run("other-heads", filters)
        self.assertEqual(summary["frames"]["from_feature_cache"], summary["frames"]["crops"])

        corrupt = os.path.join(cache, "vid_gaps.features")
        with open(corrupt, "r+b") as f:
            f.seek(100)
            f.write(b"\xff\xff")
        os.utime(os.path.join(crops, "vid_one", "00001.jpg"), (1, 1))
        third, result, summary = run("third", model_set("plain"))
        self.assertIn(corrupt + ": checksum mismatch", result.stderr)
        self.assertIn("vid_one.features: the video's crop files changed", result.stderr)
        self.assertEqual(summary["frames"]["decoded"], 37 - 9 + 1)  # vid_gaps' crops and vid_one's
        compared = subprocess.run([PYTHON, os.path.join(ROOT, "tests/compare_outputs.py"), "--model-set",
                                   model_set("plain"), first, third], capture_output=True, text=True)
        self.assertEqual(compared.returncode, 0, compared.stdout)


class Interrupt(Case):
    """SIGINT / SIGTERM stop a run cleanly, SIGKILL leaves nothing that passes as complete, and
    --resume finishes the job with the same submissions as an uninterrupted run."""

    @classmethod
    def setUpClass(cls):
        # 40 videos of 24 crops: with batch size 1 the run takes long enough to be interrupted.
        cls.crops = os.path.join(WORK, "many-videos")
        shutil.rmtree(cls.crops, ignore_errors=True)
        for i in range(40):
            shutil.copytree(fixture("crops", "vid_dense"), os.path.join(cls.crops, "video%02d" % i))

    def start(self, out, *extra):
        return subprocess.Popen([TOOL, "run", "--model-set", model_set("plain"), "--crops", self.crops, "--output",
                                 out, "--tasks", "va,expr", "--batch-size", "1", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for_markers(self, out, count):
        # Generous: CI machines may be busy. The run has 40 videos, the signal comes after a few.
        state = os.path.join(out, "state")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            # Only finished markers count: `<video>.done.tmp-<pid>` exists while a marker is being
            # written, and a kill at that moment leaves nothing to resume.
            if os.path.isdir(state) and sum(name.endswith(".done") for name in os.listdir(state)) >= count:
                return
            time.sleep(0.01)
        self.fail("fewer than %d videos finished within 180 s" % count)

    def check_resume_matches(self, reference, out):
        result = tool("run", "--model-set", model_set("plain"), "--crops", self.crops, "--output", out,
                      "--tasks", "va,expr", "--batch-size", "1", "--resume")
        self.assertEqual(result.returncode, 0, result.stderr)
        summary = read_json(os.path.join(out, "run.json"))
        self.assertGreater(summary["videos"]["resumed"], 0)
        self.assertLess(summary["videos"]["resumed"], 40)
        for task in ("VA", "EXPR"):
            with open(os.path.join(reference, "submission", task + ".txt"), "rb") as a, \
                    open(os.path.join(out, "submission", task + ".txt"), "rb") as b:
                self.assertEqual(a.read(), b.read(), task)
        leftovers = [f for _, _, files in os.walk(out) for f in files if ".tmp-" in f]
        self.assertEqual(leftovers, [])

    def test_signals_and_resume(self):
        reference = self.out("uninterrupted")
        result = tool("run", "--model-set", model_set("plain"), "--crops", self.crops, "--output", reference,
                      "--tasks", "va,expr", "--batch-size", "1")
        self.assertEqual(result.returncode, 0, result.stderr)

        for sig in (signal.SIGINT, signal.SIGTERM):
            out = self.out("stopped-%d" % sig)
            process = self.start(out)
            self.wait_for_markers(out, 2)
            process.send_signal(sig)
            _, stderr = process.communicate(timeout=60)
            self.assertEqual(process.returncode, 130, stderr)
            self.assertIn("--resume", stderr)
            summary = read_json(os.path.join(out, "run.json"))
            self.assertTrue(summary["interrupted"])
            self.assertFalse(os.path.exists(os.path.join(out, "submission", "VA.txt")))
            self.check_resume_matches(reference, out)

        # SIGKILL at several points: whatever is left is either complete or clearly temporary.
        for markers in (1, 5, 12):
            out = self.out("killed-%d" % markers)
            process = self.start(out)
            self.wait_for_markers(out, markers)
            process.kill()
            process.communicate(timeout=60)
            self.assertFalse(os.path.exists(os.path.join(out, "submission", "VA.txt")))
            # Raw files are complete or absent; a half-written one only exists under a temp name,
            # which the next run removes.
            for task in ("VA", "EXPR"):
                folder = os.path.join(out, "raw", task)
                for name in os.listdir(folder) if os.path.isdir(folder) else []:
                    if ".tmp-" not in name:
                        self.assertEqual(len(read_lines(os.path.join(folder, name))), 24 + 2, name)
            self.check_resume_matches(reference, out)

    def test_resume_recomputes_a_cut_or_emptied_raw_file(self):
        # Raw files and markers are not synced to disk: after a power loss a marker may survive
        # beside a raw file that is empty or cut. --resume must recompute, not fail or trust it.
        out = self.out("power-loss")
        args = ["run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", out,
                *frame_list_args()]
        result = tool(*args)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(out, "submission", "VA.txt"), "rb") as f:
            expected = f.read()
        cut = os.path.join(out, "raw", "VA", "vid_gaps.csv")
        with open(cut, "rb") as f:
            data = f.read()
        with open(cut, "wb") as f:
            f.write(data[:-4])  # mid-number: the line still has every field
        open(os.path.join(out, "raw", "EXPR", "vid_dense.csv"), "w").close()
        result = tool(*args, "--resume")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(cut + ": does not end with a newline (cut short?); video vid_gaps is computed again",
                      result.stderr)
        self.assertIn("video vid_dense is computed again", result.stderr)
        self.assertEqual(read_json(os.path.join(out, "run.json"))["videos"]["resumed"], 4)
        with open(os.path.join(out, "submission", "VA.txt"), "rb") as f:
            self.assertEqual(f.read(), expected)

    def test_stop_inside_a_very_long_video(self):
        # One video of a million frames (one crop, the rest zero features) spends ~40 s in its
        # heads on 2 cores; a stop must not wait for the video to end (Slurm's grace is 30 s).
        frame_list = os.path.join(WORK, "million-frames.txt")
        with open(frame_list, "w") as f:
            f.write(HEADERS["VA"] + "\n" + "".join("vid_one/%05d.jpg\n" % i for i in range(1, 1000001)))
        out = self.out("long")
        process = subprocess.Popen([TOOL, "run", "--model-set", model_set("plain"), "--crops", fixture("crops"),
                                    "--output", out, "--only", "vid_one", "--frame-list", "va=" + frame_list],
                                   stderr=subprocess.PIPE, text=True)
        lines = []
        for line in process.stderr:  # the heads' progress line says the video is in its head phase
            lines.append(line)
            if "vid_one heads:" in line:
                break
        else:
            self.fail("no head progress line:\n" + "".join(lines))
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rest = process.stderr.read()
        process.wait(timeout=60)
        waited = time.monotonic() - sent
        self.assertEqual(process.returncode, 130, "".join(lines) + rest)
        self.assertLess(waited, 5.0, "the stop took %.1f s" % waited)
        self.assertIn("stopped during its heads", rest)
        self.assertTrue(read_json(os.path.join(out, "run.json"))["interrupted"])
        self.assertFalse(os.path.exists(os.path.join(out, "raw", "VA", "vid_one.csv")))
        self.assertFalse(os.path.exists(os.path.join(out, "state", "vid_one.done")))


def snapshot(root, skip):
    """path -> (size, mtime, bytes) of every file under `root` outside the folders in `skip`."""
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    files[path] = (os.path.getsize(path), os.path.getmtime(path), f.read())
            else:
                files[path] = None
    return files


class Hostile(Case):
    """Issue 21: no input line, file name or option can make the tool read or write outside the
    folders it was given. Each hostile video name, through each entry point, is an input error
    naming the file and line, found before anything is predicted."""

    # Video parts of image_location values that must never become a path.
    LOCATIONS = ["{sandbox}/outside/notes/00001.jpg", "../trav/00001.jpg", "../../outside/notes/00001.jpg",
                 "./00001.jpg", "../00001.jpg", "vid_one/../vid_dense/00001.jpg", "-x/00001.jpg",
                 "a\\b/00001.jpg", "vid\tone/00001.jpg", "{long}/00001.jpg"]
    NAMES = ["..", ".", "../trav", "{sandbox}/outside/notes", "-rf", "vid\\one", "vid\tone", "{long}"]

    def setUp(self):
        self.sandbox = tempfile.mkdtemp(prefix="abaw-hostile-")
        self.crops = os.path.join(self.sandbox, "crops")
        shutil.copytree(fixture("crops"), self.crops)
        # What a traversal would reach: crops beside --crops, and a file a row once overwrote.
        shutil.copytree(fixture("crops", "vid_one"), os.path.join(self.sandbox, "trav"))
        shutil.copytree(fixture("crops", "vid_one"), os.path.join(self.sandbox, "outside", "notes"))
        with open(os.path.join(self.sandbox, "outside", "notes.csv"), "w") as f:
            f.write("precious\n")
        self.output = os.path.join(self.sandbox, "out")
        self.cache = os.path.join(self.sandbox, "cache")
        self.inputs = os.path.join(self.sandbox, "inputs")
        os.makedirs(self.inputs)
        self.before = snapshot(self.sandbox, {self.output, self.cache})

    def tearDown(self):
        shutil.rmtree(self.sandbox, ignore_errors=True)

    def expand(self, text):
        return text.format(sandbox=self.sandbox, long="v" * 201)

    def check_refused(self, result, where):
        """Exit 3 naming `where`, the sandbox untouched, nothing predicted."""
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn(where, result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()[-1]) > 0, True)
        self.assertEqual(snapshot(self.sandbox, {self.output, self.cache}), self.before)
        for folder in (self.output, self.cache):
            written = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]
            self.assertEqual([f for f in written if not f.endswith(("run.json", ".log"))], [], where)

    def write_input(self, name, text):
        path = os.path.join(self.inputs, name)
        with open(path, "w") as f:
            f.write(text)
        self.before = snapshot(self.sandbox, {self.output, self.cache})
        return path

    def va_run(self):
        """A finished VA run over the fixture (outside the sandbox), an input for merge."""
        path = os.path.join(WORK, "hostile-va-run")
        if not os.path.exists(os.path.join(path, "submission", "VA.txt")):
            result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", path,
                          "--tasks", "va")
            self.assertEqual(result.returncode, 0, result.stderr)
        return path

    def run_tool(self, *extra):
        return tool("run", "--model-set", model_set("plain"), "--crops", self.crops, "--output", self.output,
                    "--features", self.cache, *extra)

    def test_frame_list_rows(self):
        for location in map(self.expand, self.LOCATIONS):
            with self.subTest(location=location):
                frame_list = self.write_input("VA.txt", "%s\nvid_one/00001.jpg\n%s\n" % (HEADERS["VA"], location))
                self.check_refused(self.run_tool("--frame-list", "va=" + frame_list), frame_list + ":3:")
                merged = tool("merge", "--inputs", self.va_run(), "--output", self.output, "--frame-list",
                              "va=" + frame_list)
                self.check_refused(merged, frame_list + ":3:")

    def test_annotation_file_names(self):
        source = fixture("annotations", "VA_Estimation_Challenge", "Validation_Set")
        for name in ("-rf", "vid\\one", "vid\tone", "vid,one", "v" * 201):
            with self.subTest(name=name):
                folder = os.path.join(self.inputs, "annotations")
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(source, folder)
                os.rename(os.path.join(folder, "vid_one.txt"), os.path.join(folder, name + ".txt"))
                self.before = snapshot(self.sandbox, {self.output, self.cache})
                self.check_refused(self.run_tool("--annotations", "va=" + folder), name)

    def test_video_lists_and_the_only_option(self):
        for name in map(self.expand, self.NAMES + ["vid,one"]):
            with self.subTest(name=name):
                video_list = self.write_input("list.txt", "vid_one\n%s\n" % name)
                self.check_refused(self.run_tool("--video-list", video_list), video_list + ":2:")
        for name in map(self.expand, self.NAMES):
            with self.subTest(option=name):
                self.check_refused(self.run_tool("--only", "vid_one," + name), "--only")

    def test_crop_folder_names(self):
        # A folder in --crops whose name cannot be a video name (the ',' one gave a submission that
        # `check` rejects) is refused when it would be predicted, before any cache entry is written.
        for name in ("-rf", "vid,B", "vid\tB", "vid\\B"):
            with self.subTest(name=name):
                odd = os.path.join(self.crops, name)
                shutil.copytree(fixture("crops", "vid_one"), odd)
                self.before = snapshot(self.sandbox, {self.output, self.cache})
                try:
                    self.check_refused(self.run_tool(), name)
                    # With a frame list that does not ask for it, it is none of the run's business.
                    result = self.run_tool(*frame_list_args())
                    self.assertEqual(result.returncode, 0, result.stderr)
                finally:
                    for folder in (odd, self.output, self.cache):
                        shutil.rmtree(folder, ignore_errors=True)

    def test_merge_raw_score_file_names(self):
        good = self.va_run()
        for name in ("-rf", "vid,one", "vid\tone", "vid\\one"):
            with self.subTest(name=name):
                hostile = os.path.join(self.inputs, "run")
                shutil.rmtree(hostile, ignore_errors=True)
                shutil.copytree(good, hostile)
                os.rename(os.path.join(hostile, "raw", "VA", "vid_one.csv"),
                          os.path.join(hostile, "raw", "VA", name + ".csv"))
                self.before = snapshot(self.sandbox, {self.output, self.cache})
                result = tool("merge", "--inputs", hostile, "--output", self.output)
                self.check_refused(result, name)

    def test_merge_with_raw_scores_shorter_than_the_frame_list(self):
        # A shard run without the frame list (vid_gaps ends at its last crop, frame 35) merged with
        # the frame list (37 frames): an input error naming the raw file and both counts.
        shard = self.out("shard")
        result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", shard,
                      "--tasks", "va")
        self.assertEqual(result.returncode, 0, result.stderr)
        result = tool("merge", "--inputs", shard, "--output", self.output, *frame_list_args()[:2])
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn(os.path.join(shard, "raw", "VA", "vid_gaps.csv"), result.stderr)
        self.assertIn("35", result.stderr)
        self.assertIn("37", result.stderr)
        self.assertNotIn("internal", result.stderr)

    def test_unreadable_video_folder_fails_that_video_only(self):
        os.chmod(self.sandbox, 0o755)
        os.chmod(self.inputs, 0o777)
        set_dir = os.path.join(self.sandbox, "set")
        shutil.copytree(model_set("plain"), set_dir)
        lists = os.path.join(self.sandbox, "lists")
        shutil.copytree(fixture("frame_lists"), lists)
        for folder, dirs, files in os.walk(self.sandbox):
            for name in dirs + files:
                os.chmod(os.path.join(folder, name), 0o755 if name in dirs else 0o644)
        os.chmod(self.inputs, 0o777)
        os.chmod(os.path.join(self.crops, "vid_short"), 0)
        command = [TOOL, "run", "--model-set", set_dir, "--crops", self.crops,
                   "--output", os.path.join(self.inputs, "out"),
                   *(a.replace(fixture("frame_lists"), lists) for a in frame_list_args())]
        if os.geteuid() == 0:  # root reads any folder: run as nobody
            if not shutil.which("setpriv"):
                self.skipTest("running as root without setpriv")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
        result = subprocess.run(command, capture_output=True, text=True)
        self.assertEqual(result.returncode, 6, result.stderr)
        self.assertIn(os.path.join(self.crops, "vid_short"), result.stderr)
        self.assertIn("Permission denied", result.stderr)
        out = os.path.join(self.inputs, "out")
        self.assertTrue(os.path.exists(os.path.join(out, "raw", "VA", "vid_dense.csv")))
        self.assertFalse(os.path.exists(os.path.join(out, "raw", "VA", "vid_short.csv")))
        self.assertFalse(os.path.exists(os.path.join(out, "submission", "VA.txt")))
        self.assertEqual([f["video"] for f in read_json(os.path.join(out, "run.json"))["videos"]["failed"]],
                         ["vid_short"])


class Bench(Case):
    """`bench` times decoding and the encoder alone; `run` reports its peak memory and sizes its
    thread pools to the CPUs it may use."""

    def bench(self, *args):
        result = tool("bench", "--model-set", model_set("plain"), "--json", *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def test_decode_counts_every_crop_and_the_unreadable_ones(self):
        crops = os.path.join(WORK, "bench-crops")
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)
        with open(os.path.join(crops, "vid_dense", "00004.jpg"), "r+b") as f:
            f.truncate(200)
        on_disk = sum(1 for _, _, files in os.walk(crops) for name in files
                      if name.endswith(".jpg") and name[:-4].isdigit())
        measured = self.bench("--stage", "decode", "--crops", crops, "--batch-size", "4", "--decode-threads", "2")
        self.assertEqual(measured["stage"], "decode")
        self.assertEqual(measured["frames"], on_disk)
        self.assertEqual(measured["unreadable"], 1)
        self.assertEqual(measured["decode_threads"], 2)
        self.assertGreater(measured["frames_per_second"], 0)
        self.assertGreater(measured["peak_rss_mb"], 10)
        limited = self.bench("--stage", "decode", "--crops", crops, "--frames", "7")
        self.assertEqual(limited["frames"], 7)

    def test_encode_runs_the_requested_frames(self):
        measured = self.bench("--stage", "encode", "--frames", "10", "--batch-size", "4", "--threads", "1")
        self.assertEqual((measured["stage"], measured["frames"], measured["threads"]), ("encode", 10, 1))
        self.assertGreater(measured["seconds"], 0)
        text = tool("bench", "--model-set", model_set("plain"), "--stage", "encode")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"^encode: 256 images in [0-9.]+ s, [0-9.]+ images/s \(batch 32,")

    def test_mistakes_are_usage_errors(self):
        result = tool("bench", "--model-set", model_set("plain"), "--stage", "decode")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--stage decode needs --crops", result.stderr)
        empty = os.path.join(WORK, "bench-empty")
        os.makedirs(os.path.join(empty, "video"), exist_ok=True)
        result = tool("bench", "--model-set", model_set("plain"), "--stage", "decode", "--crops", empty)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn(empty + ": no crops in any video folder", result.stderr)

    def test_run_reports_peak_rss(self):
        out, result = self.run_tool_only(model_set("plain"))
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(out, "run.json")) as f:
            self.assertGreater(json.load(f)["peak_rss_mb"], 10)


    def test_thread_defaults_follow_the_cpus_the_process_may_use(self):
        # Pinned to one CPU, as taskset or a one-CPU Slurm cpuset would: one intra-op thread, one
        # decoder, however many CPUs the machine has.
        cpu = min(os.sched_getaffinity(0))
        out = self.out("pinned")
        result = subprocess.run([TOOL, "run", "--model-set", model_set("plain"), "--crops", fixture("crops"),
                                 "--output", out, *frame_list_args()], capture_output=True, text=True,
                                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        self.assertEqual(result.returncode, 0, result.stderr)
        summary = read_json(os.path.join(out, "run.json"))
        self.assertEqual((summary["usable_cpus"], summary["threads"], summary["decode_threads"]), (1, 1, 1))


class Failures(Case):
    """Bad input and bad models end in a clear message and a documented exit code."""

    def run_tool(self, set_dir, *extra, crops=None):
        out = self.out("tool")
        return out, tool("run", "--model-set", set_dir, "--crops", crops or fixture("crops"), "--output", out,
                         *frame_list_args(), *extra)

    def test_cuda_on_a_cpu_build_is_a_usage_error(self):
        _, result = self.run_tool(model_set("plain"), "--device", "cuda")
        if "CUDA device" in result.stderr and result.returncode == 0:
            self.skipTest("this build has CUDA")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--device cuda", result.stderr)

    def test_precision(self):
        _, result = self.run_tool(model_set("plain"), "--precision", "fp16", "--device", "cpu")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("fp16 encoders need a CUDA device", result.stderr)
        out, result = self.run_tool(model_set("plain"), "--precision", "bf16")
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(out, "run.json")) as f:
            self.assertEqual(json.load(f)["precision"], "bf16")

    def test_invalid_manifest_is_a_model_error(self):
        path = copy_of_plain_set("broken")
        manifest_path = os.path.join(path, "manifest.json")
        with open(manifest_path, "a") as f:
            f.write("}")
        _, result = self.run_tool(path)
        self.assertEqual(result.returncode, 4, result.stderr)
        self.assertIn(manifest_path, result.stderr)
        self.assertIn("invalid JSON", result.stderr)

    def test_head_output_width_mismatch_names_file_and_shapes(self):
        path = copy_of_plain_set("wrong-width")
        # An EXPR head (8 outputs) where the VA head (2) belongs.
        shutil.copy(os.path.join(path, "head_expr.pt"), os.path.join(path, "head_va.pt"))
        result = tool("info", "--model-set", path)
        self.assertEqual(result.returncode, 4, result.stderr)
        self.assertIn(os.path.join(path, "head_va.pt"), result.stderr)
        self.assertIn("[1, 8, 8]", result.stderr)
        self.assertIn("expected [1, 8, 2]", result.stderr)
        # run makes the same checks before it reads a crop: exit 4, not every video failing (6).
        out, result = self.run_tool(path)
        self.assertEqual(result.returncode, 4, result.stderr)
        self.assertIn("expected [1, 8, 2]", result.stderr)
        self.assertNotIn("crops (", result.stderr)

    def test_manifest_values_out_of_range_are_model_errors_before_any_crop(self):
        cases = [
            # A class_map index past the head's 8 outputs: info knew, run used to fail each video.
            (("tasks", "expr", "class_map"), [0, 1, 2, 3, 4, 5, 6, 8], "expected [1, 8, 9]"),
            (("tasks", "au", "threshold"), 2.0, "outside (0, 1)"),
            (("tasks", "au", "threshold"), -1, "outside (0, 1)"),
            (("sequence", "stride"), 1000, "is larger than window"),
        ]
        for keys, value, message in cases:
            with self.subTest(key=".".join(keys), value=value):
                path = copy_of_plain_set("out-of-range")
                manifest = read_json(os.path.join(path, "manifest.json"))
                if keys[0] == "sequence":
                    manifest["sequence"]["merge"] = "mean"
                node = manifest
                for key in keys[:-1]:
                    node = node[key]
                node[keys[-1]] = value
                with open(os.path.join(path, "manifest.json"), "w") as f:
                    json.dump(manifest, f)
                out, result = self.run_tool(path)
                self.assertEqual(result.returncode, 4, result.stderr)
                self.assertIn(message, result.stderr)
                self.assertNotIn("crops (", result.stderr)

    def test_corrupt_torchscript_is_a_model_error_naming_the_file(self):
        path = copy_of_plain_set("corrupt-head")
        head = os.path.join(path, "head_au.pt")
        with open(head, "r+b") as f:
            f.truncate(os.path.getsize(head) // 2)
        for command in (["info", "--model-set", path],
                        ["run", "--model-set", path, "--crops", fixture("crops"), "--output", self.out("x")]):
            result = tool(*command)
            self.assertEqual(result.returncode, 4, result.stderr)
            self.assertIn(head + ": cannot load TorchScript", result.stderr)

    def test_feature_dim_mismatch_names_encoder_and_shapes(self):
        path = copy_of_plain_set("wrong-dim")
        manifest = read_json(os.path.join(path, "manifest.json"))
        real = manifest["encoder"]["feature_dim"]
        manifest["encoder"]["feature_dim"] = real + 1
        json.dump(manifest, open(os.path.join(path, "manifest.json"), "w"))
        result = tool("info", "--model-set", path)
        self.assertEqual(result.returncode, 4, result.stderr)
        self.assertIn("encoder.pt", result.stderr)
        self.assertIn("[2, %d]" % real, result.stderr)
        self.assertIn("[2, %d] (feature_dim)" % (real + 1), result.stderr)

    def test_info_describes_a_valid_set(self):
        result = tool("info", "--model-set", model_set("plain"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("OK: every file loads", result.stdout)
        self.assertIn("task expr", result.stdout)

    def test_corrupt_crop_is_reported_and_treated_as_missing(self):
        crops = os.path.join(WORK, "corrupt-crops")
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)
        bad = os.path.join(crops, "vid_dense", "00004.jpg")
        with open(bad, "r+b") as f:
            f.truncate(200)
        # Damage that keeps the end-of-image marker (issue 21): half the data zeroed, or cut short
        # and the marker appended. libjpeg decodes both with a warning naming no file.
        zeroed, cut = (os.path.join(crops, "vid_gaps", name) for name in ("00005.jpg", "00006.jpg"))
        for path, damage in ((zeroed, lambda d: d[:len(d) // 2] + bytes(len(d) - len(d) // 2 - 2) + b"\xff\xd9"),
                             (cut, lambda d: d[:len(d) // 2] + b"\xff\xd9")):
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(damage(data))
        out, result = self.run_tool(model_set("plain"), crops=crops)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(bad, result.stderr)
        self.assertIn(zeroed + ": corrupt JPEG data", result.stderr)
        self.assertIn(cut + ": corrupt JPEG data", result.stderr)
        self.assertNotIn("\nCorrupt JPEG data", result.stderr)  # libjpeg's own, file-less line
        raw = read_lines(os.path.join(out, "raw", "VA", "vid_dense.csv"))
        self.assertTrue(raw[4].startswith("4,0,"), raw[4])
        summary = read_json(os.path.join(out, "run.json"))
        self.assertEqual(summary["frames"]["unreadable"], 3)
        # A crop whose header claims more pixels than --max-image-pixels is not decoded.
        out, result = self.run_tool(model_set("plain"), "--max-image-pixels", "1000", crops=crops)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("over the limit of 1000 pixels (--max-image-pixels)", result.stderr)

    def test_a_frame_far_past_the_others_in_a_frame_list_is_warned_about(self):
        # A typo'd frame (50000 for a 5-frame video) makes every frame up to it predicted.
        frame_list = os.path.join(WORK, "typo_VA.txt")
        with open(frame_list, "w") as f:
            f.write(HEADERS["VA"] + "\n" + "".join("vid_short/%05d.jpg\n" % n for n in (1, 2, 3, 4, 50000)))
        out = self.out("typo")
        result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", out,
                      "--frame-list", "va=" + frame_list)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(frame_list + ": video vid_short has 5 rows but its largest frame is 50000 (the next largest "
                      "is 4): a typo?", result.stderr)
        result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", out,
                      *frame_list_args())
        self.assertNotIn("a typo?", result.stderr)

    def test_entries_named_like_frames_that_are_not_files_are_named(self):
        crops = os.path.join(WORK, "not-files")
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)
        folder = os.path.join(crops, "vid_dense")
        os.remove(os.path.join(folder, "00005.jpg"))
        os.mkdir(os.path.join(folder, "00005.jpg"))
        os.remove(os.path.join(folder, "00006.jpg"))
        os.symlink(os.path.join(folder, "nowhere.jpg"), os.path.join(folder, "00006.jpg"))
        os.remove(os.path.join(folder, "00007.jpg"))
        os.mkfifo(os.path.join(folder, "00007.jpg"))
        out, result = self.run_tool(model_set("plain"), crops=crops)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(folder + ": 3 entries named like a frame but not a file ('00005.jpg' is a folder, ...)",
                      result.stderr)
        self.assertNotIn("not named like a frame", result.stderr)
        raw = read_lines(os.path.join(out, "raw", "VA", "vid_dense.csv"))
        self.assertEqual([line.split(",")[1] for line in raw[5:8]], ["0", "0", "0"])  # missing frames

    def test_crops_of_another_size_or_grayscale_are_used(self):
        import cv2
        crops = os.path.join(WORK, "odd-crops")
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)
        rng = np.random.default_rng(3)
        cv2.imwrite(os.path.join(crops, "vid_dense", "00003.jpg"), rng.integers(0, 256, (150, 200, 3), np.uint8))
        cv2.imwrite(os.path.join(crops, "vid_dense", "00005.jpg"), rng.integers(0, 256, (112, 112), np.uint8))
        ours, result = self.run_tool(model_set("plain"), crops=crops)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("treated as missing", result.stderr)
        raw = read_lines(os.path.join(ours, "raw", "VA", "vid_dense.csv"))
        self.assertTrue(raw[3].startswith("3,1,") and raw[5].startswith("5,1,"), raw[:6])
        # The reference decodes and resizes them the same way.
        ref = self.out("reference")
        reference = subprocess.run([PYTHON, os.path.join(ROOT, "tests/reference_pipeline.py"), "--model-set",
                                    model_set("plain"), "--crops", crops, "--output", ref, *frame_list_args()],
                                   capture_output=True, text=True)
        self.assertEqual(reference.returncode, 0, reference.stderr)
        compared = subprocess.run([PYTHON, os.path.join(ROOT, "tests/compare_outputs.py"), "--model-set",
                                   model_set("plain"), ref, ours], capture_output=True, text=True)
        self.assertEqual(compared.returncode, 0, compared.stdout + compared.stderr)

    def test_one_failed_video_does_not_stop_the_others(self):
        crops = os.path.join(WORK, "no-crops-for-one-video")
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)
        shutil.rmtree(os.path.join(crops, "vid_short"))
        set_dir = model_set("mean")  # nearest_feature cannot fill a video without any crop
        out, result = self.run_tool(set_dir, crops=crops)
        self.assertEqual(result.returncode, 6, result.stderr)
        self.assertIn("vid_short", result.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "raw", "VA", "vid_dense.csv")))
        self.assertFalse(os.path.exists(os.path.join(out, "raw", "VA", "vid_short.csv")))
        for task in ("VA", "EXPR", "AU"):
            self.assertFalse(os.path.exists(os.path.join(out, "submission", task + ".txt")), task)
        summary = read_json(os.path.join(out, "run.json"))
        self.assertEqual([f["video"] for f in summary["videos"]["failed"]], ["vid_short"])

    def test_nan_from_the_encoder_fails_that_video_only(self):
        path = copy_of_plain_set("nan-encoder")
        manifest = read_json(os.path.join(path, "manifest.json"))
        script = os.path.join(WORK, "make_nan_encoder.py")
        with open(script, "w") as f:
            f.write("""
import sys, torch
class NanOnDark(torch.nn.Module):
    # The real encoder, except that a frame whose mean pixel is low gives NaN.
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        dark = x.mean(dim=[1, 2, 3]) < -1.2
        return torch.where(dark.unsqueeze(1), torch.full_like(y, float("nan")), y)
inner = torch.jit.load(sys.argv[1])
torch.jit.script(NanOnDark(inner)).save(sys.argv[1])
""")
        subprocess.run([PYTHON, script, os.path.join(path, manifest["encoder"]["file"])], check=True)
        crops = os.path.join(WORK, "nan-crops")
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)
        import cv2
        cv2.imwrite(os.path.join(crops, "vid_short", "00002.jpg"), np.zeros((112, 112, 3), np.uint8))
        out, result = self.run_tool(path, crops=crops)
        self.assertEqual(result.returncode, 6, result.stderr)
        self.assertIn("NaN/Inf for frame 2", result.stderr)
        self.assertIn("vid_short", result.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "raw", "VA", "vid_dense.csv")))
        self.assertFalse(os.path.exists(os.path.join(out, "raw", "VA", "vid_short.csv")))

    def test_file_size_limit_is_an_output_error(self):
        out = self.out("limited")
        result = subprocess.run(["bash", "-c", 'ulimit -f 4; exec "$@"', "bash", TOOL, "run", "--model-set",
                                 model_set("plain"), "--crops", fixture("crops"), "--output", out,
                                 *frame_list_args()], capture_output=True, text=True)
        self.assertEqual(result.returncode, 5, result.stderr)
        self.assertIn("File too large", result.stderr)
        leftovers = [f for _, _, files in os.walk(out) for f in files if ".tmp-" in f]
        self.assertEqual(leftovers, [])

    def test_empty_video_folder(self):
        crops = os.path.join(WORK, "empty-video-folder")
        shutil.rmtree(crops, ignore_errors=True)
        shutil.copytree(fixture("crops"), crops)
        folder = os.path.join(crops, "vid_short")
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        # Listed in the frame lists, zero_feature: predicted from zero features, with a warning.
        out, result = self.run_tool(model_set("plain"), crops=crops)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(folder + ": empty video folder (no crops); all", result.stderr)
        raw = read_lines(os.path.join(out, "raw", "VA", "vid_short.csv"))
        self.assertTrue(all(line.split(",")[1] == "0" for line in raw[1:] if line), raw)
        # nearest_feature has nothing to copy from: that video fails, the others finish.
        out, result = self.run_tool(model_set("mean"), crops=crops)
        self.assertEqual(result.returncode, 6, result.stderr)
        self.assertIn("video vid_short failed", result.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "raw", "VA", "vid_dense.csv")))
        # Without frame lists its frame count is unknown: warned once (not per task), no rows.
        out = self.out("crops-only")
        result = tool("run", "--model-set", model_set("plain"), "--crops", crops, "--output", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr.count(folder + ": empty video folder"), 1, result.stderr)
        with open(os.path.join(out, "submission", "VA.txt")) as f:
            self.assertNotIn("vid_short/", f.read())

    def test_output_folder_that_cannot_be_created_is_an_output_error(self):
        blocker = os.path.join(WORK, "a-regular-file")
        with open(blocker, "w") as f:
            f.write("x")
        result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output",
                      os.path.join(blocker, "out"), *frame_list_args())
        self.assertEqual(result.returncode, 5, result.stderr)
        self.assertIn(os.path.join(blocker, "out") + ": cannot create the output folder", result.stderr)

    def test_missing_crops_folder_is_a_usage_error(self):
        _, result = self.run_tool(model_set("plain"), crops=os.path.join(WORK, "nowhere"))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("nowhere", result.stderr)

    def test_malformed_frame_list_names_the_line(self):
        bad = os.path.join(WORK, "bad_VA.txt")
        with open(bad, "w") as f:
            f.write(HEADERS["VA"] + "\nvid_one/00001.jpg,0,0\nvid_one/first.jpg,0,0\n")
        out = self.out("tool")
        result = tool("run", "--model-set", model_set("plain"), "--crops", fixture("crops"), "--output", out,
                      "--frame-list", "va=" + bad)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertIn(bad + ":3:", result.stderr)


if __name__ == "__main__":
    unittest.main()
