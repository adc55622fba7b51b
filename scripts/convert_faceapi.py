#!/usr/bin/python3
"""face-api.js FaceExpressionNet (TF.js weights) -> an abaw-infer model set.

Reads the TF.js weights manifest and the weights file of face-api.js's FaceExpressionNet
(`face_expression_model-weights_manifest.json` + `face_expression_model.bin`, as shipped in the
npm package `@vladmandic/face-api`), rebuilds the network in PyTorch and writes:

  encoder.pt     TorchScript FaceFeatureExtractor: float32 [N, 3, 112, 112] RGB, already
                 normalised as face-api does ((pixel - mean_rgb) / 255, see PREPROCESS) ->
                 float32 [N, 256], the backbone's average-pooled features
  head_expr.pt   TorchScript classifier: float32 [1, T, 256] -> float32 [1, T, 7] logits over
                 face-api's classes [neutral, happy, sad, angry, fearful, disgusted, surprised]
  manifest.json  tasks: expr only (softmax, class map to the ABAW order; `Other` never predicted)

The architecture follows face-api.js (src/faceFeatureExtractor/FaceFeatureExtractor.ts,
denseBlock.ts, src/common/depthwiseSeparableConv.ts, src/faceProcessor/FaceProcessor.ts,
src/faceExpressionNet/FaceExpressionNet.ts):

  x = (rgb 0..255 - [122.782, 117.001, 104.298]) / 255           (112 x 112)
  4 dense blocks (32, 64, 128, 256 channels), each:
    out1 = relu(conv0(x))            stride 2; a plain 3x3 conv in dense0, else separable
    out2 = sep1(out1)                separable = depthwise 3x3 + pointwise 1x1 + bias
    out3 = sep2(relu(out1 + out2))
    out4 = sep3(relu(out1 + out2 + out3))
    x    = relu(out1 + out2 + out3 + out4)
  avgPool 7x7, stride 2, 'valid' (7x7 -> 1x1) -> 256 features
  fc: 256 -> 7, softmax

Convolutions use TF's 'same' padding. At stride 1 that is one pixel on every side, which the
convolution does itself. With stride 2 on an even input TF pads 0 before and 1 after (bottom /
right), which PyTorch's symmetric padding cannot express. The stride-2 depthwise convolutions
therefore run as 4x4 kernels whose first row and column are zero, with padding 1: the same taps
over the same pixels, without a padded copy of the input (1.1 against 3.1 ms on a batch of 32 at
56 x 56 x 32, 1 thread; the same outputs bit for bit). dense0's plain conv0 (3 input channels)
pads explicitly (tf_same_pad) instead, where the 4x4 kernel was the slower one (4.6 against 4.2
ms). Padding every convolution explicitly made the encoder ~10 % slower. The ReLUs work in
place on tensors nothing else reads.

A dense block keeps one running sum (out1 + out2, + out3, + out4) where face-api adds each sum
afresh (out1 + (out2 + out3), ...): three additions instead of six, which were a third of the
encoder's time. The sum starts in place in out2's tensor (out2 + out1 is out1 + out2 bit for
bit), not in a new one. The order of the float additions changes, so features differ from
face-api's order by rounding (3.6e-6 at most on a batch of 32, values up to 3.1).

Weights: the TF.js manifest lists tensors in the order they are stored in the .bin files
(concatenated, no alignment). Quantised tensors are uint8 (or uint16) with a `scale` and a
`min`: value = q * scale + min (TF.js's io.decodeWeights). Unquantised ones are little-endian
float32. Every tensor the network needs must be present with the expected shape, and no tensor
may be left over.

Run with Debian's Python (python3-torch 1.13): /usr/bin/python3 scripts/convert_faceapi.py -h
"""

import argparse
import json
import os
import sys
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN_RGB = [122.782, 117.001, 104.298]
FACEAPI_CLASSES = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
ABAW_CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
# entry j = index of ABAW class j in face-api's output; `Other` has no counterpart.
CLASS_MAP = [0, 3, 5, 4, 1, 2, 6, None]
INPUT_SIZE = 112
FEATURE_DIM = 256
BLOCK_CHANNELS = [32, 64, 128, 256]

