"""PyTorch definitions of the models that abaw-infer model sets are exported from.

* CLIPVisual: the OpenAI CLIP vision transformer (parameter names as in OpenAI's and
  open_clip's `visual.*` keys, without the `visual.` prefix), used as a frame encoder.
* TemporalHead: the TCN + Transformer head of the ABAW6 system (upczww/abaw6, arXiv
  2403.11440), with the original module names so that its checkpoints load strictly.

Plus the helpers the export scripts share: CLIP preprocessing for a manifest, reading
checkpoints and mapping their keys onto a module.

Run with Debian's /usr/bin/python3 (python3-torch 1.13).
"""

import os
import sys
import zipfile
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils import remove_weight_norm, weight_norm

# ---------------------------------------------------------------------------------------
# CLIP visual encoder
# ---------------------------------------------------------------------------------------

# name -> (image_size, patch_size, width, layers, heads, output_dim)
CLIP_CONFIGS = {
    "ViT-B/32": (224, 32, 768, 12, 12, 512),
    "ViT-B/16": (224, 16, 768, 12, 12, 512),
    "ViT-L/14": (224, 14, 1024, 24, 16, 768),
    "tiny": (32, 8, 64, 2, 4, 32),  # for tests only
}

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# encoder.preprocess.interpolation names (models/README.md) and the training transform each one
# reproduces, for manifest descriptions.
INTERPOLATIONS = {
    "pil_bicubic": "Pillow bicubic resize (CLIP's own transform, torchvision Resize on PIL images)",
    "pil_bilinear": "Pillow bilinear resize (torchvision Resize(BILINEAR) on PIL images)",
    "torch_bicubic": "F.interpolate bicubic resize on float tensors",
    "torch_bilinear": "F.interpolate bilinear resize on float tensors",
    "bicubic": "OpenCV bicubic resize (cv2.resize INTER_CUBIC)",
    "bilinear": "OpenCV bilinear resize (cv2.resize INTER_LINEAR)",
    "nearest": "OpenCV nearest-neighbour resize",
    "area": "OpenCV area resize (cv2.resize INTER_AREA)",
}


def clip_preprocess(config: str) -> dict:
    """The manifest's `encoder.preprocess` block for a CLIP config (CLIP's own transform:
    shorter side to the image size with Pillow's bicubic, centre crop, RGB in [0, 1], CLIP
    mean/std)."""
    image_size = CLIP_CONFIGS[config][0]
    return {
        "resize": image_size,
        "resize_mode": "shorter_side",
        "interpolation": "pil_bicubic",
        "crop": image_size,
        "color_order": "RGB",
        "scale": 1.0 / 255.0,
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
    }


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation; open_clip models trained from scratch use nn.GELU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


CLIP_ACTIVATIONS = {"quick_gelu": QuickGELU, "gelu": nn.GELU}


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model: int, n_head: int, activation: str):
        super().__init__()
        # batch_first=False as in CLIP (and the [L, N, D] layout below): this also keeps
        # torch 1.13 off its eval-mode fast path, so scripted and eager results agree.
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_model * 4)),
            ("gelu", CLIP_ACTIVATIONS[activation]()),
            ("c_proj", nn.Linear(d_model * 4, d_model)),
        ]))
        self.ln_2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, activation: str):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads, activation) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class CLIPVisual(nn.Module):
    """CLIP's VisionTransformer: float32 [N, 3, S, S] normalised images -> [N, D].

    project=True: D = output_dim, the CLIP image embedding ln_post(cls) @ proj.
    project=False: D = width, the features before the projection, ln_post(cls).
    `proj` is a parameter either way, so a full checkpoint loads strictly.
    """

    def __init__(self, image_size: int, patch_size: int, width: int, layers: int,
                 heads: int, output_dim: int, project: bool = True,
                 activation: str = "quick_gelu"):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"image size {image_size} is not a multiple of patch size {patch_size}")
        self.image_size = image_size
        self.project = project
        self.feature_dim = output_dim if project else width
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        grid = image_size // patch_size
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, activation)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != self.image_size \
                or x.shape[3] != self.image_size:
            raise ValueError("CLIPVisual expects [N, 3, " + str(self.image_size) + ", "
                             + str(self.image_size) + "] input")
        x = self.conv1(x)                                     # [N, width, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [N, grid^2, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, x.shape[2])
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_post(x[:, 0, :])
        if self.project:
            x = x @ self.proj
        return x


