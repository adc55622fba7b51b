#!/usr/bin/python3
"""face-api.js face detector, 68-point landmarks and face descriptor (TF.js weights) -> TorchScript.

Converts three networks of the npm package `@vladmandic/face-api@1.7.15` (MIT), from its
`model/` folder, the same way scripts/convert_faceapi.py converts the FaceExpressionNet (whose
TF.js weight reader, 'same' padding helper, FaceFeatureExtractor and checks this script
imports), and writes into --output:

  face_detector.pt    TinyFaceDetector (`tiny_face_detector_model`).
                      float32 [N, 3, S, S] RGB 0..255, S any multiple of 32 (the frame already
                      zero-padded to a square at the bottom / right and resized to S, as
                      face-api's padToSquare + resizeBilinear do) ->
                      float32 [N, (S/32)^2 * 5, 5]: per cell (row-major) and anchor,
                      (x0, y0, x1, y1, score), coordinates in input pixels, score = sigmoid of
                      the objectness as face-api's extractBoxes computes it. No threshold, no NMS.
                      Extra method grid(x): the raw head output [N, 25, S/32, S/32] (channel =
                      anchor * 5 + (tx, ty, tw, th, objectness)), for checks.
  face_landmarks.pt   FaceLandmark68Net (`face_landmark_68_model`).
                      float32 [N, 3, 112, 112] RGB 0..255 -> float32 [N, 68, 2]: (x, y) in [0, 1]
                      of the 112 x 112 input, iBUG-68 order.
  face_descriptor.pt  FaceRecognitionNet (`face_recognition_model`).
                      float32 [N, 3, 150, 150] RGB 0..255 -> float32 [N, 128], face-api's
                      computeFaceDescriptor output (not L2-normalised: face-api does not either).
  faces.json          what the files are, written last and atomically.

Architectures (face-api src/ paths):

TinyFaceDetector (tinyFaceDetector/TinyFaceDetector.ts, tinyYolov2/TinyYolov2Base.ts
runMobilenet, tinyYolov2/depthwiseSeparableConv.ts, leaky.ts, const.ts):
  x = (rgb - [117.001, 114.697, 97.404]) / 255                      (MEAN_RGB, then .div(255))
  leaky(conv0 3x3 'valid' + bias); maxPool 2x2/2 'same'                       3 -> 16
  conv1..conv5: leaky(pad 1 + depthwise 3x3 + pointwise 1x1 + bias), each followed by
  maxPool 2x2 'same' (stride 2; stride 1 after conv5)             16, 32, 64, 128, 256 -> 512
  conv8 1x1 + bias -> 25 = 5 anchors x (tx, ty, tw, th, objectness) (one class: no class scores)
  leaky(x) = relu(x - 0.1 x) + 0.1 x
  decoding (TinyYolov2Base.extractBoxes, square input so the correction factors are 1):
    cx = (col + sigmoid(tx)) / cells, w = exp(tw) * anchor_w / cells (likewise y, h),
    box = (cx - w/2, cy - h/2, cx + w/2, cy + h/2) * S, score = sigmoid(objectness)
  anchors BOX_ANCHORS (tinyFaceDetector/const.ts). 'same' max pooling pads the odd pixel at the
  bottom / right and never picks the padding (padded with -inf here).
  Exported with the normalisation folded into conv0's weights and bias ('valid': no padding, so
  exact up to float rounding), each leaky ReLU after its max pool (monotonic: the same values),
  and the 1x1 convolutions called through oneDNN on the CPU (convert_faceapi.pointwise_conv).

FaceLandmark68Net (faceLandmarkNet/FaceLandmark68Net.ts, FaceLandmark68NetBase.ts,
faceProcessor/FaceProcessor.ts): convert_faceapi.FaceFeatureExtractor (mean [122.782, 117.001,
104.298], /255, 4 dense blocks, avgPool) + fc 256 -> 136 = 68 interleaved (x, y); face-api's
postProcess maps them with (v * 112 - padding) / 112, the identity for a square 112 input.

FaceRecognitionNet (faceRecognitionNet/FaceRecognitionNet.ts, convLayer.ts, residualLayer.ts,
scaleLayer.ts), a ResNet-34-like net (dlib's):
  x = (rgb - [122.782, 117.001, 104.298]) / 255
  conv(x) = (conv2d + bias) * scale_w + scale_b; convDown: 'valid' stride 2 + relu
  convDown 7x7 3 -> 32 (150 -> 72); maxPool 3x3/2 'valid' (-> 35)
  residual(x)     = relu(convNoRelu(conv(x)) + x)                   'same' 3x3, relu after conv1
  residualDown(x) = relu(convNoRelu(convDown(x)) + avgPool2x2/2(x) with zero channels appended
                    when the width doubles); where the conv branch is one pixel smaller than the
                    pooled one, face-api appends a zero row (bottom) and a zero column (right)
  32 x3, down 64, 64 x3, down 128, 128 x2, down 256, 256 x2, down 256 (35 -> 17 -> 8 -> 4 -> 2)
  mean over H, W -> 256; matMul fc [256, 128] (no bias)
  Exported with each scale and the normalisation folded into the convolutions (exact up to float
  rounding; convDown pads nothing), and the residual sums and ReLUs in place.

faces.json numbers and where they come from:
  detector.input_multiple 32     TinyYolov2Options: inputSize must be divisible by 32
  detector.default_input_size 416  TinyYolov2Options: inputSize || 416
  detector.score_threshold 0.5   TinyYolov2Options: scoreThreshold || 0.5
  detector.iou_threshold 0.4     tinyFaceDetector/const.ts IOU_THRESHOLD (NMS in detect())
  landmarks.input_size 112       FaceFeatureExtractor.forwardInput: toBatchTensor(112, true)
  descriptor.input_size 150      FaceRecognitionNet.forwardInput: toBatchTensor(150, true)
  (face-api centres the crop when padding it to a square for the landmark and recognition nets:
  toBatchTensor(..., true); for the detector it pads at the bottom / right: toBatchTensor(S, false).
  face-api's FaceMatcher distance threshold for descriptors is 0.6, euclidean.)

Every tensor of each weights manifest must be used, with the expected shape. Each saved module
is loaded back and checked against the eager one at N = 1 and N = 3 (and S = 320, 416 for the
detector).

Run with Debian's Python (python3-torch 1.13):
  /usr/bin/python3 scripts/convert_faceapi_faces.py --model-dir .cache/npm/face-api-1.7.15/model --output DIR
"""