# The manifest's preprocessing: face-api feeds the crop (zero-padded to a square) resized with
# tf.image.resizeBilinear to 112 x 112, RGB 0..255, subtracts MEAN_RGB and divides by 255.
PREPROCESS = {
    "resize": INPUT_SIZE,
    "resize_mode": "stretch",
    "interpolation": "bilinear",
    "color_order": "RGB",
    "scale": 1.0,
    "mean": MEAN_RGB,
    "std": [255.0, 255.0, 255.0],
}

PACKAGE = "@vladmandic/face-api@1.7.15"
MANIFEST_NAME = "face_expression_model-weights_manifest.json"


def log(*args) -> None:
    print(*args, file=sys.stderr)


def fix_hash_seed() -> None:
    """Re-runs the script with PYTHONHASHSEED=0: TorchScript writes some constants in hash
    order, so without it the same weights could give different bytes."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)


# ---------------------------------------------------------------------------------------
# TF.js weights
# ---------------------------------------------------------------------------------------

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}


def read_tfjs_weights(manifest_path: str) -> dict:
    """Returns {name: float32 numpy array} from a TF.js weights manifest and its .bin files."""
    folder = os.path.dirname(os.path.abspath(manifest_path))
    with open(manifest_path, encoding="utf-8") as f:
        groups = json.load(f)
    if not isinstance(groups, list):
        raise SystemExit(f"error: {manifest_path}: expected a list of weight groups")
    weights = {}
    for gi, group in enumerate(groups):
        data = b"".join(open(os.path.join(folder, p), "rb").read() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            name, shape, dtype = spec["name"], [int(d) for d in spec["shape"]], spec["dtype"]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                qtype = quant["dtype"]
                if qtype not in ("uint8", "uint16"):
                    raise SystemExit(f"error: {name}: quantisation {qtype} is not supported")
                if "scale" not in quant or "min" not in quant:
                    raise SystemExit(f"error: {name}: quantisation without scale/min is not supported")
                nbytes = count * np.dtype(_DTYPES[qtype]).itemsize
                q = np.frombuffer(data, dtype=np.dtype(_DTYPES[qtype]).newbyteorder("<"),
                                  count=count, offset=offset)
                # TF.js: value = q * scale + min, computed in double, stored as float32.
                values = (q.astype(np.float64) * float(quant["scale"]) + float(quant["min"])).astype(np.float32)
            else:
                if dtype != "float32":
                    raise SystemExit(f"error: {name}: dtype {dtype} is not supported")
                nbytes = count * 4
                values = np.frombuffer(data, dtype="<f4", count=count, offset=offset).astype(np.float32)
            if offset + nbytes > len(data):
                raise SystemExit(f"error: {manifest_path}: group {gi} ends before {name} "
                                 f"({len(data)} bytes)")
            offset += nbytes
            if name in weights:
                raise SystemExit(f"error: {manifest_path}: {name} appears twice")
            weights[name] = values.reshape(shape)
        if offset != len(data):
            raise SystemExit(f"error: {manifest_path}: group {gi} has {len(data) - offset} bytes "
                             f"after its last tensor (manifest and .bin disagree)")
    return weights


# ---------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------

def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF's 'same' padding: output = ceil(size / stride); the odd pixel goes after
    (bottom / right)."""
    h = x.shape[2]
    w = x.shape[3]
    out_h = (h + stride - 1) // stride
    out_w = (w + stride - 1) // stride
    pad_h = max((out_h - 1) * stride + kernel - h, 0)
    pad_w = max((out_w - 1) * stride + kernel - w, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class Conv(nn.Module):
    """tf.conv2d(x, filters, stride, 'same') + bias."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1 if stride == 1 else 0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.conv(x)
        return self.conv(tf_same_pad(x, 3, self.stride))


# oneDNN (MKLDNN) in this torch: the 1x1 convolutions of the exports call it directly on the CPU.
ONEDNN = torch.backends.mkldnn.is_available()


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   onednn: bool) -> torch.Tensor:
    """A 1x1 convolution (stride 1, no padding). On the CPU through oneDNN itself where `onednn`:
    for fewer than 16 images on one thread ATen picks its own im2col + GEMM kernel for 1x1
    convolutions instead, which ran 1.3-4x slower than oneDNN's on the detector's and the landmark
    net's shapes (channels-last, 1 thread: 5 frames of 79 x 79 x 16 -> 32, 1594 against 402 us).
    Elsewhere (CUDA) the usual convolution."""
    if onednn and x.device.type == "cpu":
        return torch.mkldnn_convolution(x, weight, bias, [0, 0], [1, 1], [1, 1], 1)
    return F.conv2d(x, weight, bias)


class SeparableConv(nn.Module):
    """tf.separableConv2d(x, depthwise 3x3, pointwise 1x1, stride 1 or 2, 'same') + bias. At
    stride 2 (even input sides) the depthwise kernel is 4x4, its first row and column zero
    (load_separable_conv), so that padding 1 on every side puts the 3x3 taps where TF's 0-before,
    1-after padding puts them."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3 if stride == 1 else 4, stride=stride, padding=1, groups=cin,
                                   bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=True)
        self.onednn = ONEDNN

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise_conv(self.depthwise(x), self.pointwise.weight, self.pointwise.bias, self.onednn)