def build_clip(config: str, project: bool = True, activation: str = "quick_gelu") -> CLIPVisual:
    return CLIPVisual(*CLIP_CONFIGS[config], project=project, activation=activation)


# ---------------------------------------------------------------------------------------
# ABAW6 temporal head (upczww/abaw6: {VA,EXPR,AU}/model/{tcn,trans_encoder,model}.py)
# ---------------------------------------------------------------------------------------

TASK_OUTPUTS = {"va": 2, "expr": 8, "au": 12}

# The original hard-codes tcn_channels = [768, 256, 128] and uses num_inputs =
# tcn_channels[0], i.e. D = 768; `input_dim` is the default feature width D.
HEAD_CONFIGS = {
    "abaw6": dict(input_dim=768, channels=(768, 256, 128), kernel_size=5,
                  d_model=512, nhead=4, dim_feedforward=512, num_layers=8),
    "tiny": dict(input_dim=32, channels=(16, 16, 8), kernel_size=3,
                 d_model=16, nhead=2, dim_feedforward=16, num_layers=2),
}


class Chomp1d(nn.Module):
    """Drops the right padding so that the convolution is causal."""

    def __init__(self, chomp_size: int):
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :-self.chomp_size].contiguous()


class TemporalBlock(nn.Module):
    """Bai et al.'s TCN block as the ABAW6 code has it: PReLU (not ReLU) activations,
    including the one after the residual add. conv1/relu1/... are registered both as
    attributes and inside `net` (as in the original), so the state dict carries each
    of their parameters twice (`conv1.*` and `net.0.*`) - as the original checkpoints do."""

    def __init__(self, n_inputs: int, n_outputs: int, kernel_size: int, dilation: int,
                 dropout: float):
        super().__init__()
        padding = (kernel_size - 1) * dilation
        self.conv1 = weight_norm(nn.Conv1d(n_inputs, n_outputs, kernel_size,
                                           padding=padding, dilation=dilation))
        self.chomp1 = Chomp1d(padding)
        self.relu1 = nn.PReLU()
        self.dropout1 = nn.Dropout(dropout)
        self.conv2 = weight_norm(nn.Conv1d(n_outputs, n_outputs, kernel_size,
                                           padding=padding, dilation=dilation))
        self.chomp2 = Chomp1d(padding)
        self.relu2 = nn.PReLU()
        self.dropout2 = nn.Dropout(dropout)
        self.net = nn.Sequential(self.conv1, self.chomp1, self.relu1, self.dropout1,
                                 self.conv2, self.chomp2, self.relu2, self.dropout2)
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
        self.relu = nn.PReLU()
        # The original also draws conv1/conv2 weights from N(0, 0.01), but after
        # weight_norm that writes a derived tensor and has no effect; only this one counts.
        if self.downsample is not None:
            self.downsample.weight.data.normal_(0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class TemporalConvNet(nn.Module):
    def __init__(self, num_inputs: int, num_channels: Tuple[int, ...], kernel_size: int,
                 dropout: float, dilation_base: int = 2):
        super().__init__()
        layers = []
        for i, out_channels in enumerate(num_channels):
            in_channels = num_inputs if i == 0 else num_channels[i - 1]
            layers.append(TemporalBlock(in_channels, out_channels, kernel_size,
                                        dilation=dilation_base ** i, dropout=dropout))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class TransEncoder(nn.Module):
    """Conv1d(k=1) to d_model, then a post-norm nn.TransformerEncoder over [T, B, d_model]
    (batch_first=False as in the original; no positional encoding, no mask)."""

    def __init__(self, inc: int, d_model: int, nhead: int, dim_feedforward: int,
                 num_layers: int, dropout: float, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.conv1 = nn.Conv1d(inc, d_model, kernel_size=1)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           layer_norm_eps=layer_norm_eps)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)            # [B, d_model, T]
        out = out.permute(2, 0, 1)     # [T, B, d_model]
        return self.transformer_encoder(out)