import argparse
import json
import os
import sys
import time
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_faceapi as fa  # noqa: E402  (the FaceExpressionNet converter: shared helpers)

DETECTOR_MEAN_RGB = [117.001, 114.697, 97.404]           # tinyFaceDetector/const.ts MEAN_RGB
DETECTOR_ANCHORS = [(1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061),
                    (4.266906, 5.178857), (9.041765, 10.66308)]  # const.ts BOX_ANCHORS (x, y)
DETECTOR_FILTERS = [3, 16, 32, 64, 128, 256, 512]        # TinyFaceDetector config.filterSizes
DETECTOR_STRIDE = 32
DETECTOR_DEFAULT_SIZE = 416
SCORE_THRESHOLD = 0.5
IOU_THRESHOLD = 0.4
LANDMARK_SIZE = 112
LANDMARK_POINTS = 68
DESCRIPTOR_SIZE = 150
DESCRIPTOR_DIM = 128

FILES = {
    "detector": ("tiny_face_detector_model-weights_manifest.json", "face_detector.pt"),
    "landmarks": ("face_landmark_68_model-weights_manifest.json", "face_landmarks.pt"),
    "descriptor": ("face_recognition_model-weights_manifest.json", "face_descriptor.pt"),
}

log = fa.log


# ---------------------------------------------------------------------------------------
# TinyFaceDetector
# ---------------------------------------------------------------------------------------

def leaky(x: torch.Tensor) -> torch.Tensor:
    """face-api's leaky(): relu(x - 0.1 x) + 0.1 x, a leaky ReLU with slope 0.1 (one fused op
    here; equal up to float rounding)."""
    return F.leaky_relu(x, 0.10000000149011612, inplace=True)


