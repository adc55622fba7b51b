#!/usr/bin/python3
"""End-to-end tests of the default model set (face-api.js FaceExpressionNet from npm).

setUpModule builds the set into a scratch folder with scripts/make_default_model_set.sh (it
reuses the package in .cache/npm/face-api-1.7.15 when present, otherwise runs `npm pack`). The
whole module is skipped, with a message saying why, when the package cannot be obtained (npm
missing or the registry unreachable: the script's exit code 3). Any other failure is a failure.

- the manifest provides `expr` only (class map to the ABAW order, `Other` never predicted,
  interpolated predictions for frames without a crop); `abaw-infer info` accepts the set;
  asking for VA or AU is a usage error, never made-up numbers;
- on the 7 photos of ../shared/realdata/expressions (face cropped with OpenCV's Haar cascade,
  square box + 10 % margin, 112 x 112 JPEG), the converted network agrees with
  ../shared/models/torchscript/faceapi_expression_rgb112.pt within 1e-3 and picks the labelled
  class on at least 6 of the 7 (skipped when ../shared or the cascade is absent);
- `abaw-infer run` on those crops writes an EXPR submission whose labels are the ABAW indices
  of the Python predictions (happy.jpg -> 4), raw scores within 1e-4 of Python's, and a frame
  without a crop gets the interpolation of its neighbours.

Run with Debian's Python: /usr/bin/python3 tests/e2e/test_default_set.py -v
Environment: ABAW_INFER (the built binary; default build/abaw-infer), ABAW_SHARED (default
../shared next to the repository), ABAW_KEEP_TEST_FILES=1 keeps the scratch folder.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.environ.get("ABAW_INFER", os.path.join(ROOT, "build", "abaw-infer"))
SHARED = os.environ.get("ABAW_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
PHOTOS = os.path.join(SHARED, "realdata", "expressions")
REFERENCE = os.path.join(SHARED, "models", "torchscript", "faceapi_expression_rgb112.pt")
CASCADE = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"

FACEAPI_CLASSES = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
ABAW_CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
CLASS_MAP = [0, 3, 5, 4, 1, 2, 6, None]
# face-api's label -> ABAW class index
LABEL_TO_ABAW = {FACEAPI_CLASSES[k]: j for j, k in enumerate(CLASS_MAP) if k is not None}
EXPR_HEADER = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
MARGIN = 0.10  # square face box grown by 10 % (5 % each side)
CROP_SIZE = 112

WORK = None
SET = None


def setUpModule():
    global WORK, SET
    WORK = tempfile.mkdtemp(prefix="abaw-default-set-")
    SET = os.path.join(WORK, "default")
    env = dict(os.environ, PYTHON=sys.executable, npm_config_fetch_retries="1")
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "make_default_model_set.sh"), "--output", SET],
                       capture_output=True, text=True, env=env)
    if r.returncode == 3:
        tearDownModule()
        raise unittest.SkipTest("the default set cannot be built: @vladmandic/face-api@1.7.15 is not in "
                                ".cache/npm and npm cannot fetch it (" + r.stderr.strip().splitlines()[-1] + ")")
    if r.returncode != 0:
        raise RuntimeError(f"make_default_model_set.sh failed ({r.returncode}):\n{r.stderr}")


def tearDownModule():
    if WORK and not os.environ.get("ABAW_KEEP_TEST_FILES"):
        shutil.rmtree(WORK, ignore_errors=True)


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def need_tool(test):
    if not (os.path.isfile(TOOL) and os.access(TOOL, os.X_OK)):
        test.skipTest(f"abaw-infer not built ({TOOL}); set ABAW_INFER")


def need_photos(test):
    if not os.path.isfile(os.path.join(PHOTOS, "labels.csv")):
        test.skipTest(f"{PHOTOS} is absent (../shared is not available)")
    if not os.path.isfile(CASCADE):
        test.skipTest(f"{CASCADE} is absent (apt-get install opencv-data)")


def read_labels():
    with open(os.path.join(PHOTOS, "labels.csv"), newline="", encoding="utf-8") as f:
        return {os.path.splitext(row["file"])[0]: row["label_from_filename"] for row in csv.DictReader(f)}


def face_crop(path):
    """Largest Haar face, squared, grown by MARGIN, edges replicated, CROP_SIZE x CROP_SIZE (BGR)."""
    import cv2
    img = cv2.imread(path)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    faces = cv2.CascadeClassifier(CASCADE).detectMultiScale(gray, 1.1, 5, minSize=(40, 40))
    if len(faces) == 0:
        raise AssertionError(f"no face found in {path}")
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    side = int(round(max(w, h) * (1 + MARGIN)))
    x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
    padded = cv2.copyMakeBorder(img, side, side, side, side, cv2.BORDER_REPLICATE)
    crop = padded[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
    return cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)


_crops = {}


def crops():
    """{name: path of <WORK>/crops/<name>/00001.jpg} and the crops folder, made once."""
    if not _crops:
        import cv2
        for name in sorted(read_labels()):
            folder = os.path.join(WORK, "crops", name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "00001.jpg")
            cv2.imwrite(path, face_crop(os.path.join(PHOTOS, name + ".jpg")), [cv2.IMWRITE_JPEG_QUALITY, 95])
            _crops[name] = path
    return _crops


def rgb_batch(paths):
    """float32 [N, 3, 112, 112] RGB 0..255 as abaw-infer decodes the crops (no resize at 112)."""
    import cv2
    import torch
    images = []
    for p in paths:
        bgr = cv2.imread(p)
        if bgr.shape[:2] != (CROP_SIZE, CROP_SIZE):
            bgr = cv2.resize(bgr, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().contiguous()


def manifest():
    with open(os.path.join(SET, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def set_probabilities(rgb):
    """The set's files as the manifest says: preprocess, encoder, head, softmax -> [N, 7]."""
    import torch
    pre = manifest()["encoder"]["preprocess"]
    mean = torch.tensor(pre["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"]).view(1, 3, 1, 1)
    encoder = torch.jit.load(os.path.join(SET, "encoder.pt"), map_location="cpu").eval()
    head = torch.jit.load(os.path.join(SET, "head_expr.pt"), map_location="cpu").eval()
    with torch.no_grad():
        feats = encoder((rgb * pre["scale"] - mean) / std)
        return torch.softmax(head(feats.unsqueeze(0))[0], dim=-1)


