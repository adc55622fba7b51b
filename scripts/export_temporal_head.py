#!/usr/bin/python3
"""Export the ABAW6 TCN + Transformer temporal head as TorchScript for abaw-infer.

The exported module's forward takes float32 [B, T, D] frame features (any T >= 1) and
returns float32 [B, T, K] raw scores: VA values (K=2), EXPR logits (K=8) or AU logits
(K=12). Weights: a state dict of the original upczww/abaw6 `Model` (keys `temporal.*`,
`encoder.*`, `head.*`, possibly prefixed, e.g. `module.`; bare or nested under state_dict /
model / model_state_dict / module in any order; EMA weights under ema / model_ema /
state_dict_ema only with --use-ema); without --weights the head is randomly initialised
from --seed (for tests).

The layer shapes come from --config and strict loading checks them against the
checkpoint; the numbers a checkpoint cannot show (attention heads, dilation base, the
LayerNorm / BatchNorm eps) are options defaulting to the config's values. Every
architecture number used is printed to stderr.
"""

import argparse
import sys
import warnings
from typing import Optional

import torch

import abaw_models as m

# Emitted by torch 1.13 itself when scripting nn.TransformerEncoderLayer; harmless.
warnings.filterwarnings("ignore", message="'batch_first' was found in ScriptModule constants")


# Options for the numbers a checkpoint cannot show: (HEAD_CONFIGS key, option, type, help).
ARCHITECTURE_OPTIONS = [
    ("nhead", "--nhead", int, "attention heads of the Transformer encoder layers; must "
     "divide d_model (default: the config's, abaw6 4, tiny 2)"),
    ("dilation_base", "--dilation-base", int, "TCN block i has dilation N**i (default 2)"),
    ("layer_norm_eps", "--layer-norm-eps", float, "eps of the encoder layers' LayerNorms "
     "(default 1e-5)"),
    ("batch_norm_eps", "--batch-norm-eps", float, "eps of the output MLP's BatchNorm1d "
     "(default 1e-5)"),
]


def add_architecture_options(parser) -> None:
    for key, option, kind, text in ARCHITECTURE_OPTIONS:
        parser.add_argument(option, dest=key, type=kind, metavar="N" if kind is int else "X",
                            help=text)


def architecture_overrides(args) -> dict:
    """The architecture options given (None: the config's value)."""
    return {key: getattr(args, key) for key, _, _, _ in ARCHITECTURE_OPTIONS}


def head_state_dict(path: str, key_prefix: Optional[str], use_ema: bool = False):
    sd = m.read_checkpoint(path, use_ema)
    if key_prefix is None:
        # The prefix in front of the original's first key (`module.` after DataParallel).
        anchors = [k for k in sd if "temporal.network.0." in k]
        if not anchors:
            raise SystemExit(
                f"error: {path}: no key contains 'temporal.network.0.' (the first TCN block "
                f"of the ABAW6 head), so no key prefix can be found; keys look like "
                f"{sorted(sd)[:5]}; --key-prefix P takes the keys starting with P")
        key_prefix = anchors[0].split("temporal.network.0.", 1)[0]
    stripped, others = m.strip_prefix(sd, key_prefix)
    if others:
        raise SystemExit(f"error: {path}: {others} keys do not start with {key_prefix!r}")
    m.log(f"weights: {path}: {len(stripped)} entries, key prefix {key_prefix!r}")
    return stripped


