#!/usr/bin/python3
"""Plain-Python reference implementation of `abaw-infer run` (the parity oracle).

Written from models/README.md (model-set manifest) and the `run` output contract only;
it shares no code with the C++ tool and prefers simple loops to speed. Differences from
the C++ tool on purpose: the encoder sees ONE frame per call (batch size 1) and all
post-processing arithmetic is float64.

    /usr/bin/python3 tests/reference_pipeline.py --model-set DIR --crops DIR --output DIR \
        [--frame-list TASK=FILE ...] [--annotations DIR ...] [--tasks va,expr,au] \
        [--window W] [--stride S]

Writes OUTPUT/submission/{VA,EXPR,AU}.txt and OUTPUT/raw/<TASK>/<video>.csv (no run.json).

Interpretations where the written contract is silent (keep in sync with the report):
- Which tasks run: --tasks if given, else every task of the model set. A task with a
  --frame-list or --annotations source uses it; a task with neither uses the crops folder
  (videos = sub-folders, T = highest crop number). A task with both sources is an error.
- --window without --stride: stride = that window. --stride without --window: manifest window.
- merge=mean: windows start at 0, S, 2S, ... while start + W <= T; the end-aligned window
  [T-W, T) is added only when the last regular window ends before T (never a duplicate).
- missing frames / interpolate_predictions: interpolation is over the ACTIVATED, class-mapped,
  merged scores (the raw scores), weights by frame-number distance.
- A crop that cannot be decoded, or a crop larger than the resized image, counts as a frame
  without a crop (has_crop 0) and is reported on stderr.
- Preprocess order: decode (BGR, grey expanded to 3 channels) -> resize (cv2.resize, or PIL's
  Image.resize for pil_*: uint8; F.interpolate for torch_*: float, unrounded) -> centre crop
  -> colour order (GRAY = cv2 BGR2GRAY on the uint8 crop) -> float32 (p*scale-mean)/std -> CHW.
- Manifest defaults as models/README.md: resize 224, interpolation bicubic.
"""

import argparse
import json
import math
import os
import sys

import cv2
import numpy as np
import torch

TASKS = ["va", "expr", "au"]
TASK_UPPER = {"va": "VA", "expr": "EXPR", "au": "AU"}
COLUMNS = {
    "va": ["valence", "arousal"],
    "expr": ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"],
    "au": ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"],
}
K_OUT = {"va": 2, "expr": 8, "au": 12}
INTERP = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
}
PIL_INTERP = {"pil_bicubic": "BICUBIC", "pil_bilinear": "BILINEAR"}  # PIL.Image filters, by name
TORCH_INTERP = {"torch_bicubic": "bicubic", "torch_bilinear": "bilinear"}  # F.interpolate modes


def resize(img, nw, nh, pp):
    """BGR uint8 -> resized with the manifest's interpolation: Pillow's Image.resize (uint8), F.interpolate
    on float pixels (float32, unrounded) or cv2.resize (uint8)."""
    mode = pp["interpolation"]
    if mode in PIL_INTERP:
        from PIL import Image
        resized = Image.fromarray(np.ascontiguousarray(img[:, :, ::-1])).resize(
            (nw, nh), getattr(Image, PIL_INTERP[mode]))
        return np.asarray(resized)[:, :, ::-1]
    if mode in TORCH_INTERP:
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode=TORCH_INTERP[mode], align_corners=False,
                                            antialias=bool(pp.get("antialias", False)))
        return x[0].permute(1, 2, 0).numpy()
    return cv2.resize(img, (nw, nh), interpolation=INTERP[mode])


class RefError(Exception):
    pass


def warn(msg):
    sys.stderr.write("reference: warning: " + msg + "\n")


# --------------------------------------------------------------------------- manifest

def check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise RefError("%s must be a JSON object" % where)
    for k in obj:
        if k not in allowed:
            raise RefError("unknown key %r in %s" % (k, where))


