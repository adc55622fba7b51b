#!/usr/bin/python3
"""abaw::pil_resize and abaw::torch_resize (src/resample.cpp) against Pillow and torch themselves.

Pillow   Image.resize(size, BILINEAR | BICUBIC) on L, RGB and CMYK (4 independent bands) images:
         bit-exact (max difference 0).
Torch    F.interpolate(x, size, mode="bilinear" | "bicubic", align_corners=False,
         antialias=False | True) on float32 NCHW tensors of the 8-bit values: within
         TORCH_TOLERANCE.

Pipeline `abaw-infer run` with each pil_* / torch_* interpolation on JPEG crops (112x112 up to
         224, 256x256 down to 224, non-square 200x150 and 150x260 with shorter_side + centre crop):
         the encoder input (read back through an encoder that returns its input, via --features)
         against the training-side pipelines written with Pillow and torch: Image.open ->
         Image.resize -> centre crop -> ToTensor -> Normalize, and the same on a tensor with
         F.interpolate. Pillow: every pixel equal (the tensor to float rounding); torch: within
         PIPELINE_TORCH_TOLERANCE.

Seeded random-noise images (the worst case for overshoot and clipping) through upscaling,
downscaling, non-square sizes, one-axis-only changes (a skipped pass), an unchanged size and tiny
images. Compiles nothing: ABAW_RESAMPLE_CHECK names the built tests/e2e/resample_check binary (the
whole module is skipped, with the reason, when it is unset or missing, or when numpy or Pillow is
missing; the torch suite when torch is missing).

Run with Debian's Python: ABAW_RESAMPLE_CHECK=build/resample_check ABAW_INFER=build/abaw-infer \
    /usr/bin/python3 tests/e2e/test_resample.py -v
"""

import json
import os
import struct
import subprocess
import tempfile
import unittest

CHECK = os.environ.get("ABAW_RESAMPLE_CHECK", "")

try:
    import numpy as np
except ImportError:
    np = None
try:
    from PIL import Image
except ImportError:
    Image = None
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

if not CHECK:
    SKIP_ALL = "ABAW_RESAMPLE_CHECK is not set (it names the built resample_check binary)"
elif not (os.path.isfile(CHECK) and os.access(CHECK, os.X_OK)):
    SKIP_ALL = "ABAW_RESAMPLE_CHECK=%s is not an executable file" % CHECK
elif np is None:
    SKIP_ALL = "numpy is missing (apt-get install python3-numpy)"
elif Image is None:
    SKIP_ALL = "Pillow is missing (apt-get install python3-pil)"
else:
    SKIP_ALL = None

# Largest |ours - torch| allowed. Both sides compute in float32 with the same weights (torch's
# formulas, including the multiply-adds its FMA-enabled CPU kernels fuse), but torch's vectorised
# loops fuse the accumulation unevenly, so outputs differ by a few float ulps: an ulp is 1.5e-5 at
# 128..256 and 3.1e-5 at 256..512 (bicubic overshoots 255). Measured on Debian's torch 1.13.1:
# worst 6.1e-5 over these cases (both modes, with and without antialias), 9.2e-5 over ~400 random
# size pairs up to 700 pixels with 1, 3 and 4 channels. Unfused bicubic weights (which cancel near
# |x| = 2) would miss by up to 5.6e-4, a float source coordinate by 7.5e-3.
TORCH_TOLERANCE = 1e-4

# name, input width, height, output width, height
CASES = [
    ("upscale 112->224", 112, 112, 224, 224),
    ("downscale 256->224", 256, 256, 224, 224),
    ("non-square up 171x128->299x224", 171, 128, 299, 224),
    ("non-square down 640x480->224x168", 640, 480, 224, 168),
    ("tiny 1x1->7x5", 1, 1, 7, 5),
    ("tiny 3x2->1x1", 3, 2, 1, 1),
    ("width only 50x40->37x40", 50, 40, 37, 40),
    ("height only 40x50->40x77", 40, 50, 40, 77),
    ("strong shrink 300x17->7x3", 300, 17, 7, 3),
    ("unchanged 33x21", 33, 21, 33, 21),
]
PIL_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # CMYK: 4 bands resized independently (RGBA is premultiplied)
FILTERS = ("bilinear", "bicubic")


def random_image(seed, width, height, channels):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


