#!/usr/bin/python3
"""Tests of the model-export scripts: checkpoint layouts, EMA weights, head architecture options.

Checkpoints are generated with fixed seeds in a scratch folder in the layouts teams save (bare,
under state_dict / model / model_state_dict / module, nested, EMA weights beside raw ones,
DataParallel `module.` prefixes), exported with scripts/export_temporal_head.py,
scripts/export_clip.py and scripts/make_model_set.py (tiny configs), and the TorchScript files
are checked against eager models holding the weights that should have been chosen.

Most exports call the scripts' main() in this process (fast); a few run them as commands.
Run with Debian's Python (it needs torch): /usr/bin/python3 tests/e2e/test_scripts.py [-v]
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import abaw_models as m  # noqa: E402
import export_clip  # noqa: E402
import export_temporal_head  # noqa: E402
import make_model_set  # noqa: E402

WORK = None  # one scratch folder for the whole module
HEAD_D, HEAD_K = 32, 2  # the tiny head config's feature width; K of the va task


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="abaw-scripts-")


def tearDownModule():
    if WORK and not os.environ.get("ABAW_KEEP_TEST_FILES"):
        shutil.rmtree(WORK, ignore_errors=True)


def path(name):
    return os.path.join(WORK, name)


def save(obj, name):
    torch.save(obj, path(name))
    return path(name)


def run_main(module, argv):
    """Runs module.main(argv) here; returns (exit code, stderr text). A SystemExit message
    (the scripts' errors) is appended to the text, as Python would print it."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            module.main(argv)
        except SystemExit as e:
            if isinstance(e.code, str):
                err.write(e.code + "\n")
                code = 1
            else:
                code = e.code or 0
    return code, err.getvalue()


def prefixed(sd, prefix):
    return {prefix + k: v for k, v in sd.items()}


# ---------------------------------------------------------------------------------------
# Weights and references
# ---------------------------------------------------------------------------------------

def head_weights(seed):
    """A tiny head's state dict (with weight norm, as the original checkpoints), drawn
    like the scripts' random test heads so that outputs depend on every weight."""
    torch.manual_seed(seed)
    model = m.build_head("tiny", HEAD_K)
    export_temporal_head.randomise_for_tests(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def head_reference(sd, x, **arch):
    model = m.build_head("tiny", HEAD_K, **arch)
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        return model(x)


def clip_weights(seed):
    torch.manual_seed(seed)
    return {k: v.detach().clone() for k, v in m.build_clip("tiny").state_dict().items()}


def clip_reference(sd, x):
    model = m.build_clip("tiny")
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        return model(x)


def run_torchscript(file, x):
    with torch.no_grad():
        return torch.jit.load(file, map_location="cpu").eval()(x)


RAW = head_weights(101)
EMA = head_weights(202)
HEAD_X = torch.randn(1, 9, HEAD_D, generator=torch.Generator().manual_seed(5))
CLIP_RAW = clip_weights(303)
CLIP_EMA = clip_weights(404)
CLIP_X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
TEXT_TOWER = {"token_embedding.weight": torch.zeros(10, 8), "ln_final.weight": torch.ones(8),
              "logit_scale": torch.tensor(4.6)}
OPTIMIZER = {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]}

# name -> checkpoint object holding RAW only (keys possibly prefixed)
RAW_LAYOUTS = {
    "bare": RAW,
    "state_dict": {"state_dict": RAW, "epoch": 3, "optimizer": OPTIMIZER},
    "model": {"model": RAW, "args": {"lr": 0.001}},
    "model_state_dict": {"model_state_dict": RAW, "optimizer_state_dict": OPTIMIZER},
    "module (DeepSpeed)": {"module": RAW, "buffer_names": [], "global_steps": 10},
    "model > state_dict": {"model": {"state_dict": RAW, "config": "tiny"}},
    "state_dict > model": {"state_dict": {"model": RAW}},
    "module > model_state_dict > state_dict": {"module": {"model_state_dict": {"state_dict": RAW}}},
    "module. prefix (DataParallel)": prefixed(RAW, "module."),
    "state_dict, module. prefix": {"state_dict": prefixed(RAW, "module.")},
    "state_dict, model. prefix (Lightning)": {"state_dict": prefixed(RAW, "model."), "epoch": 1},
    "same tensors twice": {"model": RAW, "state_dict": {k: v.clone() for k, v in RAW.items()}},
}

# name -> checkpoint object holding RAW and EMA
EMA_LAYOUTS = {
    "state_dict + state_dict_ema (timm)": {"state_dict": RAW, "state_dict_ema": EMA},
    "model + ema": {"model": RAW, "ema": EMA},
    "model + model_ema": {"model": RAW, "model_ema": EMA, "epoch": 7},
    "model > {state_dict, ema}": {"model": {"state_dict": RAW, "ema": EMA}},
    "state_dict + model_ema > state_dict": {"state_dict": RAW, "model_ema": {"state_dict": EMA}},
    "module. prefixes + ema > module": {"model": prefixed(RAW, "module."),
                                        "ema": {"module": prefixed(EMA, "module.")}},
    "AveragedModel (n_averaged)": {"model": RAW,
                                   "ema": {"n_averaged": torch.tensor(12), **prefixed(EMA, "module.")}},
}


class Scripts(unittest.TestCase):
    def export_head(self, checkpoint, name, *extra):
        out = path(name + ".pt")
        code, err = run_main(export_temporal_head, [
            "--config", "tiny", "--task", "va", "--weights", checkpoint, "--output", out, *extra])
        return code, err, out

    def assert_matches(self, got, want, other, what):
        self.assertTrue(torch.allclose(got, want, atol=1e-5, rtol=0),
                        f"{what}: max abs diff {(got - want).abs().max().item():.3g}")
        self.assertFalse(torch.allclose(got, other, atol=1e-3, rtol=0),
                         f"{what}: the output also matches the other weights")

    # --- checkpoint layouts ----------------------------------------------------------------

    def test_head_layouts(self):
        raw_ref, ema_ref = head_reference(RAW, HEAD_X), head_reference(EMA, HEAD_X)
        self.assertFalse(torch.allclose(raw_ref, ema_ref, atol=1e-3))
        for i, (name, obj) in enumerate(RAW_LAYOUTS.items()):
            with self.subTest(layout=name):
                code, err, out = self.export_head(save(obj, f"raw{i}.pth"), f"head_raw{i}")
                self.assertEqual(code, 0, err)
                self.assertNotIn("EMA", err)
                self.assert_matches(run_torchscript(out, HEAD_X), raw_ref, ema_ref, name)

    def test_head_ema_beside_raw(self):
        raw_ref, ema_ref = head_reference(RAW, HEAD_X), head_reference(EMA, HEAD_X)
        for i, (name, obj) in enumerate(EMA_LAYOUTS.items()):
            with self.subTest(layout=name):
                ckpt = save(obj, f"ema{i}.pth")
                code, err, out = self.export_head(ckpt, f"head_ema{i}_raw")
                self.assertEqual(code, 0, err)
                self.assertIn("note:", err)
                self.assertIn("also holds EMA weights", err)
                self.assertIn("--use-ema", err)
                self.assert_matches(run_torchscript(out, HEAD_X), raw_ref, ema_ref, name + ", raw")
                code, err, out = self.export_head(ckpt, f"head_ema{i}_ema", "--use-ema")
                self.assertEqual(code, 0, err)
                self.assertNotIn("note:", err)
                self.assert_matches(run_torchscript(out, HEAD_X), ema_ref, raw_ref, name + ", EMA")

    def test_use_ema_without_ema_weights(self):
        code, err, _ = self.export_head(save({"model": RAW}, "no_ema.pth"), "x", "--use-ema")
        self.assertEqual(code, 1)
        self.assertIn("--use-ema, but the checkpoint holds no EMA weights", err)
        self.assertIn("top-level keys: ['model']", err)

    def test_only_ema_weights_need_the_flag(self):
        ckpt = save({"model_ema": {"state_dict": EMA}}, "only_ema.pth")
        code, err, _ = self.export_head(ckpt, "x")
        self.assertEqual(code, 1)
        self.assertIn("only EMA weights", err)
        self.assertIn("pass --use-ema", err)
        code, err, out = self.export_head(ckpt, "head_only_ema", "--use-ema")
        self.assertEqual(code, 0, err)
        self.assert_matches(run_torchscript(out, HEAD_X), head_reference(EMA, HEAD_X),
                            head_reference(RAW, HEAD_X), "only EMA")

    def test_ambiguous_checkpoints_are_rejected(self):
        cases = {
            "model vs state_dict": ({"model": RAW, "state_dict": EMA, "epoch": 2}, (),
                                    ["'model'", "'state_dict'", "'epoch'"]),
            "nested": ({"model": {"state_dict": RAW}, "module": EMA}, (),
                       ["'model' > 'state_dict'", "'module'"]),
            "two EMA dicts": ({"model": RAW, "ema": EMA, "model_ema": RAW}, ("--use-ema",),
                              ["'ema'", "'model_ema'"]),
        }
        for i, (name, (obj, extra, keys)) in enumerate(cases.items()):
            with self.subTest(case=name):
                code, err, out = self.export_head(save(obj, f"amb{i}.pth"), f"amb{i}", *extra)
                self.assertEqual(code, 1, err)
                self.assertIn("ambiguous checkpoint", err)
                self.assertIn("top-level keys:", err)
                self.assertIn("wrapper keys state_dict, model, model_state_dict, module", err)
                self.assertIn("EMA keys ema, model_ema, state_dict_ema", err)
                for key in keys:
                    self.assertIn(key, err)
                self.assertFalse(os.path.exists(out))

    def test_not_state_dicts_are_rejected(self):
        cases = {
            "unknown wrapper": ({"net": RAW, "epoch": 3, "optimizer": OPTIMIZER},
                                ["top-level keys: ['net', 'epoch', 'optimizer']"]),
            "mixed values": ({"model": {"weights": RAW["head.0.weight"], "config": "tiny"}},
                             ["top-level keys: ['model']", "under 'model': keys ['weights', 'config']"]),
            "a list": ([RAW], ["the file holds a list, not a dict"]),
        }
        for i, (name, (obj, texts)) in enumerate(cases.items()):
            with self.subTest(case=name):
                code, err, _ = self.export_head(save(obj, f"bad{i}.pth"), f"bad{i}")
                self.assertEqual(code, 1, err)
                self.assertIn("not a state dict of tensors", err)
                self.assertIn("wrapper keys state_dict, model, model_state_dict, module", err)
                for text in texts:
                    self.assertIn(text, err)
        with open(path("garbage.pth"), "wb") as f:
            f.write(b"not a checkpoint at all\n" * 10)
        code, err, _ = self.export_head(path("garbage.pth"), "garbage")
        self.assertEqual(code, 1)
        self.assertIn("not a torch.save file or TorchScript archive", err)

    def test_head_keys_without_the_first_block(self):
        ckpt = save({"state_dict": {"backbone.weight": torch.zeros(3)}}, "other_model.pth")
        code, err, _ = self.export_head(ckpt, "x")
        self.assertEqual(code, 1)
        self.assertIn("no key contains 'temporal.network.0.'", err)
        self.assertIn("--key-prefix", err)

    def test_clip_layouts(self):
        raw_ref, ema_ref = clip_reference(CLIP_RAW, CLIP_X), clip_reference(CLIP_EMA, CLIP_X)
        visual = prefixed(CLIP_RAW, "visual.")
        layouts = {
            "bare keys": (CLIP_RAW, (), raw_ref, ema_ref),
            "bare keys, module. prefix": (prefixed(CLIP_RAW, "module."), (), raw_ref, ema_ref),
            "open_clip under state_dict, module.": (
                {"state_dict": prefixed({**visual, **TEXT_TOWER}, "module."), "epoch": 5}, (),
                raw_ref, ema_ref),
            "model > state_dict, module.model.visual.": (
                {"model": {"state_dict": prefixed({**visual, **TEXT_TOWER}, "module.model.")}}, (),
                raw_ref, ema_ref),
            "EMA beside raw": ({"state_dict": visual, "state_dict_ema": prefixed(CLIP_EMA, "visual.")},
                               (), raw_ref, ema_ref),
            "EMA beside raw, --use-ema": (
                {"state_dict": visual, "state_dict_ema": prefixed(CLIP_EMA, "visual.")},
                ("--use-ema",), ema_ref, raw_ref),
        }
        for i, (name, (obj, extra, want, other)) in enumerate(layouts.items()):
            with self.subTest(layout=name):
                out = path(f"clip{i}.pt")
                code, err = run_main(export_clip, ["--config", "tiny", "--weights",
                                                   save(obj, f"clip{i}.pth"), "--output", out, *extra])
                self.assertEqual(code, 0, err)
                self.assertEqual("--use-ema" in err, name == "EMA beside raw", err)
                self.assert_matches(run_torchscript(out, CLIP_X), want, other, name)

    def test_make_model_set_use_ema(self):
        ckpt = save({"model": prefixed(CLIP_RAW, "visual."), "model_ema": prefixed(CLIP_EMA, "visual.")},
                    "clip_ema_set.pth")
        out = path("set_ema")
        code, err = run_main(make_model_set, ["--output", out, "--clip-config", "tiny", "--clip-weights",
                                              ckpt, "--use-ema", "--head", "va=" + self.plain_head()])
        self.assertEqual(code, 0, err)
        self.assert_matches(run_torchscript(os.path.join(out, "encoder.pt"), CLIP_X),
                            clip_reference(CLIP_EMA, CLIP_X), clip_reference(CLIP_RAW, CLIP_X), "set")
        with open(os.path.join(out, "manifest.json")) as f:
            self.assertIn("(weights clip_ema_set.pth, EMA)", json.load(f)["description"])
        code, err = run_main(make_model_set, ["--output", path("set_x"), "--tiny", "--use-ema"])
        self.assertEqual(code, 2)
        self.assertIn("--use-ema goes with --clip-weights", err)

    # --- head architecture numbers ----------------------------------------------------------

    def plain_head(self):
        out = path("head_plain.pt")
        if not os.path.exists(out):
            code, err, _ = self.export_head(save(RAW, "plain.pth"), "head_plain")
            self.assertEqual(code, 0, err)
        return out

    def test_attention_heads_option(self):
        ckpt = save({"model": RAW}, "nhead.pth")
        outputs, descriptions = {}, {}
        for nhead in (4, 8):
            code, err, out = self.export_head(ckpt, f"head_nhead{nhead}", "--nhead", str(nhead))
            self.assertEqual(code, 0, err)
            self.assertIn(f"attention heads {nhead},", err)
            self.assertIn(f"--nhead {nhead}, --dilation-base 2, --layer-norm-eps 1e-05, "
                          "--batch-norm-eps 1e-05", err)
            outputs[nhead] = run_torchscript(out, HEAD_X)
            self.assertTrue(torch.allclose(outputs[nhead], head_reference(RAW, HEAD_X, nhead=nhead),
                                           atol=1e-5, rtol=0))
            set_dir = path(f"set_nhead{nhead}")
            code, err = run_main(make_model_set, ["--output", set_dir, "--clip-config", "tiny",
                                                  "--head", "va=" + out])
            self.assertEqual(code, 0, err)
            with open(os.path.join(set_dir, "manifest.json")) as f:
                descriptions[nhead] = json.load(f)["description"]
            self.assertIn(f"attention heads {nhead},", descriptions[nhead])
        self.assertFalse(torch.allclose(outputs[4], outputs[8], atol=1e-3))
        self.assertNotEqual(descriptions[4], descriptions[8])

    def test_other_architecture_options(self):
        code, err, out = self.export_head(save(RAW, "arch.pth"), "head_arch", "--dilation-base", "3",
                                          "--layer-norm-eps", "1e-6", "--batch-norm-eps", "0.001")
        self.assertEqual(code, 0, err)
        self.assertIn("dilations 1/3/9,", err)
        self.assertIn("LayerNorm eps 1e-06, BatchNorm eps 0.001", err)
        self.assertTrue(torch.allclose(
            run_torchscript(out, HEAD_X),
            head_reference(RAW, HEAD_X, dilation_base=3, layer_norm_eps=1e-6, batch_norm_eps=1e-3),
            atol=1e-5, rtol=0))
        self.assertEqual(m.head_architecture(torch.jit.load(out))["dilations"], [1, 3, 9])
        code, err, _ = self.export_head(save(RAW, "arch.pth"), "x", "--nhead", "3")
        self.assertEqual(code, 1)
        self.assertIn("the number of attention heads (3) must divide d_model (16)", err)

    def test_make_model_set_records_architecture(self):
        out = path("set_arch")
        code, err = run_main(make_model_set, ["--output", out, "--clip-config", "tiny", "--head-config",
                                              "tiny", "--tasks", "expr", "--nhead", "4"])
        self.assertEqual(code, 0, err)
        with open(os.path.join(out, "manifest.json")) as f:
            description = json.load(f)["description"]
        self.assertIn("config tiny (random init; TCN channels 16/16/8, kernel 3, dilations 1/2/4, "
                      "d_model 16, attention heads 4, feed-forward 16, encoder layers 2, hidden 8, "
                      "LayerNorm eps 1e-05, BatchNorm eps 1e-05)", description)
        code, err = run_main(make_model_set, ["--output", path("set_y"), "--clip-config", "tiny",
                                              "--head", "va=" + self.plain_head(), "--nhead", "4"])
        self.assertEqual(code, 2)
        self.assertIn("--nhead: with --head-config", err)

    def test_trained_on(self):
        for text, warned in (("MAE ViT-B features", True), ("clip TINY image embeddings", False)):
            with self.subTest(trained_on=text):
                out = path("set_trained_on")
                code, err = run_main(make_model_set, ["--output", out, "--clip-config", "tiny",
                                                      "--head", "va=" + self.plain_head(),
                                                      "--trained-on", text])
                self.assertEqual(code, 0, err)
                self.assertEqual("warning: the heads were trained on" in err, warned, err)
                if warned:
                    self.assertIn("'CLIP tiny'", err)
                with open(os.path.join(out, "manifest.json")) as f:
                    self.assertTrue(json.load(f)["description"].endswith("; heads trained on: " + text))

    def test_make_model_set_per_frame_and_zero_shot_heads(self):
        """--columns (an HSEmotion-style per-frame model) and --text-embeddings (zero-shot expr)."""

        class PerFrame(torch.nn.Module):  # 8 expression logits in HSEmotion's order, then V, A
            def forward(self, x):
                return x.mean(dim=(2, 3)).repeat(1, 4)[:, :10]

        encoder = path("per_frame.pt")
        torch.jit.script(PerFrame()).save(encoder)
        hsemotion_order = "5,0,2,3,4,6,7,-"  # Anger Contempt Disgust Fear Happiness Neutral Sadness Surprise
        out = path("set_columns")
        code, err = run_main(make_model_set, ["--output", out, "--encoder", encoder, "--preprocess", "tiny",
                                              "--columns", "expr=0:8", "--columns", "va=8:10",
                                              "--class-map", hsemotion_order, "--mean-filter", "va=5"])
        self.assertEqual(code, 0, err)
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(sorted(os.listdir(out)), ["encoder.pt", "manifest.json"])
        self.assertEqual(manifest["tasks"]["expr"]["head"], {"columns": [0, 8]})
        self.assertEqual(manifest["tasks"]["expr"]["class_map"], [5, 0, 2, 3, 4, 6, 7, None])
        self.assertEqual(manifest["tasks"]["va"], {"head": {"columns": [8, 10]}, "activation": "none",
                                                   "mean_filter": 5})
        self.assertIn("va: encoder columns 8..9", manifest["description"])
        for argv, message in ((["--columns", "va=8:11"], "ends past the encoder's 10 outputs"),
                              (["--columns", "va=0:3"], "selects 3 columns; the task needs 2"),
                              (["--columns", "va=3"], "expected FIRST:END")):
            code, err = run_main(make_model_set, ["--output", path("set_bad"), "--encoder", encoder,
                                                  "--preprocess", "tiny", *argv])
            self.assertNotEqual(code, 0, argv)
            self.assertIn(message, err)

        rows = save(torch.randn(7, 32, generator=torch.Generator().manual_seed(3)), "text_rows.pt")
        out = path("set_text")
        code, err = run_main(make_model_set, ["--output", out, "--clip-config", "tiny", "--text-embeddings", rows,
                                              "--logit-scale", "50", "--class-map", "0,1,2,3,4,5,6,-"])
        self.assertEqual(code, 0, err)
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["tasks"]["expr"]["head"], {"text_embeddings": "expr_text.pt", "logit_scale": 50.0})
        self.assertTrue(torch.equal(torch.load(os.path.join(out, "expr_text.pt")), torch.load(rows)))
        code, err = run_main(make_model_set, ["--output", path("set_bad"), "--clip-config", "tiny",
                                              "--text-embeddings", rows])
        self.assertEqual(code, 1)
        self.assertIn("holds (7, 32), expected (8, 32)", err)
        code, err = run_main(make_model_set, ["--output", path("set_bad"), "--clip-config", "tiny",
                                              "--text-embeddings", rows, "--head", "expr=" + self.plain_head()])
        self.assertEqual(code, 2)
        self.assertIn("the expr task is given twice (--head and --text-embeddings)", err)

    # --- the scripts as commands ----------------------------------------------------------------

    def test_commands(self):
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        script = os.path.join(ROOT, "scripts", "export_temporal_head.py")
        ckpt = save(EMA_LAYOUTS["model + ema"], "cmd_ema.pth")
        result = subprocess.run([PYTHON, script, "--config", "tiny", "--task", "va", "--weights", ckpt,
                                 "--output", path("cmd_head.pt")], capture_output=True, text=True, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("also holds EMA weights", result.stderr)
        self.assertIn("--use-ema selects the EMA ones", result.stderr)
        ckpt = save({"model": RAW, "state_dict": EMA}, "cmd_amb.pth")
        result = subprocess.run([PYTHON, script, "--config", "tiny", "--task", "va", "--weights", ckpt,
                                 "--output", path("cmd_amb.pt")], capture_output=True, text=True, env=env)
        self.assertEqual(result.returncode, 1)
        self.assertIn("ambiguous checkpoint", result.stderr)
        self.assertIn("top-level keys: ['model', 'state_dict']", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    unittest.main()
