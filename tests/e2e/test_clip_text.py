#!/usr/bin/python3
"""Tests of scripts/export_clip_text.py (CLIP text tower -> [C, D] class embeddings) and
scripts/clip_tokenizer.py (CLIP's BPE tokenizer). No network, no upstream code needed.

Text tower: random seeded tiny weights in the layouts checkpoints come in (OpenAI's top-level
keys beside visual.* and logit_scale, open_clip's training checkpoint {"state_dict":
{"module."...}}, CustomTextCLIP's text.* prefix, EMA beside raw, a float16 TorchScript
archive as OpenAI ships) are exported and compared with REFERENCE below: a step-by-step
transcription of OpenAI CLIP's encode_text (clip/model.py) in plain float64 torch ops
(no nn.MultiheadAttention), and with the zero-shot recipe (normalise, average, normalise).

Tokenizer: tests/fixtures/clip_tokenizer_golden.json holds the first 3000 merges of
bpe_simple_vocab_16e6.txt.gz, a few hundred strings and the ids that OpenAI's own
clip/simple_tokenizer.py and clip.tokenize gave for them over those merges (and, for a few
strings, over the full merges file, checked here when $ABAW_CLIP_VOCAB names that file). It
was made once by this file's --make-golden mode (see make_golden: it names the upstream
commits used) with
    /usr/bin/python3 tests/e2e/test_clip_text.py --make-golden OPENAI_CLIP_DIR FTFY_DIR \\
        bpe_simple_vocab_16e6.txt.gz tests/fixtures/clip_tokenizer_golden.json
OPENAI_CLIP_DIR holding openai/CLIP's clip/ folder, FTFY_DIR rspeer/python-ftfy's ftfy/
folder, with Debian's python3-regex and python3-wcwidth installed. Without ftfy (as on CI)
strings whose ftfy result depends on its mojibake repair are skipped; without the regex
module the tokenizer's built-in scanner is what is tested (both are tested when present).

Run with Debian's Python (it needs torch): /usr/bin/python3 tests/e2e/test_clip_text.py [-v]
"""

import contextlib
import gzip
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "clip_tokenizer_golden.json")
PROMPTS = os.path.join(ROOT, "models", "prompts", "emoclip_expr.txt")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import abaw_models as m  # noqa: E402
import clip_tokenizer as ct  # noqa: E402
import export_clip_text  # noqa: E402

torch.set_num_threads(1)
WORK = None
TINY = dict(width=32, layers=2, heads=4, embed=32, context=77)


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="abaw-clip-text-")


def tearDownModule():
    if WORK and not os.environ.get("ABAW_KEEP_TEST_FILES"):
        shutil.rmtree(WORK, ignore_errors=True)


def path(name):
    return os.path.join(WORK, name)


def run_main(argv):
    """export_clip_text.main(argv) here: (exit code, stdout, stderr); a SystemExit message
    is appended to stderr as Python would print it."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            export_clip_text.main(argv)
        except SystemExit as e:
            if isinstance(e.code, str):
                err.write(e.code + "\n")
                code = 1
            else:
                code = e.code or 0
    return code, out.getvalue(), err.getvalue()


def load_golden():
    with open(FIXTURE, encoding="utf-8") as f:
        return json.load(f)


MAKING_GOLDEN = sys.argv[1:2] == ["--make-golden"]
GOLDEN = None if MAKING_GOLDEN else load_golden()
MERGES = ([("i", "n")] if MAKING_GOLDEN
          else [tuple(line.split(" ")) for line in GOLDEN["vocab"]["merges"]])


def write_vocab(name, merges=None, header="#version: 0.2", trailing_newline=False):
    text = "\n".join([header] + [" ".join(p) for p in (merges or MERGES)])
    if trailing_newline:
        text += "\n"
    with gzip.open(path(name), "wb") as f:
        f.write(text.encode("utf-8"))
    return path(name)


# ---------------------------------------------------------------------------------------
# Reference text tower
# ---------------------------------------------------------------------------------------

def text_weights(seed, vocab, width=32, layers=2, embed=32, context=77):
    """A text tower's bare-key state dict with every entry random (LayerNorms and biases
    too, so that a swapped or skipped one shows)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=1.0, mean=0.0):
        return mean + std * torch.randn(*shape, generator=g)

    sd = {
        "token_embedding.weight": rnd(vocab, width, std=0.5),
        "positional_embedding": rnd(context, width, std=0.1),
        "ln_final.weight": rnd(width, std=0.1, mean=1.0),
        "ln_final.bias": rnd(width, std=0.1),
        "text_projection": rnd(width, embed, std=width ** -0.5),
    }
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        sd.update({
            p + "attn.in_proj_weight": rnd(3 * width, width, std=width ** -0.5),
            p + "attn.in_proj_bias": rnd(3 * width, std=0.1),
            p + "attn.out_proj.weight": rnd(width, width, std=width ** -0.5),
            p + "attn.out_proj.bias": rnd(width, std=0.1),
            p + "ln_1.weight": rnd(width, std=0.1, mean=1.0),
            p + "ln_1.bias": rnd(width, std=0.1),
            p + "mlp.c_fc.weight": rnd(4 * width, width, std=width ** -0.5),
            p + "mlp.c_fc.bias": rnd(4 * width, std=0.1),
            p + "mlp.c_proj.weight": rnd(width, 4 * width, std=(4 * width) ** -0.5),
            p + "mlp.c_proj.bias": rnd(width, std=0.1),
            p + "ln_2.weight": rnd(width, std=0.1, mean=1.0),
            p + "ln_2.bias": rnd(width, std=0.1),
        })
    return sd


