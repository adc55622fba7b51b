#!/usr/bin/python3
"""Compare two `abaw-infer run` output folders (e.g. the C++ tool against tests/reference_pipeline.py).

    /usr/bin/python3 tests/compare_outputs.py DIR_A DIR_B [--model-set DIR]
        [--va-atol 1e-4] [--raw-atol 1e-4] [--tie-eps 1e-5] [--max-report 20]

Checked (only submission/ and raw/ are compared; run.json and anything else is ignored):
- the same set of files under submission/ and raw/;
- format of both sides: exact ABAW headers, lines ending in "\\n" (no "\\r", no blank lines, final
  newline), the right number of fields, EXPR an int 0..7, AU ints 0/1, VA in [-1, 1];
- submission files: identical header, identical image_location column row by row, VA values within
  --va-atol, EXPR / AU labels identical except at near ties (below), which are counted and printed;
- raw/<TASK>/<video>.csv: identical header, frame and has_crop columns, scores within --raw-atol.

Near ties (labels may legitimately differ; decided from the raw scores of EITHER side):
- EXPR: both labels are within --tie-eps of the frame's top probability; with a mode filter, any
  frame of the mode-filter window whose two top probabilities are within --tie-eps.
- AU:   |probability - threshold| < --tie-eps.
With --model-set, the manifest's mean_filter is applied to the raw scores first, and its AU
thresholds, EXPR class_map (null classes ignored) and mode_filter are used; without it raw scores
are used as they are, threshold 0.5, no mode filter.

Exit status: 0 when equal within tolerances, 1 on any mismatch (the first --max-report mismatches are
printed with file, line and values, then counts per kind), 2 on a usage error.
"""

import argparse
import json
import math
import os
import sys

HEADERS = {
    "VA": "image_location,valence,arousal",
    "EXPR": "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
    "AU": "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26",
}
RAW_HEADERS = {t: "frame,has_crop," + h.split(",", 1)[1] for t, h in HEADERS.items()}
N_FIELDS = {"VA": 3, "EXPR": 2, "AU": 13}


class Report:
    def __init__(self, max_report):
        self.max_report = max_report
        self.items = []        # (kind, text)
        self.ties = {}         # task -> count
        self.tie_examples = []

    def add(self, kind, path, line, msg):
        where = path if line is None else "%s:%d" % (path, line)
        self.items.append((kind, "%s: %s" % (where, msg)))

    def tie(self, task, path, line, msg):
        self.ties[task] = self.ties.get(task, 0) + 1
        self.tie_examples.append("%s:%d: %s" % (path, line, msg))


# --------------------------------------------------------------------------- reading

def read_file_lines(root, rel, rep, side):
    """Lines without their "\\n"; format problems go to the report."""
    path = os.path.join(root, rel)
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        rep.add("format", "%s:%s" % (side, rel), None, "not UTF-8")
        text = data.decode("utf-8", "replace")
    if "\r" in text:
        rep.add("format", "%s:%s" % (side, rel), None, "contains \\r (lines must end with \\n)")
        text = text.replace("\r", "")
    if text and not text.endswith("\n"):
        rep.add("format", "%s:%s" % (side, rel), None, "no newline at end of file")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, ln in enumerate(lines):
        if ln.strip() == "":
            rep.add("format", "%s:%s" % (side, rel), i + 1, "blank line")
    if not lines:
        rep.add("format", "%s:%s" % (side, rel), None, "empty file")
    return lines