def max_pool_valid(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """F.max_pool2d(x, kernel, stride) ('valid') as the larger of strided views, over rows and then
    over columns: the same values, several times faster than max_pool2d, which also computes the
    indices of the maxima (2x2 on [8, 16, 222, 222]: 5x)."""
    rows = (x.shape[2] - kernel) // stride + 1
    cols = (x.shape[3] - kernel) // stride + 1
    span_rows = (rows - 1) * stride + 1
    span_cols = (cols - 1) * stride + 1
    by_rows = x[:, :, 0:span_rows:stride]
    for k in range(1, kernel):
        by_rows = torch.maximum(by_rows, x[:, :, k:k + span_rows:stride])
    out = by_rows[:, :, :, 0:span_cols:stride]
    for k in range(1, kernel):
        out = torch.maximum(out, by_rows[:, :, :, k:k + span_cols:stride])
    return out


def max_pool_same(x: torch.Tensor, stride: int) -> torch.Tensor:
    """tf.maxPool(x, [2, 2], stride, 'same'): output ceil(size / stride), the missing pixels
    (at most one) after the input, never chosen."""
    h = x.shape[2]
    w = x.shape[3]
    if stride == 2 and h % 2 == 0 and w % 2 == 0:
        return max_pool_valid(x, 2, 2)
    if stride == 2:  # ceil_mode's last window on an odd side takes the one pixel left: no padded copy
        return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
    pad_h = max((h + stride - 1) // stride * stride - stride + 2 - h, 0)
    pad_w = max((w + stride - 1) // stride * stride - stride + 2 - w, 0)
    if pad_h > 0 or pad_w > 0:  # even sides at stride 2 need none; skip the copy
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2],
                  value=float("-inf"))
    return F.max_pool2d(x, kernel_size=2, stride=stride)


class SeparableConvSame(nn.Module):
    """tf.separableConv2d(x, depthwise 3x3, pointwise 1x1, stride 1, 'same') + bias: at stride 1
    TF pads one pixel on every side, which the convolution does itself (no padded copy)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=True)
        self.onednn = fa.ONEDNN

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fa.pointwise_conv(self.depthwise(x), self.pointwise.weight, self.pointwise.bias, self.onednn)


class TinyFaceDetector(nn.Module):
    """[N, 3, S, S] RGB 0..255 -> [N, (S/32)^2 * 5, 5] (x0, y0, x1, y1, score), input pixels.
    conv0 takes the raw pixels: load_detector folds face-api's (x - mean) / 255 into its weights."""

    def __init__(self):
        super().__init__()
        f = DETECTOR_FILTERS
        self.conv0 = nn.Conv2d(f[0], f[1], 3, padding=0, bias=True)
        # separable convs with tf 'same' padding at stride 1 = face-api's explicit pad 1 + 'valid'
        self.conv1 = SeparableConvSame(f[1], f[2])
        self.conv2 = SeparableConvSame(f[2], f[3])
        self.conv3 = SeparableConvSame(f[3], f[4])
        self.conv4 = SeparableConvSame(f[4], f[5])
        self.conv5 = SeparableConvSame(f[5], f[6])
        self.conv8 = nn.Conv2d(f[6], 5 * len(DETECTOR_ANCHORS), 1, bias=True)
        self.register_buffer("mean", torch.tensor(DETECTOR_MEAN_RGB).view(1, 3, 1, 1))
        self.register_buffer("anchors", torch.tensor(DETECTOR_ANCHORS, dtype=torch.float32))

    @torch.jit.export
    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """The raw head output [N, 25, S/32, S/32] (face-api's [N, S/32, S/32, 25] in NCHW)."""
        # oneDNN's depthwise convolutions and the element-wise ops between them run 3-4x faster
        # on NHWC data (measured on 2 CPU cores, 224 x 224: 2.4 ms per frame instead of 10).
        x = x.contiguous(memory_format=torch.channels_last)
        # conv0 holds the normalisation (x - mean) / 255 (load_detector): it pads nothing, so
        # every tap sees a normalised pixel, and the two passes over the input go.
        # face-api pools after each leaky ReLU; the ReLU runs after the pooling here, on a quarter
        # of the values: the same result, as the ReLU never reorders two values.
        x = leaky(max_pool_same(self.conv0(x), 2))
        x = leaky(max_pool_same(self.conv1(x), 2))
        x = leaky(max_pool_same(self.conv2(x), 2))
        x = leaky(max_pool_same(self.conv3(x), 2))
        x = leaky(max_pool_same(self.conv4(x), 2))
        x = leaky(max_pool_same(self.conv5(x), 1))
        return self.conv8(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size_h = float(x.shape[2])
        size_w = float(x.shape[3])
        out = self.grid(x)
        n = out.shape[0]
        rows = out.shape[2]
        cols = out.shape[3]
        na = self.anchors.shape[0]
        # [N, A*5, H, W] -> [N, H, W, A, 5]
        out = out.reshape(n, na, 5, rows, cols).permute(0, 3, 4, 1, 2)
        col = torch.arange(cols, dtype=out.dtype, device=out.device).view(1, 1, cols, 1)
        row = torch.arange(rows, dtype=out.dtype, device=out.device).view(1, rows, 1, 1)
        cx = (col + torch.sigmoid(out[..., 0])) / cols
        cy = (row + torch.sigmoid(out[..., 1])) / rows
        w = torch.exp(out[..., 2]) * self.anchors[:, 0] / cols
        h = torch.exp(out[..., 3]) * self.anchors[:, 1] / rows
        x0 = cx - w / 2
        y0 = cy - h / 2
        boxes = torch.stack([x0 * size_w, y0 * size_h, (x0 + w) * size_w, (y0 + h) * size_h,
                             torch.sigmoid(out[..., 4])], dim=-1)
        return boxes.reshape(n, rows * cols * na, 5)


def load_detector(weights: dict) -> TinyFaceDetector:
    take, unused = fa.weight_taker(weights)
    net = TinyFaceDetector()
    f = DETECTOR_FILTERS
    fa.load_conv(net.conv0, take, "conv0", f[0], f[1], 3)
    with torch.no_grad():  # conv0((x - mean) / 255) = conv0'(x): weights / 255, bias less mean's share
        net.conv0.weight.div_(255.0)
        net.conv0.bias.sub_((net.conv0.weight * net.mean.view(1, 3, 1, 1)).sum(dim=(1, 2, 3)))
    for i in range(1, 6):
        fa.load_separable_conv(getattr(net, f"conv{i}"), take, f"conv{i}", f[i], f[i + 1])
    fa.load_conv(net.conv8, take, "conv8", f[6], 5 * len(DETECTOR_ANCHORS), 1)
    if unused():
        raise SystemExit(f"error: tensors not used by TinyFaceDetector: {', '.join(unused())}")
    return net.eval()


# ---------------------------------------------------------------------------------------
# FaceLandmark68Net
# ---------------------------------------------------------------------------------------

class FaceLandmark68Net(nn.Module):
    """[N, 3, 112, 112] RGB 0..255 -> [N, 68, 2] (x, y) in [0, 1]."""

    def __init__(self, extractor: fa.FaceFeatureExtractor):
        super().__init__()
        self.extractor = extractor
        self.fc = nn.Linear(fa.FEATURE_DIM, 2 * LANDMARK_POINTS)
        self.register_buffer("mean", torch.tensor(fa.MEAN_RGB).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(self.extractor((x - self.mean) / 255.0))
        return out.view(out.shape[0], -1, 2)  # interleaved (x, y) -> [N, 68, 2]


def load_landmarks(weights: dict) -> FaceLandmark68Net:
    take, unused = fa.weight_taker(weights)
    net = FaceLandmark68Net(fa.load_feature_extractor(take))
    with torch.no_grad():
        net.fc.weight.copy_(take("fc/weights", [fa.FEATURE_DIM, 2 * LANDMARK_POINTS]).t())
        net.fc.bias.copy_(take("fc/bias", [2 * LANDMARK_POINTS]))
    if unused():
        raise SystemExit(f"error: tensors not used by FaceLandmark68Net: {', '.join(unused())}")
    return net.eval()


# ---------------------------------------------------------------------------------------
# FaceRecognitionNet
# ---------------------------------------------------------------------------------------

class ScaledConv(nn.Module):
    """face-api's faceRecognitionNet convLayer: (conv2d + bias) * scale.weights + scale.biases,
    then relu if asked. stride 1: 'same' (symmetric for odd kernels); stride 2: 'valid'. The
    scale is folded into the convolution's weights and bias (load_scaled)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride,
                              padding=kernel // 2 if stride == 1 else 0, bias=True)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.relu:
            out = F.relu(out, inplace=True)
        return out


class Residual(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = ScaledConv(cin, cout, 3, 2 if down else 1, True)
        self.conv2 = ScaledConv(cout, cout, 3, 1, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.down:
            pooled = F.avg_pool2d(x, kernel_size=2, stride=2)
            if pooled.shape[2] != out.shape[2] or pooled.shape[3] != out.shape[3]:
                out = F.pad(out, [0, 1, 0, 1])  # face-api: one zero row, then one zero column
            if pooled.shape[1] != out.shape[1]:
                pooled = torch.cat([pooled, torch.zeros_like(pooled)], dim=1)
            return F.relu(out.add_(pooled), inplace=True)
        return F.relu(out.add_(x), inplace=True)


# (name, in, out, down) in face-api's order
RECOGNITION_LAYERS = [
    ("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
    ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
]


class FaceRecognitionNet(nn.Module):
    """[N, 3, 150, 150] RGB 0..255 -> [N, 128] face descriptor."""

    def __init__(self):
        super().__init__()
        self.conv32_down = ScaledConv(3, 32, 7, 2, True)
        self.layers = nn.Sequential(*[Residual(cin, cout, down) for _, cin, cout, down in RECOGNITION_LAYERS])
        self.fc = nn.Linear(256, DESCRIPTOR_DIM, bias=False)
        self.register_buffer("mean", torch.tensor(fa.MEAN_RGB).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # conv32_down holds the normalisation (x - mean) / 255 (load_descriptor): 'valid', so
        # every tap sees a normalised pixel.
        x = self.conv32_down(x)
        x = max_pool_valid(x, 3, 2)  # tf.maxPool(x, 3, 2, 'valid')
        x = self.layers(x)
        return self.fc(x.mean(dim=[2, 3]))


def load_descriptor(weights: dict) -> FaceRecognitionNet:
    take, unused = fa.weight_taker(weights)
    net = FaceRecognitionNet()

    def load_scaled(layer: ScaledConv, prefix: str, cin: int, cout: int, kernel: int):
        fa.load_conv(layer.conv, take, prefix + "/conv", cin, cout, kernel)
        with torch.no_grad():  # (conv(x) + b) * s + c = conv'(x) + (b * s + c), conv' = conv * s
            scale = take(prefix + "/scale/weights", [cout])
            layer.conv.weight.mul_(scale.view(-1, 1, 1, 1))
            layer.conv.bias.mul_(scale).add_(take(prefix + "/scale/biases", [cout]))

    load_scaled(net.conv32_down, "conv32_down", 3, 32, 7)
    with torch.no_grad():  # conv((x - mean) / 255) = conv'(x): weights / 255, bias less mean's share
        net.conv32_down.conv.weight.div_(255.0)
        net.conv32_down.conv.bias.sub_((net.conv32_down.conv.weight * net.mean.view(1, 3, 1, 1)).sum(dim=(1, 2, 3)))
    for (name, cin, cout, _), block in zip(RECOGNITION_LAYERS, net.layers):
        load_scaled(block.conv1, name + "/conv1", cin, cout, 3)
        load_scaled(block.conv2, name + "/conv2", cout, cout, 3)
    with torch.no_grad():
        net.fc.weight.copy_(take("fc", [256, DESCRIPTOR_DIM]).t())  # x @ W -> Linear(W^T)
    if unused():
        raise SystemExit(f"error: tensors not used by FaceRecognitionNet: {', '.join(unused())}")
    return net.eval()


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------

def faces_json() -> dict:
    return {
        "format": "abaw-infer-face-models",
        "version": 1,
        "source": "npm " + fa.PACKAGE + " (MIT)",
        "detector": {"file": FILES["detector"][1], "input_multiple": DETECTOR_STRIDE,
                     "default_input_size": DETECTOR_DEFAULT_SIZE, "score_threshold": SCORE_THRESHOLD,
                     "iou_threshold": IOU_THRESHOLD},
        "landmarks": {"file": FILES["landmarks"][1], "input_size": LANDMARK_SIZE, "points": LANDMARK_POINTS},
        "descriptor": {"file": FILES["descriptor"][1], "input_size": DESCRIPTOR_SIZE, "dim": DESCRIPTOR_DIM},
    }


def save_and_check(module: nn.Module, examples: List[torch.Tensor], path: str) -> None:
    """Scripts and saves the module (convert_faceapi.script_and_check on the first example), then
    loads the file back and compares it with the eager module on the others (other batch sizes,
    other input sizes). The convolution weights are stored in channels-last order, the order the
    tool's inputs come in: ATen would otherwise copy each weight of the face descriptor into that
    order on every call (1 thread: 17.8 against 25.1 ms for 2 faces; the detector's, landmark
    net's and encoder's times do not change). The results are the same bit for bit."""
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.dim() == 4:
                parameter.set_(parameter.contiguous(memory_format=torch.channels_last))
    fa.script_and_check(module, examples[0], path)
    loaded = torch.jit.load(path, map_location="cpu").eval()
    with torch.no_grad():
        for example in examples[1:]:
            got, expected = loaded(example), module(example)
            if got.shape != expected.shape:
                raise SystemExit(f"error: {path}: shape {list(got.shape)} for input {list(example.shape)}, "
                                 f"expected {list(expected.shape)}")
            diff = (got - expected).abs().max().item()
            if diff > 1e-4:
                raise SystemExit(f"error: {path}: the saved module differs from the eager one by {diff} "
                                 f"on input {list(example.shape)}")


def convert(model_dir: str) -> dict:
    """{"detector": TinyFaceDetector, "landmarks": FaceLandmark68Net, "descriptor":
    FaceRecognitionNet}, in eval mode, from a face-api `model/` folder."""
    loaders = {"detector": load_detector, "landmarks": load_landmarks, "descriptor": load_descriptor}
    nets = {}
    for key, (manifest_name, _) in FILES.items():
        path = os.path.join(model_dir, manifest_name)
        if not os.path.isfile(path):
            raise SystemExit(f"error: {path} not found (give the package's model/ folder)")
        nets[key] = loaders[key](fa.read_tfjs_weights(path))
    return nets


def write_faces(nets: dict, output: str) -> None:
    os.makedirs(output, exist_ok=True)
    jpath = os.path.join(output, "faces.json")
    if os.path.exists(jpath):
        os.remove(jpath)  # written last: a half-written folder never looks complete
    g = torch.Generator().manual_seed(0)

    def images(n, size):
        return torch.rand(n, 3, size, size, generator=g) * 255

    save_and_check(nets["detector"], [images(1, DETECTOR_DEFAULT_SIZE), images(3, 320), images(3, 416)],
                   os.path.join(output, FILES["detector"][1]))
    save_and_check(nets["landmarks"], [images(1, LANDMARK_SIZE), images(3, LANDMARK_SIZE)],
                   os.path.join(output, FILES["landmarks"][1]))
    save_and_check(nets["descriptor"], [images(1, DESCRIPTOR_SIZE), images(3, DESCRIPTOR_SIZE)],
                   os.path.join(output, FILES["descriptor"][1]))
    tmp = jpath + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(faces_json(), f, indent=2)
        f.write("\n")
    os.replace(tmp, jpath)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True,
                   help="the package's model/ folder (holds the *-weights_manifest.json and .bin files)")
    p.add_argument("--output", required=True, help="folder to create or fill")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                   help="torch threads (default: min(4, cpu count))")
    args = p.parse_args(argv)
    fa.fix_hash_seed()
    torch.set_num_threads(max(1, args.threads))

    start = time.time()
    nets = convert(args.model_dir)
    for key, net in nets.items():
        log(f"{type(net).__name__} from {FILES[key][0]}: {sum(t.numel() for t in net.parameters())} parameters")
    write_faces(nets, args.output)
    log(f"wrote {args.output}/" + ", ".join(f for _, f in FILES.values()) +
        f", faces.json ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
