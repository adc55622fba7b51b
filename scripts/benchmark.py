#!/usr/bin/python3
"""Benchmark `abaw-infer run` against the usual plain-PyTorch way of doing the same job.

Four measurements on the same synthetic Aff-Wild2 crop folder (112x112 JPEGs, ~10% of the
frames without a crop, official-style frame lists), the same model set, batch size and
intra-op / decode threads; each is reported as images (crops) per second (median over the
repeats) and peak RSS (max over the repeats):

  (a) decode + preprocess only: `abaw-infer bench --stage decode` (every crop, decoded and
      preprocessed in batches exactly as `run` does; no encoder; model loading not timed);
  (b) encoder only: `abaw-infer bench --stage encode` (the encoder on pre-made random tensors
      of the manifest's shape, one untimed warm-up batch, then as many frames as the data set
      has crops; model loading not timed);
  (c) the whole `abaw-infer run` (crops / (run.json total - load_models) in the table);
  (d) the same job done the Python way (crops / the baseline's pipeline seconds).

and the ratios (c)/(b) (what share of the encoder-only rate the whole run reaches; both
exclude model loading) and (c)/(d) (Python seconds / abaw-infer seconds, both including
model loading and both excluding it). (a) and (b) need a binary with the `bench`
subcommand; with an older one they are reported as not available and (c), (d) still run.
All four use the intra-op threads, decode threads, device and precision that the tool
reports in run.json.

- abaw-infer: `abaw-infer run --model-set M --crops C --output O --tasks va,expr,au
  --frame-list TASK=FILE ... --batch-size B [--threads T] [--decode-threads D] [--device X]
  [--precision P] [--preprocess-on H]`; its
  run.json gives the stage split (load_models, index, decode, encode, heads, write, total).
- Python: a torch.utils.data.Dataset reading each crop with cv2 and applying the manifest's
  preprocessing (cv2 resize, centre crop, colour order, normalise), a DataLoader
  (batch_size=B, num_workers=W, shuffle=False), torch.inference_mode(), the TorchScript
  encoder per batch, features gathered per video, each task's TorchScript head over windows
  of the manifest's size (concatenated), softmax / sigmoid, the manifest's class map,
  filters / thresholds, one submission CSV per task. Frames without a crop as the manifest's
  sequence.missing_frames says: zero_feature (a zero feature in the sequence) or
  interpolate_predictions (the heads see only the frames with a crop; the activated,
  class-mapped scores of the others are interpolated linearly by frame number, np.interp).
  torch.set_num_threads(T) with the T the tool reports in run.json; W defaults to the
  tool's decode threads. It runs in a fresh process per repeat; its clock runs from before
  the crop folder is indexed and the DataLoader is created to after the files are written
  (model loading is timed separately). On a GPU (the device the tool reports) the models
  are loaded onto it, the encoder is cast to the run's precision, the DataLoader pins its
  batches (pin_memory=True) and each batch is copied with non_blocking=True.
- Peak RSS: ru_maxrss of os.wait4 on each child process, i.e. the largest resident set of
  that process or of any descendant it waited for: for Python the largest of the main
  process and its DataLoader workers, not their sum. run.json's peak_rss_mb and the
  bench JSON's are shown as a cross-check.

Both process wall times are reported too (the tool's includes loading its shared libraries;
Python's interpreter start-up and `import torch`). The script checks that both wrote the
same rows (same image_location column, line by line) and reports how far the values agree.

    /usr/bin/python3 scripts/benchmark.py --encoder tiny
    /usr/bin/python3 scripts/benchmark.py --model-set models/default --tasks expr --frames 2000
    /usr/bin/python3 scripts/benchmark.py --encoder ViT-B/16 --frames 100
    /usr/bin/python3 scripts/benchmark.py --model-set models/my-set --frames 500 --repeat 3
    python3 scripts/benchmark.py --encoder ViT-L/14 --device cuda --precision fp16 --frames 20000

Generated data and exported model sets are cached under --work (default build/benchmark).
Run it with Debian's /usr/bin/python3 (python3-torch, python3-numpy, python3-opencv).
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["va", "expr", "au"]
UPPER = {"va": "VA", "expr": "EXPR", "au": "AU"}
HEADERS = {
    "va": "image_location,valence,arousal",
    "expr": "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
    "au": "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26",
}
DUMMY_VALUES = {"va": ",0,0", "expr": ",0", "au": "," + ",".join(["0"] * 12)}
K_OUT = {"va": 2, "expr": 8, "au": 12}
ENCODERS = {"tiny": None, "ViT-B/32": "ViT-B/32", "ViT-B/16": "ViT-B/16", "ViT-L/14": "ViT-L/14"}
DATASET_FORMAT = 1
CHILD_MODE = "_python_baseline"
CHILD_DATA = "_make_dataset"


class BenchError(Exception):
    """A failure with a message that says what failed; printed without a traceback."""


def need_packages(*names):
    import importlib.util
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise BenchError("%s cannot import %s: run this script with Debian's /usr/bin/python3 "
                         "(apt-get install python3-torch python3-numpy python3-opencv)"
                         % (sys.executable, ", ".join(missing)))


def log(msg):
    sys.stderr.write("benchmark: " + msg + "\n")
    sys.stderr.flush()


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


class OtherCpu:
    """CPU time the whole machine spent busy during a measured run, minus what this script's
    children used: how much other processes disturbed the run (Linux /proc/stat; None elsewhere)."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if fields[0] != "cpu":
            return None
        # user nice system idle iowait irq softirq steal (guest time is already in user):
        # busy = all but idle and iowait; steal (other virtual machines) counts as busy
        ticks = [int(x) for x in fields[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return busy / os.sysconf("SC_CLK_TCK"), ru.ru_utime + ru.ru_stime, time.perf_counter()

    def stop(self):
        end = self._read()
        if self.start is None or end is None:
            return None
        busy, mine, wall = (e - s for e, s in zip(end, self.start))
        other = max(0.0, busy - mine)
        return {"other_cpu_s": other, "wall_s": wall, "share": other / (wall * (os.cpu_count() or 1))}


def run_child(cmd, stdout, stderr):
    """Runs cmd to its end; returns (exit code, wall seconds, peak RSS in MB, OtherCpu figures).
    The peak RSS is ru_maxrss of os.wait4 (KiB on Linux): the largest resident set of the
    child or of any descendant it waited for (a maximum, not a sum). Linux starts a child's
    figure at its parent's peak RSS (exec records the old address space's high-water mark;
    Python spawns with vfork), so this process keeps itself small (no numpy / cv2 / torch)
    and the report prints its own peak as the floor."""
    other = OtherCpu()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
    try:
        _, status, usage = os.wait4(p.pid, 0)
    except BaseException:  # e.g. Ctrl-C: do not leave the child running
        p.kill()
        p.wait()
        raise
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return p.returncode, wall, usage.ru_maxrss / 1024.0, other.stop()


# =========================================================================== synthetic data

def split_lengths(rng, total, videos):
    """`videos` positive lengths summing to `total`, uneven (0.5x .. 1.5x the mean)."""
    weights = rng.uniform(0.5, 1.5, size=videos)
    lengths = [max(1, int(x)) for x in weights / weights.sum() * total]
    i = 0
    while sum(lengths) != total:  # fix the rounding, never below 1
        j = i % videos
        if sum(lengths) < total:
            lengths[j] += 1
        elif lengths[j] > 1:
            lengths[j] -= 1
        i += 1
    return lengths


def missing_frames(rng, T, fraction=0.10):
    """~fraction of 1..T without a crop, as runs of 1..30 frames (a face lost for a while);
    at least one frame keeps its crop."""
    missing = set()
    target = int(round(fraction * T))
    while len(missing) < target:
        run = int(rng.integers(1, min(30, max(1, T // 10)) + 1))
        start = int(rng.integers(1, T + 1))
        for f in range(start, min(T, start + run - 1) + 1):
            if len(missing) < target:
                missing.add(f)
    if len(missing) >= T:
        missing.discard(1)
    return missing


def render_video(rng, T, size, missing, folder):
    import cv2
    import numpy as np
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    base = np.empty((size, size, 3), np.float32)
    for c in range(3):
        a, b, d = rng.uniform(40, 150), rng.uniform(-60, 60), rng.uniform(-60, 60)
        base[:, :, c] = a + b * xx + d * yy
    blobs = [(rng.uniform(0.25, 0.75, 2), rng.uniform(-0.004, 0.004, 2), rng.uniform(0.1, 0.25),
              rng.uniform(-80, 110, 3)) for _ in range(3)]
    params = [int(cv2.IMWRITE_JPEG_QUALITY), 92]
    for t in range(1, T + 1):
        img = base.copy()
        for (c0, v, r, col) in blobs:
            cx, cy = c0 + v * t
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            img += g[:, :, None] * col.astype(np.float32)
        img += rng.normal(0.0, 6.0, size=img.shape).astype(np.float32)  # sensor-like noise
        img += 15.0 * np.sin(0.3 * t)
        if t in missing:
            continue  # rendered anyway: the random stream does not depend on the gaps
        path = os.path.join(folder, "%05d.jpg" % t)
        if not cv2.imwrite(path, np.clip(img, 0, 255).astype(np.uint8), params):
            raise BenchError("cv2.imwrite failed: " + path)


def make_dataset(work, frames, videos, seed):
    """Crop folder + frame lists, cached in WORK/data/...; returns its description. Generated
    in a child process: this process never imports numpy / cv2, because every process it
    starts inherits its peak RSS as a floor under its own ru_maxrss (see run_child)."""
    folder = work / "data" / ("crops-%dframes-%dvideos-seed%d" % (frames, videos, seed))
    marker = folder / "dataset.json"
    for attempt in range(2):
        if marker.is_file():
            with open(marker) as f:
                info = json.load(f)
            if info.get("format") == DATASET_FORMAT:
                if attempt == 0:
                    log("using cached crops %s" % folder)
                return info
        if attempt == 0:
            cmd = [sys.executable, str(Path(__file__).resolve()), CHILD_DATA, str(folder),
                   str(frames), str(videos), str(seed)]
            if subprocess.run(cmd).returncode != 0:
                break
    raise BenchError("generating the synthetic crops in %s failed" % folder)


def generate_dataset(folder, frames, videos, seed):
    """The generation itself (runs in a child process); writes FOLDER/dataset.json last."""
    import numpy as np
    folder = Path(folder)
    marker = folder / "dataset.json"
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished or outdated generation of our own cache
    log("generating %d frames over %d videos in %s" % (frames, videos, folder))
    rng = np.random.default_rng(seed)
    lengths = split_lengths(rng, frames, videos)
    names = ["bench%03d" % i for i in range(videos)]
    info = {"format": DATASET_FORMAT, "frames": frames, "videos": {}, "seed": seed, "size": 112,
            "crops_dir": str(folder / "crops"), "frame_lists": {}}
    for i, (name, T) in enumerate(zip(names, lengths)):
        vrng = np.random.default_rng([seed, i + 1])
        gaps = missing_frames(vrng, T)
        vdir = folder / "crops" / name
        vdir.mkdir(parents=True)
        render_video(vrng, T, 112, gaps, str(vdir))
        info["videos"][name] = {"frames": T, "missing": len(gaps)}
    info["crops"] = frames - sum(v["missing"] for v in info["videos"].values())
    (folder / "frame_lists").mkdir()
    for task in TASKS:
        path = folder / "frame_lists" / (UPPER[task] + ".txt")
        with open(path, "w", newline="\n") as f:
            f.write(HEADERS[task] + "\n")
            for name in names:
                for t in range(1, info["videos"][name]["frames"] + 1):
                    f.write("%s/%05d.jpg%s\n" % (name, t, DUMMY_VALUES[task]))
        info["frame_lists"][task] = str(path)
    with open(marker, "w") as f:  # written last: its presence means the folder is complete
        json.dump(info, f, indent=1)
    return 0


# =========================================================================== model sets

def make_model_set(work, encoder, seed=0, window=300):
    folder = work / "models" / ("%s-window%d-seed%d" % (encoder.replace("/", "-"), window, seed))
    if (folder / "manifest.json").is_file():  # make_model_set.py writes the manifest last
        log("using cached model set %s" % folder)
        return folder
    cmd = [sys.executable, str(ROOT / "scripts" / "make_model_set.py"), "--output", str(folder),
           "--seed", str(seed), "--window", str(window)]
    if encoder == "tiny":
        cmd += ["--tiny"]
    else:
        cmd += ["--clip-config", ENCODERS[encoder], "--head-config", "tiny", "--tasks", "va,expr,au"]
    log("exporting model set: " + " ".join(cmd))
    folder.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(cmd)
    if r.returncode != 0 or not (folder / "manifest.json").is_file():
        raise BenchError("make_model_set.py failed (exit code %d): %s" % (r.returncode, " ".join(cmd)))
    return folder


def read_manifest(model_set, tasks):
    """The manifest, checked for what the Python baseline implements (it says what it lacks)."""
    path = Path(model_set) / "manifest.json"
    try:
        with open(path) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        raise BenchError("cannot read %s: %s" % (path, e))
    seq = m.get("sequence", {})
    merge = seq.get("merge", "concatenate")
    policy = seq.get("missing_frames", "zero_feature")
    if merge != "concatenate" or policy not in ("zero_feature", "interpolate_predictions"):
        raise BenchError("%s: the Python baseline implements merge 'concatenate' with missing_frames "
                         "'zero_feature' or 'interpolate_predictions' only (the set has %r, %r)"
                         % (path, merge, policy))
    for t in tasks:
        if t not in m.get("tasks", {}):
            raise BenchError("%s: the model set has no %s task" % (path, t))
    return m


# =========================================================================== abaw-infer

def compute_options(args):
    """The --device / --precision / --preprocess-on given to this script, passed on to `run`
    (`bench` then gets what run.json reports, so both sides use the same)."""
    cmd = []
    for name in ("device", "precision", "preprocess_on"):
        value = getattr(args, name)
        if value is not None:
            cmd += ["--" + name.replace("_", "-"), value]
    return cmd


def run_tool(tool, model_set, data, out, tasks, args):
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cmd = [str(tool), "run", "--model-set", str(model_set), "--crops", data["crops_dir"],
           "--output", str(out), "--tasks", ",".join(tasks), "--batch-size", str(args.batch_size)]
    for t in tasks:
        cmd += ["--frame-list", "%s=%s" % (t, data["frame_lists"][t])]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    if args.decode_threads is not None:
        cmd += ["--decode-threads", str(args.decode_threads)]
    if args.pack_batches:
        cmd += ["--pack-batches"]
    cmd += compute_options(args)
    log_path = out.parent / (out.name + ".log")
    with open(log_path, "w") as logf:
        code, wall, rss, other = run_child(cmd, logf, subprocess.STDOUT)
    if code != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise BenchError("abaw-infer failed with exit code %d: %s\n  %s\n(log: %s)"
                         % (code, " ".join(cmd), "\n  ".join(tail), log_path))
    try:
        with open(out / "run.json") as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        raise BenchError("abaw-infer exited 0 but %s/run.json is unreadable: %s" % (out, e))
    frames = summary["frames"]
    if frames["total"] != data["frames"] or frames["crops"] != data["crops"]:
        raise BenchError("abaw-infer indexed %d frames / %d crops; the data set has %d / %d"
                         % (frames["total"], frames["crops"], data["frames"], data["crops"]))
    if frames["decoded"] != data["crops"]:
        raise BenchError("abaw-infer decoded %d of %d crops (see %s)" % (frames["decoded"], data["crops"], log_path))
    return {"cmd": cmd, "wall": wall, "summary": summary, "other": other, "peak_rss_mb": rss}


def has_bench(tool):
    """Whether the binary lists a `bench` subcommand in its --help."""
    try:
        r = subprocess.run([str(tool), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = r.stdout.decode(errors="replace")
    return any(line.split()[:1] == ["bench"] for line in text.split("Subcommands:", 1)[-1].splitlines())


class NoBench(Exception):
    """The binary has no `bench` subcommand."""


def run_bench(tool, model_set, data, out, stage, summary, args):
    """`abaw-infer bench --stage decode|encode --json` with the settings run.json reports;
    returns its JSON object plus wall seconds and peak RSS. Raises NoBench when the binary
    lacks the subcommand and BenchError when it fails or reports other settings."""
    cmd = [str(tool), "bench", "--model-set", str(model_set), "--stage", stage,
           "--batch-size", str(args.batch_size), "--threads", str(summary["threads"]),
           "--decode-threads", str(summary["decode_threads"])]
    if stage == "decode":
        cmd += ["--crops", data["crops_dir"]] + (["--pack-batches"] if args.pack_batches else [])
    else:
        cmd += ["--frames", str(data["crops"])]
    for key in ("device", "precision", "preprocess_on"):
        if summary.get(key):
            cmd += ["--" + key.replace("_", "-"), str(summary[key])]
    cmd += ["--json"]
    out.mkdir(parents=True, exist_ok=True)
    json_path, log_path = out / ("bench-%s.json" % stage), out / ("bench-%s.log" % stage)
    with open(json_path, "w") as outf, open(log_path, "w") as logf:
        code, wall, rss, other = run_child(cmd, outf, logf)
    err = log_path.read_text(errors="replace")
    if code != 0:
        if code == 109 or ("bench" in err and any(w in err.lower() for w in ("not expected", "unknown", "invalid"))):
            raise NoBench("%s has no `bench` subcommand (exit code %d: %s)"
                          % (tool, code, " ".join(err.split())[:200]))
        raise BenchError("abaw-infer bench --stage %s failed with exit code %d: %s\n  %s\n(log: %s)"
                         % (stage, code, " ".join(cmd), "\n  ".join(err.splitlines()[-15:]), log_path))
    try:
        with open(json_path) as f:
            result = json.load(f)
        seconds, frames = float(result["seconds"]), int(result["frames"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BenchError("abaw-infer bench --stage %s exited 0 but its stdout (%s) is not the JSON "
                         "object expected: %s" % (stage, json_path, e))
    expect = {"stage": stage, "frames": data["crops"], "batch_size": args.batch_size,
              "threads": summary["threads"], "device": summary.get("device"),
              "precision": summary.get("precision"), "preprocess_on": summary.get("preprocess_on")}
    if stage == "decode":
        expect.update(decode_threads=summary["decode_threads"], unreadable=0)
    wrong = ["%s %r (expected %r)" % (k, result.get(k), v) for k, v in expect.items()
             if v is not None and result.get(k) != v]
    if wrong or seconds <= 0:
        raise BenchError("abaw-infer bench --stage %s reports %s: %s"
                         % (stage, ", ".join(wrong) or "seconds %r" % seconds, json_path))
    return {"cmd": cmd, "json": result, "wall": wall, "other": other, "peak_rss_mb": rss,
            "frames_per_second": frames / seconds}


# =========================================================================== Python baseline

def run_python(model_set, data, out, tasks, batch_size, threads, workers, device, precision):
    """Runs the baseline in a fresh interpreter (no JIT state or page cache of models from an
    earlier repeat inside the process) and returns its timings."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = {"model_set": str(model_set), "crops": data["crops_dir"], "output": str(out),
              "tasks": tasks, "frame_lists": data["frame_lists"], "batch_size": batch_size,
              "threads": threads, "workers": workers, "device": device, "precision": precision}
    config_path = out / "config.json"
    result_path = out / "result.json"
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
    cmd = [sys.executable, str(Path(__file__).resolve()), CHILD_MODE, str(config_path), str(result_path)]
    log_path = out.parent / (out.name + ".log")
    with open(log_path, "w") as logf:
        code, wall, rss, other = run_child(cmd, logf, subprocess.STDOUT)
    if code != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
        raise BenchError("the Python baseline failed with exit code %d: %s\n  %s\n(log: %s)"
                         % (code, " ".join(cmd), "\n  ".join(tail), log_path))
    with open(result_path) as f:
        result = json.load(f)
    result["wall"] = wall
    result["other"] = other
    result["peak_rss_mb"] = rss  # main process and DataLoader workers: the largest one
    if result["frames"] != data["frames"] or result["crops"] != data["crops"]:
        raise BenchError("the Python baseline indexed %d frames / %d crops; the data set has %d / %d"
                         % (result["frames"], result["crops"], data["frames"], data["crops"]))
    return result


def python_baseline(config_path, result_path):
    """The baseline itself: what a user writes with PyTorch today (runs in the child)."""
    import cv2
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset

    with open(config_path) as f:
        cfg = json.load(f)
    tasks = cfg["tasks"]
    model_dir = Path(cfg["model_set"])
    man = read_manifest(model_dir, tasks)
    pp = man["encoder"].get("preprocess", {})
    resize = int(pp.get("resize", 224))
    resize_mode = pp.get("resize_mode", "shorter_side")
    interpolation = pp.get("interpolation", "bicubic")
    # What the user's Python does for each manifest interpolation: Pillow for pil_*, F.interpolate
    # on float pixels for torch_*, cv2 otherwise.
    pil_filter = {"pil_bicubic": "BICUBIC", "pil_bilinear": "BILINEAR"}.get(interpolation)
    torch_mode = {"torch_bicubic": "bicubic", "torch_bilinear": "bilinear"}.get(interpolation)
    antialias = bool(pp.get("antialias", False))
    interp = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR,
              "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}.get(interpolation)
    crop = int(pp.get("crop", 0))
    color = pp.get("color_order", "RGB")
    nch = 1 if color == "GRAY" else 3
    scale = np.float32(pp.get("scale", 1.0 / 255.0))
    mean = np.array(pp.get("mean", [0.0] * nch), np.float32)
    std = np.array(pp.get("std", [1.0] * nch), np.float32)
    D = int(man["encoder"]["feature_dim"])
    window = int(man.get("sequence", {}).get("window", 300))
    # frames without a crop: a zero feature, or (interpolate) left out of the heads' sequence
    # and their scores interpolated from the nearest frames with a crop
    interpolate = man.get("sequence", {}).get("missing_frames", "zero_feature") == "interpolate_predictions"

    torch.set_num_threads(int(cfg["threads"]))
    # on a GPU: what a user writes there (models on the device, the encoder in the run's
    # precision, pinned batches copied without blocking, results back as float32)
    device = torch.device(cfg.get("device") or "cpu")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.get("precision") or "fp32"]
    timings = {}

    t = time.perf_counter()
    encoder = torch.jit.load(str(model_dir / man["encoder"]["file"]), map_location=device).eval().to(dtype)
    heads = {}  # file -> module (tasks naming one file share it and its forward pass)
    task_head = {}
    for task in tasks:
        spec = man["tasks"][task]["head"]
        file, key = (spec, None) if isinstance(spec, str) else (spec["file"], spec["output"])
        if file not in heads:
            heads[file] = torch.jit.load(str(model_dir / file), map_location=device).eval()
        task_head[task] = (file, key)
    timings["load_models"] = time.perf_counter() - t

    class CropDataset(Dataset):
        def __init__(self, items):
            self.items = items  # (video index, frame, path)

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            v, frame, path = self.items[i]
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise RuntimeError("cv2.imread cannot read " + path)
            h, w = img.shape[:2]
            if resize_mode == "stretch":
                nh, nw = resize, resize
            elif h <= w:
                nh, nw = resize, resize * w // h
            else:
                nh, nw = resize * h // w, resize
            if (nh, nw) != (h, w):
                if pil_filter:
                    from PIL import Image
                    img = np.asarray(Image.fromarray(img[:, :, ::-1]).resize((nw, nh), getattr(Image, pil_filter)))[:, :, ::-1]
                elif torch_mode:
                    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
                    img = torch.nn.functional.interpolate(x, size=(nh, nw), mode=torch_mode, align_corners=False,
                                                          antialias=antialias)[0].permute(1, 2, 0).numpy()
                else:
                    img = cv2.resize(img, (nw, nh), interpolation=interp)
            if crop > 0:
                if crop > nh or crop > nw:
                    raise RuntimeError("crop %d larger than the resized %dx%d image of %s" % (crop, nw, nh, path))
                top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
                img = img[top:top + crop, left:left + crop]
            if color == "RGB":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            elif color == "GRAY":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
            x = (img.astype(np.float32) * scale - mean) / std
            return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), v, frame

    t_start = time.perf_counter()
    # rows of each task (official frame list order) and frame counts per video
    rows, frames_of = {}, {}
    for task in tasks:
        with open(cfg["frame_lists"][task]) as f:
            lines = f.read().splitlines()[1:]
        rows[task] = []
        for line in lines:
            loc = line.split(",", 1)[0]
            video, name = loc.rsplit("/", 1)
            frame = int(name[:-4])
            rows[task].append((loc, video, frame))
            frames_of[video] = max(frames_of.get(video, 0), frame)
    videos = sorted(frames_of)
    items = []
    for vi, video in enumerate(videos):
        vdir = os.path.join(cfg["crops"], video)
        for name in sorted(os.listdir(vdir)):
            if name.endswith(".jpg") and name[:-4].isdigit() and int(name[:-4]) <= frames_of[video]:
                items.append((vi, int(name[:-4]), os.path.join(vdir, name)))
    timings["index"] = time.perf_counter() - t_start

    t = time.perf_counter()
    loader = DataLoader(CropDataset(items), batch_size=int(cfg["batch_size"]),
                        num_workers=int(cfg["workers"]), shuffle=False, pin_memory=device.type == "cuda")
    features = {v: np.zeros((frames_of[v], D), np.float32) for v in videos}
    has_crop = {v: np.zeros(frames_of[v], bool) for v in videos}
    with torch.inference_mode():
        for x, vids, frames in loader:
            y = encoder(x.to(device, non_blocking=True).to(dtype))
            if tuple(y.shape) != (x.shape[0], D):
                raise RuntimeError("encoder returned %s for %s" % (list(y.shape), list(x.shape)))
            y = y.float().cpu().numpy()
            for i, (vi, frame) in enumerate(zip(vids.tolist(), frames.tolist())):
                features[videos[vi]][frame - 1] = y[i]
                has_crop[videos[vi]][frame - 1] = True
    timings["decode_encode"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = {task: {} for task in tasks}  # task -> video -> activated scores [frames the heads saw, K]
    with torch.inference_mode():
        for video in videos:
            if interpolate:
                if not has_crop[video].any():
                    raise RuntimeError("video %s has no crop; missing_frames interpolate_predictions "
                                       "needs at least one" % video)
                seq = torch.from_numpy(features[video][has_crop[video]])  # frames with a crop only
            else:
                seq = torch.from_numpy(features[video])
            T = seq.shape[0]
            parts = {task: [] for task in tasks}
            for a in range(0, T, window):
                x = seq[a:a + window].unsqueeze(0).to(device)
                outputs = {file: head(x) for file, head in heads.items()}
                for task in tasks:
                    file, key = task_head[task]
                    y = outputs[file] if key is None else outputs[file][key]
                    y = y[0]
                    act = man["tasks"][task].get("activation", {"va": "none", "expr": "softmax",
                                                                 "au": "sigmoid"}[task])
                    if act == "softmax":
                        y = torch.softmax(y, dim=-1)
                    elif act == "sigmoid":
                        y = torch.sigmoid(y)
                    elif act == "tanh":
                        y = torch.tanh(y)
                    parts[task].append(y.float().cpu().numpy())
            for task in tasks:
                scores[task][video] = np.concatenate(parts[task], axis=0)
    timings["heads"] = time.perf_counter() - t

    def window_bounds(T, w):
        i = np.arange(T)
        return np.maximum(0, i - w // 2), np.minimum(T - 1, i - w // 2 + w - 1)

    def mean_filter(x, w):
        if w <= 1:
            return x
        lo, hi = window_bounds(x.shape[0], w)
        c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])
        return (c[hi + 1] - c[lo]) / (hi - lo + 1)[:, None]

    def mode_filter(labels, w):
        if w <= 1:
            return labels
        lo, hi = window_bounds(len(labels), w)
        c = np.concatenate([np.zeros((1, 8), np.int64), np.cumsum(np.eye(8, dtype=np.int64)[labels], axis=0)])
        return np.argmax(c[hi + 1] - c[lo], axis=1)  # ties: lowest class

    t = time.perf_counter()
    written = {}
    for task in tasks:
        spec = man["tasks"][task]
        final = {}
        for video in videos:
            s = scores[task][video]
            if task == "expr":
                cmap = spec.get("class_map", list(range(8)))
                p = np.zeros((s.shape[0], 8), np.float32)  # a class the head lacks: probability 0
                for j, idx in enumerate(cmap):
                    if idx is not None:
                        p[:, j] = s[:, idx]
                s = p
            elif s.shape[1] != K_OUT[task]:
                raise RuntimeError("%s head has %d outputs, expected %d" % (task, s.shape[1], K_OUT[task]))
            if interpolate:  # scores of frames with a crop -> every frame, linear by frame number
                with_crop = np.flatnonzero(has_crop[video])
                every = np.arange(frames_of[video])
                s = np.stack([np.interp(every, with_crop, s[:, k]) for k in range(s.shape[1])],
                             axis=1).astype(np.float32)
            s = mean_filter(s, int(spec.get("mean_filter", 0)))
            if task == "va":
                final[video] = np.clip(s, -1.0, 1.0)
            elif task == "expr":
                s = np.where([idx is None for idx in cmap], -np.inf, s)  # ... and never chosen
                final[video] = mode_filter(np.argmax(s, axis=1), int(spec.get("mode_filter", 0)))
            else:
                thr = np.asarray(spec.get("threshold", 0.5), np.float64)
                final[video] = (s >= thr).astype(np.int64)
        lines = [HEADERS[task]]
        for loc, video, frame in rows[task]:
            v = final[video][frame - 1]
            if task == "va":
                lines.append("%s,%.6f,%.6f" % (loc, v[0], v[1]))
            elif task == "expr":
                lines.append("%s,%d" % (loc, v))
            else:
                lines.append(loc + "," + ",".join(str(int(b)) for b in v))
        path = os.path.join(cfg["output"], "submission", UPPER[task] + ".txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        written[task] = path
    timings["write"] = time.perf_counter() - t
    timings["pipeline"] = time.perf_counter() - t_start

    result = {"seconds": timings, "frames": sum(frames_of.values()), "crops": len(items),
              "submissions": written, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "device": str(device), "precision": cfg.get("precision") or "fp32",
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "cuda": torch.version.cuda,
              "workers": int(cfg["workers"]), "opencv": cv2.__version__,
              # ru_maxrss (KiB): this process, and the largest reaped DataLoader worker
              "self_peak_rss_mb": {
                  "main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}}
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    return 0


# =========================================================================== comparison

def read_submission(path):
    with open(path) as f:
        lines = f.read().splitlines()
    return lines[0], [ln.split(",") for ln in lines[1:]]


def compare_outputs(tool_out, py_result, tasks):
    """Same header and same rows (image_location, line by line) per task; returns value
    agreement figures. A difference in rows is an error."""
    report = {}
    for task in tasks:
        tool_path = tool_out / "submission" / (UPPER[task] + ".txt")
        py_path = Path(py_result["submissions"][task])
        th, trows = read_submission(tool_path)
        ph, prows = read_submission(py_path)
        if th != ph:
            raise BenchError("%s: headers differ: %r (abaw-infer) vs %r (Python)" % (UPPER[task], th, ph))
        if len(trows) != len(prows):
            raise BenchError("%s: abaw-infer wrote %d rows (%s), Python %d (%s)"
                             % (UPPER[task], len(trows), tool_path, len(prows), py_path))
        for i, (a, b) in enumerate(zip(trows, prows)):
            if a[0] != b[0]:
                raise BenchError("%s: row %d differs: %s (abaw-infer) vs %s (Python)" % (UPPER[task], i + 2, a[0], b[0]))
        if task == "va":
            diff = max((abs(float(x) - float(y)) for a, b in zip(trows, prows) for x, y in zip(a[1:], b[1:])),
                       default=0.0)
            report[task] = {"rows": len(trows), "max_abs_diff": diff}
        else:
            same = sum(1 for a, b in zip(trows, prows) if a[1:] == b[1:])
            report[task] = {"rows": len(trows), "identical_rows": same}
    return report


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def stats(values):
    return min(values), statistics.median(values)


def print_report(args, data, model_set, tool_runs, py_runs, agreement, loads, bench_runs, bench_note):
    s0 = tool_runs[0]["summary"]
    py0 = py_runs[0]
    frames = data["frames"]
    R = len(tool_runs)
    tool_total = [r["summary"]["seconds"]["total"] for r in tool_runs]
    tool_wall = [r["wall"] for r in tool_runs]
    py_pipe = [r["seconds"]["pipeline"] for r in py_runs]
    py_total = [r["seconds"]["pipeline"] + r["seconds"]["load_models"] for r in py_runs]
    py_wall = [r["wall"] for r in py_runs]

    print()
    print("machine: %s, nproc %d, load average before / after: %s / %s"
          % (cpu_model(), os.cpu_count(), loads[0], loads[-1]))
    bench_all = bench_runs["decode"] + bench_runs["encode"]
    others = [r["other"] for r in tool_runs + py_runs + bench_all if r["other"] is not None]
    if others:
        worst = max(o["share"] for o in others)
        print("other processes during the timed runs: %.2f core-s in all, at most %.0f%% of the "
              "machine's CPU during one run" % (sum(o["other_cpu_s"] for o in others), 100 * worst))
        if worst > 0.05:
            print("WARNING: other processes used more than 5%% of the CPU during a timed run "
                  "(%.0f%%): these figures are disturbed; rerun on a quiet machine" % (100 * worst))
    if py0.get("gpu"):
        print("GPU: %s (CUDA %s)" % (py0["gpu"], py0.get("cuda", "?")))
    print("libraries: BLAS %s; LibTorch %s, OpenCV %s (abaw-infer); torch %s, OpenCV %s (Python)"
          % (s0["libraries"]["blas"], s0["libraries"]["libtorch"], s0["libraries"]["opencv"],
             py0["torch"], py0["opencv"]))
    print("workload: %d frames (%d crops, %d without) over %d videos, 112x112 JPEG; model set %s "
          "(window %d); tasks %s" % (frames, data["crops"], frames - data["crops"], len(data["videos"]),
                                     model_set, s0["sequence"]["window"], ",".join(args.tasks)))
    print("settings: batch %d (abaw-infer: %s), %d intra-op threads, abaw-infer %d decode threads (device %s, "
          "precision %s), Python DataLoader num_workers=%d; %d run%s of each after %d warm-up (min / median)"
          % (args.batch_size, "packed across videos" if args.pack_batches else "per video", s0["threads"], s0["decode_threads"], s0.get("device", "?"), s0.get("precision", "?"),
             py0["workers"], R, "s" if R > 1 else "", args.warmup))
    print("abaw-infer: %s" % " ".join(tool_runs[0]["cmd"]))
    print()
    rows = [
        ("abaw-infer (run.json total)", tool_total),
        ("abaw-infer (process wall)", tool_wall),
        ("Python (load + pipeline)", py_total),
        ("Python (pipeline only)", py_pipe),
        ("Python (process wall)", py_wall),
    ]
    print("%-30s %7s %9s %9s %9s" % ("method", "frames", "min s", "median s", "frames/s"))
    print("%-30s %7s %9s %9s %9s" % ("", "", "", "", "(median)"))
    for name, vals in rows:
        lo, med = stats(vals)
        print("%-30s %7d %9.2f %9.2f %9.1f" % (name, frames, lo, med, frames / med))
    print()

    def stage_line(label, runs, keys, get):
        parts = []
        for k in keys:
            lo, med = stats([get(r)[k] for r in runs])
            parts.append("%s %.2f" % (k, med))
        print("%-12s %s" % (label, ", ".join(parts)))

    print("stage split, median seconds:")
    stage_line("abaw-infer", tool_runs, ["load_models", "index", "decode", "encode", "heads", "write", "total"],
               lambda r: r["summary"]["seconds"])
    print("%-12s (decode: thread-seconds on the decode threads, overlapped with encode; encode: "
          "model only)" % "")
    stage_line("Python", py_runs, ["load_models", "index", "decode_encode", "heads", "write", "pipeline"],
               lambda r: r["seconds"])
    print("%-12s (decode_encode: the DataLoader loop, waiting for workers included)" % "")
    print()
    speed = [
        ("totals incl. model loading", statistics.median(py_total) / statistics.median(tool_total)),
        ("excl. model loading", statistics.median(py_pipe)
         / statistics.median([r["summary"]["seconds"]["total"] - r["summary"]["seconds"]["load_models"]
                              for r in tool_runs])),
        ("process wall", statistics.median(py_wall) / statistics.median(tool_wall)),
    ]
    print("speed-up of abaw-infer over Python (median Python s / median abaw-infer s): "
          + "; ".join("%s %.2fx" % (k, v) for k, v in speed))
    print("same rows: " + "; ".join(
        "%s %d rows%s" % (UPPER[t], a["rows"],
                          ", VA max |diff| %.2g" % a["max_abs_diff"] if t == "va"
                          else ", %d identical" % a["identical_rows"])
        for t, a in agreement.items()))
    print()

    # ---- the four measurements: images (crops) per second and peak RSS
    crops = data["crops"]
    tool_pipe = [r["summary"]["seconds"]["total"] - r["summary"]["seconds"]["load_models"] for r in tool_runs]
    measured = [
        ("a_decode", "(a) decode + preprocess only", [r["json"]["seconds"] for r in bench_runs["decode"]],
         [r["frames_per_second"] for r in bench_runs["decode"]], [r["peak_rss_mb"] for r in bench_runs["decode"]]),
        ("b_encode", "(b) encoder only", [r["json"]["seconds"] for r in bench_runs["encode"]],
         [r["frames_per_second"] for r in bench_runs["encode"]], [r["peak_rss_mb"] for r in bench_runs["encode"]]),
        ("c_run", "(c) abaw-infer run", tool_pipe, [crops / x for x in tool_pipe],
         [r["peak_rss_mb"] for r in tool_runs]),
        ("d_python", "(d) Python way", py_pipe, [crops / x for x in py_pipe], [r["peak_rss_mb"] for r in py_runs]),
    ]
    table = {}
    print("images (crops) per second, median of %d run%s; peak RSS, max:" % (R, "s" if R > 1 else ""))
    print("%-30s %7s %9s %9s %12s" % ("stage", "images", "median s", "images/s", "peak RSS MB"))
    for key, label, secs, rates, rss in measured:
        if not rates:
            table[key] = None
            print("%-30s %7d %9s %9s %12s" % (label, crops, "-", "-", "-"))
            continue
        table[key] = {"images": crops, "seconds_median": statistics.median(secs),
                      "images_per_second_median": statistics.median(rates), "peak_rss_mb_max": max(rss)}
        print("%-30s %7d %9.2f %9.1f %12.0f" % (label, crops, table[key]["seconds_median"],
                                               table[key]["images_per_second_median"], max(rss)))
    if bench_note:
        print("(a), (b) not available: %s; (c), (d) are measured all the same" % bench_note)
    else:
        print("(a), (b): `abaw-infer bench --stage decode|encode` with the run's batch, threads, decode threads, "
              "device and precision; model loading not timed; (b) on random tensors of the manifest's shape after "
              "one untimed warm-up batch")
    print("(c): crops / (run.json total - load_models); (d): crops / Python pipeline s; model loading excluded "
          "in both")
    rss_main = max(r.get("self_peak_rss_mb", {}).get("main", 0.0) for r in py_runs)
    rss_workers = max(r.get("self_peak_rss_mb", {}).get("workers", 0.0) for r in py_runs)
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("peak RSS: ru_maxrss of os.wait4 on each process = the largest resident set of the process or of a "
          "descendant it waited for; for (d) the largest of the Python process (%.0f MB) and its DataLoader "
          "workers (largest %.0f MB), NOT their sum; no figure can be below this script's own peak RSS "
          "(%.0f MB), which Linux carries into every child" % (rss_main, rss_workers, floor))
    if any(v is not None and v["peak_rss_mb_max"] <= floor + 1.0 for v in table.values()):
        print("WARNING: a peak RSS equals this script's own peak RSS: that figure is an upper bound only")
    cross = []
    run_json_rss = [r["summary"]["peak_rss_mb"] for r in tool_runs if "peak_rss_mb" in r["summary"]]
    if run_json_rss:
        cross.append("run.json peak_rss_mb %.0f" % max(run_json_rss))
    for stage in ("decode", "encode"):
        own = [r["json"]["peak_rss_mb"] for r in bench_runs[stage] if "peak_rss_mb" in r["json"]]
        if own:
            cross.append("bench %s peak_rss_mb %.0f" % (stage, max(own)))
    if cross:
        print("cross-check, as the tool reports itself (max): " + ", ".join(cross))
    ratios = {"c_over_b": (table["c_run"]["images_per_second_median"] / table["b_encode"]["images_per_second_median"]
                           if table["b_encode"] else None),
              "c_over_d_incl_loading": speed[0][1], "c_over_d_excl_loading": speed[1][1]}
    print()
    print("(c)/(b) = %s: images/s of the whole run / of the encoder alone (both exclude model loading)"
          % ("%.2f" % ratios["c_over_b"] if ratios["c_over_b"] is not None else "n/a"))
    print("(c)/(d) = %.2fx including model loading, %.2fx excluding it (median Python s / median abaw-infer s)"
          % (ratios["c_over_d_incl_loading"], ratios["c_over_d_excl_loading"]))
    return {"speed_up": dict(speed), "table": table, "ratios": ratios, "bench_not_available": bench_note,
            "peak_rss_cross_check": {"run_json_peak_rss_mb": run_json_rss, "python_main_mb": rss_main,
                                     "python_largest_worker_mb": rss_workers, "benchmark_script_mb": floor}}


# =========================================================================== main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-set", type=Path, help="an existing model-set folder")
    src.add_argument("--encoder", choices=list(ENCODERS),
                     help="export a random-weight set (CLIP encoder + tiny heads, window 300) into "
                     "WORK/models with scripts/make_model_set.py, or reuse it")
    ap.add_argument("--tool", type=Path, default=ROOT / "build" / "abaw-infer", help="abaw-infer binary")
    ap.add_argument("--frames", type=int, help="frames in all (default 2000 for tiny, else 200)")
    ap.add_argument("--videos", type=int, default=10, help="videos the frames are split over (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic crops (default 0)")
    ap.add_argument("--tasks", default="va,expr,au", help="default va,expr,au")
    ap.add_argument("--batch-size", type=int, default=32, help="encoder batch, both sides (default 32)")
    ap.add_argument("--pack-batches", action="store_true", help="abaw-infer --pack-batches: batches "
                    "continue into the next video, as the Python DataLoader's do (default: per video)")
    ap.add_argument("--threads", type=int, help="intra-op threads (default: the tool's default, "
                    "one per usable CPU); Python uses what the tool reports")
    ap.add_argument("--decode-threads", type=int, help="abaw-infer --decode-threads (default: the "
                    "tool's default)")
    ap.add_argument("--workers", type=int, help="Python DataLoader num_workers (default: the "
                    "decode threads the tool reports)")
    ap.add_argument("--device", help="abaw-infer --device (default: the tool's, auto); Python uses the "
                    "device the tool reports")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], help="abaw-infer --precision "
                    "(default: the manifest's); Python casts its encoder to what the tool reports")
    ap.add_argument("--preprocess-on", choices=["auto", "host", "device"], help="abaw-infer "
                    "--preprocess-on (default: auto); Python always normalises in its DataLoader workers")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating (default 1)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed runs of each side first (default 0)")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "benchmark",
                    help="cache and output folder (default build/benchmark)")
    ap.add_argument("--json", type=Path, help="also write all measurements to this JSON file")
    args = ap.parse_args(argv)
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    if args.frames is None:
        args.frames = 2000 if args.encoder == "tiny" else 200
    for name in ("frames", "videos", "batch_size", "repeat"):
        if getattr(args, name) < 1:
            ap.error("--%s must be >= 1" % name.replace("_", "-"))
    for name in ("threads", "decode_threads", "workers"):
        v = getattr(args, name)
        if v is not None and v < (1 if name == "threads" else 0):
            ap.error("--%s must be >= %d" % (name.replace("_", "-"), 1 if name == "threads" else 0))
    if args.videos > args.frames:
        ap.error("--videos (%d) exceeds --frames (%d)" % (args.videos, args.frames))
    args.tasks = [t.strip().lower() for t in args.tasks.split(",") if t.strip()]
    if not args.tasks or any(t not in TASKS for t in args.tasks) or len(set(args.tasks)) != len(args.tasks):
        ap.error("--tasks: distinct names from va, expr, au")
    return args


def busy(run):
    o = run["other"]
    return "" if o is None else "; other processes: %.0f%% of the CPU" % (100 * o["share"])


def main(argv):
    args = parse_args(argv)
    need_packages("numpy", "cv2", "torch")
    tool = args.tool.resolve()
    if not (tool.is_file() and os.access(tool, os.X_OK)):
        raise BenchError("abaw-infer not found or not executable: %s (build it, or give --tool PATH)" % tool)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    if args.model_set is not None:
        model_set = args.model_set.resolve()
        if not (model_set / "manifest.json").is_file():
            raise BenchError("no manifest.json in --model-set %s" % model_set)
    else:
        model_set = make_model_set(work, args.encoder)
    read_manifest(model_set, args.tasks)
    data = make_dataset(work, args.frames, args.videos, args.seed)

    runs = work / "runs"
    # (a) and (b) need `abaw-infer bench`; without it the note says why they are missing
    bench_note = None if has_bench(tool) else \
        "%s has no `bench` subcommand (not in its --help)" % tool
    bench_error = None  # a bench-capable binary failed: reported, then exit code 1
    bench_runs = {"decode": [], "encode": []}
    loads = [loadavg()]
    log("load average before: %s (nproc %d)" % (loads[0], os.cpu_count()))
    if bench_note:
        log("(a) decode only and (b) encoder only are not available: " + bench_note)
    tool_runs, py_runs, agreement = [], [], None
    for i in range(args.warmup + args.repeat):
        what = "warm-up %d/%d" % (i + 1, args.warmup) if i < args.warmup else \
            "run %d/%d" % (i - args.warmup + 1, args.repeat)
        log("%s: abaw-infer" % what)
        tr = run_tool(tool, model_set, data, runs / "abaw-infer", args.tasks, args)
        s = tr["summary"]
        log("  %.2f s (run.json total), %.2f s process wall, peak RSS %.0f MB%s"
            % (s["seconds"]["total"], tr["wall"], tr["peak_rss_mb"], busy(tr)))
        stages = ("decode", "encode") if bench_note is None else ()
        for stage in stages:
            log("%s: abaw-infer bench --stage %s" % (what, stage))
            try:
                br = run_bench(tool, model_set, data, runs / "bench", stage, s, args)
            except NoBench as e:
                bench_note = str(e)
            except BenchError as e:
                bench_error = str(e)
                bench_note = "`abaw-infer bench --stage %s` failed (the error follows the report)" % stage
                log(bench_error)
            if bench_note is not None:
                log("(a) decode only and (b) encoder only are not available: " + bench_note)
                bench_runs = {"decode": [], "encode": []}
                break
            log("  %.2f s, %.1f images/s, peak RSS %.0f MB%s"
                % (br["json"]["seconds"], br["frames_per_second"], br["peak_rss_mb"], busy(br)))
            if i >= args.warmup:
                bench_runs[stage].append(br)
        workers = args.workers if args.workers is not None else int(s["decode_threads"])
        log("%s: Python baseline (%d threads, %d DataLoader workers)" % (what, s["threads"], workers))
        pr = run_python(model_set, data, runs / "python", args.tasks, args.batch_size, int(s["threads"]), workers,
                        s.get("device", "cpu"), s.get("precision", "fp32"))
        if i >= args.warmup:
            tool_runs.append(tr)
            py_runs.append(pr)
        log("  %.2f s (pipeline), %.2f s process wall, peak RSS %.0f MB%s"
            % (pr["seconds"]["pipeline"], pr["wall"], pr["peak_rss_mb"], busy(pr)))
        if pr["threads"] != s["threads"]:
            raise BenchError("Python ran with %d intra-op threads, abaw-infer with %d"
                             % (pr["threads"], s["threads"]))
        agreement = compare_outputs(runs / "abaw-infer", pr, args.tasks)
        loads.append(loadavg())
    summary = print_report(args, data, model_set, tool_runs, py_runs, agreement, loads, bench_runs, bench_note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                       "data": data, "model_set": str(model_set), "load_average": loads,
                       "abaw_infer": [{"wall": r["wall"], "peak_rss_mb": r["peak_rss_mb"], "other": r["other"],
                                       "run_json": r["summary"]} for r in tool_runs],
                       "bench": bench_runs, "python": py_runs, "agreement": agreement, **summary}, f, indent=1)
    if bench_error:
        raise BenchError(bench_error)
    return 0


if __name__ == "__main__":
    try:
        if len(sys.argv) > 1 and sys.argv[1] == CHILD_MODE:
            if len(sys.argv) != 4:
                raise BenchError("usage: benchmark.py %s CONFIG.json RESULT.json" % CHILD_MODE)
            sys.exit(python_baseline(sys.argv[2], sys.argv[3]))
        if len(sys.argv) > 1 and sys.argv[1] == CHILD_DATA:
            if len(sys.argv) != 6:
                raise BenchError("usage: benchmark.py %s FOLDER FRAMES VIDEOS SEED" % CHILD_DATA)
            sys.exit(generate_dataset(sys.argv[2], *(int(x) for x in sys.argv[3:6])))
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        sys.stderr.write("benchmark: error: %s\n" % e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("benchmark: interrupted\n")
        sys.exit(130)
