#!/usr/bin/python3
"""Assemble an abaw-infer model-set folder: encoder.pt, head_<task>.pt, manifest.json.

The encoder is copied (--encoder, with --preprocess) or exported from CLIP
(--clip-config); the heads are copied (--head TASK=FILE) or exported as ABAW6 temporal
heads (--head-config, --tasks), or need no head file: --columns TASK=FIRST:END takes the
encoder's own output columns as the task's scores (a per-frame model, HSEmotion-style), and
--text-embeddings FILE makes expr a zero-shot classifier over the class rows that
scripts/export_clip_text.py writes (EmoCLIP-style). The manifest follows models/README.md. Its feature_dim
is measured by running the encoder on a dummy batch, and every head is run on [1, T, D]
to check its input width and output count. For a fixed seed the manifest is
byte-identical between runs. The generated description records every architecture number
of ABAW6 heads (read from the head files) and --trained-on.

--tiny is the test suite's set: tiny CLIP + tiny heads for va, expr, au, window 8.
"""

import argparse
import json
import os
import shutil
import sys

import torch

import abaw_models as m
from export_clip import export_clip
from export_temporal_head import (ARCHITECTURE_OPTIONS, add_architecture_options,
                                  architecture_overrides, export_head)

TASK_ORDER = ["va", "expr", "au"]
ACTIVATIONS = {"va": "none", "expr": "softmax", "au": "sigmoid"}