def reference_encode_text(sd, tokens, heads, activation="quick_gelu"):
    """OpenAI CLIP's encode_text, step by step in float64 (clip/model.py: CLIP.encode_text,
    Transformer, ResidualAttentionBlock with attn_mask = -inf above the diagonal,
    LayerNorm eps 1e-5, features at text.argmax(-1), @ text_projection)."""
    w = {k: v.double() for k, v in sd.items()}
    n, length = tokens.shape
    width = w["ln_final.weight"].shape[0]
    hd = width // heads
    layers = len({k.split(".")[2] for k in w if k.startswith("transformer.resblocks.")})
    x = w["token_embedding.weight"][tokens] + w["positional_embedding"][:length]
    mask = torch.full((length, length), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        y = F.layer_norm(x, (width,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
        qkv = y @ w[p + "attn.in_proj_weight"].t() + w[p + "attn.in_proj_bias"]
        q, k, v = (t.reshape(n, length, heads, hd).transpose(1, 2) for t in qkv.split(width, -1))
        scores = q @ k.transpose(-1, -2) / hd ** 0.5 + mask
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, width)
        x = x + a @ w[p + "attn.out_proj.weight"].t() + w[p + "attn.out_proj.bias"]
        y = F.layer_norm(x, (width,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
        h = y @ w[p + "mlp.c_fc.weight"].t() + w[p + "mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h) if activation == "quick_gelu" else F.gelu(h)
        x = x + h @ w[p + "mlp.c_proj.weight"].t() + w[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (width,), w["ln_final.weight"], w["ln_final.bias"], 1e-5)
    return x[torch.arange(n), tokens.argmax(dim=-1)] @ w["text_projection"]


def reference_tokens(tokenizer, texts, context=77):
    """clip.tokenize, written out: sot + ids + eot, zero-padded."""
    out = torch.zeros(len(texts), context, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = [tokenizer.sot] + tokenizer.encode(t) + [tokenizer.eot]
        out[i, :len(ids)] = torch.tensor(ids)
    return out


def reference_class_embeddings(sd, tokenizer, classes, heads, activation="quick_gelu"):
    rows = []
    for _, prompts in classes:
        f = reference_encode_text(sd, reference_tokens(tokenizer, prompts), heads, activation)
        f = f / f.norm(dim=-1, keepdim=True)
        mean = f.mean(0)
        rows.append(mean / mean.norm())
    return torch.stack(rows)


# ---------------------------------------------------------------------------------------
# Fixtures shared by the tests
# ---------------------------------------------------------------------------------------

TOKENIZER = ct.Tokenizer(MERGES)
VOCAB_SIZE = TOKENIZER.vocab_size
RAW = text_weights(11, VOCAB_SIZE)
EMA = text_weights(22, VOCAB_SIZE)
VISUAL = {"visual." + k: v for k, v in m.build_clip("tiny").state_dict().items()}
CLASSES = [
    ("Neutral", ["a photo of a neutral face", "a calm face"]),
    ("Happiness", ["a photo of a happy face", "a smiling person, with raised cheeks",
                   "joy! \U0001f600"]),
    ("Sadness", ["a photo of a sad face"]),
]
PROMPT_TEXT = (
    "# test prompts\n\n"
    "Neutral: a photo of a neutral face | a calm face\n"
    "Happiness: a photo of a happy face | a smiling person, with raised cheeks\n"
    "  # an indented comment\n"
    "Sadness: a photo of a sad face\n"
    "Happiness: joy! \U0001f600\n"
)


def write_prompts(name, text=PROMPT_TEXT):
    with open(path(name), "w", encoding="utf-8") as f:
        f.write(text)
    return path(name)


def save(obj, name):
    torch.save(obj, path(name))
    return path(name)


def prefixed(sd, prefix):
    return {prefix + k: v for k, v in sd.items()}


class TextTowerTest(unittest.TestCase):
    """CLIPText against the float64 reference transcription of encode_text."""

    def tower(self, sd, heads=4, activation="quick_gelu"):
        cfg = m.text_config_from_weights(sd)
        model = m.CLIPText(cfg["context_length"], cfg["vocab_size"], cfg["width"],
                           cfg["layers"], heads, cfg["embed_dim"], activation)
        model.load_state_dict(sd)
        return model.eval()

    def test_matches_reference(self):
        texts = ["a photo of a face", "", "x" * 40, "it's a happy \U0001f600 day!!",
                 "<|endoftext|> early eot", " ".join(["word"] * 80)]
        tokens = TOKENIZER.tokenize(texts, truncate=True)
        for activation in ("quick_gelu", "gelu"):
            with self.subTest(activation=activation), torch.no_grad():
                got = self.tower(RAW, activation=activation)(tokens)
                want = reference_encode_text(RAW, tokens, 4, activation)
                self.assertEqual(got.dtype, torch.float32)
                self.assertLess((got.double() - want).abs().max().item(), 1e-5)
                # CLIP pools at the first eot (the row's largest id): a literal
                # "<|endoftext|>" in the text ends the sequence early.
                self.assertEqual(int(tokens[4].argmax()), 1)

    def test_padding_does_not_matter(self):
        tokens = TOKENIZER.tokenize(["a calm face"])
        model = self.tower(RAW)
        with torch.no_grad():
            full = model(tokens)
            short = model(tokens[:, :10])
        self.assertLess((full - short).abs().max().item(), 1e-5)

    def test_config_from_weights(self):
        self.assertEqual(m.text_config_from_weights(RAW), {
            "context_length": 77, "vocab_size": VOCAB_SIZE, "width": 32, "layers": 2,
            "heads": 0, "embed_dim": 32})
        model = m.CLIPText(77, 49408, 512, 12, 8, 512)
        self.assertEqual(m.text_config_from_weights(model.state_dict()), {
            "context_length": 77, "vocab_size": 49408, "width": 512, "layers": 12,
            "heads": 8, "embed_dim": 512})


class ExportTest(unittest.TestCase):
    """export_clip_text.main over checkpoint layouts: the file against the reference."""

    @classmethod
    def setUpClass(cls):
        cls.vocab = write_vocab("vocab.txt.gz")
        cls.prompts = write_prompts("prompts.txt")
        cls.want_raw = reference_class_embeddings(RAW, TOKENIZER, CLASSES, 4)
        cls.want_ema = reference_class_embeddings(EMA, TOKENIZER, CLASSES, 4)

    def export(self, extra, name="out.pt", code=0):
        out = path(name)
        if os.path.exists(out):
            os.remove(out)
        rc, stdout, stderr = run_main(["--vocab", self.vocab, "--prompts", self.prompts,
                                       "--output", out] + extra)
        self.assertEqual(rc, code, stderr)
        if code:
            self.assertFalse(os.path.exists(out))
            return None, stdout, stderr
        return torch.load(out), stdout, stderr

    def check_file(self, tensor, want, stdout):
        self.assertEqual(tensor.dtype, torch.float32)
        self.assertEqual(tuple(tensor.shape), (3, 32))
        self.assertTrue(tensor.is_contiguous())
        self.assertEqual(tensor.storage().size(), 3 * 32)
        self.assertLess((tensor.double() - want).abs().max().item(), 1e-5)
        self.assertLess((tensor.norm(dim=1) - 1).abs().max().item(), 1e-6)
        self.assertEqual(json.loads(stdout)["classes"], ["Neutral", "Happiness", "Sadness"])

    def test_layouts(self):
        scale = torch.tensor(4.6052)
        jit_extras = {"input_resolution": torch.tensor(32), "context_length": torch.tensor(77),
                      "vocab_size": torch.tensor(VOCAB_SIZE)}
        layouts = {
            "bare text tower": (RAW, []),
            "OpenAI keys (visual.*, logit_scale)": ({**VISUAL, **RAW, "logit_scale": scale,
                                                     **jit_extras}, []),
            "open_clip training checkpoint": ({"epoch": 3, "name": "run",
                                               "state_dict": prefixed({**VISUAL, **RAW,
                                                                       "logit_scale": scale},
                                                                      "module."),
                                               "optimizer": {"state": {}, "param_groups": []}},
                                              []),
            "CustomTextCLIP text.*": ({**VISUAL, **prefixed(RAW, "text."),
                                       "logit_scale": scale}, []),
            "--key-prefix": ({**prefixed(RAW, "m.enc."), **prefixed(EMA, "m.other.")},
                             ["--key-prefix", "m.enc."]),
            "EMA beside raw": ({"state_dict": {**RAW, "logit_scale": scale},
                                "state_dict_ema": {**EMA, "logit_scale": scale}}, []),
        }
        for name, (ckpt, extra) in layouts.items():
            with self.subTest(layout=name):
                file = save(ckpt, "ckpt.pt")
                got, stdout, stderr = self.export(["--weights", file, "--config", "tiny"] + extra)
                self.check_file(got, self.want_raw, stdout)
                if "logit_scale" in str(list(ckpt)) + str(list(ckpt.get("state_dict", {}))):
                    self.assertAlmostEqual(json.loads(stdout)["logit_scale"], 100.0, places=2)
        with self.subTest(layout="EMA with --use-ema"):
            file = save({"state_dict": RAW, "state_dict_ema": EMA}, "ckpt.pt")
            got, stdout, stderr = self.export(["--weights", file, "--config", "tiny", "--use-ema"])
            self.check_file(got, self.want_ema, stdout)
            got, stdout, stderr = self.export(["--weights", file, "--config", "tiny"])
            self.assertIn("also holds EMA weights", stderr)
            self.check_file(got, self.want_raw, stdout)

    def test_heads_from_weights_or_option(self):
        file = save(RAW, "bare.pt")
        _, _, stderr = self.export(["--weights", file], code=1)
        self.assertIn("0 attention heads do not divide the text width 32: give --heads", stderr)
        got, stdout, _ = self.export(["--weights", file, "--heads", "4"])
        self.check_file(got, self.want_raw, stdout)
        got, _, _ = self.export(["--weights", file, "--heads", "2"])
        want2 = reference_class_embeddings(RAW, TOKENIZER, CLASSES, 2)
        self.assertLess((got.double() - want2).abs().max().item(), 1e-5)
        self.assertGreater((want2 - self.want_raw).abs().max().item(), 1e-3)

    def test_torchscript_archive_float16(self):
        half = {k: v.half() for k, v in RAW.items()}
        model = m.CLIPText(77, VOCAB_SIZE, 32, 2, 4, 32)
        model.load_state_dict(RAW)
        torch.jit.save(torch.jit.script(model.half()), path("archive.pt"))
        got, stdout, stderr = self.export(["--weights", path("archive.pt"), "--config", "tiny"])
        self.assertIn("float16, computed in float32", stderr)
        want = reference_class_embeddings(half, TOKENIZER, CLASSES, 4)
        self.check_file(got, want, stdout)

    def test_random_init(self):
        a, stdout, stderr = self.export(["--config", "tiny", "--seed", "5"])
        self.assertEqual(tuple(a.shape), (3, 32))
        self.assertIn("random init (seed 5)", stderr)
        self.assertIn("NOT OpenAI's bpe_simple_vocab_16e6", stderr)
        b, _, _ = self.export(["--config", "tiny", "--seed", "5"])
        c, _, _ = self.export(["--config", "tiny", "--seed", "6"])
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(a, c))

    def test_errors(self):
        two = save({**RAW, **prefixed(EMA, "text.")}, "two.pt")
        vision = save(VISUAL, "vision.pt")
        bare = save(RAW, "bare.pt")
        big = save(text_weights(1, VOCAB_SIZE, width=64, layers=3, embed=16), "big.pt")
        small_vocab = save(text_weights(1, 600), "small_vocab.pt")
        cases = [
            (["--weights", two], "more than one text tower, under the prefixes '', 'text.'"),
            (["--weights", vision], "no text tower"),
            (["--weights", bare, "--config", "ViT-B/16"],
             "not a ViT-B/16 text tower: vocab_size %d (config 49408), width 32 (config 512)"
             % VOCAB_SIZE),
            (["--weights", big, "--config", "tiny"], "width 64 (config 32), layers 3 (config 2)"),
            (["--weights", small_vocab, "--heads", "4"], "text tower has 600 token embeddings"),
            (["--weights", bare, "--key-prefix", "text."], "no 'text.token_embedding.weight'"),
        ]
        for argv, message in cases:
            with self.subTest(argv=argv):
                _, _, stderr = self.export(argv, code=1)
                self.assertIn(message, stderr)
        for argv in (["--key-prefix", "x."], ["--use-ema"], []):
            with self.subTest(argv=argv), contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(run_main(["--vocab", self.vocab, "--prompts", self.prompts,
                                           "--output", path("x.pt")] + argv)[0], 2)

    def test_no_partial_file(self):
        out = path("kept.pt")
        torch.save(torch.ones(2), out)
        rc, _, _ = run_main(["--vocab", self.vocab, "--prompts", self.prompts, "--output", out,
                             "--weights", save(VISUAL, "vision.pt")])
        self.assertEqual(rc, 1)
        self.assertTrue(torch.equal(torch.load(out), torch.ones(2)))
        self.export(["--config", "tiny"], name="kept.pt")
        self.assertEqual([f for f in os.listdir(WORK) if ".tmp-" in f], [])

    def test_command_line(self):
        out = path("cli.pt")
        file = save({**VISUAL, **RAW, "logit_scale": torch.tensor(4.6052)}, "cli_ckpt.pt")
        proc = subprocess.run([PYTHON, os.path.join(ROOT, "scripts", "export_clip_text.py"),
                               "--weights", file, "--config", "tiny", "--vocab", self.vocab,
                               "--prompts", self.prompts, "--output", out],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        info = json.loads(proc.stdout)
        self.assertEqual(info["classes"], ["Neutral", "Happiness", "Sadness"])
        self.assertEqual(info["shape"], [3, 32])
        self.assertIn("row 1: Happiness (3 prompts)", proc.stderr)
        self.check_file(torch.load(out), self.want_raw, proc.stdout)


class PromptFileTest(unittest.TestCase):

    def test_format(self):
        self.assertEqual(export_clip_text.read_prompts(write_prompts("p.txt")),
                         [(n, p) for n, p in CLASSES])

    def test_errors(self):
        cases = {
            "Neutral a calm face\n": "p.txt:1: expected 'ClassName: prompt | prompt ...'",
            ": a calm face\n": "p.txt:1: expected",
            "# nothing\n\n": "no classes",
            "Anger: a | | b\n": "p.txt:1: empty prompt in class 'Anger'",
            "Anger:\n": "empty prompt",
        }
        for text, message in cases.items():
            with self.subTest(text=text):
                with self.assertRaises(SystemExit) as e:
                    export_clip_text.read_prompts(write_prompts("p.txt", text))
                self.assertIn(message, str(e.exception))

    def test_too_long(self):
        vocab = write_vocab("vocab.txt.gz")
        long = " ".join(["supercalifragilistic"] * 30)
        prompts = write_prompts("long.txt", f"Anger: an angry face | {long}\n")
        n = len(TOKENIZER.token_ids(long, 10 ** 6))
        argv = ["--vocab", vocab, "--prompts", prompts, "--config", "tiny",
                "--output", path("long.pt")]
        rc, _, stderr = run_main(argv)
        self.assertEqual(rc, 1)
        self.assertIn(f"class 'Anger': {n} tokens (with start and end), more than the context "
                      "length 77", stderr)
        rc, _, stderr = run_main(argv + ["--truncate"])
        self.assertEqual(rc, 0, stderr)

    def test_emoclip_prompts(self):
        classes = export_clip_text.read_prompts(PROMPTS)
        self.assertEqual([n for n, _ in classes], ["Neutral", "Anger", "Disgust", "Fear",
                                                   "Happiness", "Sadness", "Surprise", "Other"])
        for name, prompts in classes:
            self.assertGreaterEqual(len(prompts), 3, name)
        vocab = os.environ.get("ABAW_CLIP_VOCAB")
        tok = ct.Tokenizer.from_file(vocab) if vocab else TOKENIZER
        for name, prompts in classes:
            for p in prompts:  # 3000 merges give more tokens than the full 48894
                self.assertLessEqual(len(tok.token_ids(p)), 77, p)


# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------

def tokenizer_variants():
    """(name, Tokenizer, whether it has ftfy) for each path available here."""
    out = [("scanner + ftfy subset", ct.Tokenizer(MERGES, use_regex=False, use_ftfy=False), False)]
    if ct._regex is not None:
        out.append(("regex + ftfy subset", ct.Tokenizer(MERGES, use_regex=True, use_ftfy=False), False))
    if ct._ftfy is not None:
        out.append(("scanner + ftfy", ct.Tokenizer(MERGES, use_regex=False, use_ftfy=True), True))
        if ct._regex is not None:
            out.append(("regex + ftfy", ct.Tokenizer(MERGES, use_regex=True, use_ftfy=True), True))
    return out


class TokenizerGoldenTest(unittest.TestCase):
    """Against ids from OpenAI's simple_tokenizer.py / clip.tokenize (the fixture)."""

    def test_vocabulary(self):
        self.assertEqual(TOKENIZER.vocab_size, GOLDEN["vocab"]["size"])
        self.assertEqual(TOKENIZER.sot, GOLDEN["vocab"]["sot"])
        self.assertEqual(TOKENIZER.eot, GOLDEN["vocab"]["eot"])
        self.assertGreaterEqual(len(GOLDEN["encode"]), 300)

    def test_encode(self):
        for name, tok, has_ftfy in tokenizer_variants():
            checked = 0
            for case in GOLDEN["encode"]:
                if case["ftfy_mojibake"] and not has_ftfy:
                    continue
                with self.subTest(variant=name, text=case["text"]):
                    self.assertEqual(tok.encode(case["text"]), case["ids"])
                    self.assertEqual(tok.decode(case["ids"]), case["decoded"])
                checked += 1
            self.assertGreaterEqual(checked, 280, name)

    def test_tokenize(self):
        for name, tok, has_ftfy in tokenizer_variants():
            for case in GOLDEN["tokenize"]:
                if case["ftfy_mojibake"] and not has_ftfy:
                    continue
                with self.subTest(variant=name, text=case["text"][:60]):
                    got = tok.tokenize([case["text"]], case["context_length"], truncate=True)
                    self.assertEqual(got[0].tolist(), case["truncated"])
                    if case["too_long"]:
                        with self.assertRaises(ValueError):
                            tok.tokenize([case["text"]], case["context_length"])
                    else:
                        self.assertEqual(
                            tok.tokenize([case["text"]], case["context_length"])[0].tolist(),
                            case["truncated"])

    def test_full_vocabulary(self):
        vocab = os.environ.get("ABAW_CLIP_VOCAB")
        if not vocab:
            self.skipTest("set ABAW_CLIP_VOCAB to bpe_simple_vocab_16e6.txt.gz to run")
        merges = ct.read_merges(vocab)
        self.assertEqual(ct.merges_sha256(merges), ct.OPENAI_MERGES_SHA256)
        for name, _, has_ftfy in tokenizer_variants():
            tok = ct.Tokenizer(merges, use_regex="regex" in name, use_ftfy=has_ftfy)
            self.assertEqual((tok.vocab_size, tok.sot, tok.eot), (49408, 49406, 49407))
            for case in GOLDEN["full_vocab"]:
                if case["ftfy_mojibake"] and not has_ftfy:
                    continue
                with self.subTest(variant=name, text=case["text"]):
                    self.assertEqual(tok.encode(case["text"]), case["ids"])


class TokenizerPartsTest(unittest.TestCase):

    def test_scanner_matches_regex(self):
        if ct._regex is None:
            self.skipTest("the regex module is not installed (Debian: python3-regex)")
        pattern = ct._regex.compile(ct.CLIP_PATTERN, ct._regex.IGNORECASE)
        rng = random.Random(7)
        pool = (list("abcXYZ019'\"!?.,- _<|>") + ["<|endoftext|>", "<|startoftext|>", "'s",
                "'ll", "'RE", "\u017f", "\u0345", "\u00e9", "e\u0301", "\u00b2", "\u2167",
                "\u0663", "\U0001f600", "\u4e2d", "\u3000", "\u00a0", "\x1c", "\u200b",
                "\u0130", "\ufb01", "\U0001d400"])
        for _ in range(20000):
            s = "".join(rng.choice(pool) for _ in range(rng.randint(0, 10)))
            self.assertEqual(ct.split_words(s), pattern.findall(s), repr(s))

    def test_fix_text_subset_matches_ftfy(self):
        if ct._ftfy is None:
            self.skipTest("ftfy is not installed")
        rng = random.Random(8)
        pool = [chr(c) for c in list(range(0, 0x250)) + list(range(0x2000, 0x2070))
                + list(range(0xFF00, 0xFFF0)) + [0x3000, 0xFEFF, 0xFB01, 0x1F600, 0x301]]
        pool += ["&amp;", "&lt;", "&#233;", "&EACUTE;", "\r\n", "\x1b[1m"]
        for _ in range(5000):
            s = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
            self.assertEqual(ct.fix_text_subset(s),
                             ct._ftfy.fix_text(s, fix_encoding=False, fix_c1_controls=False), repr(s))

    def test_merges_file_forms(self):
        want = MERGES
        text = "\n".join(["#version: 0.2"] + [" ".join(p) for p in want])
        with open(path("plain.txt"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
        obj = json.dumps({"text": text + "\n"})
        with open(path("esm.js"), "w", encoding="utf-8") as f:
            f.write(f"let obj = {obj};\nexport default obj;\n")
        with open(path("script.js"), "w", encoding="utf-8") as f:
            f.write('"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });'
                    f"\nlet obj = {obj};\nexports.default = obj;\n")
        for name in (write_vocab("a.txt.gz"), write_vocab("b.txt.gz", trailing_newline=True),
                     path("plain.txt"), path("esm.js"), path("script.js")):
            with self.subTest(file=os.path.basename(name)):
                self.assertEqual(ct.read_merges(name), want)
        with open(path("bad.txt"), "w", encoding="utf-8") as f:
            f.write("#version\ni n\nt h e\n")
        with self.assertRaisesRegex(ValueError, "line 3 is not a merge"):
            ct.read_merges(path("bad.txt"))
        with open(path("bad.js"), "w", encoding="utf-8") as f:
            f.write("export default 1;\n")
        with self.assertRaisesRegex(ValueError, "no object literal"):
            ct.read_merges(path("bad.js"))
        rc, _, stderr = run_main(["--vocab", path("bad.txt"), "--prompts", write_prompts("p.txt"),
                                  "--config", "tiny", "--output", path("x.pt")])
        self.assertEqual(rc, 1)
        self.assertIn("error: --vocab:", stderr)


# ---------------------------------------------------------------------------------------
# Making the golden fixture (run once with the upstream code; not part of the tests)
# ---------------------------------------------------------------------------------------

def golden_inputs():
    """The strings of the fixture: hand-picked cases, then seeded random mixes."""
    base = [
        "", " ", "   \t\n  ", "a", "A", "hello world!", "Hello World!", "HELLO", "hello   world",
        "  leading and trailing  ", "tabs\tand\nnewlines\r\nhere", "a photo of a happy face",
        "a photo of a sad face.", "an angry, frowning face with lowered eyebrows",
        "it's", "It's", "IT'S", "I'm", "you're", "we've", "they'll", "he'd", "don't", "can't",
        "won't've", "o'clock", "rock 'n' roll", "'s", "''s", "'''", "the cat's toy's box",
        "0", "7", "42", "1234567890", "3.14159", "1,000,000", "2024-03-15", "v2.0.1", "50%",
        "$100", "#hashtag", "@user", "user@example.com", "https://example.com/a?b=c&d=e",
        "!!!", "?!?!", "...", "\u2026", "--", "\u2014 em dash \u2013 en dash", "(parentheses)",
        "[brackets]", "{braces}", "<angle>", "a<b>c", "a/b\\c", "semi;colon:colon", "~`^*_+=|",
        "caf\u00e9", "cafe\u0301", "na\u00efve r\u00e9sum\u00e9", "\u00c9COLE", "stra\u00dfe",
        "\u0130stanbul", "\u00c5ngstr\u00f6m", "se\u00f1or", "\u00e7a va", "\u017f", "Mu\u0345",
        "\u4e2d\u6587\u5b57", "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0", "\ud55c\uad6d\uc5b4",
        "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u044f\u0437\u044b\u043a",
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u05e2\u05d1\u05e8\u05d9\u05ea",
        "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e44\u0e17\u0e22", "\u03b5\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
        "\U0001f600", "\U0001f600\U0001f602\U0001f62d", "happy \U0001f60a face",
        "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1ec\U0001f1e7",
        "\u2764\ufe0f", "\u263a", ":-)", ":(", "<3", "\u00b2\u00b3", "\u00bd", "\u2167",
        "\u0663\u0664", "\uff11\uff12\uff13", "\uff28\uff45\uff4c\uff4c\uff4f", "\u3000full\u3000width\u3000",
        "\ufb01ne \ufb02ow", "\u201ccurly quotes\u201d", "\u2018single\u2019", "it\u2019s",
        "&amp;", "&amp;amp;", "&amp;amp;amp;", "&lt;b&gt;bold&lt;/b&gt;", "&quot;quoted&quot;",
        "&#39;apos&#39;", "&#x1F600;", "&eacute;t&eacute;", "&EACUTE;", "&nbsp;space", "&copy; 2024",
        "&notanentity;", "fish &amp chips", "<b>&amp;</b>", "a &lt; b", "AT&T",
        "\u00c3\u00a9t\u00c3\u00a9", "\u00e2\u0080\u0099", "Ã¢â‚¬Å“mojibakeÃ¢â‚¬\u009d", "\u00e2\u20ac\u2122",
        "l\u00e2\u20ac\u2122\u00c3\u00a9t\u00c3\u00a9", "\x85", "\x96dash",
        "\x1b[31mred\x1b[0m", "null\x00char", "bell\x07", "zero\u200bwidth", "soft\u00adhyphen",
        "bom\ufeffhere", "nbsp\u00a0here", "line\u2028sep", "para\u2029sep", "\u00a0\u00a0",
        "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "<|ENDOFTEXT|>",
        "<|startoftext|>hello<|endoftext|>", "<|endoftext", "x" * 100, "ab" * 60,
        "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
        "Pneumonoultramicroscopicsilicovolcanoconiosis", "a" * 300,
        " ".join(["word"] * 80), " ".join(str(i) for i in range(60)),
        "The quick brown fox jumps over the lazy dog. " * 8,
        "a face showing happiness, laughing or grinning, with narrowed, smiling eyes",
        "a surprised face with highly raised, curved eyebrows, wide open eyes and a dropped jaw",
        "\U0001f600" * 40, "\u4e2d" * 80, "!?" * 50,
    ]
    rng = random.Random(20240315)
    words = ["face", "happy", "sad", "angry", "fear", "disgust", "surprise", "neutral",
             "photo", "person", "eyebrows", "mouth", "smile", "frown", "cheeks", "eyes",
             "the", "a", "of", "with", "and", "expression", "emotion", "looking", "very"]
    pieces = (words + [w.upper() for w in words[:6]] + [w.capitalize() for w in words[:6]]
              + list("0123456789") + list(".,!?;:'\"-()/&#@%")
              + ["'s", "'t", "'re", "'ll", " ", "  ", "\t", "\n", "caf\u00e9", "\u00fcber",
                 "\U0001f600", "\U0001f622", "\u4e2d", "\u00e9", "e\u0301", "&amp;", "&lt;",
                 "&#233;", "\u2019", "\u201c", "\u201d", "\uff21", "\ufb01", "\u2167", "\u00b2",
                 "<|endoftext|>", "\u00c3\u00a9", "\u00e2\u20ac\u2122"])
    out = list(base)
    while len(out) < 320:
        n = rng.randint(1, 14)
        sep = rng.choice([" ", "", " ", " "])
        out.append(sep.join(rng.choice(pieces) for _ in range(n)))
    seen, unique = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def make_golden(clip_dir, ftfy_dir, vocab_path, output, n_merges=3000):
    """Writes the fixture from upstream's code (imported from clip_dir / ftfy_dir)."""
    import hashlib
    import re
    import subprocess as sp
    import types
    sys.path[:0] = [ftfy_dir, clip_dir]
    import ftfy
    import regex
    # clip/clip.py imports torchvision, PIL, tqdm and packaging for loading models and
    # images; tokenize() uses none of them (packaging only to pick int32 over int64).
    class Stub:
        def __getattr__(self, name):
            return self

        def __call__(self, *args, **kwargs):
            return self

    for name in ("PIL", "PIL.Image", "torchvision", "torchvision.transforms", "tqdm"):
        stub = types.ModuleType(name)
        for attr in ("Image", "Compose", "Resize", "CenterCrop", "ToTensor", "Normalize",
                     "tqdm", "InterpolationMode"):
            setattr(stub, attr, Stub())
        sys.modules.setdefault(name, stub)
    packaging = types.ModuleType("packaging")
    packaging.version = types.ModuleType("packaging.version")
    packaging.version.parse = lambda s: tuple(int(x) for x in re.findall(r"\d+", s)[:3])
    sys.modules.setdefault("packaging", packaging)
    sys.modules.setdefault("packaging.version", packaging.version)
    from clip import clip as upstream_clip
    from clip.simple_tokenizer import SimpleTokenizer

    def commit(d):
        try:
            return sp.run(["git", "-C", d, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or None
        except OSError:
            return None

    with gzip.open(vocab_path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1:n_merges + 1]
    small = os.path.join(tempfile.mkdtemp(), "small.txt.gz")
    with gzip.open(small, "wb") as f:
        f.write("\n".join([lines[0]] + merges).encode("utf-8"))  # no final newline
    up_small = SimpleTokenizer(bpe_path=small)
    up_full = SimpleTokenizer(bpe_path=vocab_path)

    def mojibake(s):
        return ftfy.fix_text(s) != ftfy.fix_text(s, fix_encoding=False, fix_c1_controls=False)

    def tokenize(tok, s, ctx):
        upstream_clip._tokenizer = tok
        try:
            upstream_clip.tokenize([s], ctx)
            too_long = False
        except RuntimeError:
            too_long = True
        return upstream_clip.tokenize([s], ctx, truncate=True)[0].tolist(), too_long

    inputs = golden_inputs()
    encode = []
    for s in inputs:
        ids = up_small.encode(s)
        encode.append({"text": s, "ids": ids, "decoded": up_small.decode(ids),
                       "ftfy_mojibake": mojibake(s)})
    long_inputs = [s for s in inputs if len(up_small.encode(s)) > 60] + inputs[:20]
    tok_cases = []
    for s in long_inputs:
        for ctx in (77, 16):
            ids, too_long = tokenize(up_small, s, ctx)
            tok_cases.append({"text": s, "context_length": ctx, "truncated": ids,
                              "too_long": too_long, "ftfy_mojibake": mojibake(s)})
    full = [{"text": s, "ids": up_full.encode(s), "ftfy_mojibake": mojibake(s)}
            for s in inputs[:150]]
    with open(vocab_path, "rb") as f:
        file_sha = hashlib.sha256(f.read()).hexdigest()
    fixture = {
        "generated_by": ("tests/e2e/test_clip_text.py --make-golden: OpenAI's "
                         "clip/simple_tokenizer.py SimpleTokenizer(bpe_path=...).encode/.decode "
                         "and clip/clip.py tokenize(), on Python " + sys.version.split()[0]),
        "openai_clip_commit": commit(clip_dir),
        "ftfy": f"{ftfy.__version__} (rspeer/python-ftfy {commit(ftfy_dir)})",
        "regex": regex.__version__,
        "vocab": {
            "source": (f"the first {n_merges} merges (lines 1..{n_merges}) of "
                       f"bpe_simple_vocab_16e6.txt.gz, sha256 {file_sha}; written without a "
                       "final newline for upstream's SimpleTokenizer(bpe_path=...)"),
            "header": lines[0], "size": len(up_small.encoder),
            "sot": up_small.encoder["<|startoftext|>"], "eot": up_small.encoder["<|endoftext|>"],
            "merges": merges,
        },
        "encode": encode,
        "tokenize": tok_cases,
        "full_vocab": full,
    }
    def dumps(value, indent=""):  # one list element per line
        if isinstance(value, dict):
            items = [f'{indent}  {json.dumps(k)}: {dumps(v, indent + "  ")}' for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + indent + "}"
        if isinstance(value, list) and value and isinstance(value[0], (dict, str)):
            items = [indent + "  " + json.dumps(v, ensure_ascii=True) for v in value]
            return "[\n" + ",\n".join(items) + "\n" + indent + "]"
        return json.dumps(value, ensure_ascii=True)

    tmp = output + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(dumps(fixture) + "\n")
    os.replace(tmp, output)
    print(f"wrote {output}: {len(encode)} encode cases, {len(tok_cases)} tokenize cases, "
          f"{len(full)} full-vocabulary cases, "
          f"{sum(c['ftfy_mojibake'] for c in encode)} depending on ftfy's mojibake repair")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--make-golden":
        make_golden(*sys.argv[2:6])
    else:
        unittest.main()