def load_manifest(model_dir):
    path = os.path.join(model_dir, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    check_keys(m, ["format", "version", "name", "description", "encoder", "sequence", "tasks"],
               "manifest")
    if m.get("format") != "abaw-infer-model-set":
        raise RefError("manifest format must be 'abaw-infer-model-set'")
    if m.get("version") != 1:
        raise RefError("manifest version must be 1")

    enc = m["encoder"]
    check_keys(enc, ["file", "feature_dim", "memory_format", "normalize", "preprocess"], "encoder")
    if enc.get("memory_format", "contiguous") not in ("contiguous", "channels_last"):
        raise RefError("bad encoder.memory_format %r" % enc["memory_format"])
    if enc.get("normalize", "none") not in ("none", "l2"):
        raise RefError("bad encoder.normalize %r" % enc["normalize"])
    pp = dict(enc.get("preprocess", {}))
    check_keys(pp, ["resize", "resize_mode", "interpolation", "antialias", "crop", "color_order",
                    "scale", "mean", "std", "exif"], "encoder.preprocess")
    pp.setdefault("exif", "ignore")
    if pp["exif"] not in ("ignore", "apply"):
        raise RefError("bad encoder.preprocess.exif %r" % pp["exif"])
    pp.setdefault("resize", 224)
    pp.setdefault("resize_mode", "shorter_side")
    pp.setdefault("interpolation", "bicubic")
    pp.setdefault("crop", 0)
    pp.setdefault("color_order", "RGB")
    pp.setdefault("scale", 1.0 / 255.0)
    nch = 1 if pp["color_order"] == "GRAY" else 3
    pp.setdefault("mean", [0.0] * nch)
    pp.setdefault("std", [1.0] * nch)
    if pp["resize_mode"] not in ("shorter_side", "stretch"):
        raise RefError("bad resize_mode %r" % pp["resize_mode"])
    if pp["interpolation"] not in {**INTERP, **PIL_INTERP, **TORCH_INTERP}:
        raise RefError("bad interpolation %r" % pp["interpolation"])
    if "antialias" in pp and pp["interpolation"] not in TORCH_INTERP:
        raise RefError("antialias is for the torch_* interpolations only")
    if pp["color_order"] not in ("RGB", "BGR", "GRAY"):
        raise RefError("bad color_order %r" % pp["color_order"])
    if len(pp["mean"]) != nch or len(pp["std"]) != nch:
        raise RefError("mean/std need %d entries" % nch)

    seq = dict(m.get("sequence", {}))
    check_keys(seq, ["window", "stride", "merge", "missing_frames"], "sequence")
    seq.setdefault("window", 300)
    seq["stride_given"] = "stride" in seq
    seq.setdefault("stride", seq["window"])
    seq.setdefault("merge", "concatenate")
    seq.setdefault("missing_frames", "zero_feature")
    if seq["merge"] not in ("concatenate", "mean"):
        raise RefError("bad merge %r" % seq["merge"])
    if seq["missing_frames"] not in ("zero_feature", "nearest_feature", "interpolate_predictions"):
        raise RefError("bad missing_frames %r" % seq["missing_frames"])

    tasks = m["tasks"]
    if not isinstance(tasks, dict) or not tasks:
        raise RefError("tasks must be a non-empty object")
    out = {}
    for t, spec in tasks.items():
        if t not in TASKS:
            raise RefError("unknown task %r" % t)
        allowed = ["head", "activation", "mean_filter"]
        if t == "expr":
            allowed += ["class_map", "mode_filter"]
        if t == "au":
            allowed += ["threshold"]
        check_keys(spec, allowed, "tasks." + t)
        s = dict(spec)
        head = s["head"]
        if isinstance(head, str):
            s["head_file"], s["head_key"] = head, None
        elif "columns" in head:  # the encoder's own scores: columns first..end-1 of its output
            check_keys(head, ["columns"], "tasks.%s.head" % t)
            first, end = (int(c) for c in head["columns"])
            s["head_file"], s["head_key"] = None, None
            s["columns"] = (first, end)
        elif "text_embeddings" in head:  # zero-shot: logit_scale * cos(feature, class row)
            if t != "expr":
                raise RefError("text_embeddings heads are for expr only")
            check_keys(head, ["text_embeddings", "logit_scale"], "tasks.%s.head" % t)
            s["head_file"], s["head_key"] = None, None
            s["text_embeddings"] = (head["text_embeddings"], float(head.get("logit_scale", 100.0)))
        else:
            check_keys(head, ["file", "output"], "tasks.%s.head" % t)
            s["head_file"], s["head_key"] = head["file"], head["output"]
        s.setdefault("activation", {"va": "none", "expr": "softmax", "au": "sigmoid"}[t])
        ok_act = {"va": ("none", "tanh"), "expr": ("softmax", "none"), "au": ("sigmoid", "none")}[t]
        if s["activation"] not in ok_act:
            raise RefError("bad activation %r for %s" % (s["activation"], t))
        s.setdefault("mean_filter", 0)
        if t == "expr":
            s.setdefault("class_map", list(range(8)))
            s.setdefault("mode_filter", 0)
            if len(s["class_map"]) != 8:
                raise RefError("class_map needs 8 entries")
        if t == "au":
            thr = s.get("threshold", 0.5)
            if isinstance(thr, list):
                if len(thr) != 12:
                    raise RefError("threshold list needs 12 entries")
                s["thresholds"] = [float(x) for x in thr]
            else:
                s["thresholds"] = [float(thr)] * 12
        out[t] = s
    return {"encoder": enc, "preprocess": pp, "sequence": seq, "tasks": out}


# --------------------------------------------------------------------------- inputs

def parse_frame_location(loc):
    """'video/00012.jpg' -> ('video', 12)."""
    if "/" not in loc:
        raise RefError("bad image_location %r" % loc)
    video, name = loc.rsplit("/", 1)
    if not name.endswith(".jpg") or not name[:-4].isdigit():
        raise RefError("bad image_location %r" % loc)
    return video, int(name[:-4])


def read_lines(path):
    with open(path, "r", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    while lines and lines[-1].strip() == "":
        lines.pop()
    return lines


def read_frame_list(path):
    """Returns (rows, T): rows = [(image_location, video, frame)], T = {video: max frame}."""
    lines = read_lines(path)
    if not lines:
        raise RefError("empty frame list " + path)
    rows, T = [], {}
    for ln in lines[1:]:
        if ln.strip() == "":
            continue
        loc = ln.split(",", 1)[0]
        video, frame = parse_frame_location(loc)
        if frame < 1:
            raise RefError("frame number < 1 in %s: %r" % (path, ln))
        rows.append((loc, video, frame))
        T[video] = max(T.get(video, 0), frame)
    return rows, T


ANNOT_HEADER_TASK = {",".join(COLUMNS[t]): t for t in TASKS}


def read_annotation_dir(path):
    """Returns (task, rows, T) for one `*_Set` folder; task from the files' header."""
    names = [n for n in os.listdir(path) if n.endswith(".txt")]
    names.sort(key=lambda n: n[:-4].encode("utf-8"))  # videos by name, byte order
    if not names:
        raise RefError("no annotation files in " + path)
    task, rows, T = None, [], {}
    for n in names:
        video = n[:-4]
        lines = read_lines(os.path.join(path, n))
        if not lines:
            raise RefError("empty annotation file %s/%s" % (path, n))
        header = lines[0].strip().replace(" ", "")
        t = ANNOT_HEADER_TASK.get(header)
        if t is None:
            raise RefError("unrecognised annotation header in %s/%s: %r" % (path, n, lines[0]))
        if task is not None and t != task:
            raise RefError("annotation folder %s mixes tasks" % path)
        task = t
        count = len(lines) - 1
        T[video] = count
        for f in range(1, count + 1):
            rows.append(("%s/%05d.jpg" % (video, f), video, f))
    return task, rows, T


def crop_frames(crops_dir, video):
    """{frame number: path} of the well-named .jpg files in a video folder."""
    d = os.path.join(crops_dir, video)
    out = {}
    if not os.path.isdir(d):
        return out
    for n in os.listdir(d):
        if n.endswith(".jpg") and n[:-4].isdigit():
            num = int(n[:-4])
            if n == "%05d.jpg" % num and num >= 1:
                out[num] = os.path.join(d, n)
                continue
        warn("ignoring %s/%s (not a frame name)" % (video, n))
    return out


def rows_from_crops(crops_dir):
    videos = sorted((v for v in os.listdir(crops_dir) if os.path.isdir(os.path.join(crops_dir, v))),
                    key=lambda v: v.encode("utf-8"))
    rows, T = [], {}
    for v in videos:
        frames = crop_frames(crops_dir, v)
        if not frames:
            warn("video folder %s has no crops; skipped" % v)
            continue
        T[v] = max(frames)
        for f in range(1, T[v] + 1):
            rows.append(("%s/%05d.jpg" % (v, f), v, f))
    warn("frame counts taken from the crops folder (highest crop number)")
    return rows, T


# --------------------------------------------------------------------------- encoder

def preprocess(path, pp):
    """One crop -> float32 [C, H, W], or None when the frame has no usable crop."""
    flags = cv2.IMREAD_COLOR if pp["exif"] == "apply" else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imread(path, flags)  # BGR uint8, grey JPEGs expanded to 3 channels
    if img is None:
        warn("unreadable crop " + path)
        return None
    h, w = img.shape[0], img.shape[1]
    R = int(pp["resize"])
    if R > 0:
        if pp["resize_mode"] == "stretch":
            nh, nw = R, R
        elif h <= w:
            nh, nw = R, (R * w) // h
        else:
            nh, nw = (R * h) // w, R
        if (nh, nw) != (h, w):
            img = resize(img, nw, nh, pp)
    h, w = img.shape[0], img.shape[1]
    c = int(pp["crop"])
    if c > 0:
        if c > h or c > w:
            warn("crop %d larger than resized image %dx%d: %s" % (c, w, h, path))
            return None
        top = int(round((h - c) / 2.0))   # Python round = half to even
        left = int(round((w - c) / 2.0))
        img = img[top:top + c, left:left + c]
    if pp["color_order"] == "RGB":
        img = img[:, :, ::-1]
    elif pp["color_order"] == "GRAY":
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)[:, :, None]
    x = img.astype(np.float32) * np.float32(pp["scale"])
    for ch in range(x.shape[2]):
        x[:, :, ch] = (x[:, :, ch] - np.float32(pp["mean"][ch])) / np.float32(pp["std"][ch])
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def encode_video(encoder, feature_dim, pp, frames, T, channels_last=False, l2=False):
    """{frame: float32 [D]} for frames 1..T with a usable crop; encoder called per frame, its
    input in the manifest's memory_format (NHWC in memory for channels_last); with `l2` each
    feature is F.normalize'd (encoder.normalize "l2")."""
    feats = {}
    for f in range(1, T + 1):
        if f not in frames:
            continue
        x = preprocess(frames[f], pp)
        if x is None:
            continue
        x = torch.from_numpy(x[None])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            y = encoder(x)
        if tuple(y.shape) != (1, feature_dim):
            raise RefError("encoder output %s, expected [1, %d]" % (list(y.shape), feature_dim))
        y = y.to(torch.float32)
        if l2:
            y = torch.nn.functional.normalize(y, dim=1)
        feats[f] = y[0].numpy().copy()
    return feats


# --------------------------------------------------------------------------- windows, heads

def plan_windows(n, W, S, merge):
    if n <= W:
        return [(0, n)]
    wins = []
    if merge == "concatenate":
        a = 0
        while a < n:
            wins.append((a, min(a + W, n)))
            a += W
        return wins
    a = 0
    while a + W <= n:
        wins.append((a, a + W))
        a += S
    if wins[-1][1] < n:
        wins.append((n - W, n))
    return wins


def activate(x, activation):
    """x float64 [t, K] -> activated float64 [t, K]."""
    if activation == "none":
        return x.copy()
    if activation == "tanh":
        return np.tanh(x)
    if activation == "sigmoid":
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            for k in range(x.shape[1]):
                v = x[i, k]
                out[i, k] = 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))
        return out
    if activation == "softmax":
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            e = np.exp(x[i] - np.max(x[i]))
            out[i] = e / np.sum(e)
        return out
    raise RefError("activation " + activation)