def key_value(text: str, what: str):
    task, sep, value = text.partition("=")
    if not sep or task not in TASK_ORDER or not value:
        raise argparse.ArgumentTypeError(f"expected TASK={what} with TASK in va, expr, au: {text!r}")
    return task, value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="model-set folder to create or fill")
    p.add_argument("--name", help="manifest name (default: the folder's name)")
    p.add_argument("--description", help="manifest description (default: generated)")
    p.add_argument("--tiny", action="store_true",
                   help="tiny random CLIP + tiny heads for va, expr, au; window 8")
    p.add_argument("--seed", type=int, default=0, help="seed of random inits: the encoder "
                   "uses SEED, the heads SEED+1 (va), SEED+2 (expr), SEED+3 (au)")

    enc = p.add_argument_group("encoder (one of --encoder, --clip-config)")
    enc.add_argument("--encoder", metavar="FILE.pt", help="TorchScript encoder to copy in")
    enc.add_argument("--preprocess", metavar="CLIP_CONFIG|FILE.json",
                     help="with --encoder: its preprocessing, a CLIP config name or a JSON "
                     "file holding the manifest's encoder.preprocess object")
    enc.add_argument("--clip-config", choices=list(m.CLIP_CONFIGS), help="export a CLIP encoder")
    enc.add_argument("--interpolation", choices=list(m.INTERPOLATIONS),
                     help="the resize the encoder was trained with (default: pil_bicubic, CLIP's own "
                     "transform; see models/README.md); the description names it")
    enc.add_argument("--clip-weights", metavar="PATH", help="see export_clip.py --weights")
    enc.add_argument("--use-ema", action="store_true",
                     help="with --clip-weights: export its EMA weights (see export_clip.py)")
    enc.add_argument("--clip-activation", choices=list(m.CLIP_ACTIVATIONS), default="quick_gelu")
    enc.add_argument("--no-projection", action="store_true",
                     help="CLIP features before the projection")

    enc.add_argument("--normalize", choices=["none", "l2"], default="none",
                     help="l2: each frame's feature is divided by its norm before the heads (heads trained "
                     "on normalised embeddings); the manifest's encoder.normalize")
    heads = p.add_argument_group("heads (--head, or --head-config with --tasks)")
    heads.add_argument("--head", action="append", default=[], metavar="TASK=FILE.pt",
                       type=lambda s: key_value(s, "FILE.pt"), help="TorchScript head to copy in")
    heads.add_argument("--columns", action="append", default=[], metavar="TASK=FIRST:END",
                       type=lambda s: key_value(s, "FIRST:END"),
                       help="the task's scores are encoder output columns FIRST..END-1 (a "
                       "per-frame model; no head file)")
    heads.add_argument("--text-embeddings", metavar="FILE.pt",
                       help="expr by logit_scale * cos(frame feature, class row): the [C, D] "
                       "file of scripts/export_clip_text.py, copied in as expr_text.pt")
    heads.add_argument("--logit-scale", type=float, default=100.0,
                       help="with --text-embeddings (CLIP's is 100)")
    heads.add_argument("--class-map", metavar="I,I,...",
                       help="expr: for each ABAW class in order (Neutral, Anger, Disgust, Fear, "
                       "Happiness, Sadness, Surprise, Other) the index of its head output, or - "
                       "when the head has none; default 0,1,...,7")
    heads.add_argument("--head-config", choices=list(m.HEAD_CONFIGS),
                       help="export random-init ABAW6 heads of this config")
    heads.add_argument("--tasks", help="with --head-config: comma-separated, e.g. va,expr,au")
    add_architecture_options(heads)
    heads.add_argument("--trained-on", metavar="NAME",
                       help="free text naming the encoder whose features the heads were "
                       "trained on (e.g. 'CLIP ViT-B/16 image embeddings'), recorded in the "
                       "description; a warning when it does not contain the encoder's name")

    seq = p.add_argument_group("sequence and post-processing")
    seq.add_argument("--window", type=int, help="frames per head call (default 300; --tiny 8)")
    seq.add_argument("--stride", type=int, help="default: the window")
    seq.add_argument("--merge", choices=["concatenate", "mean"], default="concatenate")
    seq.add_argument("--missing-frames", default="zero_feature",
                     choices=["zero_feature", "nearest_feature", "interpolate_predictions"])
    seq.add_argument("--mode-filter", type=int, default=0, metavar="W",
                     help="EXPR majority filter width (0 = off)")
    seq.add_argument("--mean-filter", action="append", default=[], metavar="TASK=W",
                     type=lambda s: key_value(s, "W"), help="moving-average width for a task")
    seq.add_argument("--au-threshold", metavar="X[,X...]",
                     help="one threshold, or 12 comma-separated (AU1 ... AU26); default 0.5")
    args = p.parse_args(argv)

    if args.tiny:
        if args.encoder or args.clip_config or args.head or args.head_config:
            p.error("--tiny chooses the encoder and the heads itself")
        args.clip_config, args.head_config = "tiny", "tiny"
        args.tasks = args.tasks or ",".join(TASK_ORDER)
        if args.window is None:
            args.window = 8
    if (args.encoder is None) == (args.clip_config is None):
        p.error("give exactly one of --encoder, --clip-config (or --tiny)")
    if args.encoder and (args.clip_weights or args.no_projection):
        p.error("--clip-weights and --no-projection go with --clip-config")
    if args.use_ema and not args.clip_weights:
        p.error("--use-ema goes with --clip-weights")
    if args.encoder and not args.preprocess:
        p.error("--encoder needs --preprocess (a CLIP config name or a JSON file)")
    if args.clip_config and args.preprocess:
        p.error("--preprocess goes with --encoder; --clip-config implies CLIP's")
    if args.head and args.head_config:
        p.error("give either --head TASK=FILE (repeatable) or --head-config with --tasks")
    if not (args.head or args.head_config or args.columns or args.text_embeddings):
        p.error("give heads: --head TASK=FILE, --head-config with --tasks, --columns "
                "TASK=FIRST:END or --text-embeddings FILE")
    if args.head_config:
        if not args.tasks:
            p.error("--head-config needs --tasks")
        args.tasks = [t.strip() for t in args.tasks.split(",")]
        bad = [t for t in args.tasks if t not in TASK_ORDER]
        if bad or len(set(args.tasks)) != len(args.tasks):
            p.error(f"--tasks: comma-separated distinct names from va, expr, au: {args.tasks}")
    elif args.tasks:
        p.error("--tasks goes with --head-config")
    given = [option for key, option, _, _ in ARCHITECTURE_OPTIONS if getattr(args, key) is not None]
    if given and not args.head_config:
        p.error(f"{', '.join(given)}: with --head-config (copied heads keep their own numbers)")
    if args.tiny and (args.columns or args.text_embeddings):
        p.error("--tiny chooses the heads itself")
    sources = ([(t, "--head") for t, _ in args.head]
               + [(t, "--head-config") for t in (args.tasks or [])]
               + [(t, "--columns") for t, _ in args.columns]
               + ([("expr", "--text-embeddings")] if args.text_embeddings else []))
    given_for = {}
    for task, option in sources:
        if task in given_for:
            p.error(f"the {task} task is given twice ({given_for[task]} and {option})")
        given_for[task] = option
    tasks = set(given_for)
    columns = {}
    for task, text in args.columns:
        first, sep, end = text.partition(":")
        if not (sep and first.isdigit() and end.isdigit() and int(end) > int(first)):
            p.error(f"--columns {task}={text}: expected FIRST:END with 0 <= FIRST < END")
        columns[task] = (int(first), int(end))
    args.columns = columns
    if args.logit_scale <= 0 or args.logit_scale != args.logit_scale:
        p.error("--logit-scale must be positive")
    if args.class_map is not None:
        if "expr" not in tasks:
            p.error("--class-map needs the expr task")
        entries = [e.strip() for e in args.class_map.split(",")]
        if len(entries) != 8 or not all(e == "-" or e.isdigit() for e in entries):
            p.error("--class-map takes 8 comma-separated head output indices or '-'")
        args.class_map = [None if e == "-" else int(e) for e in entries]
        used = [i for i in args.class_map if i is not None]
        if not used or len(set(used)) != len(used):
            p.error("--class-map must map at least one class and use each output once")
    else:
        args.class_map = list(range(8))
    if args.mode_filter and "expr" not in tasks:
        p.error("--mode-filter needs the expr task")
    if args.au_threshold is not None and "au" not in tasks:
        p.error("--au-threshold needs the au task")

    if args.window is None:
        args.window = 300
    if args.stride is None:
        args.stride = args.window
    if args.window < 1 or args.stride < 1:
        p.error("--window and --stride must be >= 1")
    if args.merge == "concatenate" and args.stride != args.window:
        p.error("--merge concatenate needs stride = window")
    if args.merge == "mean" and args.stride > args.window:
        p.error("--merge mean needs stride <= window")
    if args.mode_filter < 0:
        p.error("--mode-filter must be >= 0")
    if len({t for t, _ in args.mean_filter}) != len(args.mean_filter):
        p.error("--mean-filter given twice for a task")
    args.mean_filter = dict(args.mean_filter)
    for task, w in args.mean_filter.items():
        if not w.isdigit():
            p.error(f"--mean-filter {task}={w}: the width must be an integer >= 0")
        if task not in tasks:
            p.error(f"--mean-filter {task}=...: the set has no {task} task")
    args.mean_filter = {t: int(w) for t, w in args.mean_filter.items()}
    try:
        thresholds = [float(x) for x in (args.au_threshold or "0.5").split(",")]
    except ValueError:
        p.error(f"--au-threshold: not numbers: {args.au_threshold}")
    if len(thresholds) not in (1, 12):
        p.error("--au-threshold takes 1 or 12 values")
    args.au_threshold = thresholds[0] if len(thresholds) == 1 else thresholds
    return args


