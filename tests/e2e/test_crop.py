#!/usr/bin/python3
"""End-to-end tests of `abaw-infer crop` and of `run` on what it writes.

Uses real faces from ../shared (skipped, with a message, when it is absent): a video assembled
from a real photo with blank frames between (gaps), and one of the real clips.
Run with Debian's Python: /usr/bin/python3 tests/e2e/test_crop.py; ABAW_INFER names the binary.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
TOOL = os.environ.get("ABAW_INFER", os.path.join(ROOT, "build", "abaw-infer"))
PHOTO = os.path.join(SHARED, "realdata", "expressions", "happy.jpg")
CLIP = os.path.join(SHARED, "realdata", "videos", "liveportrait_d0.mp4")
YUNET = os.path.join(SHARED, "models", "yunet", "face_detection_yunet_2023mar.onnx")


def tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def ebml(element_id, payload):
    """One EBML element: its id, its size as an 8-byte vint, its payload."""
    if isinstance(payload, int):
        payload = payload.to_bytes(max(1, (payload.bit_length() + 7) // 8), "big")
    elif isinstance(payload, str):
        payload = payload.encode()
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + \
        (0x01 << 56 | len(payload)).to_bytes(8, "big") + payload


def write_mkv(path, jpegs, times_ms, width, height):
    """A Matroska file of JPEG frames (V_MJPEG) shown at `times_ms`: a variable frame rate, which
    OpenCV's writer cannot make. One cluster; the times must stay below 32.767 s."""
    header = ebml(0x1A45DFA3, ebml(0x4286, 1) + ebml(0x42F7, 1) + ebml(0x42F2, 4) + ebml(0x42F3, 8) +
                  ebml(0x4282, "matroska") + ebml(0x4287, 4) + ebml(0x4285, 2))
    info = ebml(0x1549A966, ebml(0x2AD7B1, 1000000) + ebml(0x4D80, "abaw-infer test") + ebml(0x5741, "abaw-infer test"))
    video = ebml(0xE0, ebml(0xB0, width) + ebml(0xBA, height))
    tracks = ebml(0x1654AE6B, ebml(0xAE, ebml(0xD7, 1) + ebml(0x73C5, 1) + ebml(0x83, 1) + ebml(0x86, "V_MJPEG") +
                                     ebml(0x9C, 0) + video))
    blocks = b"".join(ebml(0xA3, bytes([0x81]) + int(t).to_bytes(2, "big", signed=True) + bytes([0x80]) + jpeg)
                      for jpeg, t in zip(jpegs, times_ms))
    cluster = ebml(0x1F43B675, ebml(0xE7, 0) + blocks)
    with open(path, "wb") as f:
        f.write(header + ebml(0x18538067, info + tracks + cluster))


