#!/usr/bin/python3
"""Export the ABAW6 TCN + Transformer temporal head as TorchScript for abaw-infer.

The exported module's forward takes float32 [B, T, D] frame features (any T >= 1) and
returns float32 [B, T, K] raw scores: VA values (K=2), EXPR logits (K=8) or AU logits
(K=12). Weights: a state dict of the original upczww/abaw6 `Model` (keys `temporal.*`,
`encoder.*`, `head.*`, possibly prefixed, e.g. `module.`, or nested under 'state_dict' /
'model'); without --weights the head is randomly initialised from --seed (for tests).
"""

import argparse
import sys
import warnings
from typing import Optional

import torch

import abaw_models as m

# Emitted by torch 1.13 itself when scripting nn.TransformerEncoderLayer; harmless.
warnings.filterwarnings("ignore", message="'batch_first' was found in ScriptModule constants")


def head_state_dict(path: str, key_prefix: Optional[str]):
    sd = m.read_checkpoint(path)
    if key_prefix is None:
        # The prefix in front of the original's first key (`module.` after DataParallel).
        anchors = [k for k in sd if "temporal.network.0." in k]
        key_prefix = anchors[0].split("temporal.network.0.", 1)[0] if anchors else ""
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
                key_prefix: Optional[str] = None) -> int:
    """Writes the TorchScript head to `output`; returns its input dim D."""
    torch.manual_seed(seed)
    model = m.build_head(config, outputs, input_dim)
    if weights is not None:
        m.load_strict(model, head_state_dict(weights, key_prefix), weights)
    else:
        randomise_for_tests(model)
    model.eval()
    d = model.temporal.network[0].conv1.in_channels
    cfg = {k: v for k, v in m.HEAD_CONFIGS[config].items() if k != "input_dim"}
    m.log(f"temporal head {config}: D {d}, K {outputs}, {cfg}, "
          f"{m.count_parameters(model):,} parameters (with weight norm), "
          f"{'weights from ' + weights if weights else f'random init (seed {seed})'}")

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
    p.add_argument("--weights", help="state dict of the original model (.pt/.pth/.bin)")
    p.add_argument("--key-prefix", help="strip this prefix from every key "
                   "(default: whatever precedes 'temporal.network.0.', e.g. 'module.')")
    p.add_argument("--seed", type=int, default=0, help="random init seed (no --weights)")
    p.add_argument("--output", required=True, help="TorchScript file to write")
    args = p.parse_args(argv)
    if args.key_prefix is not None and args.weights is None:
        p.error("--key-prefix needs --weights")
    outputs = m.TASK_OUTPUTS[args.task] if args.task else args.outputs
    if outputs < 1:
        p.error("--outputs must be >= 1")
    export_head(args.config, outputs, args.output, args.input_dim, args.weights, args.seed,
                args.key_prefix)


if __name__ == "__main__":
    m.fix_hash_seed()
    main(sys.argv[1:])