def read_preprocess(spec: str) -> dict:
    if spec in m.CLIP_CONFIGS:
        return m.clip_preprocess(spec)
    with open(spec, encoding="utf-8") as f:
        pre = json.load(f)
    if not isinstance(pre, dict) or "resize" not in pre:
        raise SystemExit(f"error: {spec}: expected a JSON object like the manifest's "
                         "encoder.preprocess (with at least 'resize')")
    return pre


def encoder_feature_dim(path: str, preprocess: dict) -> int:
    """Runs the encoder on a [2, C, S, S] batch of the size the preprocessing produces."""
    size = preprocess.get("crop") or preprocess["resize"]
    channels = 1 if preprocess.get("color_order") == "GRAY" else 3
    encoder = torch.jit.load(path, map_location="cpu").eval()
    try:
        with torch.no_grad():
            out = encoder(torch.zeros(2, channels, size, size))
    except (RuntimeError, torch.jit.Error) as e:
        raise SystemExit(f"error: {path} fails on a [2, {channels}, {size}, {size}] batch "
                         f"(check the preprocessing):\n{str(e).strip().splitlines()[-1]}")
    if not torch.is_tensor(out) or out.dim() != 2 or out.shape[0] != 2 \
            or out.dtype != torch.float32:
        raise SystemExit(f"error: {path}: expected float32 [2, D] for a [2, {channels}, "
                         f"{size}, {size}] batch")
    return out.shape[1]