class ResampleCheck:
    """Runs resample_check on one image in a scratch folder."""

    def __init__(self):
        self.folder = tempfile.TemporaryDirectory(prefix="abaw-resample-")

    def run(self, lib, filter_name, antialias, image, width, height):
        source = os.path.join(self.folder.name, "in.bin")
        target = os.path.join(self.folder.name, "out.bin")
        h, w, c = image.shape
        with open(source, "wb") as f:
            f.write(("%s %s %d %d %d %d %d %d\n" % (lib, filter_name, int(antialias), w, h, c, width, height)).encode())
            f.write(np.ascontiguousarray(image).tobytes())
        result = subprocess.run([CHECK, source, target], capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError("resample_check failed (%d): %s" % (result.returncode, result.stderr))
        dtype = np.uint8 if lib == "pil" else np.float32
        return np.fromfile(target, dtype=dtype).reshape(height, width, c)

    def close(self):
        self.folder.cleanup()


@unittest.skipIf(SKIP_ALL, SKIP_ALL)
class PillowParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.check = ResampleCheck()

    @classmethod
    def tearDownClass(cls):
        cls.check.close()

    def pillow(self, image, filter_name, width, height):
        h, w, c = image.shape
        source = Image.frombytes(PIL_MODES[c], (w, h), np.ascontiguousarray(image).tobytes())
        resample = Image.BICUBIC if filter_name == "bicubic" else Image.BILINEAR
        result = source.resize((width, height), resample=resample)
        return np.frombuffer(result.tobytes(), np.uint8).reshape(height, width, c)

    def test_bit_exact(self):
        for index, (name, w, h, ow, oh) in enumerate(CASES):
            for channels in (1, 3, 4):
                image = random_image(1000 + 10 * index + channels, w, h, channels)
                for filter_name in FILTERS:
                    with self.subTest(case=name, channels=channels, filter=filter_name):
                        ours = self.check.run("pil", filter_name, False, image, ow, oh)
                        theirs = self.pillow(image, filter_name, ow, oh)
                        difference = np.abs(ours.astype(int) - theirs.astype(int))
                        self.assertEqual(int(difference.max()), 0,
                                         "%d of %d values differ" % (np.count_nonzero(difference), difference.size))

    def test_smooth_image_is_bit_exact(self):
        # A gradient with fine detail: values between the clipping limits, so every rounding counts.
        y, x = np.mgrid[0:97, 0:131]
        plane = (127.5 + 100 * np.sin(x / 3.7) * np.cos(y / 5.3) + 20 * np.sin((x + y) / 1.3)).astype(np.uint8)
        image = np.stack([plane, plane[::-1], 255 - plane], axis=2)
        for ow, oh in ((224, 224), (60, 45), (131, 200)):
            for filter_name in FILTERS:
                with self.subTest(size=(ow, oh), filter=filter_name):
                    ours = self.check.run("pil", filter_name, False, image, ow, oh)
                    np.testing.assert_array_equal(ours, self.pillow(image, filter_name, ow, oh))


@unittest.skipIf(SKIP_ALL, SKIP_ALL)
@unittest.skipIf(torch is None, "torch is missing (apt-get install python3-torch)")
class TorchParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.check = ResampleCheck()
        torch.set_num_threads(1)

    @classmethod
    def tearDownClass(cls):
        cls.check.close()

    def torch_resize(self, image, filter_name, antialias, width, height):
        # NCHW contiguous, as torchvision's ToTensor (without its / 255) makes it.
        x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
        y = F.interpolate(x, size=(height, width), mode=filter_name, align_corners=False, antialias=antialias)
        return y[0].permute(1, 2, 0).numpy()

    def test_within_tolerance(self):
        for index, (name, w, h, ow, oh) in enumerate(CASES):
            for channels in (1, 3):
                image = random_image(2000 + 10 * index + channels, w, h, channels)
                for filter_name in FILTERS:
                    for antialias in (False, True):
                        with self.subTest(case=name, channels=channels, filter=filter_name, antialias=antialias):
                            ours = self.check.run("torch", filter_name, antialias, image, ow, oh)
                            theirs = self.torch_resize(image, filter_name, antialias, ow, oh)
                            difference = float(np.abs(ours - theirs).max())
                            self.assertLessEqual(difference, TORCH_TOLERANCE)

    def test_no_antialias_shrink_skips_pixels(self):
        # Without antialias a 4x shrink reads only 2 (bilinear) or 4 (bicubic) pixels per output
        # pixel: a pixel between them does not change the result; with antialias it does.
        image = np.zeros((1, 16, 1), np.uint8)
        poked = image.copy()
        poked[0, 0, 0] = 255  # output 0 is at source coordinate 1.5: bilinear reads pixels 1 and 2
        for antialias, changes in ((False, False), (True, True)):
            with self.subTest(antialias=antialias):
                a = self.check.run("torch", "bilinear", antialias, image, 4, 1)
                b = self.check.run("torch", "bilinear", antialias, poked, 4, 1)
                self.assertEqual(bool(np.any(a != b)), changes)
                np.testing.assert_allclose(b, self.torch_resize(poked, "bilinear", antialias, 4, 1), atol=TORCH_TOLERANCE)


# ---------------------------------------------------------------------------------------------
# The whole tool: what the encoder receives after `run` decoded and preprocessed a JPEG crop.

TOOL = os.environ.get("ABAW_INFER", "")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# The tool multiplies by 1/255 and by 1/std where torchvision divides: a few float ulps on values
# of magnitude ~2 (an ulp there is 2.4e-7).
PIPELINE_PIL_TOLERANCE = 1e-6
# TORCH_TOLERANCE on 0..255 pixels, times 1/255 and 1/std (< 3.9), plus the ulps above.
PIPELINE_TORCH_TOLERANCE = 2e-6
# name, width, height of the JPEG crops (one video each)
CROPS = [("up112", 112, 112), ("down256", 256, 256), ("wide200x150", 200, 150), ("tall150x260", 150, 260)]


def read_features(path):
    """The rows of one --features file (include/abaw/feature_cache.hpp): (frames, rows)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"ABAWFEAT", path
    _version, _encoder, _input, dim, _frames, count = struct.unpack_from("<IQQIqQ", data, 8)
    offset = 8 + struct.calcsize("<IQQIqQ")
    frames = [struct.unpack_from("<qB", data, offset + 9 * i) for i in range(count)]
    offset += 9 * count
    rows = np.frombuffer(data, dtype="<f4", count=count * dim, offset=offset).reshape(count, dim)
    return frames, rows


@unittest.skipIf(SKIP_ALL or torch is None or not TOOL, SKIP_ALL or "needs torch and ABAW_INFER (the built binary)")
class PipelineParity(unittest.TestCase):
    SIDE = 224

    @classmethod
    def setUpClass(cls):
        import cv2
        cls.work = tempfile.TemporaryDirectory(prefix="abaw-resample-run-")
        cls.crops = os.path.join(cls.work.name, "crops")
        rng = np.random.default_rng(7)
        for name, width, height in CROPS:
            os.makedirs(os.path.join(cls.crops, name))
            # Smooth noise: a photo-like JPEG whose decoded pixels still vary at every scale.
            image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 0)
            cv2.imwrite(os.path.join(cls.crops, name, "00001.jpg"), image)
        cls.encoder = torch.jit.script(Flatten())

    @classmethod
    def tearDownClass(cls):
        cls.work.cleanup()

    def tool_inputs(self, interpolation, antialias=None):
        """The encoder input per video, as `run` preprocessed it: {video: float32 [3, S, S]}."""
        name = interpolation + ("" if antialias is None else "_aa%d" % antialias)
        folder = os.path.join(self.work.name, name)
        os.makedirs(folder)
        self.encoder.save(os.path.join(folder, "flatten.pt"))
        preprocess = {"resize": self.SIDE, "resize_mode": "shorter_side", "interpolation": interpolation,
                      "crop": self.SIDE, "color_order": "RGB", "mean": CLIP_MEAN, "std": CLIP_STD}
        if antialias is not None:
            preprocess["antialias"] = antialias
        manifest = {"format": "abaw-infer-model-set", "version": 1, "name": name,
                    "encoder": {"file": "flatten.pt", "feature_dim": 3 * self.SIDE * self.SIDE,
                                "preprocess": preprocess},
                    "tasks": {"va": {"head": {"columns": [0, 2]}}}}
        with open(os.path.join(folder, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        features = os.path.join(folder, "features")
        result = subprocess.run([TOOL, "run", "--model-set", folder, "--crops", self.crops, "--output",
                                 os.path.join(folder, "out"), "--features", features, "--threads", "1"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        inputs = {}
        for video, _, _ in CROPS:
            frames, rows = read_features(os.path.join(features, video + ".features"))
            self.assertEqual(frames, [(1, 1)])
            inputs[video] = rows[0].reshape(3, self.SIDE, self.SIDE)
        return inputs

    def resized_size(self, width, height):
        """torchvision Resize(int) on the shorter side: the longer side truncated."""
        if width <= height:
            return self.SIDE, int(self.SIDE * height / width)
        return int(self.SIDE * width / height), self.SIDE

    def centre_crop(self, chw):
        """torchvision CenterCrop: int(round((size - crop) / 2.0)) from the top left."""
        h, w = chw.shape[-2:]
        top, left = int(round((h - self.SIDE) / 2.0)), int(round((w - self.SIDE) / 2.0))
        return chw[..., top:top + self.SIDE, left:left + self.SIDE]

    def normalize(self, unit):
        """torchvision Normalize on a [3, S, S] float32 tensor in [0, 1]."""
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        return ((unit - mean) / std).numpy()

    def pillow_pipeline(self, path, resample):
        """Image.open -> Resize(S, interpolation) -> CenterCrop(S) -> ToTensor -> Normalize, and the
        8-bit pixels after the crop."""
        image = Image.open(path).convert("RGB")
        image = image.resize(self.resized_size(*image.size), resample)
        pixels = self.centre_crop(torch.from_numpy(np.array(image)).permute(2, 0, 1))
        return self.normalize(pixels.float().div(255)), pixels.numpy()

    def torch_pipeline(self, path, mode, antialias):
        """Image.open -> tensor -> F.interpolate on float pixels -> centre crop -> /255 -> Normalize."""
        image = np.array(Image.open(path).convert("RGB"))
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        width, height = self.resized_size(image.shape[1], image.shape[0])
        x = F.interpolate(x, size=(height, width), mode=mode, align_corners=False, antialias=antialias)[0]
        return self.normalize(self.centre_crop(x).div(255))

    def test_pillow_modes_match_pillow_pixel_for_pixel(self):
        for interpolation, resample in (("pil_bicubic", Image.BICUBIC), ("pil_bilinear", Image.BILINEAR)):
            ours = self.tool_inputs(interpolation)
            for video, _, _ in CROPS:
                with self.subTest(interpolation=interpolation, video=video):
                    theirs, pixels = self.pillow_pipeline(os.path.join(self.crops, video, "00001.jpg"), resample)
                    self.assertLessEqual(float(np.abs(ours[video] - theirs).max()), PIPELINE_PIL_TOLERANCE)
                    std, mean = np.array(CLIP_STD).reshape(3, 1, 1), np.array(CLIP_MEAN).reshape(3, 1, 1)
                    recovered = np.rint((ours[video].astype(np.float64) * std + mean) * 255)
                    np.testing.assert_array_equal(recovered, pixels)

    def test_torch_modes_match_interpolate(self):
        for interpolation, mode in (("torch_bicubic", "bicubic"), ("torch_bilinear", "bilinear")):
            for antialias in (False, True):
                ours = self.tool_inputs(interpolation, antialias)
                for video, _, _ in CROPS:
                    with self.subTest(interpolation=interpolation, antialias=antialias, video=video):
                        theirs = self.torch_pipeline(os.path.join(self.crops, video, "00001.jpg"), mode, antialias)
                        self.assertLessEqual(float(np.abs(ours[video] - theirs).max()), PIPELINE_TORCH_TOLERANCE)

    def test_opencv_bicubic_is_not_pillow(self):
        """Why the modes exist: OpenCV's bicubic differs from Pillow's by whole pixel levels."""
        ours = self.tool_inputs("bicubic")
        theirs, _ = self.pillow_pipeline(os.path.join(self.crops, "up112", "00001.jpg"), Image.BICUBIC)
        self.assertGreater(float(np.abs(ours["up112"] - theirs).max()) * min(CLIP_STD) * 255, 3)


if torch is not None:
    class Flatten(torch.nn.Module):
        """An encoder whose features are its input: what the tool fed the model, read back."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)


if __name__ == "__main__":
    unittest.main()