def apply_class_map(p, class_map):
    out = np.zeros((p.shape[0], 8), np.float64)
    for j, idx in enumerate(class_map):
        if idx is not None:
            out[:, j] = p[:, idx]
    return out


def run_head(task, spec, head, seq_feats, W, S, merge):
    """seq_feats float32 [n, D] -> merged raw scores float64 [n, 8|2|12]."""
    n = seq_feats.shape[0]
    kout = K_OUT[task]
    acc = np.zeros((n, kout), np.float64)
    cnt = np.zeros(n, np.int64)
    for a, b in plan_windows(n, W, S, merge):
        x = torch.from_numpy(np.ascontiguousarray(seq_feats[a:b][None]))
        with torch.no_grad():
            y = head(x)
        if spec["head_key"] is not None:
            y = y[spec["head_key"]]
        y = y.to(torch.float32).numpy().astype(np.float64)
        if y.ndim != 3 or y.shape[0] != 1 or y.shape[1] != b - a:
            raise RefError("%s head returned %s for input %s" % (task, list(y.shape), list(x.shape)))
        s = activate(y[0], spec["activation"])
        if task == "expr":
            need = max([i for i in spec["class_map"] if i is not None]) + 1
            if s.shape[1] < need:
                raise RefError("expr head has %d outputs, class_map needs %d" % (s.shape[1], need))
            s = apply_class_map(s, spec["class_map"])
        elif s.shape[1] != kout:
            raise RefError("%s head has %d outputs, expected %d" % (task, s.shape[1], kout))
        for i in range(a, b):
            acc[i] += s[i - a]
            cnt[i] += 1
    for i in range(n):
        if cnt[i] == 0:
            raise RefError("internal: frame %d not covered by any window" % i)
        acc[i] /= cnt[i]
    return acc