class TemporalHead(nn.Module):
    """float32 [B, T, D] frame features -> [B, T, K] raw scores (logits / VA values).

    Same computation and parameter names as the original `Model` (which returns
    [B*T, K]); BatchNorm1d runs over the d_model//2 features of the B*T frames."""

    def __init__(self, input_dim: int, outputs: int, channels: Tuple[int, ...] = (768, 256, 128),
                 kernel_size: int = 5, d_model: int = 512, nhead: int = 4,
                 dim_feedforward: int = 512, num_layers: int = 8, dropout: float = 0.0,
                 dilation_base: int = 2, layer_norm_eps: float = 1e-5, batch_norm_eps: float = 1e-5):
        super().__init__()
        _check_head_numbers(kernel_size, d_model, nhead, dilation_base, layer_norm_eps, batch_norm_eps)
        self.temporal = TemporalConvNet(input_dim, tuple(channels), kernel_size, dropout, dilation_base)
        self.encoder = TransEncoder(channels[-1], d_model, nhead, dim_feedforward,
                                    num_layers, dropout, layer_norm_eps)
        self.head = nn.Sequential(
            nn.Linear(d_model, d_model // 2),
            nn.BatchNorm1d(d_model // 2, eps=batch_norm_eps),
            nn.Linear(d_model // 2, outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        t = x.shape[1]
        x = self.temporal(x.transpose(1, 2))      # [B, c3, T]
        x = self.encoder(x)                       # [T, B, d_model]
        x = x.transpose(0, 1).reshape(b * t, -1)  # [B*T, d_model]
        x = self.head(x)
        return x.reshape(b, t, -1)

    def remove_weight_norm(self) -> None:
        """Folds weight_g/weight_v into plain weights (needed before scripting)."""
        for block in self.temporal.network:
            remove_weight_norm(block.conv1)
            remove_weight_norm(block.conv2)


# A checkpoint shows the layer shapes of HEAD_CONFIGS (strict loading checks them against
# the config) but not HEAD_FREE_NUMBERS, which the export scripts take as options; their
# defaults are the original's: HEAD_CONFIGS' nhead and HEAD_DEFAULTS. (Kept below the classes:
# TorchScript files record the line numbers of every scripted forward.)
HEAD_DEFAULTS = dict(dilation_base=2, layer_norm_eps=1e-5, batch_norm_eps=1e-5)
HEAD_FREE_NUMBERS = ("nhead", "dilation_base", "layer_norm_eps", "batch_norm_eps")


def _check_head_numbers(kernel_size: int, d_model: int, nhead: int, dilation_base: int,
                        layer_norm_eps: float, batch_norm_eps: float) -> None:
    if kernel_size < 2:
        raise ValueError("kernel_size must be >= 2 (Chomp1d needs a non-zero padding)")
    if nhead < 1 or d_model % nhead != 0:
        raise ValueError(f"the number of attention heads ({nhead}) must divide "
                         f"d_model ({d_model})")
    if dilation_base < 1:
        raise ValueError(f"the dilation base must be >= 1, not {dilation_base}")
    if not (layer_norm_eps > 0 and batch_norm_eps > 0):
        raise ValueError("the LayerNorm and BatchNorm eps must be > 0")


def head_config(config: str, **overrides) -> dict:
    """HEAD_CONFIGS[config] with HEAD_DEFAULTS; `overrides` (e.g. nhead=8) replace
    values, None meaning the config's."""
    cfg = {**HEAD_DEFAULTS, **HEAD_CONFIGS[config]}
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise ValueError(f"not head config entries: {unknown}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def build_head(config: str, outputs: int, input_dim: Optional[int] = None,
               **overrides) -> TemporalHead:
    """A TemporalHead of `config`, with head_config's `overrides`."""
    cfg = head_config(config, **overrides)
    default_dim = cfg.pop("input_dim")
    return TemporalHead(input_dim if input_dim is not None else default_dim, outputs, **cfg)


def head_architecture(head) -> Optional[Dict[str, object]]:
    """Every architecture number of a TemporalHead, eager or scripted (also one loaded
    from a file); None for a module of another structure."""
    try:
        blocks = list(head.temporal.network.children())
        layers = list(head.encoder.transformer_encoder.layers.children())
        mlp = list(head.head.children())
        first = layers[0]
        return {
            "input_dim": int(blocks[0].conv1.in_channels),
            "outputs": int(mlp[2].out_features),
            "channels": [int(b.conv1.out_channels) for b in blocks],
            "kernel_size": int(blocks[0].conv1.kernel_size[0]),
            "dilations": [int(b.conv1.dilation[0]) for b in blocks],
            "d_model": int(head.encoder.conv1.out_channels),
            "nhead": int(first.self_attn.num_heads),
            "dim_feedforward": int(first.linear1.out_features),
            "num_layers": len(layers),
            "hidden": int(mlp[0].out_features),
            "layer_norm_eps": float(first.norm1.eps),
            "batch_norm_eps": float(mlp[1].eps),
        }
    except (AttributeError, IndexError, TypeError, RuntimeError):
        return None


def architecture_text(arch: Dict[str, object], io: bool = True) -> str:
    """head_architecture() as one line; io=False leaves out D and K."""
    parts = [f"D {arch['input_dim']}", f"K {arch['outputs']}"] if io else []
    parts += [
        "TCN channels " + "/".join(str(c) for c in arch["channels"]),
        f"kernel {arch['kernel_size']}",
        "dilations " + "/".join(str(d) for d in arch["dilations"]),
        f"d_model {arch['d_model']}",
        f"attention heads {arch['nhead']}",
        f"feed-forward {arch['dim_feedforward']}",
        f"encoder layers {arch['num_layers']}",
        f"hidden {arch['hidden']}",
        f"LayerNorm eps {arch['layer_norm_eps']:g}",
        f"BatchNorm eps {arch['batch_norm_eps']:g}",
    ]
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------

def fix_hash_seed() -> None:
    """Re-runs the script with PYTHONHASHSEED=0 unless it is set so: TorchScript writes
    some class constants in set order, so without it the same model gives different bytes."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)


def log(*args) -> None:
    print(*args, file=sys.stderr)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # shared parameters counted once


def is_torchscript_archive(path: str) -> bool:
    """TorchScript archives are zips with a code/ folder; torch.save zips have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in name for name in z.namelist())


# A checkpoint's model weights may sit under these keys, nested in any order (e.g.
# {"model": {"state_dict": ...}}, DeepSpeed's {"module": ...}); EMA weights under EMA_KEYS.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
EMA_KEYS = ("ema", "model_ema", "state_dict_ema")
_MAX_NESTING = 6


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def _where(keys: Tuple[str, ...]) -> str:
    return "under " + " > ".join(repr(k) for k in keys) if keys else "at the top level"


def _keys_text(obj, limit: int = 20) -> str:
    if not isinstance(obj, dict):
        return f"none: the file holds a {type(obj).__name__}, not a dict"
    keys = [repr(k) for k in obj]
    more = f", ... ({len(keys)} keys)" if len(keys) > limit else ""
    return "[" + ", ".join(keys[:limit]) + more + "]"


def _search(obj, keys: Tuple[str, ...], ema: bool, found: list, other: list) -> None:
    """Collects (keys, is_ema, state dict) for every dict of tensors reachable through
    WRAPPER_KEYS / EMA_KEYS, and (keys, dict) for the dicts passed on the way."""
    if _is_state_dict(obj):
        found.append((keys, ema, obj))
        return
    if not isinstance(obj, dict) or len(keys) >= _MAX_NESTING:
        return
    if keys:
        other.append((keys, obj))
    for key in WRAPPER_KEYS + EMA_KEYS:
        if isinstance(obj.get(key), dict):
            _search(obj[key], keys + (key,), ema or key in EMA_KEYS, found, other)


def _same_tensors(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    return a is b or (a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k])
        for k in a))


def _distinct(cands: list) -> list:
    """Groups (keys, state dict) pairs holding the same tensors: [[(keys, sd), ...], ...]."""
    groups: list = []
    for keys, sd in cands:
        for group in groups:
            if _same_tensors(group[0][1], sd):
                group.append((keys, sd))
                break
        else:
            groups.append([(keys, sd)])
    return groups


def _group_text(group: list) -> str:
    return " = ".join(_where(keys) for keys, _ in group) + f" ({len(group[0][1])} tensors)"


def read_checkpoint(path: str, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """The flat tensor dict in a TorchScript archive (e.g. OpenAI's CLIP .pt files) or in
    a torch.save file: a bare state dict or one nested under WRAPPER_KEYS in any order.
    EMA weights (under EMA_KEYS, possibly nested) are used only with use_ema; without it,
    raw weights are used and a note says EMA weights exist. Stops with an error, naming
    the keys found and tried, when no state dict or more than one different one fits."""
    if is_torchscript_archive(path):
        if use_ema:
            raise SystemExit(f"error: {path}: --use-ema: a TorchScript archive holds one set "
                             "of weights, no EMA weights")
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # pickle, zip and torch errors alike: not a checkpoint we can read
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise SystemExit(f"error: {path}: not a torch.save file or TorchScript archive "
                         f"({type(e).__name__}: {first_line}); safetensors files must be "
                         "converted to a torch.save state dict first")
    found: list = []
    other: list = []
    _search(obj, (), False, found, other)
    tried = (f"  tried: a dict of tensors at the top level or under the wrapper keys "
             f"{', '.join(WRAPPER_KEYS)} and the EMA keys {', '.join(EMA_KEYS)}, "
             f"nested in any order (up to {_MAX_NESTING} levels)")
    top = f"  top-level keys: {_keys_text(obj)}"
    raw = _distinct([(keys, sd) for keys, ema, sd in found if not ema])
    ema = _distinct([(keys, sd) for keys, ema, sd in found if ema])

    if not raw and not ema:
        msg = [f"error: {path}: not a state dict of tensors (no dict whose values are all "
               "tensors where model weights are kept)", top]
        msg += [f"  {_where(keys)}: keys {_keys_text(d)}" for keys, d in other]
        raise SystemExit("\n".join(msg + [tried]))
    kind, groups = ("EMA", ema) if use_ema else ("raw", raw)
    if use_ema and not ema:
        raise SystemExit("\n".join([
            f"error: {path}: --use-ema, but the checkpoint holds no EMA weights "
            f"(its state dict is {_group_text(raw[0]) if len(raw) == 1 else 'ambiguous'})",
            top, tried]))
    if not use_ema and not raw:
        raise SystemExit("\n".join([
            f"error: {path}: the checkpoint holds only EMA weights ("
            + "; ".join(_group_text(g) for g in ema) + "): pass --use-ema to export them",
            top, tried]))
    if len(groups) > 1:
        raise SystemExit("\n".join([
            f"error: {path}: ambiguous checkpoint: {len(groups)} different {kind} state dicts "
            "could be the model: " + "; ".join(_group_text(g) for g in groups),
            top, tried,
            "  save the one to export on its own, e.g. torch.save(ckpt['model'], 'weights.pt')"]))
    chosen = groups[0]
    log(f"weights: {path}: {kind} state dict {_group_text(chosen)}")
    if not use_ema and ema:
        log(f"note: {path} also holds EMA weights ("
            + "; ".join(_group_text(g) for g in ema)
            + "); the raw weights are used, --use-ema selects the EMA ones")
    sd = dict(chosen[0][1])
    if "n_averaged" in sd and sd["n_averaged"].dim() == 0:
        # torch.optim.swa_utils.AveragedModel's counter beside its `module.*` weights.
        del sd["n_averaged"]
        log(f"weights: {path}: ignored 'n_averaged' (AveragedModel's update counter)")
    return sd


def strip_prefix(sd: Dict[str, torch.Tensor], prefix: str) -> Tuple[Dict[str, torch.Tensor], int]:
    """Keys starting with `prefix`, with it removed; and the number of other keys."""
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return out, len(sd) - len(out)


def load_strict(module: nn.Module, sd: Dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True) with an error that lists what does not match."""
    expected = set(module.state_dict().keys())
    missing = sorted(expected - sd.keys())
    unexpected = sorted(sd.keys() - expected)
    if missing or unexpected:
        msg = [f"error: {source} does not match the model"]
        if missing:
            msg.append(f"  {len(missing)} missing keys, e.g. {missing[:5]}")
        if unexpected:
            msg.append(f"  {len(unexpected)} unexpected keys, e.g. {unexpected[:5]}")
        raise SystemExit("\n".join(msg))
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # shape mismatches: a different config
        raise SystemExit(f"error: {source}: {e}")


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ---------------------------------------------------------------------------------------
# CLIP text encoder (scripts/export_clip_text.py). Kept at the end of the file: the
# TorchScript files of the classes above record their source line numbers.
# ---------------------------------------------------------------------------------------

# name -> (context_length, vocab_size, width, layers, heads, embed_dim), as OpenAI's CLIP
# (heads = width // 64). "tiny" (tests) has the tiny visual config's embedding width; its
# vocab_size None means the tokenizer's.
CLIP_TEXT_CONFIGS = {
    "ViT-B/32": (77, 49408, 512, 12, 8, 512),
    "ViT-B/16": (77, 49408, 512, 12, 8, 512),
    "ViT-L/14": (77, 49408, 768, 12, 12, 768),
    "tiny": (77, None, 32, 2, 4, 32),  # for tests only
}


class MaskedResidualAttentionBlock(ResidualAttentionBlock):
    """ResidualAttentionBlock (same parameters) with an additive attention mask."""

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class TextTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, activation: str):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(
            *[MaskedResidualAttentionBlock(width, heads, activation) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class CLIPText(nn.Module):
    """CLIP's text encoder (OpenAI's CLIP.encode_text): int64 [N, L] token ids (sot ...
    eot, zero-padded; L <= context_length) -> float32 [N, embed_dim], the text embedding
    ln_final(x at the eot token, the largest id of a row) @ text_projection. Causal
    self-attention. Parameter names as OpenAI's and open_clip's top-level text keys."""

    def __init__(self, context_length: int, vocab_size: int, width: int, layers: int,
                 heads: int, embed_dim: int, activation: str = "quick_gelu"):
        super().__init__()
        if heads < 1 or width % heads != 0:
            raise ValueError(f"the number of attention heads ({heads}) must divide the "
                             f"text width ({width})")
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.heads = heads
        self.embed_dim = embed_dim
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = TextTransformer(width, layers, heads, activation)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        mask = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """OpenAI CLIP's initialisation of the text tower."""
        width, layers = self.transformer.width, self.transformer.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = width ** -0.5 * (2 * layers) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        length = text.shape[1]
        if text.dim() != 2 or length > self.context_length:
            raise ValueError(f"CLIPText expects [N, L] token ids, L <= {self.context_length}")
        x = self.token_embedding(text) + self.positional_embedding[:length]
        x = self.transformer(x.permute(1, 0, 2), self.attn_mask[:length, :length])
        x = self.ln_final(x.permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


def text_config_from_weights(sd: Dict[str, torch.Tensor]) -> Dict[str, int]:
    """The text tower's numbers from its (bare-key) weights, as OpenAI's build_model
    reads them; heads cannot be read from shapes (build_model takes width // 64)."""
    layers = {k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}
    width = sd["ln_final.weight"].shape[0]
    return {
        "context_length": sd["positional_embedding"].shape[0],
        "vocab_size": sd["token_embedding.weight"].shape[0],
        "width": width,
        "layers": len(layers),
        "heads": width // 64,
        "embed_dim": sd["text_projection"].shape[1],
    }