class Manifest(unittest.TestCase):
    def test_only_expr_is_provided(self):
        m = manifest()
        self.assertEqual(list(m["tasks"]), ["expr"])
        expr = m["tasks"]["expr"]
        self.assertEqual(expr["class_map"], CLASS_MAP)
        self.assertEqual(expr["activation"], "softmax")
        self.assertEqual(m["encoder"]["feature_dim"], 256)
        self.assertEqual(m["sequence"]["missing_frames"], "interpolate_predictions")

    def test_info_accepts_the_set(self):
        need_tool(self)
        r = tool("info", "--model-set", SET)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_va_and_au_are_not_provided(self):
        need_tool(self)
        import cv2
        folder = os.path.join(WORK, "noise", "v")
        os.makedirs(folder, exist_ok=True)
        rng = np.random.default_rng(0)
        cv2.imwrite(os.path.join(folder, "00001.jpg"), rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
        for task in ("va", "au"):
            r = tool("run", "--model-set", SET, "--crops", os.path.dirname(folder),
                     "--output", os.path.join(WORK, "noise-out-" + task), "--tasks", task)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("does not provide", r.stderr)
        out = os.path.join(WORK, "noise-out")
        r = tool("run", "--model-set", SET, "--crops", os.path.dirname(folder), "--output", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(out, "submission"))), ["EXPR.txt"])


