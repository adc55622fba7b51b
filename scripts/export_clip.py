#!/usr/bin/python3
"""Export a CLIP visual encoder as TorchScript for abaw-infer.

The exported module's forward takes float32 [N, 3, S, S] images, normalised as CLIP does
(see abaw_models.clip_preprocess), and returns float32 [N, D]: the CLIP image embedding,
or with --no-projection the features before the projection.

Weights: an OpenAI CLIP archive (TorchScript, e.g. ViT-B-16.pt) or a state dict
(.pt/.pth/.bin, e.g. open_clip's; bare or nested under state_dict / model /
model_state_dict / module in any order), whose `visual.*` entries are used; EMA weights
(ema / model_ema / state_dict_ema) only with --use-ema. Without --weights the encoder is
randomly initialised from --seed (for tests).
"""

import argparse
import sys
from typing import Optional

import torch

import abaw_models as m


def clip_state_dict(path: str, key_prefix: Optional[str], use_ema: bool = False):
    """The visual-encoder entries of a checkpoint, with bare keys (`conv1.weight`, ...)."""
    sd = m.read_checkpoint(path, use_ema)
    if key_prefix is not None:
        visual, ignored = m.strip_prefix(sd, key_prefix)
    elif any("visual." in k for k in sd):
        # Everything up to and including the first `visual.`: `visual.`, `module.visual.`,
        # `module.model.visual.`, ...; keys without it (the text tower) are not ours.
        visual = {}
        for k, v in sd.items():
            if "visual." in k:
                bare = k.split("visual.", 1)[1]
                if bare in visual:
                    raise SystemExit(f"error: {path}: more than one entry for visual.{bare}")
                visual[bare] = v
        ignored = len(sd) - len(visual)
    else:
        visual, ignored = sd, 0
        # Bare keys saved through DataParallel / DeepSpeed: `module.conv1.weight`.
        while visual and all(k.startswith("module.") for k in visual):
            visual = {k[len("module."):]: v for k, v in visual.items()}
    m.log(f"weights: {path}: {len(visual)} visual entries used, {ignored} other entries ignored")
    return visual


def export_clip(config: str, output: str, weights: Optional[str] = None, seed: int = 0,
                project: bool = True, key_prefix: Optional[str] = None,
                activation: str = "quick_gelu", use_ema: bool = False) -> int:
    """Writes the TorchScript encoder to `output`; returns its feature dim."""
    torch.manual_seed(seed)
    model = m.build_clip(config, project=project, activation=activation)
    if weights is not None:
        m.load_strict(model, clip_state_dict(weights, key_prefix, use_ema), weights)
    model.eval()
    image_size = m.CLIP_CONFIGS[config][0]
    if weights is None:
        source = f"random init (seed {seed})"
    else:
        source = f"weights from {weights}" + (" (EMA)" if use_ema else "")
    m.log(f"CLIP {config}: image {image_size}, activation {activation}, "
          f"{'projected embedding' if project else 'pre-projection features'}, "
          f"feature dim {model.feature_dim}, {m.count_parameters(model):,} parameters, {source}")

    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref, out = model(x), scripted(x)
    if out.shape != (2, model.feature_dim):
        raise SystemExit(f"error: scripted encoder returned {tuple(out.shape)}")
    diff = m.max_abs_diff(ref, out)
    m.log(f"scripted vs eager on [2, 3, {image_size}, {image_size}]: max abs diff {diff:.3g}")
    if diff > 1e-4:
        raise SystemExit("error: the scripted encoder does not match the eager one")
    torch.jit.save(scripted, output)
    m.log(f"wrote {output}")
    return model.feature_dim


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, choices=list(m.CLIP_CONFIGS))
    p.add_argument("--weights", help="OpenAI CLIP TorchScript archive or a state dict "
                   "(.pt/.pth/.bin; bare or nested under state_dict, model, "
                   "model_state_dict, module, in any order)")
    p.add_argument("--use-ema", action="store_true",
                   help="export the EMA weights of a checkpoint holding them (under ema, "
                   "model_ema or state_dict_ema); without it the raw weights are used")
    p.add_argument("--key-prefix", help="take the keys starting with this prefix, stripped "
                   "(default: strip everything up to and including 'visual.')")
    p.add_argument("--activation", choices=list(m.CLIP_ACTIVATIONS), default="quick_gelu",
                   help="MLP activation: quick_gelu for OpenAI weights (default); gelu for "
                   "open_clip models trained from scratch (e.g. laion2b), whose open_clip "
                   "config name does not end in -quickgelu")
    p.add_argument("--no-projection", action="store_true",
                   help="export the features before the final projection")
    p.add_argument("--seed", type=int, default=0, help="random init seed (no --weights)")
    p.add_argument("--output", required=True, help="TorchScript file to write")
    args = p.parse_args(argv)
    if args.key_prefix is not None and args.weights is None:
        p.error("--key-prefix needs --weights")
    if args.use_ema and args.weights is None:
        p.error("--use-ema needs --weights")
    export_clip(args.config, args.output, args.weights, args.seed, not args.no_projection,
                args.key_prefix, args.activation, args.use_ema)


if __name__ == "__main__":
    m.fix_hash_seed()
    main(sys.argv[1:])