class DenseBlock4(nn.Module):
    def __init__(self, cin: int, cout: int, first: bool):
        super().__init__()
        self.conv0 = Conv(cin, cout, 2) if first else SeparableConv(cin, cout, 2)
        self.conv1 = SeparableConv(cout, cout, 1)
        self.conv2 = SeparableConv(cout, cout, 1)
        self.conv3 = SeparableConv(cout, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x), inplace=True)
        total = self.conv1(out1).add_(out1)
        out3 = self.conv2(F.relu(total))
        total.add_(out3)
        out4 = self.conv3(F.relu(total))
        return F.relu(total.add_(out4), inplace=True)


class FaceFeatureExtractor(nn.Module):
    """[N, 3, 112, 112] normalised RGB -> [N, 256] pooled features."""

    def __init__(self):
        super().__init__()
        chans = [3] + BLOCK_CHANNELS
        self.dense0 = DenseBlock4(chans[0], chans[1], first=True)
        self.dense1 = DenseBlock4(chans[1], chans[2], first=False)
        self.dense2 = DenseBlock4(chans[2], chans[3], first=False)
        self.dense3 = DenseBlock4(chans[3], chans[4], first=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense0(x)
        x = self.dense1(x)
        x = self.dense2(x)
        x = self.dense3(x)
        x = F.avg_pool2d(x, kernel_size=7, stride=2)  # tf.avgPool(x, [7, 7], [2, 2], 'valid')
        return x.flatten(1)


class ExpressionHead(nn.Module):
    """[1, T, 256] features -> [1, T, 7] logits (softmax gives face-api's probabilities)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(FEATURE_DIM, len(FACEAPI_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class FaceExpressionNet(nn.Module):
    """The whole network as face-api runs it: [N, 3, 112, 112] RGB 0..255 -> [N, 7]
    probabilities. For checks only; the model set splits it into encoder and head."""

    def __init__(self, encoder: FaceFeatureExtractor, head: ExpressionHead):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.encoder((x - self.mean) / 255.0)), dim=-1)


def weight_taker(weights: dict):
    """(take, unused) over TF.js tensors: take(name, shape) returns the tensor as a torch tensor
    (an error when it is missing or has another shape) and marks it used; unused() lists the
    names not taken yet, sorted."""
    used = set()

    def take(name, shape):
        if name not in weights:
            raise SystemExit(f"error: the weights have no tensor {name}")
        value = weights[name]
        if list(value.shape) != list(shape):
            raise SystemExit(f"error: {name} has shape {list(value.shape)}, expected {list(shape)}")
        used.add(name)
        return torch.from_numpy(np.ascontiguousarray(value))

    def unused():
        return sorted(set(weights) - used)

    return take, unused


def hwio_to_oihw(t: torch.Tensor) -> torch.Tensor:
    """TF conv filters [kh, kw, in, out] -> PyTorch [out, in, kh, kw]."""
    return t.permute(3, 2, 0, 1).contiguous()


def load_conv(conv: nn.Conv2d, take, prefix: str, cin: int, cout: int, kernel: int) -> None:
    """`prefix/filters` [k, k, in, out] and `prefix/bias` [out] into a plain nn.Conv2d."""
    with torch.no_grad():
        conv.weight.copy_(hwio_to_oihw(take(prefix + "/filters", [kernel, kernel, cin, cout])))
        conv.bias.copy_(take(prefix + "/bias", [cout]))


def load_separable_conv(layer: "SeparableConv", take, prefix: str, cin: int, cout: int) -> None:
    """`prefix/depthwise_filter` [3, 3, in, 1], `prefix/pointwise_filter` [1, 1, in, out] and
    `prefix/bias` [out] into a SeparableConv."""
    with torch.no_grad():
        # depthwise [3, 3, in, 1] -> [in, 1, 3, 3], at the bottom right of a 4x4 kernel at stride 2
        depthwise = hwio_to_oihw(take(prefix + "/depthwise_filter", [3, 3, cin, 1])).transpose(0, 1)
        layer.depthwise.weight.zero_()
        layer.depthwise.weight[:, :, -3:, -3:] = depthwise
        layer.pointwise.weight.copy_(hwio_to_oihw(take(prefix + "/pointwise_filter",
                                                       [1, 1, cin, cout])))
        layer.pointwise.bias.copy_(take(prefix + "/bias", [cout]))


def load_feature_extractor(take) -> FaceFeatureExtractor:
    """face-api's FaceFeatureExtractor (`dense0/...` .. `dense3/...`), shared by the expression
    and the 68-point landmark networks."""
    encoder = FaceFeatureExtractor()
    chans = [3] + BLOCK_CHANNELS
    for b in range(4):
        block = getattr(encoder, f"dense{b}")
        cin, cout = chans[b], chans[b + 1]
        for c in range(4):
            prefix = f"dense{b}/conv{c}"
            layer = getattr(block, f"conv{c}")
            i = cin if c == 0 else cout
            if isinstance(layer, Conv):
                load_conv(layer.conv, take, prefix, i, cout, 3)
            else:
                load_separable_conv(layer, take, prefix, i, cout)
    return encoder


def load_weights(weights: dict):
    """Builds (encoder, head) from the TF.js tensors; every tensor must be used exactly once."""
    take, unused = weight_taker(weights)
    encoder, head = load_feature_extractor(take), ExpressionHead()
    with torch.no_grad():
        head.fc.weight.copy_(take("fc/weights", [FEATURE_DIM, 7]).t())  # x @ W -> Linear(W^T)
        head.fc.bias.copy_(take("fc/bias", [7]))
    if unused():
        raise SystemExit(f"error: tensors not used by FaceExpressionNet: {', '.join(unused())}")
    return encoder.eval(), head.eval()


def convert(model_dir: str):
    """(encoder, head) in eval mode from a face-api `model/` folder."""
    path = os.path.join(model_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} not found (give the package's model/ folder)")
    return load_weights(read_tfjs_weights(path))


# ---------------------------------------------------------------------------------------
# Model set
# ---------------------------------------------------------------------------------------

def script_and_check(module: nn.Module, example: torch.Tensor, path: str) -> None:
    scripted = torch.jit.script(module)
    scripted.save(path)
    loaded = torch.jit.load(path, map_location="cpu").eval()
    with torch.no_grad():
        diff = (loaded(example) - module(example)).abs().max().item()
    if diff > 1e-5:
        raise SystemExit(f"error: {path}: the scripted module differs from the eager one by {diff}")


def manifest(name: str) -> dict:
    return {
        "format": "abaw-infer-model-set",
        "version": 1,
        "name": name,
        "description": ("face-api.js FaceExpressionNet (npm " + PACKAGE + ", MIT), converted by "
                        "scripts/convert_faceapi.py: per-frame expression, 7 classes "
                        "(Other is never predicted); no VA or AU"),
        # channels_last: oneDNN's depthwise convolutions; measured 1.2-1.5x faster on 2 CPU cores
        "encoder": {"file": "encoder.pt", "feature_dim": FEATURE_DIM, "memory_format": "channels_last",
                    "preprocess": PREPROCESS},
        "sequence": {"window": 300, "stride": 300, "merge": "concatenate",
                     "missing_frames": "interpolate_predictions"},
        "tasks": {
            "expr": {"head": "head_expr.pt", "activation": "softmax", "class_map": CLASS_MAP,
                     "mean_filter": 0, "mode_filter": 0},
        },
    }


def write_model_set(encoder, head, output: str, name: str) -> None:
    os.makedirs(output, exist_ok=True)
    mpath = os.path.join(output, "manifest.json")
    if os.path.exists(mpath):
        os.remove(mpath)  # written last: a half-written set never looks complete
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=g) * 255
    normalised = (images - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)) / 255.0
    script_and_check(encoder, normalised, os.path.join(output, "encoder.pt"))
    with torch.no_grad():
        feats = encoder(normalised)
    script_and_check(head, feats.unsqueeze(0), os.path.join(output, "head_expr.pt"))
    tmp = mpath + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest(name), f, indent=2)
        f.write("\n")
    os.replace(tmp, mpath)


# ---------------------------------------------------------------------------------------
# Optional checks (the e2e test does the same)
# ---------------------------------------------------------------------------------------

def compare_reference(encoder, head, reference: str, images: torch.Tensor) -> float:
    """Max abs difference of the probabilities against a TorchScript taking RGB 0..255."""
    ref = torch.jit.load(reference, map_location="cpu").eval()
    full = FaceExpressionNet(encoder, head).eval()
    with torch.no_grad():
        return (full(images) - ref(images)).abs().max().item()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True,
                   help="the package's model/ folder (holds " + MANIFEST_NAME + " and its .bin)")
    p.add_argument("--output", required=True, help="model-set folder to create or fill")
    p.add_argument("--name", default="faceapi-expression", help="manifest name")
    p.add_argument("--reference", metavar="FILE.pt",
                   help="also compare with this TorchScript ([N,3,112,112] RGB 0..255 -> "
                        "[N,7] probabilities) on random images; fail above 1e-3")
    args = p.parse_args(argv)
    fix_hash_seed()
    torch.set_num_threads(min(4, os.cpu_count() or 1))

    encoder, head = convert(args.model_dir)
    nparams = sum(t.numel() for t in encoder.parameters()) + sum(t.numel() for t in head.parameters())
    log(f"FaceExpressionNet from {args.model_dir}: {nparams} parameters, feature_dim {FEATURE_DIM}, "
        f"classes {FACEAPI_CLASSES}")
    write_model_set(encoder, head, args.output, args.name)
    log(f"wrote {args.output}/encoder.pt, head_expr.pt, manifest.json "
        f"(class_map {CLASS_MAP} for {ABAW_CLASSES})")
    if args.reference:
        g = torch.Generator().manual_seed(1)
        images = torch.rand(4, 3, INPUT_SIZE, INPUT_SIZE, generator=g) * 255
        diff = compare_reference(encoder, head, args.reference, images)
        log(f"max abs difference vs {args.reference} on 4 random images: {diff:.3g}")
        if diff > 1e-3:
            raise SystemExit(f"error: the conversion differs from {args.reference} by {diff}")


if __name__ == "__main__":
    main()