def randomise_for_tests(model: torch.nn.Module) -> None:
    """Makes a randomly initialised head a useful test model. PyTorch's default init
    shrinks the signal at every TCN layer, so the outputs hardly depend on the input
    (argmax and thresholds give one answer for every frame): redraw the Conv1d / Linear
    weights variance-preserving (He normal) and the biases small. A fresh BatchNorm has
    mean 0 / var 1, a no-op in eval mode: give it plausible running statistics."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.Linear)):
                weight = mod.weight_v if hasattr(mod, "weight_v") else mod.weight
                weight.normal_(0.0, (2.0 / weight[0].numel()) ** 0.5)
                if hasattr(mod, "weight_g"):  # weight = g * v / ||v||: keep weight = v
                    mod.weight_g.copy_(torch.norm_except_dim(weight, 2, 0))
                if mod.bias is not None:
                    mod.bias.normal_(0.0, 0.1)
            elif isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.normal_(0.0, 0.2)
                mod.running_var.uniform_(0.5, 1.5)


def export_head(config: str, outputs: int, output: str, input_dim: Optional[int] = None,
                weights: Optional[str] = None, seed: int = 0,
                key_prefix: Optional[str] = None, use_ema: bool = False,
                arch: Optional[dict] = None) -> int:
    """Writes the TorchScript head to `output`; returns its input dim D. `arch`: values
    for m.HEAD_FREE_NUMBERS (nhead, ...; None or missing: the config's)."""
    torch.manual_seed(seed)
    arch = {k: v for k, v in (arch or {}).items() if v is not None}
    unknown = sorted(set(arch) - set(m.HEAD_FREE_NUMBERS))
    if unknown:
        raise ValueError(f"not free architecture numbers: {unknown}")
    try:
        model = m.build_head(config, outputs, input_dim, **arch)
    except ValueError as e:
        raise SystemExit(f"error: temporal head {config}: {e}")
    if weights is not None:
        m.load_strict(model, head_state_dict(weights, key_prefix, use_ema), weights)
    else:
        randomise_for_tests(model)
    model.eval()
    numbers = m.head_architecture(model)
    d = numbers["input_dim"]
    if weights is None:
        source = f"random init (seed {seed})"
    else:
        source = f"weights from {weights}" + (" (EMA)" if use_ema else "")
    m.log(f"temporal head {config}: {m.architecture_text(numbers)}; "
          f"{m.count_parameters(model):,} parameters (with weight norm), {source}")
    used = m.head_config(config, **arch)
    m.log("not shown by a checkpoint (options): " + ", ".join(
        f"{option} {used[key]:g}" for key, option, _, _ in ARCHITECTURE_OPTIONS))

    # Reference outputs come from the weight-normed model, so the check covers the folding.
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(1, t, d, generator=gen) for t in (1, 7)]
    with torch.no_grad():
        refs = [model(x) for x in inputs]
    model.remove_weight_norm()
    scripted = torch.jit.script(model)
    with torch.no_grad():
        for x, ref in zip(inputs, refs):
            out = scripted(x)
            if out.shape != (1, x.shape[1], outputs):
                raise SystemExit(f"error: scripted head returned {tuple(out.shape)}")
            diff = m.max_abs_diff(ref, out)
            m.log(f"scripted vs eager on [1, {x.shape[1]}, {d}]: max abs diff {diff:.3g}")
            if diff >= 1e-5:
                raise SystemExit("error: the scripted head does not match the eager one")
    torch.jit.save(scripted, output)
    m.log(f"wrote {output}")
    return d


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, choices=list(m.HEAD_CONFIGS))
    p.add_argument("--input-dim", type=int,
                   help="feature width D (default: abaw6 768, tiny 32)")
    k = p.add_mutually_exclusive_group(required=True)
    k.add_argument("--task", choices=list(m.TASK_OUTPUTS),
                   help="sets K: va 2, expr 8, au 12")
    k.add_argument("--outputs", type=int, help="K, the number of outputs")
    p.add_argument("--weights", help="state dict of the original model (.pt/.pth/.bin; "
                   "bare or nested under state_dict, model, model_state_dict, module)")
    p.add_argument("--use-ema", action="store_true",
                   help="export the EMA weights of a checkpoint holding them (under ema, "
                   "model_ema or state_dict_ema); without it the raw weights are used")
    p.add_argument("--key-prefix", help="strip this prefix from every key "
                   "(default: whatever precedes 'temporal.network.0.', e.g. 'module.')")
    add_architecture_options(p.add_argument_group(
        "architecture numbers a checkpoint cannot show (default: the config's)"))
    p.add_argument("--seed", type=int, default=0, help="random init seed (no --weights)")
    p.add_argument("--output", required=True, help="TorchScript file to write")
    args = p.parse_args(argv)
    if args.key_prefix is not None and args.weights is None:
        p.error("--key-prefix needs --weights")
    if args.use_ema and args.weights is None:
        p.error("--use-ema needs --weights")
    outputs = m.TASK_OUTPUTS[args.task] if args.task else args.outputs
    if outputs < 1:
        p.error("--outputs must be >= 1")
    export_head(args.config, outputs, args.output, args.input_dim, args.weights, args.seed,
                args.key_prefix, args.use_ema, architecture_overrides(args))


if __name__ == "__main__":
    m.fix_hash_seed()
    main(sys.argv[1:])