def raw_scores(task, spec, head, feats, T, D, W, S, merge, policy, video):
    """Raw scores float64 [T, K] for frames 1..T (step 1-2 of the order of operations)."""
    present = [f for f in range(1, T + 1) if f in feats]
    if policy in ("nearest_feature", "interpolate_predictions") and not present:
        raise RefError("video %s has no crop; %s needs at least one" % (video, policy))
    if policy == "interpolate_predictions":
        seq = np.stack([feats[f] for f in present]).astype(np.float32)
        comp = run_head(task, spec, head, seq, W, S, merge)
        out = np.zeros((T, comp.shape[1]), np.float64)
        pos = {f: i for i, f in enumerate(present)}
        for f in range(1, T + 1):
            if f in pos:
                out[f - 1] = comp[pos[f]]
                continue
            before = [p for p in present if p < f]
            after = [p for p in present if p > f]
            if not before:
                out[f - 1] = comp[pos[after[0]]]
            elif not after:
                out[f - 1] = comp[pos[before[-1]]]
            else:
                a, b = before[-1], after[0]
                wgt = (f - a) / float(b - a)
                out[f - 1] = comp[pos[a]] * (1.0 - wgt) + comp[pos[b]] * wgt
        return out
    seq = np.zeros((T, D), np.float32)
    for f in range(1, T + 1):
        if f in feats:
            seq[f - 1] = feats[f]
        elif policy == "nearest_feature":
            best = None
            for p in present:  # ascending, so strict < keeps the earlier one on a tie
                if best is None or abs(p - f) < abs(best - f):
                    best = p
            seq[f - 1] = feats[best]
        # zero_feature: stays zero
    return run_head(task, spec, head, seq, W, S, merge)