def check_head(path: str, task: str, feature_dim: int, k: int):
    """Runs the head on [1, T, D]; returns its architecture numbers (None: not an ABAW6 head)."""
    head = torch.jit.load(path, map_location="cpu").eval()
    for t in (1, 5):
        try:
            with torch.no_grad():
                out = head(torch.zeros(1, t, feature_dim))
        except (RuntimeError, torch.jit.Error) as e:
            raise SystemExit(f"error: {path}: the {task} head fails on [1, {t}, {feature_dim}]:"
                             f"\n{str(e).strip().splitlines()[-1]}")
        if not torch.is_tensor(out) or tuple(out.shape) != (1, t, k):
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise SystemExit(f"error: {path}: the {task} head gave {shape} for "
                             f"[1, {t}, {feature_dim}], expected (1, {t}, {k})")
    return m.head_architecture(head)


def architectures_text(archs: dict) -> str:
    """The heads' architecture numbers for the description: once when all heads share
    them, else per task; "" when no head is an ABAW6 head."""
    texts = {task: m.architecture_text(a, io=False) for task, a in archs.items() if a}
    if not texts:
        return ""
    if len(texts) == len(archs) and len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{task}: {text}" for task, text in texts.items())


def task_width(task: str, args) -> int:
    """The scores a task's head gives: 2, 12, or for expr the largest class_map index + 1."""
    if task == "expr":
        return max(i for i in args.class_map if i is not None) + 1
    return m.TASK_OUTPUTS[task]


def check_columns(task: str, first: int, end: int, feature_dim: int, args) -> None:
    if end > feature_dim:
        raise SystemExit(f"error: --columns {task}={first}:{end} ends past the encoder's "
                         f"{feature_dim} outputs")
    if end - first != task_width(task, args):
        raise SystemExit(f"error: --columns {task}={first}:{end} selects {end - first} columns; "
                         f"the task needs {task_width(task, args)}")