@unittest.skipUnless(os.path.exists(PHOTO) and os.path.exists(CLIP), "../shared/realdata is absent")
class Crop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="abaw-crop-")
        # 12 frames: the photo on frames 1-3 and 8-10, blank grey frames elsewhere.
        photo = cv2.imread(PHOTO)
        height, width = photo.shape[:2]
        cls.video = os.path.join(cls.work, "videos", "photo_gaps.avi")
        os.makedirs(os.path.dirname(cls.video))
        writer = cv2.VideoWriter(cls.video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
        blank = np.full_like(photo, 128)
        cls.face_frames = {1, 2, 3, 8, 9, 10}
        for number in range(1, 13):
            writer.write(photo if number in cls.face_frames else blank)
        writer.release()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_gaps_are_left_without_files_and_counted(self):
        out = os.path.join(self.work, "crops-gaps")
        result = tool("crop", "--detector", "haar", "--videos", os.path.dirname(self.video), "--output", out, "--size", "96")
        self.assertEqual(result.returncode, 0, result.stderr)
        files = sorted(os.listdir(os.path.join(out, "photo_gaps")))
        self.assertEqual(files, ["%05d.jpg" % n for n in sorted(self.face_frames)])
        self.assertEqual(cv2.imread(os.path.join(out, "photo_gaps", "00001.jpg")).shape, (96, 96, 3))
        with open(os.path.join(out, "frame_counts.csv")) as f:
            self.assertEqual(list(csv.reader(f)), [["video", "frames"], ["photo_gaps", "12"]])
        with open(os.path.join(out, "photo_gaps.boxes.csv")) as f:
            rows = list(csv.reader(f))
        self.assertEqual(len(rows), 13)
        self.assertEqual(rows[4], ["4", "", "", "", "", ""])
        self.assertNotEqual(rows[1][1], "")

        # run knows all 12 frames from frame_counts.csv, including the trailing gap.
        model_set = os.path.join(self.work, "set")
        if not os.path.exists(model_set):
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_model_set.py"), "--tiny",
                            "--output", model_set], check=True, capture_output=True)
        run_out = os.path.join(self.work, "run-gaps")
        result = tool("run", "--model-set", model_set, "--crops", out, "--output", run_out, "--tasks", "expr")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("highest crop number", result.stderr)
        with open(os.path.join(run_out, "submission", "EXPR.txt")) as f:
            rows = f.read().splitlines()
        self.assertEqual(rows[1:], ["photo_gaps/%05d.jpg,%s" % (n, rows[n].split(",")[1]) for n in range(1, 13)])
        # run.json repeats how the crops were made.
        with open(os.path.join(run_out, "run.json")) as f:
            crops = json.load(f)["crops"]
        self.assertEqual(crops["path"], os.path.abspath(out))
        recorded = crops["crop_record"]["videos"]["photo_gaps"]
        self.assertEqual((recorded["style"], recorded["size"], recorded["frames_decoded"]), ("box", 96, 12))
        self.assertIn("haar", recorded["detector"])

    def test_real_clip_with_both_detectors(self):
        for detector in (["--detector", "haar"], ["--detector", "yunet", "--yunet-model", YUNET]):
            out = os.path.join(self.work, "crops-" + detector[1])
            result = tool("crop", "--videos", CLIP, "--output", out, *detector)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("frames/s", result.stderr)
            frames = len(os.listdir(os.path.join(out, "liveportrait_d0")))
            with open(os.path.join(out, "frame_counts.csv")) as f:
                total = int(f.read().splitlines()[1].split(",")[1])
            self.assertGreater(total, 50)
            self.assertGreaterEqual(frames, 0.9 * total, detector[1])

    def test_missing_yunet_model_is_a_usage_error(self):
        result = tool("crop", "--videos", CLIP, "--output", os.path.join(self.work, "x"), "--detector", "yunet")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--yunet-model", result.stderr)

    def test_unreadable_video_is_reported_and_others_finish(self):
        folder = os.path.join(self.work, "mixed")
        os.makedirs(folder, exist_ok=True)
        shutil.copy(self.video, folder)
        with open(os.path.join(folder, "broken.mp4"), "wb") as f:
            f.write(b"not a video")
        out = os.path.join(self.work, "crops-mixed")
        result = tool("crop", "--detector", "haar", "--videos", folder, "--output", out)
        self.assertEqual(result.returncode, 6, result.stderr)
        self.assertIn("broken.mp4", result.stderr)
        self.assertTrue(os.path.isdir(os.path.join(out, "photo_gaps")))

    def test_variable_frame_rate_is_reported_and_cropped_by_frame(self):
        """A file whose frames are 40 ms apart, then 100 ms: every decoded frame is a frame (crops
        numbered in decoding order), and the log and crop.json say the rate varies; a file at a
        fixed rate in the same container says nothing."""
        photo = cv2.imread(PHOTO)
        height, width = photo.shape[:2]
        jpeg = cv2.imencode(".jpg", photo)[1].tobytes()
        folder = os.path.join(self.work, "vfr")
        os.makedirs(folder, exist_ok=True)
        varying = [40 * i for i in range(10)] + [400 + 100 * i for i in range(10)]
        write_mkv(os.path.join(folder, "varying.mkv"), [jpeg] * 20, varying, width, height)
        write_mkv(os.path.join(folder, "steady.mkv"), [jpeg] * 20, [40 * i for i in range(20)], width, height)
        out = os.path.join(self.work, "crops-vfr")
        result = tool("crop", "--detector", "haar", "--videos", folder, "--output", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("varying.mkv: variable frame rate: frames are 40.0 to 100.0 ms apart", result.stderr)
        self.assertNotIn("steady.mkv: variable", result.stderr)
        with open(os.path.join(out, "frame_counts.csv")) as f:
            self.assertEqual(f.read(), "video,frames\nsteady,20\nvarying,20\n")
        self.assertEqual(len(os.listdir(os.path.join(out, "varying"))), 20)
        with open(os.path.join(out, "crop.json")) as f:
            record = json.load(f)["videos"]
        self.assertEqual(record["varying"]["variable_frame_rate"],
                         {"min_frame_interval_ms": 40.0, "max_frame_interval_ms": 100.0})
        self.assertNotIn("variable_frame_rate", record["steady"])

    def write_video(self, path, frames_with_photo, count):
        photo = cv2.imread(PHOTO)
        height, width = photo.shape[:2]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
        blank = np.full_like(photo, 128)
        for number in range(1, count + 1):
            writer.write(photo if number in frames_with_photo else blank)
        writer.release()

    def test_recrop_replaces_the_earlier_crops(self):
        # Issue 21: a second crop of a video left the first crop's JPEGs in place, and run used them.
        out = os.path.join(self.work, "crops-again")
        result = tool("crop", "--detector", "haar", "--videos", self.video, "--output", out, "--size", "64")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(os.listdir(os.path.join(out, "photo_gaps"))), len(self.face_frames))
        # A leftover of a killed crop (its process is gone) is cleared, one of a live process is kept.
        os.makedirs(os.path.join(out, ".photo_gaps.cropping-999999999"))
        os.makedirs(os.path.join(out, ".photo_gaps.cropping-%d" % os.getpid()))
        shorter = os.path.join(self.work, "shorter", "photo_gaps.avi")
        self.write_video(shorter, {2}, 4)
        result = tool("crop", "--detector", "haar", "--videos", shorter, "--output", out, "--size", "64")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(out, "photo_gaps"))), ["00002.jpg"])
        self.assertEqual(sorted(n for n in os.listdir(out) if n.startswith(".")),
                         [".photo_gaps.cropping-%d" % os.getpid()])
        with open(os.path.join(out, "frame_counts.csv")) as f:
            self.assertEqual(list(csv.reader(f)), [["video", "frames"], ["photo_gaps", "4"]])
        with open(os.path.join(out, "crop.json")) as f:
            record = json.load(f)["videos"]["photo_gaps"]
        self.assertEqual(record["source"], os.path.abspath(shorter))
        self.assertEqual((record["frames_decoded"], record["frames_with_face"], record["size"]), (4, 1, 64))
        self.assertIn("haar", record["detector"].lower())

        # No face at all this time: the folder is emptied, not left with the earlier crop.
        blank = os.path.join(self.work, "blank", "photo_gaps.avi")
        self.write_video(blank, set(), 3)
        result = tool("crop", "--detector", "haar", "--videos", blank, "--output", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(os.listdir(os.path.join(out, "photo_gaps")), [])
        self.assertIn("no face found in any of its 3 frames", result.stderr)

    def test_empty_file_fails_alone(self):
        folder = os.path.join(self.work, "with-empty")
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, "empty.mp4"), "wb").close()
        shutil.copy(self.video, os.path.join(folder, "ok.avi"))
        out = os.path.join(self.work, "crops-with-empty")
        result = tool("crop", "--detector", "haar", "--videos", folder, "--output", out)
        self.assertEqual(result.returncode, 6, result.stderr)
        self.assertIn("empty.mp4: the video file is empty (0 bytes)", result.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["crop.json", "frame_counts.csv", "ok", "ok.boxes.csv"])

    def test_truncated_video_is_reported(self):
        whole = os.path.join(self.work, "truncated", "whole.avi")
        self.write_video(whole, set(range(1, 41)), 40)
        with open(whole, "rb") as f:
            data = f.read()
        cut = os.path.join(self.work, "truncated", "cut.avi")
        with open(cut, "wb") as f:
            f.write(data[: len(data) // 2])
        result = tool("crop", "--detector", "haar", "--videos", cut, "--output", os.path.join(self.work, "crops-cut"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("of the 40 frames its container announces", result.stderr)

    def test_video_files_with_hostile_names_fail_alone(self):
        folder = os.path.join(self.work, "hostile-videos")
        os.makedirs(folder, exist_ok=True)
        for name in ("-rf.avi", "a,b.avi", "ok.avi"):
            shutil.copy(self.video, os.path.join(folder, name))
        out = os.path.join(self.work, "crops-hostile")
        result = tool("crop", "--detector", "haar", "--videos", folder, "--output", out)
        self.assertEqual(result.returncode, 6, result.stderr)
        self.assertIn("video name '-rf'", result.stderr)
        self.assertIn("video name 'a,b'", result.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["crop.json", "frame_counts.csv", "ok", "ok.boxes.csv"])


if __name__ == "__main__":
    unittest.main()