# --------------------------------------------------------------------------- post-processing

def mean_filter(x, w):
    if w <= 1:
        return x.copy()
    T = x.shape[0]
    out = np.zeros_like(x)
    for i in range(T):
        lo = max(0, i - w // 2)
        hi = min(T - 1, i - w // 2 + w - 1)
        total = np.zeros(x.shape[1], np.float64)
        for j in range(lo, hi + 1):
            total += x[j]
        out[i] = total / (hi - lo + 1)
    return out


def argmax_labels(p, class_map):
    labels = []
    for i in range(p.shape[0]):
        best = None
        for j in range(8):
            if class_map[j] is None:
                continue
            if best is None or p[i, j] > p[i, best]:
                best = j
        labels.append(best)
    return labels


def mode_filter(labels, w):
    if w <= 1:
        return list(labels)
    T = len(labels)
    out = []
    for i in range(T):
        lo = max(0, i - w // 2)
        hi = min(T - 1, i - w // 2 + w - 1)
        counts = [0] * 8
        for j in range(lo, hi + 1):
            counts[labels[j]] += 1
        best = 0
        for c in range(8):
            if counts[c] > counts[best]:
                best = c
        out.append(best)
    return out


# --------------------------------------------------------------------------- output

def write_text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="\n") as f:
        for ln in lines:
            f.write(ln + "\n")


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Reference (oracle) implementation of abaw-infer run.")
    ap.add_argument("--model-set", required=True)
    ap.add_argument("--crops", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--frame-list", action="append", default=[], metavar="TASK=FILE")
    ap.add_argument("--annotations", action="append", default=[], metavar="[TASK=]DIR")
    ap.add_argument("--only", default=None, help="comma-separated subset of videos")
    ap.add_argument("--tasks", default=None, help="comma-separated subset of va,expr,au")
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--stride", type=int, default=None)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    man = load_manifest(args.model_set)
    seq = man["sequence"]
    W = args.window if args.window is not None else int(seq["window"])
    if args.stride is not None:
        S = args.stride
    elif args.window is not None:
        S = W
    else:
        S = int(seq["stride"])
    merge, policy = seq["merge"], seq["missing_frames"]
    if W < 1 or S < 1:
        raise RefError("window and stride must be >= 1")
    if merge == "concatenate" and S != W:
        raise RefError("merge=concatenate needs stride == window (got %d, %d)" % (S, W))
    if merge == "mean" and S > W:
        raise RefError("merge=mean needs stride <= window (got %d, %d)" % (S, W))

    if args.tasks:
        tasks = [t.strip().lower() for t in args.tasks.split(",") if t.strip()]
        for t in tasks:
            if t not in man["tasks"]:
                raise RefError("task %s not in the model set" % t)
    else:
        tasks = [t for t in TASKS if t in man["tasks"]]

    sources = {}
    for item in args.frame_list:
        if "=" not in item:
            raise RefError("--frame-list wants TASK=FILE, got %r" % item)
        t, path = item.split("=", 1)
        t = t.strip().lower()
        if t not in TASKS:
            raise RefError("unknown task in --frame-list %r" % item)
        if t in sources:
            raise RefError("two sources for task " + t)
        sources[t] = read_frame_list(path)
    for d in args.annotations:
        named = None
        if "=" in d and d.split("=", 1)[0].strip().lower() in TASKS:
            named, d = d.split("=", 1)
            named = named.strip().lower()
        t, rows, T = read_annotation_dir(d)
        if named is not None and named != t:
            raise RefError("annotations %s are for %s, not %s" % (d, t, named))
        if t in sources:
            raise RefError("two sources for task " + t)
        sources[t] = (rows, T)
    if args.only:
        keep = set(v for v in args.only.split(",") if v)
        for t in list(sources):
            rows, T = sources[t]
            sources[t] = ([r for r in rows if r[0].split("/")[0] in keep],
                          {v: n for v, n in T.items() if v in keep})
    for t in sources:
        if t not in tasks:
            raise RefError("a frame list / annotations were given for %s, which is not run" % t)
    crops_rows = None
    for t in tasks:
        if t not in sources:
            if crops_rows is None:
                crops_rows = rows_from_crops(args.crops)
            sources[t] = crops_rows

    md = args.model_set
    enc_spec = man["encoder"]
    D = int(enc_spec["feature_dim"])
    encoder = torch.jit.load(os.path.join(md, enc_spec["file"]), map_location="cpu")
    encoder.eval()
    heads = {}
    for t in tasks:
        fpath = man["tasks"][t]["head_file"]
        if "text_embeddings" in man["tasks"][t]:
            tfile, scale = man["tasks"][t]["text_embeddings"]
            rows = torch.load(os.path.join(md, tfile), map_location="cpu").float()
            rows = torch.nn.functional.normalize(rows, dim=-1)
            heads[t] = lambda x, rows=rows, scale=scale: \
                torch.nn.functional.normalize(x, dim=-1) @ rows.t() * scale
            continue
        if fpath is None:
            first, end = man["tasks"][t]["columns"]
            heads[t] = lambda x, first=first, end=end: x[:, :, first:end]
            continue
        if fpath not in heads:
            heads[fpath] = torch.jit.load(os.path.join(md, fpath), map_location="cpu")
            heads[fpath].eval()

    # features once per video, up to the largest T any task needs
    t_max = {}
    for t in tasks:
        for v, n in sources[t][1].items():
            t_max[v] = max(t_max.get(v, 0), n)
    feats = {}
    for v in sorted(t_max):
        frames = crop_frames(args.crops, v)
        if not frames:
            warn("no crop folder or no crops for video " + v)
        feats[v] = encode_video(encoder, D, man["preprocess"], frames, t_max[v],
                                 enc_spec.get("memory_format") == "channels_last",
                                 enc_spec.get("normalize", "none") == "l2")

    for t in tasks:
        spec = man["tasks"][t]
        head = heads[t] if spec["head_file"] is None else heads[spec["head_file"]]
        rows, Tv = sources[t]
        upper = TASK_UPPER[t]
        per_video = {}
        for v in sorted(Tv):
            T = Tv[v]
            fv = {f: x for f, x in feats[v].items() if f <= T}
            raw = raw_scores(t, spec, head, fv, T, D, W, S, merge, policy, v)
            lines = ["frame,has_crop," + ",".join(COLUMNS[t])]
            for f in range(1, T + 1):
                lines.append("%d,%d,%s" % (f, 1 if f in fv else 0,
                                           ",".join("%.9g" % val for val in raw[f - 1])))
            write_text(os.path.join(args.output, "raw", upper, v + ".csv"), lines)

            filt = mean_filter(raw, int(spec["mean_filter"]))
            if t == "va":
                vals = [[min(1.0, max(-1.0, filt[i, k])) for k in range(2)] for i in range(T)]
            elif t == "expr":
                labels = argmax_labels(filt, spec["class_map"])
                vals = mode_filter(labels, int(spec["mode_filter"]))
            else:
                thr = spec["thresholds"]
                vals = [[1 if filt[i, k] >= thr[k] else 0 for k in range(12)] for i in range(T)]
            per_video[v] = vals

        lines = ["image_location," + ",".join(COLUMNS[t])]
        for loc, v, f in rows:
            val = per_video[v][f - 1]
            if t == "va":
                lines.append("%s,%.6f,%.6f" % (loc, val[0], val[1]))
            elif t == "expr":
                lines.append("%s,%d" % (loc, val))
            else:
                lines.append(loc + "," + ",".join(str(x) for x in val))
        write_text(os.path.join(args.output, "submission", upper + ".txt"), lines)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RefError as e:
        sys.stderr.write("reference: error: %s\n" % e)
        sys.exit(2)