def copy_text_embeddings(source: str, destination: str, feature_dim: int, args) -> None:
    """Checks the [C, D] class rows the way abaw-infer does, then copies the file in."""
    try:
        rows = torch.load(source, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise SystemExit(f"error: {source}: not a tensor file from torch.save ({e})")
    width = task_width("expr", args)
    if not torch.is_tensor(rows) or rows.dim() != 2 or tuple(rows.shape) != (width, feature_dim):
        shape = tuple(rows.shape) if torch.is_tensor(rows) else type(rows).__name__
        raise SystemExit(f"error: {source}: holds {shape}, expected ({width}, {feature_dim}): one "
                         "row per class the class map uses, as wide as the encoder's features")
    shutil.copyfile(source, destination)


def task_entry(task: str, head, args) -> dict:
    entry = {"head": head, "activation": ACTIVATIONS[task]}
    if task == "expr":
        entry["class_map"] = args.class_map
    if task == "au":
        entry["threshold"] = args.au_threshold
    entry["mean_filter"] = args.mean_filter.get(task, 0)
    if task == "expr":
        entry["mode_filter"] = args.mode_filter
    return entry


def main(argv=None) -> None:
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    manifest_path = os.path.join(args.output, "manifest.json")
    if os.path.exists(manifest_path):  # a failure below must not leave a stale manifest
        os.remove(manifest_path)
    encoder_path = os.path.join(args.output, "encoder.pt")

    if args.clip_config:
        export_clip(args.clip_config, encoder_path, args.clip_weights, args.seed,
                    not args.no_projection, activation=args.clip_activation,
                    use_ema=args.use_ema)
        preprocess = m.clip_preprocess(args.clip_config)
        kind = "pre-projection features" if args.no_projection else "image embedding"
        if args.clip_weights:
            source = f"weights {os.path.basename(args.clip_weights)}" + (
                ", EMA" if args.use_ema else "")
        else:
            source = f"random init, seed {args.seed}"
        encoder_name = f"CLIP {args.clip_config}"
        encoder_desc = f"{encoder_name} {kind} ({source})"
    else:
        preprocess = read_preprocess(args.preprocess)
        shutil.copyfile(args.encoder, encoder_path)
        encoder_name = os.path.splitext(os.path.basename(args.encoder))[0]
        encoder_desc = f"encoder {os.path.basename(args.encoder)}"
    if args.interpolation:
        preprocess["interpolation"] = args.interpolation
    interpolation = preprocess.get("interpolation", "bicubic")
    if interpolation in m.INTERPOLATIONS:
        encoder_desc += f"; input as trained: {m.INTERPOLATIONS[interpolation]}"
    feature_dim = encoder_feature_dim(encoder_path, preprocess)
    m.log(f"encoder feature dim: {feature_dim}")
    if args.trained_on is not None and encoder_name.lower() not in args.trained_on.lower():
        m.log(f"warning: the heads were trained on {args.trained_on!r}, which does not name "
              f"this set's encoder {encoder_name!r}: heads fed another encoder's features give "
              "meaningless predictions even when the feature widths match, and nothing else "
              "can detect it")

    head_files = {}
    if args.head_config:
        for task in sorted(args.tasks, key=TASK_ORDER.index):
            head_files[task] = f"head_{task}.pt"
            export_head(args.head_config, task_width(task, args),
                        os.path.join(args.output, head_files[task]), input_dim=feature_dim,
                        seed=args.seed + 1 + TASK_ORDER.index(task),
                        arch=architecture_overrides(args))
    else:
        for task, path in sorted(args.head, key=lambda tp: TASK_ORDER.index(tp[0])):
            head_files[task] = f"head_{task}.pt"
            shutil.copyfile(path, os.path.join(args.output, head_files[task]))
    archs = {task: check_head(os.path.join(args.output, name), task, feature_dim,
                              task_width(task, args))
             for task, name in head_files.items()}
    heads = dict(head_files)
    for task, (first, end) in args.columns.items():
        check_columns(task, first, end, feature_dim, args)
        heads[task] = {"columns": [first, end]}
    if args.text_embeddings:
        copy_text_embeddings(args.text_embeddings, os.path.join(args.output, "expr_text.pt"),
                             feature_dim, args)
        heads["expr"] = {"text_embeddings": "expr_text.pt", "logit_scale": args.logit_scale}
    arch_desc = architectures_text(archs)
    if arch_desc:
        m.log(f"head architecture: {arch_desc}")
    if args.head_config:
        heads_desc = (f"ABAW6 TCN+Transformer heads, config {args.head_config} (random init"
                      + (f"; {arch_desc})" if arch_desc else ")"))
    elif args.head:
        heads_desc = ("heads " + ", ".join(os.path.basename(p) for _, p in args.head)
                      + (f" ({arch_desc})" if arch_desc else ""))
    else:
        heads_desc = ""
    others = [f"{task}: encoder columns {first}..{end - 1}" for task, (first, end) in args.columns.items()]
    if args.text_embeddings:
        others.append(f"expr: zero-shot, text embeddings {os.path.basename(args.text_embeddings)}"
                      f" (logit scale {args.logit_scale:g})")
    heads_desc = "; ".join([d for d in [heads_desc] if d] + others)
    if args.trained_on is not None:
        heads_desc += f"; heads trained on: {args.trained_on}"

    manifest = {
        "format": "abaw-infer-model-set",
        "version": 1,
        "name": args.name or os.path.basename(os.path.normpath(args.output)),
        "description": args.description or f"{encoder_desc}; {heads_desc}",
        "encoder": {"file": "encoder.pt", "feature_dim": feature_dim, "preprocess": preprocess,
                    **({"normalize": args.normalize} if args.normalize != "none" else {})},
        "sequence": {"window": args.window, "stride": args.stride, "merge": args.merge,
                     "missing_frames": args.missing_frames},
        "tasks": {task: task_entry(task, heads[task], args)
                  for task in sorted(heads, key=TASK_ORDER.index)},
    }
    with open(manifest_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    m.log(f"wrote {manifest_path}")


if __name__ == "__main__":
    m.fix_hash_seed()
    main(sys.argv[1:])