class RealPhotos(unittest.TestCase):
    def setUp(self):
        need_photos(self)
        self.labels = read_labels()
        self.names = sorted(self.labels)
        self.crops = crops()

    def test_matches_reference_torchscript(self):
        if not os.path.isfile(REFERENCE):
            self.skipTest(f"{REFERENCE} is absent")
        import cv2
        import torch
        reference = torch.jit.load(REFERENCE, map_location="cpu").eval()
        crops_rgb = rgb_batch([self.crops[n] for n in self.names])
        # the whole photos squashed to 112 x 112 too: other content, same network
        whole = torch.stack([torch.from_numpy(cv2.cvtColor(cv2.resize(cv2.imread(os.path.join(PHOTOS, n + ".jpg")),
                             (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float()
                             for n in self.names])
        for what, rgb in (("face crops", crops_rgb), ("whole photos", whole)):
            with torch.no_grad():
                expected = reference(rgb)
            diff = (set_probabilities(rgb) - expected).abs().max().item()
            print(f"\n{what}: max abs difference vs the reference TorchScript {diff:.3g}", file=sys.stderr)
            self.assertLess(diff, 1e-3, what)

    def test_picks_the_labelled_class(self):
        probs = set_probabilities(rgb_batch([self.crops[n] for n in self.names]))
        report, hits = [], 0
        for name, p in zip(self.names, probs):
            predicted = FACEAPI_CLASSES[int(p.argmax())]
            hits += predicted == self.labels[name]
            report.append(f"{name}: {predicted} ({p.max().item():.2f}), labelled {self.labels[name]}")
        print("\n" + "\n".join(report) + f"\n{hits}/{len(self.names)} correct", file=sys.stderr)
        self.assertGreaterEqual(hits, 6, "\n".join(report))

    def test_run_writes_abaw_labels(self):
        need_tool(self)
        probs = set_probabilities(rgb_batch([self.crops[n] for n in self.names])).numpy()
        # ABAW order: column j = face-api output CLASS_MAP[j], Other = 0
        abaw = np.stack([probs[:, k] if k is not None else np.zeros(len(probs), np.float32) for k in CLASS_MAP], 1)
        # one video with a gap: frame 1 = happy, frame 2 missing, frame 3 = sad
        crop_dir = os.path.dirname(os.path.dirname(self.crops[self.names[0]]))
        gap = os.path.join(crop_dir, "zz_gap")
        os.makedirs(gap, exist_ok=True)
        shutil.copy(self.crops["happy"], os.path.join(gap, "00001.jpg"))
        shutil.copy(self.crops["sad"], os.path.join(gap, "00003.jpg"))
        out = os.path.join(WORK, "run-out")
        r = tool("run", "--model-set", SET, "--crops", crop_dir, "--output", out, "--tasks", "expr")
        self.assertEqual(r.returncode, 0, r.stderr)

        with open(os.path.join(out, "submission", "EXPR.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], EXPR_HEADER)
        rows = dict(line.split(",") for line in lines[1:])
        expected_rows = [f"{n}/00001.jpg" for n in self.names] + [f"zz_gap/0000{i}.jpg" for i in (1, 2, 3)]
        self.assertEqual([line.split(",")[0] for line in lines[1:]], expected_rows)
        for i, name in enumerate(self.names):
            label = int(rows[f"{name}/00001.jpg"])
            self.assertEqual(label, int(abaw[i].argmax()), name)
            self.assertNotEqual(label, 7, "Other is never predicted")
            if FACEAPI_CLASSES[int(probs[i].argmax())] == self.labels[name]:
                self.assertEqual(label, LABEL_TO_ABAW[self.labels[name]], name)
        self.assertEqual(int(rows["zz_gap/00001.jpg"]), LABEL_TO_ABAW["happy"])

        for i, name in enumerate(self.names):
            raw = np.loadtxt(os.path.join(out, "raw", "EXPR", name + ".csv"), delimiter=",", skiprows=1, ndmin=2)
            self.assertEqual(raw.shape, (1, 10))
            np.testing.assert_allclose(raw[0, 2:], abaw[i], atol=1e-4, err_msg=name)
        raw = np.loadtxt(os.path.join(out, "raw", "EXPR", "zz_gap.csv"), delimiter=",", skiprows=1, ndmin=2)
        self.assertEqual(raw[:, 1].tolist(), [1, 0, 1])
        happy, sad = self.names.index("happy"), self.names.index("sad")
        np.testing.assert_allclose(raw[0, 2:], abaw[happy], atol=1e-4)
        np.testing.assert_allclose(raw[2, 2:], abaw[sad], atol=1e-4)
        np.testing.assert_allclose(raw[1, 2:], (abaw[happy] + abaw[sad]) / 2, atol=1e-4)


class RealClips(unittest.TestCase):
    """`crop` then `run` with the default set on real clips: the calm clip comes out mostly
    Neutral, the smiling stretch of liveportrait_d0 mostly Happiness."""

    def setUp(self):
        need_tool(self)
        self.clips = os.path.join(SHARED, "realdata", "videos")
        if not os.path.isdir(self.clips):
            self.skipTest("../shared/realdata/videos is absent")

    def test_calm_clip_is_neutral_and_smile_is_happiness(self):
        videos = os.path.join(WORK, "clips")
        os.makedirs(videos, exist_ok=True)
        for name in ("liveportrait_s18.mp4", "liveportrait_d0.mp4"):
            shutil.copy(os.path.join(self.clips, name), videos)
        crops_dir, out = os.path.join(WORK, "clip-crops"), os.path.join(WORK, "clip-out")
        result = tool("crop", "--videos", videos, "--output", crops_dir, "--face-models", os.path.join(SET, "faces"))
        self.assertEqual(result.returncode, 0, result.stderr)
        result = tool("run", "--model-set", SET, "--crops", crops_dir, "--output", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        labels = {}
        with open(os.path.join(out, "submission", "EXPR.txt")) as f:
            self.assertEqual(f.readline().strip(), EXPR_HEADER)
            for line in f:
                location, label = line.strip().split(",")
                labels.setdefault(location.split("/")[0], []).append(int(label))
        calm = labels["liveportrait_s18"]
        self.assertGreater(calm.count(0) / len(calm), 0.8, calm)
        # The smile of liveportrait_d0 spans roughly its frames 22-69 (of 78).
        smile = labels["liveportrait_d0"][25:65]
        self.assertGreater(smile.count(4) / len(smile), 0.8, labels["liveportrait_d0"])



def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class RunVideos(unittest.TestCase):
    """`run --videos`: real clips straight to a submission, the same as `crop` + `run --crops`."""

    CLIPS = ("liveportrait_d18.mp4", "liveportrait_d19.mp4")

    def setUp(self):
        need_tool(self)
        clips = os.path.join(SHARED, "realdata", "videos")
        if not all(os.path.isfile(os.path.join(clips, c)) for c in self.CLIPS):
            self.skipTest("../shared/realdata/videos is absent")
        self.work = tempfile.mkdtemp(prefix="run-videos-", dir=WORK)
        self.videos = os.path.join(self.work, "videos")
        os.makedirs(self.videos)
        for name in self.CLIPS:
            shutil.copy(os.path.join(clips, name), self.videos)
        self.faces = os.path.join(SET, "faces")

    def run_videos(self, out, *args):
        return tool("run", "--model-set", SET, "--videos", self.videos, "--output", os.path.join(self.work, out),
                    "--face-models", self.faces, *args)

    def submission(self, out):
        return read_bytes(os.path.join(self.work, out, "submission", "EXPR.txt"))

    def assert_same_crops(self, saved, crops, names):
        """`--save-crops` wrote the crop files, boxes CSVs and frame counts that `crop` wrote."""
        for name in names:
            self.assertEqual(sorted(os.listdir(os.path.join(saved, name))), sorted(os.listdir(os.path.join(crops, name))))
            for crop in os.listdir(os.path.join(crops, name)):
                self.assertEqual(read_bytes(os.path.join(saved, name, crop)), read_bytes(os.path.join(crops, name, crop)),
                                 crop)
            self.assertEqual(read_bytes(os.path.join(saved, name + ".boxes.csv")),
                             read_bytes(os.path.join(crops, name + ".boxes.csv")))
        self.assertEqual(read_bytes(os.path.join(saved, "frame_counts.csv")),
                         read_bytes(os.path.join(crops, "frame_counts.csv")))

    def test_same_as_crop_then_run_and_saved_crops_reproduce_it(self):
        crops = os.path.join(self.work, "crops")
        r = tool("crop", "--videos", self.videos, "--output", crops, "--face-models", self.faces)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = tool("run", "--model-set", SET, "--crops", crops, "--output", os.path.join(self.work, "two-steps"))
        self.assertEqual(r.returncode, 0, r.stderr)
        saved = os.path.join(self.work, "saved")
        r = self.run_videos("direct", "--save-crops", saved)
        self.assertEqual(r.returncode, 0, r.stderr)
        direct = self.submission("direct")
        self.assertEqual(direct, self.submission("two-steps"))
        # Every decoded frame has a row, as from crop's frame_counts.csv.
        with open(os.path.join(crops, "frame_counts.csv")) as f:
            frames = sum(int(line.split(",")[1]) for line in f.readlines()[1:])
        self.assertEqual(direct.decode().count("\n"), frames + 1)
        # The saved crops are the files `crop` writes, and `run --crops` on them predicts the same.
        self.assert_same_crops(saved, crops, [os.path.splitext(clip)[0] for clip in self.CLIPS])
        r = tool("run", "--model-set", SET, "--crops", saved, "--output", os.path.join(self.work, "reread"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.submission("reread"), direct)
        with open(os.path.join(self.work, "direct", "run.json")) as f:
            summary = json.load(f)
        self.assertEqual(summary["video_stages"]["frames_decoded"], frames)
        self.assertIn("box crops 112 px", summary["crops"]["faces"])

    def test_resume_and_feature_cache(self):
        features = os.path.join(self.work, "features")
        r = self.run_videos("first", "--features", features)
        self.assertEqual(r.returncode, 0, r.stderr)
        first = self.submission("first")
        os.remove(os.path.join(self.work, "first", "submission", "EXPR.txt"))
        r = self.run_videos("first", "--features", features, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--resume: 2 of 2 videos already done", r.stderr)
        self.assertEqual(self.submission("first"), first)
        r = self.run_videos("cached", "--features", features)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 of 2 videos reused", r.stderr)
        self.assertEqual(self.submission("cached"), self.submission("first"))
        # A changed file is decoded again, never taken for the cached one.
        with open(os.path.join(self.videos, self.CLIPS[0]), "ab") as f:
            f.write(b"\0")
        r = self.run_videos("changed", "--features", features)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 of 2 videos reused", r.stderr)

    def test_frame_list_rows(self):
        name = os.path.splitext(self.CLIPS[0])[0]
        frame_list = os.path.join(self.work, "EXPR.txt")
        with open(frame_list, "w") as f:
            f.write(EXPR_HEADER + "\n" + "".join("%s/%05d.jpg\n" % (name, i) for i in (3, 1, 2)))
        r = self.run_videos("listed", "--frame-list", "expr=" + frame_list)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [line.split(",")[0] for line in self.submission("listed").decode().splitlines()[1:]]
        self.assertEqual(rows, ["%s/%05d.jpg" % (name, i) for i in (3, 1, 2)])
        # A listed video without a file fails alone: exit 6, no submission.
        with open(frame_list, "a") as f:
            f.write("missing_video/00001.jpg\n")
        r = self.run_videos("missing", "--frame-list", "expr=" + frame_list)
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("no video file named missing_video", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.work, "missing", "submission", "EXPR.txt")))

    def test_bad_videos_fail_alone(self):
        with open(os.path.join(self.videos, "empty.mp4"), "wb"):
            pass
        with open(os.path.join(self.videos, "noise.mp4"), "wb") as f:
            f.write(os.urandom(5000))
        # Cut in half: these files keep their index at the end, so it cannot be opened at all.
        cut = read_bytes(os.path.join(self.videos, self.CLIPS[0]))
        with open(os.path.join(self.videos, "cut.mp4"), "wb") as f:
            f.write(cut[:len(cut) // 2])
        # A name that cannot be a video name fails alone too, as in `crop`.
        shutil.copy(os.path.join(self.videos, self.CLIPS[0]), os.path.join(self.videos, "a,b.mp4"))
        r = self.run_videos("bad")
        self.assertEqual(r.returncode, 6, r.stderr)
        for name in ("empty.mp4", "noise.mp4", "cut.mp4", "a,b.mp4"):
            self.assertIn(name, r.stderr)
        raw = os.path.join(self.work, "bad", "raw")
        written = sorted(os.listdir(os.path.join(raw, os.listdir(raw)[0])))
        self.assertEqual([os.path.splitext(f)[0] for f in written], sorted(os.path.splitext(c)[0] for c in self.CLIPS))
        with open(os.path.join(self.work, "bad", "run.json")) as f:
            failed = sorted(v["video"] for v in json.load(f)["videos"]["failed"])
        self.assertEqual(failed, ["a,b.mp4", "cut", "empty", "noise"])
        # Their rows are missing, so no submission pretends to be complete.
        self.assertFalse(os.path.exists(os.path.join(self.work, "bad", "submission", "EXPR.txt")))

    def test_two_people_as_crop_names_them(self):
        """`run --videos --faces 2`: one entry per person, `<video>_left` and `<video>_right` as
        `crop --faces 2` names them, with the same predictions as `crop --faces 2` + `run --crops`."""
        import cv2
        import numpy as np

        def frames(clip, count):
            capture, out = cv2.VideoCapture(os.path.join(SHARED, "realdata", "videos", clip)), []
            while len(out) < count:
                ok, frame = capture.read()
                self.assertTrue(ok, clip)
                out.append(frame)
            return out

        a, b = frames("liveportrait_d18.mp4", 90), frames("liveportrait_d20.mp4", 90)
        videos = os.path.join(self.work, "pair-video")
        os.makedirs(videos)
        writer = cv2.VideoWriter(os.path.join(videos, "pair.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (960, 480))
        for i in range(90):  # swapped after 45 frames: the folders follow the people
            writer.write(np.hstack([a[i], b[i]] if i < 45 else [b[i], a[i]]))
        writer.release()
        crops = os.path.join(self.work, "pair-crops")
        r = tool("crop", "--videos", videos, "--output", crops, "--face-models", self.faces, "--faces", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = tool("run", "--model-set", SET, "--crops", crops, "--output", os.path.join(self.work, "pair-two-steps"))
        self.assertEqual(r.returncode, 0, r.stderr)
        saved = os.path.join(self.work, "pair-saved")
        r = tool("run", "--model-set", SET, "--videos", videos, "--output", os.path.join(self.work, "pair-direct"),
                 "--face-models", self.faces, "--faces", "2", "--save-crops", saved)
        self.assertEqual(r.returncode, 0, r.stderr)
        direct = self.submission("pair-direct")
        self.assertEqual(direct, self.submission("pair-two-steps"))
        rows = [line.split(",")[0] for line in direct.decode().splitlines()[1:]]
        self.assertEqual(rows, ["pair_left/%05d.jpg" % i for i in range(1, 91)] +
                         ["pair_right/%05d.jpg" % i for i in range(1, 91)])
        self.assert_same_crops(saved, crops, ["pair_left", "pair_right"])
        with open(os.path.join(self.work, "pair-direct", "run.json")) as f:
            self.assertEqual(json.load(f)["video_stages"]["frames_decoded"], 90)  # the file's, once
        # --resume takes the people pass kept in state/, and cuts the same crops from its boxes.
        direct_run = ["run", "--model-set", SET, "--videos", videos, "--output", os.path.join(self.work, "pair-direct"),
                      "--face-models", self.faces, "--faces", "2", "--save-crops", saved, "--resume"]
        def resume_without(marker):  # one person to do again; returns the log
            os.remove(os.path.join(self.work, "pair-direct", "state", marker))
            r = tool(*direct_run)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.submission("pair-direct"), direct)
            return r.stderr

        log = resume_without("pair_left.done")
        self.assertIn("pair: its people pass is reused from", log)
        self.assertIn("--resume: 1 of 2 videos already done", log)
        # A damaged one is said so and passed again.
        with open(os.path.join(self.work, "pair-direct", "state", "pair.people.json"), "w") as f:
            f.write('{"key": "')
        log = resume_without("pair_right.done")
        self.assertIn("pair.people.json: not a people pass this version wrote", log)
        self.assertIn("the people pass runs again", log)
        # A feature cache keeps the pass too: a run into another folder then neither passes nor encodes.
        features = os.path.join(self.work, "pair-features")
        for k in (1, 2):
            r = tool("run", "--model-set", SET, "--videos", videos, "--output", os.path.join(self.work, "pair-f%d" % k),
                     "--face-models", self.faces, "--faces", "2", "--features", features)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.submission("pair-f%d" % k), direct)
        self.assertIn("pair: its people pass is reused from " + os.path.join(features, "pair.people.json"), r.stderr)
        # Shards split video files, each with all its people: a shard passes over its own files only.
        two_files = os.path.join(self.work, "pair-videos")
        os.makedirs(two_files)
        for name in ("pair", "pair2"):
            shutil.copy(os.path.join(videos, "pair.mp4"), os.path.join(two_files, name + ".mp4"))
        for k, name in ((1, "pair"), (2, "pair2")):
            r = tool("run", "--model-set", SET, "--videos", two_files, "--output",
                     os.path.join(self.work, "pair-shard%d" % k), "--face-models", self.faces, "--faces", "2",
                     "--shard", "%d/2" % k)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("people pass, video 1/1: " + os.path.join(two_files, name + ".mp4"), r.stderr)
            self.assertEqual(sorted(os.listdir(os.path.join(self.work, "pair-shard%d" % k, "raw", "EXPR"))),
                             [name + "_left.csv", name + "_right.csv"])
        r = tool("merge", "--inputs", os.path.join(self.work, "pair-shard1"), os.path.join(self.work, "pair-shard2"),
                 "--output", os.path.join(self.work, "pair-merged"), "--model-set", SET)
        self.assertEqual(r.returncode, 0, r.stderr)
        # A frame list naming people of both files (pair_right sorts after pair2_left) gets both.
        listed = os.path.join(self.work, "PAIRS_EXPR.txt")
        with open(listed, "w") as f:
            f.write(EXPR_HEADER + "\npair_right/00001.jpg\npair2_left/00002.jpg\n")
        r = tool("run", "--model-set", SET, "--videos", two_files, "--output", os.path.join(self.work, "pairs-listed"),
                 "--face-models", self.faces, "--faces", "2", "--frame-list", "expr=" + listed)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = self.submission("pairs-listed").decode().splitlines()[1:]
        self.assertEqual([row.split(",")[0] for row in rows], ["pair_right/00001.jpg", "pair2_left/00002.jpg"])
        copy = direct.replace(b"pair_left/", b"pair2_left/").replace(b"pair_right/", b"pair2_right/")
        lines = direct.splitlines(keepends=True)
        copy_lines = copy.splitlines(keepends=True)
        self.assertEqual(self.submission("pair-merged"),
                         lines[0] + b"".join(copy_lines[1:]) + b"".join(lines[1:]))  # pair2_* sort first
        # A frame list names people as Aff-Wild2 does; one nobody is fails alone.
        frame_list = os.path.join(self.work, "PAIR_EXPR.txt")
        with open(frame_list, "w") as f:
            f.write(EXPR_HEADER + "\n" + "".join("pair_right/%05d.jpg\n" % i for i in (1, 2)) + "pair_middle/00001.jpg\n")
        r = tool("run", "--model-set", SET, "--videos", videos, "--output", os.path.join(self.work, "pair-listed"),
                 "--face-models", self.faces, "--faces", "2", "--frame-list", "expr=" + frame_list)
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("no person pair_middle in", r.stderr)
        self.assertIn("people found: pair_left, pair_right", r.stderr)
        raw = os.path.join(self.work, "pair-listed", "raw")
        self.assertEqual(sorted(os.listdir(os.path.join(raw, os.listdir(raw)[0]))), ["pair_right.csv"])

    def test_manifest_names_the_face_pipeline(self):
        aligned_set = os.path.join(self.work, "aligned-set")
        shutil.copytree(SET, aligned_set)
        with open(os.path.join(aligned_set, "manifest.json")) as f:
            manifest = json.load(f)
        manifest["faces"] = {"style": "aligned", "size": 96}
        with open(os.path.join(aligned_set, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        saved = os.path.join(self.work, "aligned-crops")
        r = tool("run", "--model-set", aligned_set, "--videos", os.path.join(self.videos, self.CLIPS[0]), "--output",
                 os.path.join(self.work, "aligned"), "--face-models", self.faces, "--save-crops", saved)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(saved, "crop.json")) as f:
            record = json.load(f)["videos"][os.path.splitext(self.CLIPS[0])[0]]
        self.assertEqual((record["style"], record["size"]), ("aligned", 96))
        r = tool("info", "--model-set", aligned_set)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("faces       (run --videos) style aligned size 96", r.stdout)
        # The command line wins over the manifest.
        r = tool("run", "--model-set", aligned_set, "--videos", os.path.join(self.videos, self.CLIPS[0]), "--output",
                 os.path.join(self.work, "boxed"), "--face-models", self.faces, "--style", "box")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.work, "boxed", "run.json")) as f:
            self.assertIn("box crops 96 px", json.load(f)["crops"]["faces"])


if __name__ == "__main__":
    unittest.main()