def list_outputs(root):
    out = set()
    for sub in ("submission", "raw"):
        base = os.path.join(root, sub)
        if not os.path.isdir(base):
            continue
        for dirpath, _, files in os.walk(base):
            for n in files:
                out.add(os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/"))
    return out


def parse_float(s):
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- post-processing model

class Post:
    """What the comparison needs to know of a model set (defaults without --model-set)."""

    def __init__(self, model_set):
        self.mean_filter = {"VA": 0, "EXPR": 0, "AU": 0}
        self.mode_filter = 0
        self.class_map = list(range(8))
        self.thresholds = [0.5] * 12
        self.known = model_set is not None
        if model_set is None:
            return
        with open(os.path.join(model_set, "manifest.json")) as f:
            man = json.load(f)
        tasks = man.get("tasks", {})
        for t, spec in tasks.items():
            self.mean_filter[t.upper()] = int(spec.get("mean_filter", 0))
        if "expr" in tasks:
            self.mode_filter = int(tasks["expr"].get("mode_filter", 0))
            self.class_map = tasks["expr"].get("class_map", list(range(8)))
        if "au" in tasks:
            thr = tasks["au"].get("threshold", 0.5)
            self.thresholds = [float(x) for x in thr] if isinstance(thr, list) else [float(thr)] * 12


def mean_filter(rows, w):
    if w <= 1:
        return rows
    T = len(rows)
    out = []
    for i in range(T):
        lo, hi = max(0, i - w // 2), min(T - 1, i - w // 2 + w - 1)
        out.append([sum(rows[j][k] for j in range(lo, hi + 1)) / (hi - lo + 1)
                    for k in range(len(rows[i]))])
    return out


# --------------------------------------------------------------------------- comparison

def compare_raw(a_root, b_root, rel, rep, atol, store):
    la = read_file_lines(a_root, rel, rep, "A")
    lb = read_file_lines(b_root, rel, rep, "B")
    parts = rel.split("/")
    task = parts[1] if len(parts) == 3 else None
    video = parts[2][:-4] if len(parts) == 3 and parts[2].endswith(".csv") else None
    if not la or not lb:
        return
    if la[0] != lb[0]:
        rep.add("header", rel, 1, "A %r != B %r" % (la[0], lb[0]))
        return
    if task in RAW_HEADERS and la[0] != RAW_HEADERS[task]:
        rep.add("format", rel, 1, "header %r, expected %r" % (la[0], RAW_HEADERS[task]))
    if len(la) != len(lb):
        rep.add("rows", rel, None, "A has %d lines, B has %d" % (len(la), len(lb)))
    nf = len(la[0].split(","))
    scores = {"A": [], "B": []}
    for i in range(1, min(len(la), len(lb))):
        fa, fb = la[i].split(","), lb[i].split(",")
        bad = False
        for side, fs in (("A", fa), ("B", fb)):
            if len(fs) != nf:
                rep.add("format", "%s:%s" % (side, rel), i + 1, "%d fields, header has %d" % (len(fs), nf))
                bad = True
        if bad:
            continue
        if fa[0] != fb[0] or fa[0] != str(i):
            rep.add("frame", rel, i + 1, "frame A %r B %r (expected %d)" % (fa[0], fb[0], i))
        if fa[1] != fb[1] or fa[1] not in ("0", "1"):
            rep.add("has_crop", rel, i + 1, "has_crop A %r B %r" % (fa[1], fb[1]))
        va = [parse_float(x) for x in fa[2:]]
        vb = [parse_float(x) for x in fb[2:]]
        cols = la[0].split(",")[2:]
        for k in range(len(va)):
            if va[k] is None or vb[k] is None:
                rep.add("raw", rel, i + 1, "%s: not a finite number (A %r, B %r)" % (cols[k], fa[k + 2], fb[k + 2]))
            elif abs(va[k] - vb[k]) > atol:
                rep.add("raw", rel, i + 1, "%s: A %s B %s |diff| %.3g > %g" % (cols[k], fa[k + 2], fb[k + 2],
                                                                            abs(va[k] - vb[k]), atol))
        scores["A"].append([x if x is not None else float("nan") for x in va])
        scores["B"].append([x if x is not None else float("nan") for x in vb])
    if task and video:
        store[("A", task, video)] = scores["A"]
        store[("B", task, video)] = scores["B"]


def expr_tie(post, fa, fb, f, la, lb, eps):
    """f 0-based frame; fa/fb filtered score rows of A and B (or None)."""
    active = [j for j in range(8) if post.class_map[j] is not None]
    if post.mode_filter > 1:
        for rows in (fa, fb):
            if rows is None:
                continue
            T, w = len(rows), post.mode_filter
            for j in range(max(0, f - w // 2), min(T - 1, f - w // 2 + w - 1) + 1):
                p = sorted((rows[j][c] for c in active), reverse=True)
                if len(p) > 1 and p[0] - p[1] < eps:
                    return True
        return False
    for rows in (fa, fb):
        if rows is None or f >= len(rows):
            continue
        top = max(rows[f][c] for c in active)
        if top - min(rows[f][la], rows[f][lb]) < eps:
            return True
    return False


def compare_submission(a_root, b_root, rel, rep, args, post, raw_store):
    la = read_file_lines(a_root, rel, rep, "A")
    lb = read_file_lines(b_root, rel, rep, "B")
    task = os.path.basename(rel)[:-4] if rel.endswith(".txt") else None
    if task not in HEADERS:
        if la != lb:
            rep.add("content", rel, None, "unknown submission file and contents differ")
        return
    if not la or not lb:
        return
    for side, lines in (("A", la), ("B", lb)):
        if lines[0] != HEADERS[task]:
            rep.add("format", "%s:%s" % (side, rel), 1, "header %r, expected %r" % (lines[0], HEADERS[task]))
    if la[0] != lb[0]:
        rep.add("header", rel, 1, "A %r != B %r" % (la[0], lb[0]))
    if len(la) != len(lb):
        rep.add("rows", rel, None, "A has %d lines, B has %d" % (len(la), len(lb)))

    filtered = {}

    def scores(side, video):
        key = (side, video)
        if key not in filtered:
            rows = raw_store.get((side, task, video))
            filtered[key] = None if rows is None else mean_filter(rows, post.mean_filter[task])
        return filtered[key]

    for i in range(1, min(len(la), len(lb))):
        line = i + 1
        fa, fb = la[i].split(","), lb[i].split(",")
        if fa[0] != fb[0]:
            rep.add("image_location", rel, line, "A %r != B %r" % (fa[0], fb[0]))
            continue
        bad = False
        for side, fs in (("A", fa), ("B", fb)):
            if len(fs) != N_FIELDS[task]:
                rep.add("format", "%s:%s" % (side, rel), line, "%d fields, expected %d: %r"
                        % (len(fs), N_FIELDS[task], "," .join(fs)))
                bad = True
        if bad:
            continue
        loc = fa[0]
        video, name = loc.rsplit("/", 1) if "/" in loc else (loc, "")
        try:
            f = int(name[:-4]) - 1
        except ValueError:
            f = -1
        if task == "VA":
            for k, col in enumerate(("valence", "arousal")):
                va, vb = parse_float(fa[k + 1]), parse_float(fb[k + 1])
                for side, v, s in (("A", va, fa[k + 1]), ("B", vb, fb[k + 1])):
                    if v is None or v < -1 or v > 1:
                        rep.add("format", "%s:%s" % (side, rel), line, "%s %r not a number in [-1,1]" % (col, s))
                if va is not None and vb is not None and abs(va - vb) > args.va_atol:
                    rep.add("VA", rel, line, "%s %s: A %s B %s |diff| %.3g > %g"
                            % (loc, col, fa[k + 1], fb[k + 1], abs(va - vb), args.va_atol))
        elif task == "EXPR":
            ok = True
            for side, s in (("A", fa[1]), ("B", fb[1])):
                if s not in [str(c) for c in range(8)]:
                    rep.add("format", "%s:%s" % (side, rel), line, "EXPR label %r not an int 0..7" % s)
                    ok = False
            if ok and fa[1] != fb[1]:
                a_lab, b_lab = int(fa[1]), int(fb[1])
                sa, sb = scores("A", video), scores("B", video)
                sa = sa if sa is not None and 0 <= f < len(sa) else None
                sb = sb if sb is not None and 0 <= f < len(sb) else None
                if sa is None and sb is None:
                    rep.add("EXPR", rel, line, "%s: A %d B %d (no raw scores to judge a tie)" % (loc, a_lab, b_lab))
                elif expr_tie(post, sa, sb, f, a_lab, b_lab, args.tie_eps):
                    ctx = sa[f] if sa is not None else sb[f]
                    rep.tie("EXPR", rel, line, "%s: A %d B %d near tie, p[A]=%.9g p[B]=%.9g"
                            % (loc, a_lab, b_lab, ctx[a_lab], ctx[b_lab]))
                else:
                    ctx = sa[f] if sa is not None else sb[f]
                    rep.add("EXPR", rel, line, "%s: A %d B %d (scores %s)"
                            % (loc, a_lab, b_lab, ",".join("%.6g" % x for x in ctx)))
        else:
            cols = HEADERS["AU"].split(",")[1:]
            for k in range(12):
                x, y = fa[k + 1], fb[k + 1]
                bad = False
                for side, s in (("A", x), ("B", y)):
                    if s not in ("0", "1"):
                        rep.add("format", "%s:%s" % (side, rel), line, "%s %r not 0/1" % (cols[k], s))
                        bad = True
                if bad or x == y:
                    continue
                sa, sb = scores("A", video), scores("B", video)
                probs = [s[f][k] for s in (sa, sb) if s is not None and 0 <= f < len(s)]
                thr = post.thresholds[k]
                if not probs:
                    rep.add("AU", rel, line, "%s %s: A %s B %s (no raw scores to judge a tie)" % (loc, cols[k], x, y))
                elif any(abs(p - thr) < args.tie_eps for p in probs):
                    rep.tie("AU", rel, line, "%s %s: A %s B %s near threshold, p=%.9g thr=%g"
                            % (loc, cols[k], x, y, probs[0], thr))
                else:
                    rep.add("AU", rel, line, "%s %s: A %s B %s (p=%s, threshold %g)"
                            % (loc, cols[k], x, y, "/".join("%.6g" % p for p in probs), thr))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare two abaw-infer run output folders.")
    ap.add_argument("dir_a")
    ap.add_argument("dir_b")
    ap.add_argument("--model-set", default=None,
                    help="model set whose manifest gives mean/mode filters, class_map and AU thresholds "
                         "for judging near ties")
    ap.add_argument("--va-atol", type=float, default=1e-4)
    ap.add_argument("--raw-atol", type=float, default=1e-4)
    ap.add_argument("--tie-eps", type=float, default=1e-5)
    ap.add_argument("--max-report", type=int, default=20)
    args = ap.parse_args(argv)

    for d in (args.dir_a, args.dir_b):
        if not os.path.isdir(d):
            sys.stderr.write("compare_outputs: not a folder: %s\n" % d)
            return 2
    post = Post(args.model_set)
    rep = Report(args.max_report)
    fa, fb = list_outputs(args.dir_a), list_outputs(args.dir_b)
    if not fa and not fb:
        sys.stderr.write("compare_outputs: neither folder has submission/ or raw/ files\n")
        return 2
    for rel in sorted(fa - fb):
        rep.add("files", rel, None, "only in A (%s)" % args.dir_a)
    for rel in sorted(fb - fa):
        rep.add("files", rel, None, "only in B (%s)" % args.dir_b)
    common = sorted(fa & fb)

    raw_store = {}
    for rel in common:
        if rel.startswith("raw/"):
            compare_raw(args.dir_a, args.dir_b, rel, rep, args.raw_atol, raw_store)
    for rel in common:
        if rel.startswith("submission/"):
            compare_submission(args.dir_a, args.dir_b, rel, rep, args, post, raw_store)

    n_sub = sum(1 for r in common if r.startswith("submission/"))
    n_raw = len(common) - n_sub
    print("compared A=%s B=%s: %d submission files, %d raw files" % (args.dir_a, args.dir_b, n_sub, n_raw))
    if rep.ties:
        print("near ties tolerated (labels differ, scores within %g): %s"
              % (args.tie_eps, ", ".join("%s %d" % kv for kv in sorted(rep.ties.items()))))
        for ex in rep.tie_examples[:args.max_report]:
            print("  tie  " + ex)
    if not rep.items:
        print("OK: outputs match")
        return 0
    print("MISMATCH: %d problem(s)" % len(rep.items))
    for kind, text in rep.items[:args.max_report]:
        print("  [%s] %s" % (kind, text))
    if len(rep.items) > args.max_report:
        print("  ... %d more not shown" % (len(rep.items) - args.max_report))
    counts = {}
    for kind, _ in rep.items:
        counts[kind] = counts.get(kind, 0) + 1
    print("counts: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
    if not post.known and any(k in counts for k in ("EXPR", "AU")):
        print("hint: pass --model-set so that mean filters / thresholds are used when judging near ties")
    return 1


if __name__ == "__main__":
    sys.exit(main())
